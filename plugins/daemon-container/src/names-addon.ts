// What the container backend adds to its daemon for a namespace on another machine
// (TP_DAEMON_ADDONS): the namespace's names in the daemon container's own hosts file. Handler
// containers join the daemon's network namespace, and with it that file, so they resolve the
// names to the loopback addresses where the daemon serves the workloads. Nothing on the user's
// machine changes: the file goes with the container.
import {readFileSync, writeFileSync} from 'node:fs'
import type {DaemonAddonFactory, NameEntry} from '@tp/daemon'

const HOSTS_FILE = '/etc/hosts'
/** How often the names are brought up to date (workloads start, stop, move). */
const SYNC_MS = Number(process.env.TP_HOSTS_SYNC_MS ?? 2000)

/** The hosts file as Docker wrote it, then one line per workload address. */
export function hostsWithNames(original: string, entries: NameEntry[], namespace: string): string {
  const lines = entries.filter((e) => e.names.length > 0).map((e) => `${e.address}\t${e.names.join(' ')}`)
  return `${original.replace(/\n*$/, '\n')}# the names of ${namespace}, served by tp's daemon\n${lines.join('\n')}\n`
}

const namesAddon: DaemonAddonFactory = ({config, names, log}) => {
  const hostsFile = process.env.TP_HOSTS_FILE || HOSTS_FILE
  const original = readFileSync(hostsFile, 'utf8')
  let written = ''
  const sync = async () => {
    const text = hostsWithNames(original, await names(), config.namespace)
    // rewritten in place (a bind mount), and only when something changed
    if (text !== written) writeFileSync(hostsFile, text)
    written = text
  }
  let timer: NodeJS.Timeout | undefined
  return {
    async start() {
      // names first: once `tp connect` returns, a handler container resolves them
      await sync()
      log(`serving the names of ${config.namespace} to handler containers`)
      timer = setInterval(() => {
        sync().catch((error: Error) => log(`updating ${hostsFile}: ${error.message}`))
      }, SYNC_MS)
      timer.unref()
    },
    stop() {
      clearInterval(timer)
      try {
        writeFileSync(hostsFile, original)
      } catch {
        // the container is going: so is its hosts file
      }
    },
  }
}

export default namesAddon
