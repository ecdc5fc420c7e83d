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
  /**
   * Whether a volume of a workload on this same engine is mounted directly (default: true, unless
   * TP_TELEMOUNT_DIRECT=0); otherwise every volume goes over SFTP through the plugin.
   */
  direct?: boolean
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
  private ownEngine?: Promise<string | undefined>

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
    // this engine's id, which decides which mounts need no plugin: `docker info` takes tens of ms,
    // asked here it is known by the time the session is (provide() would otherwise wait for it)
    if (this.directAllowed()) void this.engineId()
    const settings = this.settings()
    if (await pluginIsReady(this.docker, settings)) await ensurePluginOnce(this.docker, settings)
  }

  private directAllowed(): boolean {
    return this.options.direct !== false && (this.options.direct !== undefined || process.env.TP_TELEMOUNT_DIRECT !== '0')
  }

  async provide(session: InterceptSession): Promise<ProvidedVolumes> {
    if (session.mounts.length === 0) return {dockerRunArgs: [], release: async () => {}}
    const started = performance.now()
    const direct = await this.engineMounts(session)
    const argsOf = (remote: Map<number, string[]>) => session.mounts.flatMap((_, index) => direct.get(index) ?? remote.get(index) ?? [])
    if (direct.size > 0) {
      const shown = [...direct.keys()].map((i) => `${session.mounts[i].path} (${session.mounts[i].engine!.type} ${session.mounts[i].engine!.source})`)
      this.context.log.debug(`mounted straight from the workload's engine: ${shown.join(', ')}`)
    }
    if (direct.size === session.mounts.length) return {dockerRunArgs: argsOf(new Map()), release: async () => {}}
    const settings = this.settings()
    let driver = await ensurePluginOnce(this.docker, settings)
    const pluginMs = Math.round(performance.now() - started)

    const created: string[] = []
    let releasing: Promise<void> | undefined
    const release = (): Promise<void> => (releasing ??= this.removeVolumes(created))
    const names = session.mounts.map((mount, index) => volumeName(session, index, mount.path))
    const overSftp = session.mounts.map((_, index) => index).filter((index) => !direct.has(index))
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
    const results = await Promise.allSettled(overSftp.map((index) => createOne(index)))
    const failedAt = results.findIndex((r) => r.status === 'rejected')
    if (failedAt >= 0) {
      const failed = overSftp[failedAt]
      const rejected = results[failedAt] as PromiseRejectedResult
      await release().catch(swallow(trace, 'removing the volumes made before the failure'))
      throw new UserError(
        `cannot create the remote volume for ${session.mounts[failed].path}: ${dockerMessage(rejected.reason)}`,
        'run the intercept with --mount=false to go without remote volumes',
        {cause: rejected.reason},
      )
    }
    const remote = new Map(
      overSftp.map((index) => [index, ['-v', `${names[index]}:${session.mounts[index].path}${session.mounts[index].readOnly ? ':ro' : ''}`]]),
    )
    this.context.log.debug(
      `telemount volumes: ${overSftp.map((i) => names[i]).join(', ')} (plugin ready after ${pluginMs} ms, volumes after ${Math.round(performance.now() - started)} ms)`,
    )
    return {dockerRunArgs: argsOf(remote), release}
  }

  /**
   * The mounts a handler container on this engine can take straight from the cluster's engine:
   * those whose `engine` is this very engine (the engines' ids match). Any doubt (another engine,
   * an engine that does not say, TP_TELEMOUNT_DIRECT=0) leaves the mount to SFTP.
   */
  private async engineMounts(session: InterceptSession): Promise<Map<number, string[]>> {
    const direct = new Map<number, string[]>()
    if (!this.directAllowed()) return direct
    if (!session.mounts.some((m) => m.engine)) return direct
    const here = await this.engineId()
    if (!here) return direct
    session.mounts.forEach((mount, index) => {
      const engine = mount.engine
      // -v cannot carry a host path with a colon or a comma in it: such a bind goes over SFTP
      if (!engine || engine.engine !== here || (engine.type === 'bind' && /[:,]/.test(engine.source))) return
      direct.set(index, ['-v', `${engine.source}:${mount.path}${mount.readOnly ? ':ro' : ''}`])
    })
    return direct
  }

  /** This engine's id (`docker info`), once per provider; undefined when it cannot be had. */
  private engineId(): Promise<string | undefined> {
    this.ownEngine ??= this.docker.info().then((info: {ID?: string}) => info.ID || undefined, swallow(trace, "asking the handler's engine for its id"))
    return this.ownEngine
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
