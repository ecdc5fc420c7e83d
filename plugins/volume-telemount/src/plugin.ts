import {mkdtemp, rm, stat, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import type Dockerode from 'dockerode'
import {pack} from 'tar-fs'
import {type RootfsSpec, STATIC_BUSYBOX, assembleRootfs, inputsHash} from '@tp/images'
import {BugError, dockerMessage, isNotFound, type Logger, UserError, debugLog, packageDir, swallow} from '@tp/sdk'

const trace = debugLog('tp:plugin:volume-telemount')

/**
 * Installs the telemount managed volume plugin with no registry: a rootfs assembled from this
 * machine's node, sshfs, fusermount and busybox plus the bundled server, registered with
 * `POST /plugins/create` (what `docker plugin create` does) and enabled. Named `tp-telemount:<tp
 * version>`, so a new tp gets a new plugin and never talks to a stale one.
 */
export const DEFAULT_PLUGIN_NAME = 'tp-telemount'
export const PROPAGATED_MOUNT = '/mnt/volumes'
/** The socket the server listens on; Docker finds it in /run/docker/plugins inside the plugin. */
export const PLUGIN_SOCKET = 'telemount.sock'

export interface PluginSettings {
  /** Plugin name without tag (TP_TELEMOUNT_PLUGIN). */
  name: string
  /** tp's version; the plugin's tag. */
  version: string
  /**
   * A ready plugin directory (config.json + rootfs/) to register instead of assembling one
   * (TP_TELEMOUNT_ROOTFS). Meant for custom builds and for testing failed installs.
   */
  pluginDir?: string
  log: Logger
}

export function pluginSettingsFromEnv(version: string, log: Logger, env: NodeJS.ProcessEnv = process.env): PluginSettings {
  return {name: env.TP_TELEMOUNT_PLUGIN || DEFAULT_PLUGIN_NAME, version, pluginDir: env.TP_TELEMOUNT_ROOTFS || undefined, log}
}

/** `name:tag`, with the version made a valid Docker tag (`+` of semver build metadata is not). */
export function pluginRef(settings: Pick<PluginSettings, 'name' | 'version'>): string {
  return `${settings.name}:${settings.version.replace(/[^\w.-]/g, '-').slice(0, 128)}`
}

/** The bundled server, built by `npm run bundle` into dist/ (found from package.json: this module may run from dist/bundle/). */
export function serverBundlePath(): string {
  return join(packageDir('@tp/plugin-volume-telemount', import.meta.url), 'dist/server.cjs')
}

export function pluginRootfsSpec(serverBundle: string): RootfsSpec {
  return {
    binaries: ['/usr/bin/node', '/usr/bin/sshfs', '/usr/bin/fusermount3'],
    hostPaths: ['/usr/bin/fusermount'],
    busybox: STATIC_BUSYBOX,
    files: {
      '/server.cjs': {source: serverBundle},
      '/etc/passwd': {content: 'root:x:0:0:root:/root:/bin/sh\n'},
      '/etc/group': {content: 'root:x:0:\n'},
    },
    dirs: ['/proc', '/sys', '/dev', '/root', PROPAGATED_MOUNT, '/run/docker/plugins', '/var/lib/telemount'],
  }
}

/** config.json of the managed plugin (see Docker's "Plugin Config Version 1 of Plugin V2"). */
export function pluginConfig(build: string): Record<string, unknown> {
  return {
    description: `tp telemount: workload volumes over SFTP with sshfs (build ${build})`,
    entrypoint: ['/usr/bin/node', '/server.cjs'],
    workdir: '/',
    env: [{name: 'PATH', description: 'search path', settable: [], value: '/usr/sbin:/usr/bin:/sbin:/bin'}],
    interface: {socket: PLUGIN_SOCKET, types: ['docker.volumedriver/1.0']},
    linux: {capabilities: ['CAP_SYS_ADMIN'], allowAllDevices: false, devices: [{path: '/dev/fuse'}]},
    network: {type: 'host'},
    propagatedMount: PROPAGATED_MOUNT,
    mounts: [],
  }
}

/** The build id written into the plugin's description: changes when any input of the plugin does. */
export function buildOf(description: string | undefined): string | undefined {
  return description?.match(/\(build ([0-9a-f]+)\)/)?.[1]
}

async function requireServerBundle(): Promise<string> {
  const bundle = serverBundlePath()
  try {
    await stat(bundle)
  } catch {
    throw new BugError(
      `the telemount plugin server ${bundle} is missing; build tp with \`npm run build\` (it runs \`npm run -w @tp/plugin-volume-telemount bundle\`)`,
    )
  }
  return bundle
}

type PluginInfo = Awaited<ReturnType<Dockerode.Plugin['inspect']>>

async function inspectPlugin(docker: Dockerode, ref: string): Promise<PluginInfo | undefined> {
  try {
    return await docker.getPlugin(ref, undefined).inspect()
  } catch (error) {
    if (isNotFound(error)) return undefined
    throw error
  }
}

function installFailed(ref: string, why: string, error?: unknown): UserError {
  return new UserError(
    `cannot install the telemount volume plugin ${ref}: ${why}`,
    "remote volumes need it; fix the cause above (see `journalctl -u docker` or dockerd's log for the plugin's own output), or run the intercept with --mount=false to go without remote volumes",
    {cause: error},
  )
}

async function createPlugin(docker: Dockerode, ref: string, pluginDir: string): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    docker.modem.dial(
      {
        path: '/plugins/create?',
        method: 'POST',
        options: {name: ref},
        file: pack(pluginDir),
        statusCodes: {200: true, 204: true, 400: 'bad parameter', 409: 'conflict', 500: 'server error'},
      } as never,
      (error: unknown) => (error ? reject(error) : resolve()),
    )
  })
}

