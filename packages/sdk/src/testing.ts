import {PassThrough, Readable} from 'node:stream'
import type {HandlerRequest, PluginContext, PreparedHandler, RunExtras} from './contracts.js'
import type {Placement, PlacementCapabilities} from './placement.js'
import type {InterceptSession} from './session.js'
import {connectionLabels} from './sweep.js'

/**
 * What a plugin's tests need (`@tp/sdk/testing`). Placements: what the bundled backends give, without a
 * daemon. `shared`: handler containers join the daemon's network namespace; `host`: the daemon is
 * a process on this machine and containers publish their port.
 */
export function fakePlacement(kind: 'shared' | 'host', connection = 'test', over: Partial<Placement> = {}): Placement {
  const capabilities: PlacementCapabilities =
    kind === 'shared'
      ? {canPublishPorts: false, sharesDaemonNetwork: true, hostReachesCluster: false}
      : {canPublishPorts: true, sharesDaemonNetwork: false, hostReachesCluster: true}
  const base: Placement =
    kind === 'shared'
      ? {
          backend: 'container',
          capabilities,
          containerArgs: ['--network', `container:tp-${connection}-cn`],
          handler: {daemonConnectsTo: '127.0.0.1', agentConnectsTo: `tp-${connection}-cn`},
          daemon: {agentHost: `tp-${connection}-cn`, listenHost: '0.0.0.0'},
          sweepLabels: connectionLabels(connection),
          where: `container tp-${connection}-cn`,
        }
      : {
          backend: 'host',
          capabilities,
          containerArgs: [],
          handler: {daemonConnectsTo: '127.0.0.1', agentConnectsTo: '172.18.0.1'},
          daemon: {agentHost: '172.18.0.1', listenHost: '172.18.0.1'},
          sweepLabels: connectionLabels(connection),
          where: 'process 4242 on this host',
        }
  return {...base, ...over}
}

/** A session as tp gives it to a handler or volume provider, for tests; fields may be overridden. */
export function fakeSession(over: Partial<InterceptSession> = {}): InterceptSession {
  const placement = over.placement ?? fakePlacement('shared')
  return {
    id: 'ab12cd34',
    name: 'frontend-v1',
    workload: 'frontend-v1',
    namespace: 'tp-demo',
    ports: {local: 8000, container: 8000, service: 80, protocol: 'tcp'},
    environment: {GREETING: 'hello from frontend-v1', TP_INTERCEPT_ID: 'ab12cd34', TP_WORKLOAD: 'frontend-v1'},
    mounts: [],
    daemon: {connection: 'test', id: 'test', backend: placement.backend, where: placement.where},
    placement,
    ...over,
  }
}

/** A plugin context for tests: its log lines are kept in `lines`. */
export function fakeContext(cacheDir = '/tmp/tp-test-cache'): PluginContext & {lines: string[]} {
  const lines: string[] = []
  return {
    tpVersion: '0.0.0-test',
    cacheDir,
    lines,
    log: {info: (m) => lines.push(`info: ${m}`), warn: (m) => lines.push(`warn: ${m}`), debug: (m) => lines.push(`debug: ${m}`)},
  }
}

/** A request as `tp intercept` makes it, for a handler's prepare(). */
export function fakeRequest(over: Partial<HandlerRequest> = {}): HandlerRequest {
  return {
    workload: 'frontend-v1',
    flags: {},
    args: [],
    capabilities: fakePlacement('shared').capabilities,
    localPort: 8000,
    containerPort: 8000,
    cwd: process.cwd(),
    ...over,
  }
}

export interface HandlerRunResult {
  exitCode: number
  stdout: string
  stderr: string
}

/**
 * Runs a prepared handler as tp would, with the given input, collecting what it writes and its
 * exit code; `stopAfterMs` calls stop() then (a Ctrl-C), as tp does when an intercept ends.
 */
export async function runPrepared(
  prepared: PreparedHandler,
  session: InterceptSession = fakeSession(),
  options: {input?: string; extras?: RunExtras; stopAfterMs?: number} = {},
): Promise<HandlerRunResult> {
  const stdout = new PassThrough()
  const stderr = new PassThrough()
  let out = ''
  let err = ''
  stdout.on('data', (c: Buffer) => (out += c.toString()))
  stderr.on('data', (c: Buffer) => (err += c.toString()))
  const timer = options.stopAfterMs === undefined ? undefined : setTimeout(() => void prepared.stop('test: stop'), options.stopAfterMs)
  try {
    const exitCode = await prepared.run(session, {stdin: Readable.from([options.input ?? '']), stdout, stderr}, options.extras ?? {dockerRunArgs: []})
    return {exitCode, stdout: out, stderr: err}
  } finally {
    clearTimeout(timer)
    await prepared.dispose?.()
  }
}
