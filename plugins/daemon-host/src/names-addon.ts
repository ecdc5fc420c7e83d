// What the host backend adds to its daemon's process (TP_DAEMON_ADDONS): the namespace's names in
// this machine's hosts file for as long as the daemon runs.
import type {DaemonAddonFactory} from '@tp/daemon'
import {hostsFilePath, removeBlock, writeBlock} from './hosts-file.js'

/** How often the names are brought up to date (workloads start, stop, move). */
const SYNC_MS = Number(process.env.TP_HOSTS_SYNC_MS ?? 2000)

const namesAddon: DaemonAddonFactory = ({config, names, log}) => {
  config.placement.where = `process ${process.pid} on this host`
  const hostsFile = hostsFilePath()
  // every time, against the file itself: another writer of the file (another connection's
  // daemon, the repair of a later tp command) may have written it from an older copy
  const sync = async () => writeBlock(hostsFile, config.connection, process.pid, await names())
  let timer: NodeJS.Timeout | undefined
  let ended = false
  return {
    async start() {
      // names first: once `tp connect` returns, `curl http://<workload>/` works
      await sync()
      log(`added the names of ${config.namespace} to ${hostsFile}`)
      timer = setInterval(() => {
        sync().catch((error: Error) => log(`updating ${hostsFile}: ${error.message}`))
      }, SYNC_MS)
      timer.unref()
    },
    stop() {
      if (ended) return
      ended = true
      clearInterval(timer)
      try {
        if (removeBlock(hostsFile, config.connection)) log(`removed the names of ${config.namespace} from ${hostsFile}`)
      } catch (error) {
        log(`could not take the names out of ${hostsFile}: ${(error as Error).message}`)
      }
    },
  }
}

export default namesAddon
