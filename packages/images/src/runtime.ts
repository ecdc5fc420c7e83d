import {createHash} from 'node:crypto'
import {readFileSync} from 'node:fs'
import {copyFile, mkdtemp, readFile, rm, stat, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import type Dockerode from 'dockerode'
import {pack} from 'tar-fs'
import {SubprocessError, UserError, packageDir} from '@tp/sdk'
import {ensureImportedImage, LABEL_INPUTS, STATIC_BUSYBOX, type ImportedImage, type RootfsSpec} from './rootfs.js'

/**
 * tp's runtime image: node, iptables (nft), busybox, sftp-server, tcpdump and the bundled agent and daemon.
 * One image serves every role (`node /opt/tp/agent.cjs`, `node /opt/tp/daemon.cjs`, `node /opt/tp/relay.cjs`); it is tagged
 * with this package's version so the CLI, daemon and agent never skew.
 */
export const RUNTIME_REPO = 'tp-runtime'
export const DAEMON_REPO = 'tp-daemon'
export const RUNTIME_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
export const AGENT_ENTRY = '/opt/tp/agent.cjs'
export const DAEMON_ENTRY = '/opt/tp/daemon.cjs'
/** The far end of a tunnel to a cluster on another machine (`node /opt/tp/relay.cjs`, on its stdin and stdout). */
export const RELAY_ENTRY = '/opt/tp/relay.cjs'

export type RuntimeBundle = 'agent' | 'daemon' | 'relay'

/** Where `npm run -w @tp/images bundle` writes the bundles (packages/images/bundle/). */
export function bundleDir(): string {
  return join(packageDir('@tp/images', import.meta.url), 'bundle')
}

export function bundlePath(which: RuntimeBundle, dir = bundleDir()): string {
  return join(dir, `${which}.cjs`)
}

/**
 * The tag of tp's images: the version, or TP_IMAGE_TAG when set. Two checkouts of tp with
 * different agents on one engine (development, parallel test runs) each set their own, so neither
 * replaces the image the other's containers run.
 */
export function imageTag(version?: string): string {
  return process.env.TP_IMAGE_TAG || version || imagesPackageVersion()
}

export function imagesPackageVersion(): string {
  const pkg = JSON.parse(readFileSync(join(packageDir('@tp/images', import.meta.url), 'package.json'), 'utf8')) as {version: string}
  return pkg.version
}

const XTABLES = '/usr/sbin/xtables-nft-multi'
/**
 * The system ssh, when this machine has one: a daemon in a container reaches a cluster behind
 * ssh:// with it (the user's ~/.ssh and ssh agent are lent to that container), as tp on the host does.
 */
export const SSH_CLIENT = '/usr/bin/ssh'
/**
 * tcpdump, when this machine has one (scripts/setup-host.sh installs it): a wiretap's agent captures
 * the port's packets with it instead of redirecting clients through itself (without it, it redirects).
 */
export const TCPDUMP = '/usr/bin/tcpdump'

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  )
}

/**
 * The rootfs of the runtime image. The iptables names are copies of xtables-nft-multi (it picks
 * its mode from argv[0]), which keeps the image independent of the host's alternatives links.
 */
