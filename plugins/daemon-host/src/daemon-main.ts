// The host daemon's process: @tp/daemon's Daemon, plus the namespace's names in this machine's
// hosts file for as long as it runs. Started detached by HostBackend.ensure().
import Docker from 'dockerode'
import {DockerCluster} from '@tp/cluster-docker'
import {Daemon, configFromEnv} from '@tp/daemon'
import {formatError} from '@tp/sdk'
import {hostEntries, hostsFilePath, removeBlock, writeBlock} from './hosts-file.js'

const log = (m: string) => process.stderr.write(`${new Date().toISOString()} ${m}\n`)
/** How often the names are brought up to date (workloads start, stop, move). */
const SYNC_MS = Number(process.env.TP_HOSTS_SYNC_MS ?? 2000)

async function main(): Promise<void> {
  const config = configFromEnv(process.env)
  config.placement.where = `process ${process.pid} on this host`
  const hostsFile = hostsFilePath()
  const docker = new Docker()
  const cluster = new DockerCluster(docker)
  // every time, against the file itself: another writer of the file (another connection's
  // daemon, the repair of a later tp command) may have written it from an older copy
  const sync = async () => writeBlock(hostsFile, config.connection, process.pid, hostEntries(await cluster.workloads(config.namespace), config.namespace))
  let ended = false
  const takeNamesOut = () => {
    if (ended) return
    ended = true
    try {
      if (removeBlock(hostsFile, config.connection)) log(`removed the names of ${config.namespace} from ${hostsFile}`)
    } catch (error) {
      log(`could not take the names out of ${hostsFile}: ${(error as Error).message}`)
    }
  }
  // whatever ends this process (but SIGKILL: the next tp command repairs that), the names go
  process.on('exit', takeNamesOut)
  const exit = (code: number) => {
    takeNamesOut()
    process.exit(code)
  }
  const daemon = new Daemon(config, {cluster, docker, log, onQuit: () => exit(0)})
  process.on('SIGTERM', () => void daemon.quit('SIGTERM').then(() => exit(0)))
  process.on('SIGINT', () => void daemon.quit('SIGINT').then(() => exit(0)))
  process.on('SIGHUP', () => undefined) // the terminal of the tp command that started it may close
  // names first: once `tp connect` returns, `curl http://<workload>/` works
  await sync()
  log(`added the names of ${config.namespace} to ${hostsFile}`)
  const timer = setInterval(() => {
    sync().catch((error: Error) => log(`updating ${hostsFile}: ${error.message}`))
  }, SYNC_MS)
  timer.unref()
  await daemon.start()
}

main().catch((error: unknown) => {
  log(formatError(error))
  process.exit(1)
})
