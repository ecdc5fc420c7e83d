import type {ClusterDriver} from '@tp/sdk'
import type {DaemonConfig} from './config.js'
import type {NameEntry} from './names.js'

/**
 * What a daemon backend adds to its daemon's process (`TP_DAEMON_ADDONS`): the host backend keeps
 * the namespace's names in this machine's hosts file while its daemon runs. A module whose default
 * export is a `DaemonAddonFactory`.
 */
export interface DaemonAddon {
  /** Runs before the daemon listens: once `tp connect` returns, what it set up is there. */
  start?(): Promise<void>
  /** Runs when the process ends, whatever ends it but SIGKILL (synchronous: it runs on `exit` too). */
  stop?(): void
}

export interface DaemonAddonContext {
  /** The daemon's configuration (an addon may say where the daemon runs: `placement.where`). */
  config: DaemonConfig
  driver: ClusterDriver
  log: (message: string) => void
  /**
   * The namespace's names and where this side reaches each: the workloads' own addresses, or for a
   * namespace on another machine the addresses where the daemon serves them.
   */
  names: () => Promise<NameEntry[]>
}

export type DaemonAddonFactory = (context: DaemonAddonContext) => DaemonAddon | Promise<DaemonAddon>
