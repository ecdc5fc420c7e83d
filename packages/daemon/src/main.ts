import Docker from 'dockerode'
import {DockerCluster} from '@tp/cluster-docker'
import {formatError} from '@tp/sdk'
import {configFromEnv} from './config.js'
import {Daemon} from './daemon.js'

// Entry point of the daemon process, in a container (bundled to /opt/tp/daemon.cjs) or on the host
// (dist/main.js); no top-level await: the bundle is CommonJS.
const log = (m: string) => process.stderr.write(`${new Date().toISOString()} ${m}\n`)

async function main(): Promise<void> {
  const docker = new Docker()
  const daemon = new Daemon(configFromEnv(process.env), {cluster: new DockerCluster(docker), docker, log, onQuit: () => process.exit(0)})
  const stop = (signal: string) => void daemon.quit(signal).then(() => process.exit(0))
  process.on('SIGTERM', () => stop('SIGTERM'))
  process.on('SIGINT', () => stop('SIGINT'))
  // a host daemon's terminal may go away: it outlives the tp command that started it
  process.on('SIGHUP', () => undefined)
  await daemon.start()
}

main().catch((error: unknown) => {
  log(formatError(error))
  process.exit(1)
})
