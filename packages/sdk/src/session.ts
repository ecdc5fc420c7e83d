/**
 * The intercept session: everything a handler or volume provider needs to know about one intercept.
 * A plain, serialisable object — the same data `tp intercept --output json` prints.
 */
export interface SessionPorts {
  /** Port the handler listens on, as seen from the daemon's network (container daemon: inside its namespace). */
  local: number
  /** Port inside the handler container (host daemon `-p local:container`); equals local otherwise. */
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
}

/** How a handler container joins the connection's network; dictated by the daemon backend. */
export interface NetworkAttachment {
  kind: 'container' | 'host'
  /** Arguments to add to `docker run` (e.g. `--network container:tp-x-cn`, or `--dns-search tel2-search`). */
  dockerRunArgs: string[]
  /** Whether `-p` publishing works in this mode (false in a container network namespace). */
  canPublish: boolean
}

export interface DaemonIdentity {
  /** Connection name, e.g. `default`. */
  connection: string
  /** Daemon id, e.g. `3f9a1c2b` — the container is `tp-<id>-cn`. */
  id: string
  /** Backend that runs it: `container`, `host`, or a third party's. */
  backend: string
  /** Container name or process description of the daemon. */
  where: string
}

export interface InterceptSession {
  id: string
  name: string
  workload: string
  namespace: string
  ports: SessionPorts
  /** The workload's environment (minus HOME, PATH, HOSTNAME) plus TP_* variables; keys sorted. */
  environment: Record<string, string>
  mounts: RemoteMount[]
  network: NetworkAttachment
  daemon: DaemonIdentity
}

/** Returns a copy of env with keys in sorted order (stable output, stable env files). */
export function sortedEnv(env: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(env).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
}

/** Variables of the workload that must not leak into a local handler. */
export const ENV_EXCLUDED = ['HOME', 'PATH', 'HOSTNAME'] as const