async function checkPluginDir(dir: string): Promise<void> {
  const config = await stat(join(dir, 'config.json')).catch(swallow(trace, `stat of ${dir}/config.json`))
  const rootfs = await stat(join(dir, 'rootfs')).catch(swallow(trace, `stat of ${dir}/rootfs`))
  if (!config?.isFile() || !rootfs?.isDirectory()) {
    throw new UserError(
      `cannot install the telemount volume plugin: TP_TELEMOUNT_ROOTFS=${dir} is not a plugin directory (it needs config.json and a rootfs/ directory)`,
      'point TP_TELEMOUNT_ROOTFS at a plugin directory, or unset it to let tp build the plugin',
    )
  }
}

/**
 * Whether `ensurePlugin` would find the plugin ready at once (installed, enabled, this build), so
 * that running it installs nothing. Changes nothing; any doubt is false.
 */
export async function pluginIsReady(docker: Dockerode, settings: PluginSettings): Promise<boolean> {
  const existing = await inspectPlugin(docker, pluginRef(settings))
  if (!existing?.Enabled) return false
  if (settings.pluginDir) return true
  const build = await inputsHash(pluginRootfsSpec(await requireServerBundle()), [JSON.stringify(pluginConfig(''))])
  return buildOf(existing.Config?.Description) === build
}

/**
 * Makes sure `ref` exists and is enabled; returns the driver name to give `docker volume create`.
 * Idempotent and safe when several tp processes run it at once.
 */
