import {readFileSync, readdirSync} from 'node:fs'
import {join} from 'node:path'
import {packageDir} from '@tp/sdk/paths'

/**
 * The script a host daemon runs (tp's one daemon entry point); its command line tells a daemon from
 * a process that reused its pid. Found from the package's own package.json: this module may run
 * from dist/bundle/ as well.
 */
export const DAEMON_MAIN = join(packageDir('@tp/daemon', import.meta.url), 'dist/main.js')

/** What the host backend adds to its daemon: the namespace's names in this machine's hosts file. */
export const NAMES_ADDON = join(packageDir('@tp/plugin-daemon-host', import.meta.url), 'dist/names-addon.js')

/**
 * Whether the host daemon with this pid still runs. A killed daemon whose parent never reaps it
 * stays a zombie that `kill(pid, 0)` still finds: its empty command line says it is gone.
 */
export function daemonRuns(pid: number | undefined): boolean {
  if (!pid) return false
  let cmdline: string
  try {
    cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8')
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT' && existsProc()) return false
    // no /proc (not Linux): the pid is all there is
    try {
      process.kill(pid, 0)
      return true
    } catch (killError) {
      return (killError as NodeJS.ErrnoException).code === 'EPERM'
    }
  }
  return cmdline.includes(DAEMON_MAIN)
}

function existsProc(): boolean {
  try {
    readFileSync('/proc/self/cmdline')
    return true
  } catch {
    return false
  }
}

/**
 * The host daemons running on this machine (Linux: from /proc), with their environment: a daemon
 * is found by its command line even when no connection record knows it any more.
 */
export function listDaemonProcesses(): Array<{pid: number; env: Record<string, string>}> {
  let pids: string[]
  try {
    pids = readdirSync('/proc').filter((p) => /^\d+$/.test(p))
  } catch {
    return [] // no /proc: only records find daemons
  }
  const found: Array<{pid: number; env: Record<string, string>}> = []
  for (const pid of pids) {
    try {
      const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')
      if (!argv.includes(DAEMON_MAIN)) continue
      const env: Record<string, string> = {}
      for (const entry of readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0')) {
        const eq = entry.indexOf('=')
        if (eq > 0) env[entry.slice(0, eq)] = entry.slice(eq + 1)
      }
      found.push({pid: Number(pid), env})
    } catch {
      // it ended while we looked, or belongs to another user
    }
  }
  return found
}
