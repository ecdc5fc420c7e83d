import {type ClusterTarget, type EngineTls, type Placement, UserError, placementProblems} from '@tp/sdk'

/** What a backend tells the daemon when it starts it (environment variables). */
export interface DaemonConfig {
  id: string
  connection: string
  namespace: string
  token: string
  /** Where the API listens: 0.0.0.0 in a container (published on the host's loopback), 127.0.0.1 on the host. */
  apiHost: string
  /** 0: any free port (then written to `readyFile`). */
  apiPort: number
  /** 0: any free port; agents are told the one in use. */
  controlPort: number
  /** Written (0600) once the daemon answers: `{"apiPort": …, "pid": …}`, for backends that let it choose its port. */
  readyFile?: string
  runtimeImage: string
  version: string
  /** Where the daemon lives and how handlers are reached, from the backend. */
  placement: Placement
  /** How long a lease holder gets to stop its handler and remove its volumes after being told the intercept ends. */
  holderTeardownMs: number
  /** How long a hand-back waits for the connections in flight to the handler before it is stopped. */
  drainMs: number
  /**
   * The cluster: its driver, the engine as the daemon reaches it (TLS files included), the driver's
   * module (what the daemon imports), and whether the namespace is on another machine (`linked`:
   * everything goes through the driver's link).
   */
  cluster: ClusterTarget & {module: string; linked: boolean}
  /**
   * Modules the backend adds to its daemon process (the host backend: the namespace's names in
   * this machine's hosts file); each default-exports a `DaemonAddon` factory.
   */
  addons: string[]
  /** How often an intercept looks for replicas that appeared or went (ms). */
  reconcileMs: number
  /** How long an intercept whose last replica went waits for its replacement, on a cluster that replaces replicas (default 60 s). */
  replacementWaitMs?: number
  /**
   * How long after its agent is ready a replica's guard starts (ms; default 1500): its container is
   * then not made while the handler's starts and the first requests are switched.
   */
  guardDelayMs?: number
}

export function configFromEnv(env: NodeJS.ProcessEnv): DaemonConfig {
  const required = (name: string): string => {
    const value = env[name]
    if (!value) throw new UserError(`the tp daemon needs ${name} in its environment`, 'start the daemon with `tp connect`, not by hand')
    return value
  }
  const port = (name: string, fallback: number): number => {
    const n = Number(env[name] ?? fallback)
    if (!Number.isInteger(n) || n < 0 || n > 65_535)
      throw new UserError(`${name} must be a port number, not ${env[name]}`, 'start the daemon with `tp connect`')
    return n
  }
  let placement: Placement
  try {
    placement = JSON.parse(required('TP_PLACEMENT')) as Placement
  } catch (error) {
    if ((error as {kind?: string}).kind === 'user') throw error
    throw new UserError('TP_PLACEMENT is not JSON', 'start the daemon with `tp connect`, not by hand')
  }
  const json = <T>(name: string): T => {
    try {
      return JSON.parse(env[name] ?? '') as T
    } catch {
      throw new UserError(`${name} is not JSON`, 'start the daemon with `tp connect`, not by hand')
    }
  }
  const list = (name: string): string[] => {
    if (!env[name]) return []
    try {
      const value = JSON.parse(env[name]) as unknown
      if (Array.isArray(value) && value.every((v) => typeof v === 'string')) return value
    } catch {
      // said below
    }
    throw new UserError(`${name} must be a JSON list of module paths`, 'start the daemon with `tp connect`, not by hand')
  }
  const problems = placementProblems(placement)
  if (problems.length > 0)
    throw new UserError(`the daemon backend gave an unusable placement: ${problems.join('; ')}`, 'report it to the backend plugin’s authors')
  return {
    id: required('TP_DAEMON_ID'),
    connection: required('TP_CONNECTION'),
    namespace: required('TP_NAMESPACE'),
    token: required('TP_DAEMON_TOKEN'),
    apiHost: env.TP_API_HOST ?? '0.0.0.0',
    apiPort: port('TP_API_PORT', 4700),
    controlPort: port('TP_CONTROL_PORT', 4701),
    readyFile: env.TP_READY_FILE || undefined,
    runtimeImage: required('TP_RUNTIME_IMAGE'),
    version: env.TP_VERSION ?? '0.0.0',
    placement,
    holderTeardownMs: Number(env.TP_HOLDER_TEARDOWN_MS ?? 15_000),
    drainMs: Number(env.TP_DRAIN_MS ?? 2000),
    cluster: {
      driver: required('TP_CLUSTER_DRIVER'),
      engine: required('TP_CLUSTER_ENGINE'),
      module: required('TP_CLUSTER_DRIVER_MODULE'),
      linked: env.TP_CLUSTER_LINKED === '1',
      ...(env.TP_CLUSTER_TLS ? {tls: json<EngineTls>('TP_CLUSTER_TLS')} : {}),
    },
    addons: list('TP_DAEMON_ADDONS'),
    reconcileMs: Number(env.TP_RECONCILE_MS ?? 5000),
    ...(env.TP_GUARD_DELAY_MS ? {guardDelayMs: Number(env.TP_GUARD_DELAY_MS)} : {}),
  }
}
