import type {ClusterTarget, EngineMount} from './cluster.js'
import type {Placement} from './placement.js'
import type {HttpFilter} from './http-filter.js'

/**
 * The intercept session: everything a handler or volume provider needs to know about one intercept.
 * A plain, serialisable object — the same data `tp intercept --output json` prints.
 */
export interface SessionPorts {
  /** Port the handler listens on, where the placement says handlers listen (the daemon reaches it there). */
  local: number
  /** Port inside the handler container when it is published (`-p local:container`); equals local otherwise. */
  container: number
  /** The workload's service port that is intercepted. */
  service: number
  /** The service port's name, where the cluster gives one. */
  serviceName?: string
  protocol: 'tcp'
}

export interface RemoteMount {
  /** Path of the volume inside the workload (and inside the handler container). */
  path: string
  readOnly: boolean
  /** Where the workload's agent serves this volume over plain SFTP. */
  sftp: {host: string; port: number; dir: string}
  /**
   * Where the cluster's engine keeps this volume, when a handler container on that same engine
   * (the one whose id is `engine.engine`) may mount it directly instead of over SFTP: the same
   * files, at the speed of a local mount. From the cluster driver; absent where it cannot be.
   */
  engine?: EngineMount
}

export interface DaemonIdentity {
  /** Connection name, e.g. `default`. */
  connection: string
  /** Daemon id (the connection's name for the bundled backends). */
  id: string
  /** Backend that runs it: `container`, `host`, or a third party's. */
  backend: string
  /** Container name or process description of the daemon. */
  where: string
  /** The cluster the workload is in (its driver and engine). */
  cluster?: ClusterTarget
}

/** The session as the daemon sends it; the CLI adds the placement it got from the backend. */
export interface DaemonSession {
  id: string
  name: string
  workload: string
  namespace: string
  ports: SessionPorts
  /** The workload's environment (minus HOME, PATH, HOSTNAME) plus TP_* variables; keys sorted. */
  environment: Record<string, string>
  mounts: RemoteMount[]
  /**
   * Whose volumes the mounts are, when the workload has several replicas or they run on nodes: one
   * replica's (the first by name, e.g. slot 1 of a swarm service), as a named volume is per node.
   */
  volumesFrom?: {replica: string; node?: string}
  /** The workload's files the handler does not get (Workload.unservedFiles), when the volumes were asked for. */
  unservedFiles?: Array<{path: string; why: string}>
  daemon: DaemonIdentity
  /** What the intercept does with the traffic (absent: `intercept`). */
  mode?: 'intercept' | 'ingest' | 'replace' | 'wiretap'
  /** `replace`: every service port taken, and where the handler listens for each. */
  replacedPorts?: Array<{service: number; local: number}>
  /** A personal intercept: only the HTTP requests that match go to the handler. */
  filter?: HttpFilter
}

export interface InterceptSession extends DaemonSession {
  /** Where the daemon lives and how a handler reaches it, from the connection's daemon backend. */
  placement: Placement
}

/** Returns a copy of env with keys in sorted order (stable output, stable env files). */
export function sortedEnv(env: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(env).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
}

/** Variables of the workload that must not leak into a local handler. */
export const ENV_EXCLUDED = ['HOME', 'PATH', 'HOSTNAME'] as const
