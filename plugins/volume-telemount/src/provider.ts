import Docker from 'dockerode'
import {
  dockerMessage,
  type InterceptSession,
  isNotFound,
  type PluginContext,
  type ProvidedVolumes,
  sleep,
  type VolumeProvider,
  UserError,
  tpLabels,
  debugLog,
  swallow,
} from '@tp/sdk'
import {volumeName} from './names.js'
import {volumeDriverOptions} from './options.js'
import {type PluginSettings, ensurePlugin, pluginIsReady, pluginRef, pluginSettingsFromEnv} from './plugin.js'

const trace = debugLog('tp:plugin:volume-telemount')

export interface TelemountProviderOptions {
  docker?: Docker
  /** Overrides the plugin settings read from the environment. */
  plugin?: Partial<Omit<PluginSettings, 'log'>>
  /** How long release() keeps retrying while Docker still reports a volume in use. */
  releaseTimeoutMs?: number
}

/** One install per plugin ref and process; a failure is not remembered, so a later call retries. */
const installs = new Map<string, Promise<string>>()

function ensurePluginOnce(docker: Docker, settings: PluginSettings): Promise<string> {
  const ref = pluginRef(settings)
  let install = installs.get(ref)
  if (!install) {
    install = ensurePlugin(docker, settings)
    installs.set(ref, install)
    install.catch(() => installs.delete(ref))
  }
  return install
}

export class TelemountProvider implements VolumeProvider {
  private readonly docker: Docker

  constructor(
    private readonly context: PluginContext,
    private readonly options: TelemountProviderOptions = {},
  ) {
    this.docker = options.docker ?? new Docker()
  }

  private settings(): PluginSettings {
    return {...pluginSettingsFromEnv(this.context.tpVersion, this.context.log), ...this.options.plugin, log: this.context.log}
  }

  /**
   * While the intercept is being created: the plugin is checked (and older versions removed) as
   * provide() would, if it is ready; installing it is left to provide(), for a workload that has volumes.
   */
  async warmUp(): Promise<void> {
    const settings = this.settings()
    if (await pluginIsReady(this.docker, settings)) await ensurePluginOnce(this.docker, settings)
  }

  async provide(session: InterceptSession): Promise<ProvidedVolumes> {
    if (session.mounts.length === 0) return {dockerRunArgs: [], release: async () => {}}
    const settings = this.settings()
    const started = performance.now()
    let driver = await ensurePluginOnce(this.docker, settings)
    const pluginMs = Math.round(performance.now() - started)

    const created: string[] = []
    let releasing: Promise<void> | undefined
    const release = (): Promise<void> => (releasing ??= this.removeVolumes(created))
    const names = session.mounts.map((mount, index) => volumeName(session, index, mount.path))
    let reinstall: Promise<string> | undefined
    const createOne = async (index: number) => {
      const mount = session.mounts[index]
      const create = () =>
        this.docker.createVolume({
          Name: names[index],
          Driver: driver,
          DriverOpts: volumeDriverOptions({host: mount.sftp.host, port: mount.sftp.port, dir: mount.sftp.dir, readOnly: mount.readOnly}),
          Labels: tpLabels({connection: session.daemon.connection, intercept: session.name, role: 'volume'}),
        })
      try {
        await create()
      } catch (error) {
        // the plugin this process installed earlier was removed since (`docker plugin rm`, tp gc):
        // install it again, once for all the volumes
        if (!/plugin .* not found|error looking up volume plugin/i.test(dockerMessage(error))) throw error
        reinstall ??= (() => {
          installs.delete(driver)
          return ensurePluginOnce(this.docker, settings)
        })()
        driver = await reinstall
        await create()
      }
      created.push(names[index])
    }
    // all at once: each is a round trip to the engine and the plugin; every one settles before a
    // failure is reported, so release() sees all that were made
    const results = await Promise.allSettled(session.mounts.map((_, index) => createOne(index)))
    const failed = results.findIndex((r) => r.status === 'rejected')
    if (failed >= 0) {
      const rejected = results[failed] as PromiseRejectedResult
      await release().catch(swallow(trace, 'removing the volumes made before the failure'))
      throw new UserError(
        `cannot create the remote volume for ${session.mounts[failed].path}: ${dockerMessage(rejected.reason)}`,
        'run the intercept with --mount=false to go without remote volumes',
        {cause: rejected.reason},
      )
    }
    const dockerRunArgs = session.mounts.flatMap((mount, index) => ['-v', `${names[index]}:${mount.path}${mount.readOnly ? ':ro' : ''}`])
    this.context.log.debug(
      `telemount volumes: ${names.join(', ')} (plugin ready after ${pluginMs} ms, volumes after ${Math.round(performance.now() - started)} ms)`,
    )
    return {dockerRunArgs, release}
  }

  /** Removes the volumes, retrying while Docker still sees them in use (a container being removed). */
  private async removeVolumes(names: string[]): Promise<void> {
    const deadline = Date.now() + (this.options.releaseTimeoutMs ?? 15_000)
    const left: string[] = []
    for (const name of names) {
      for (;;) {
        try {
          await this.docker.getVolume(name).remove()
          break
        } catch (error) {
          if (isNotFound(error)) break
          if (Date.now() > deadline) {
            left.push(`${name} (${dockerMessage(error)})`)
            break
          }
          await sleep(250)
        }
      }
    }
    if (left.length > 0) {
      throw new UserError(
        `could not remove remote volume${left.length > 1 ? 's' : ''} ${left.join(', ')}`,
        'remove them with `docker volume rm <name>` once no container uses them, or run `tp gc`',
      )
    }
  }
}

export default function createTelemountProvider(context: PluginContext): VolumeProvider {
  return new TelemountProvider(context)
}