export async function runtimeSpec(bundles: Partial<Record<RuntimeBundle, string>>): Promise<RootfsSpec> {
  const ssh = (await exists(SSH_CLIENT)) ? [SSH_CLIENT] : []
  const tcpdump = (await exists(TCPDUMP)) ? [TCPDUMP] : []
  const files: NonNullable<RootfsSpec['files']> = {
    '/etc/passwd': {content: 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n'},
    '/etc/group': {content: 'root:x:0:\nnogroup:x:65534:\n'},
  }
  for (const name of ['iptables', 'iptables-save', 'iptables-restore']) files[`/usr/sbin/${name}`] = {source: XTABLES, mode: 0o755}
  if (bundles.agent) files[AGENT_ENTRY] = {source: bundles.agent}
  if (bundles.daemon) files[DAEMON_ENTRY] = {source: bundles.daemon}
  if (bundles.relay) files[RELAY_ENTRY] = {source: bundles.relay}
  return {
    binaries: ['/usr/bin/node', XTABLES, '/usr/lib/openssh/sftp-server', ...ssh, ...tcpdump],
    hostPaths: ['/usr/lib/x86_64-linux-gnu/xtables'],
    busybox: STATIC_BUSYBOX,
    dirs: ['/root', '/opt/tp', '/run', '/var/run'],
    files,
  }
}

export interface RuntimeImageOptions {
  /** Tag; defaults to the version of @tp/images. */
  version?: string
  /**
   * Bundles that must be in the image (default: agent, daemon and relay). A missing required bundle is
   * an error; a bundle that is not required is added when it exists.
   */
  require?: RuntimeBundle[]
  /** Where the bundles are (default: this package's bundle/ directory). */
  bundleDir?: string
  /** Hears a line when the image has to be built. */
  progress?: (line: string) => void
}

/** Builds (or reuses, when nothing changed) `tp-runtime:<version>`. */
export async function ensureRuntimeImage(docker: Dockerode, options: RuntimeImageOptions = {}): Promise<ImportedImage> {
  const required = options.require ?? ['agent', 'daemon', 'relay']
  const bundles: Partial<Record<RuntimeBundle, string>> = {}
  for (const which of ['agent', 'daemon', 'relay'] as const) {
    const path = bundlePath(which, options.bundleDir)
    if (await exists(path)) bundles[which] = path
    else if (required.includes(which)) {
      throw new UserError(
        `tp's ${which} bundle is missing (${path}); it is made when tp is built`,
        'run `npm run build` in the tp checkout (it runs `npm run -w @tp/images bundle`)',
      )
    }
  }
  return ensureImportedImage(docker, {
    repo: RUNTIME_REPO,
    tag: imageTag(options.version),
    spec: await runtimeSpec(bundles),
    changes: [`ENV PATH=${RUNTIME_PATH}`, 'WORKDIR /'],
    labels: {'tp.image': 'runtime'},
    what: 'runtime',
    progress: options.progress,
  })
}

/** Where tp's daemon image keeps a cluster driver's module: the daemon imports it from there. */
export function driverModulePath(driver: string): string {
  return `/opt/tp/drivers/${driver}.mjs`
}

/** Where tp's daemon image keeps a daemon addon's module (a backend's, named in TP_DAEMON_ADDONS). */
export function addonModulePath(name: string): string {
  return `/opt/tp/addons/${name}.mjs`
}

/** A self-contained ES module the daemon image carries: a cluster driver's, or a backend's addon. */
export interface ImageModule {
  name: string
  module: string
}

/**
 * The image a container daemon runs: the runtime image plus the connection's cluster driver (its
 * self-contained module at `driverModulePath`) and its backend's addons (at `addonModulePath`),
 * `tp-daemon:<version>-<driver>`. A layer on the runtime image, rebuilt only when the runtime image
 * or a module changed.
 */
export async function ensureDaemonImage(
  docker: Dockerode,
  options: RuntimeImageOptions & {driver: ImageModule; addons?: ImageModule[]},
): Promise<ImportedImage> {
  const runtime = await ensureRuntimeImage(docker, options)
  const ref = `${DAEMON_REPO}:${imageTag(options.version)}-${options.driver.name}`
  const addons = options.addons ?? []
  const hasher = createHash('sha256')
    .update(runtime.id)
    .update(options.driver.name)
    .update(await readFile(options.driver.module))
  for (const addon of addons) hasher.update(addon.name).update(await readFile(addon.module))
  const hash = hasher.digest('hex').slice(0, 16)
  const existing = await docker
    .getImage(ref)
    .inspect()
    .catch(() => undefined)
  if (existing?.Config?.Labels?.[LABEL_INPUTS] === hash) return {ref, id: existing.Id, built: false}
  options.progress?.(`adding cluster driver ${options.driver.name} to tp's daemon image ${ref}…`)
  const context = await mkdtemp(join(tmpdir(), 'tp-daemon-image-'))
  try {
    await copyFile(options.driver.module, join(context, 'driver.mjs'))
    for (const addon of addons) await copyFile(addon.module, join(context, `addon-${addon.name}.mjs`))
    await writeFile(
      join(context, 'Dockerfile'),
      [
        `FROM ${runtime.ref}`,
        `COPY driver.mjs ${driverModulePath(options.driver.name)}`,
        ...addons.map((a) => `COPY addon-${a.name}.mjs ${addonModulePath(a.name)}`),
        `LABEL "tp.image"="daemon" "${LABEL_INPUTS}"="${hash}"`,
        '',
      ].join('\n'),
    )
    const stream = await docker.buildImage(pack(context) as unknown as NodeJS.ReadableStream, {t: ref, rm: true, forcerm: true})
    await new Promise<void>((resolve, reject) => {
      docker.modem.followProgress(stream, (error: Error | null, output: Array<{error?: string}>) => {
        const failed = error ?? output.find((o) => o.error)?.error
        if (failed) reject(new SubprocessError(`docker build ${ref}`, undefined, String(failed)))
        else resolve()
      })
    })
    const image = await docker.getImage(ref).inspect()
    return {ref, id: image.Id, built: true}
  } finally {
    await rm(context, {recursive: true, force: true})
  }
}
