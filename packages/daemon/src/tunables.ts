/**
 * The daemon's settings a user (or a test) may give the tp command that starts it: a backend
 * passes those that are set on to its daemon. Its own module (`@tp/daemon/tunables`), so that a
 * backend needs nothing else of the daemon's code.
 */
export const DAEMON_TUNABLES = ['TP_DEBUG', 'TP_DRAIN_MS', 'TP_HOLDER_TEARDOWN_MS', 'TP_RECONCILE_MS', 'TP_GUARD_DELAY_MS', 'TP_IMAGE_TAG'] as const

/** Those of `DAEMON_TUNABLES` set in `env`. */
export function daemonTunables(env: NodeJS.ProcessEnv = process.env): Record<string, string> {
  return Object.fromEntries(DAEMON_TUNABLES.flatMap((name) => (env[name] ? [[name, env[name]]] : [])))
}
