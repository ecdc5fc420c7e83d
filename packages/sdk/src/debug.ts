/**
 * Namespaced debug logging through the `debug` package: `tp:cli`, `tp:daemon`, `tp:agent`,
 * `tp:plugin:<name>`. Off unless enabled:
 *
 * - `TP_DEBUG=1` (or `true`, `*`) enables every tp namespace (`tp:*`);
 * - any other `TP_DEBUG` value is a `debug` pattern (`TP_DEBUG=tp:agent`, `TP_DEBUG=tp:*,-tp:daemon`);
 * - `DEBUG` works as it does for every program that uses `debug` (and adds to TP_DEBUG).
 *
 * Lines go to stderr, formatted by `debug` (namespace, colours and +ms on a terminal, an ISO date otherwise).
 */
import createDebug from 'debug'
import {dockerMessage} from './docker-kit.js'

/** A debug logger for one namespace: call it with a message; `enabled` says whether it prints. */
export interface DebugLog {
  (message: string): void
  readonly namespace: string
  readonly enabled: boolean
}

/** The `debug` pattern TP_DEBUG and DEBUG ask for, or undefined when neither is set. */
export function debugPattern(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const patterns: string[] = []
  const tp = env.TP_DEBUG?.trim()
  if (tp && tp !== '0' && tp !== 'false') patterns.push(['1', 'true', '*'].includes(tp) ? 'tp:*' : tp)
  const plain = env.DEBUG?.trim()
  if (plain) patterns.push(plain)
  return patterns.length > 0 ? patterns.join(',') : undefined
}

let applied = ''

/** Applies TP_DEBUG/DEBUG (again, if they changed: tests and the CLI's base command call it). */
export function configureDebug(env: NodeJS.ProcessEnv = process.env): void {
  const pattern = debugPattern(env) ?? ''
  if (pattern === applied) return
  applied = pattern
  // enable() also writes DEBUG into the environment: keep the user's (children see TP_DEBUG anyway)
  const before = process.env.DEBUG
  createDebug.enable(pattern)
  if (before === undefined) delete process.env.DEBUG
  else process.env.DEBUG = before
}

/** A logger for `namespace` (e.g. 'tp:daemon', 'tp:plugin:handler-docker-run'). */
export function debugLog(namespace: string): DebugLog {
  configureDebug()
  const debug = createDebug(namespace)
  const log = ((message: string) => {
    if (debug.enabled) debug('%s', message)
  }) as DebugLog
  Object.defineProperties(log, {
    namespace: {value: namespace, enumerable: true},
    enabled: {get: () => Boolean(debug.enabled), enumerable: true},
  })
  return log
}

/** The namespace of a plugin's logger: `tp:plugin:<name>` (a package name's `@scope/` and `plugin-` are dropped). */
export function pluginNamespace(pluginName: string): string {
  return `tp:plugin:${pluginName.replace(/^@[^/]+\//, '').replace(/^(tp-)?plugin-/, '')}`
}

/**
 * For a `.catch()` of an error that is deliberately ignored (best-effort clean-up, a probe that may
 * fail): logs at debug level what was being done and what was swallowed, then resolves undefined.
 *
 *   await container.remove({force: true}).catch(swallow(log, `removing container ${id}`))
 */
export function swallow(log: (message: string) => void, what: string): (error: unknown) => undefined {
  return (error: unknown) => {
    log(`ignored: ${what}: ${dockerMessage(error)}`)
    return undefined
  }
}