export async function ensurePlugin(docker: Dockerode, settings: PluginSettings): Promise<string> {
  const ref = pluginRef(settings)
  let spec: RootfsSpec | undefined
  let build: string | undefined
  if (settings.pluginDir) await checkPluginDir(settings.pluginDir)
  else {
    spec = pluginRootfsSpec(await requireServerBundle())
    build = await inputsHash(spec, [JSON.stringify(pluginConfig(''))])
  }

  for (let attempt = 0; attempt < 4; attempt++) {
    const existing = await inspectPlugin(docker, ref)
    if (existing) {
      if (build && buildOf(existing.Config?.Description) !== build) {
        // same version, other build (tp rebuilt from changed sources): replace it unless in use
        settings.log.debug(`telemount plugin ${ref} is build ${buildOf(existing.Config?.Description) ?? '?'}, want ${build}: replacing it`)
        const removed = await removePlugin(docker, ref, settings.log)
        if (removed) continue
        if (!existing.Enabled) await enablePlugin(docker, ref)
        return ref
      }
      if (!existing.Enabled) await enablePlugin(docker, ref)
      await removeOtherVersions(docker, settings, ref)
      return ref
    }

    const staging = settings.pluginDir ? undefined : await mkdtemp(join(tmpdir(), 'tp-telemount-'))
    try {
      if (staging && spec && build) {
        settings.log.info(`installing the telemount volume plugin ${ref}`)
        await assembleRootfs(spec, join(staging, 'rootfs'), 'telemount plugin')
        await writeFile(join(staging, 'config.json'), JSON.stringify(pluginConfig(build), null, 2))
      }
      try {
        await createPlugin(docker, ref, staging ?? settings.pluginDir!)
      } catch (error) {
        if (/already exists/i.test(dockerMessage(error))) continue // another tp created it meanwhile
        throw installFailed(ref, `docker plugin create failed: ${dockerMessage(error)}`, error)
      }
    } finally {
      if (staging) await rm(staging, {recursive: true, force: true})
    }
    try {
      await enablePlugin(docker, ref)
    } catch (error) {
      // never leave a plugin that cannot start: the next attempt must start from scratch
      await docker
        .getPlugin(ref, undefined)
        .remove({force: true})
        .catch(swallow(trace, `removing plugin ${ref} that did not enable`))
      throw installFailed(ref, `docker plugin enable failed: ${dockerMessage(error)}`, error)
    }
    await removeOtherVersions(docker, settings, ref)
    return ref
  }
  throw installFailed(ref, 'it kept changing while tp was installing it (another tp installing a different build?)')
}

async function enablePlugin(docker: Dockerode, ref: string): Promise<void> {
  try {
    await docker.getPlugin(ref, undefined).enable({timeout: 30})
  } catch (error) {
    if (/already enabled/i.test(dockerMessage(error))) return
    throw error
  }
}

/** Disables and removes a plugin; false when Docker refuses because volumes still use it. */
async function removePlugin(docker: Dockerode, ref: string, log: Logger): Promise<boolean> {
  const plugin = docker.getPlugin(ref, undefined)
  try {
    await plugin.disable({}).catch((error: unknown) => {
      if (!/already disabled|not enabled/i.test(dockerMessage(error))) throw error
    })
    await plugin.remove({})
    return true
  } catch (error) {
    if (isNotFound(error)) return true
    log.warn(`could not remove the telemount plugin ${ref}: ${dockerMessage(error)}`)
    return false
  }
}

/**
 * Removes plugins of the same name and an OLDER tp version; ones still in use stay. Newer ones are
 * left alone, so an old tp running beside a new one does not tear down the new one's plugin.
 */
async function removeOtherVersions(docker: Dockerode, settings: PluginSettings, keep: string): Promise<void> {
  const plugins = (await docker.listPlugins().catch(swallow(trace, 'listing the Docker plugins'))) ?? []
  const keepTag = keep.slice(settings.name.length + 1)
  for (const plugin of plugins) {
    if (!plugin.Name.startsWith(`${settings.name}:`) || plugin.Name === keep) continue
    const tag = plugin.Name.slice(settings.name.length + 1)
    if (tag.localeCompare(keepTag, 'en', {numeric: true}) > 0) continue
    settings.log.debug(`removing the telemount plugin of an older tp version: ${plugin.Name}`)
    await removePlugin(docker, plugin.Name, settings.log)
  }
}
