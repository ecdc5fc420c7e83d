import {pathToFileURL} from 'node:url'
import Docker from 'dockerode'
import {BugError, type ClusterDriver, type ClusterDriverContext, formatError} from '@tp/sdk'
import {cacheDir} from '@tp/sdk/paths'
import type {DaemonAddon, DaemonAddonFactory} from './addons.js'
import {type DaemonConfig, configFromEnv} from './config.js'
import {Daemon} from './daemon.js'

// The one entry point of the daemon process, for every backend: in a container (bundled to
// /opt/tp/daemon.cjs) or on the host (dist/main.js). Its cluster driver and the backend's addons
// are modules named in its configuration. No top-level await: the bundle is CommonJS.
const log = (m: string) => process.stderr.write(`${new Date().toISOString()} ${m}\n`)

/** The default export of a module given by its path (a driver's or an addon's). */
async function factoryOf<F>(path: string, what: string): Promise<F> {
  const module = (await import(pathToFileURL(path).href)) as {default?: unknown}
  if (typeof module.default !== 'function') throw new BugError(`${what} ${path} has no default export factory`)
  return module.default as F
}

async function loadDriver(config: DaemonConfig): Promise<ClusterDriver> {
  const factory = await factoryOf<(context: ClusterDriverContext) => ClusterDriver | Promise<ClusterDriver>>(
    config.cluster.module,
    `cluster driver ${config.cluster.driver}`,
  )
  return factory({
    tpVersion: config.version,
    cacheDir: cacheDir(),
    log: {info: log, warn: log, debug: () => undefined},
    cluster: {driver: config.cluster.driver, engine: config.cluster.engine, ...(config.cluster.tls ? {tls: config.cluster.tls} : {})},
  })
}

async function main(): Promise<void> {
  const config = configFromEnv(process.env)
  const driver = await loadDriver(config)
  // its Docker client is the handler's engine (where a gone CLI's handler containers and volumes are removed)
  const daemon = new Daemon(config, {driver, docker: new Docker(), log, onQuit: () => exit(0)})
  const addons: DaemonAddon[] = []
  for (const path of config.addons)
    addons.push(await (await factoryOf<DaemonAddonFactory>(path, 'daemon addon'))({config, driver, log, names: () => daemon.names()}))
  let stopped = false
  const stopAddons = () => {
    if (stopped) return
    stopped = true
    for (const addon of addons) {
      try {
        addon.stop?.()
      } catch (error) {
        log(`stopping an addon: ${(error as Error).message}`)
      }
    }
  }
  // whatever ends this process (but SIGKILL: the next tp command repairs that), the addons undo their part
  process.on('exit', stopAddons)
  const exit = (code: number) => {
    stopAddons()
    process.exit(code)
  }
  process.on('SIGTERM', () => void daemon.quit('SIGTERM').then(() => exit(0)))
  process.on('SIGINT', () => void daemon.quit('SIGINT').then(() => exit(0)))
  // a host daemon's terminal may go away: it outlives the tp command that started it
  process.on('SIGHUP', () => undefined)
  // a linked namespace's names are served by the daemon: the link comes first
  await daemon.prepare()
  for (const addon of addons) await addon.start?.()
  await daemon.start()
}

main().catch((error: unknown) => {
  log(formatError(error))
  process.exit(1)
})
