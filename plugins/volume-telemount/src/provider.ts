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
import {type PluginSettings, ensurePlugin, pluginRef, pluginSettingsFromEnv} from './plugin.js'

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

  async provide(session: InterceptSession): Promise<ProvidedVolumes> {
    if (session.mounts.length === 0) return {dockerRunArgs: [], release: async () => {}}
    const settings = {...pluginSettingsFromEnv(this.context.tpVersion, this.context.log), ...this.options.plugin, log: this.context.log}
    let driver = await ensurePluginOnce(this.docker, settings)

    const created: string[] = []
    let releasing: Promise<void> | undefined
    const release = (): Promise<void> => (releasing ??= this.removeVolumes(created))
    const dockerRunArgs: string[] = []
    try {
      for (const [index, mount] of session.mounts.entries()) {
        const name = volumeName(session, index, mount.path)
        const create = () =>
          this.docker.createVolume({
            Name: name,
            Driver: driver,
            DriverOpts: volumeDriverOptions({host: mount.sftp.host, port: mount.sftp.port, dir: mount.sftp.dir, readOnly: mount.readOnly}),
            Labels: tpLabels({connection: session.daemon.connection, intercept: session.name, role: 'volume'}),
          })
        try {
          await create()
        } catch (error) {
          // the plugin this process installed earlier was removed since (`docker plugin rm`, tp gc): install it again
          if (!/plugin .* not found|error looking up volume plugin/i.test(dockerMessage(error))) throw error
          installs.delete(driver)
          driver = await ensurePluginOnce(this.docker, settings)
          await create()
        }
        created.push(name)
        dockerRunArgs.push('-v', `${name}:${mount.path}${mount.readOnly ? ':ro' : ''}`)
      }
    } catch (error) {
      await release().catch(swallow(trace, 'removing the volumes made before the failure'))
      throw new UserError(
        `cannot create the remote volume for ${session.mounts[created.length]?.path ?? '?'}: ${dockerMessage(error)}`,
        'run the intercept with --mount=false to go without remote volumes',
        {cause: error},
      )
    }
    this.context.log.debug(`telemount volumes: ${created.join(', ')}`)
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
