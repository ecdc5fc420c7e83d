import {copyFile, mkdtemp, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {PassThrough, Readable} from 'node:stream'
import {pathToFileURL} from 'node:url'
import type {AgentRequest, ClusterDriver, ClusterDriverContext, ClusterTarget, InjectedAgent, Workload} from './cluster.js'
import type {Factory, HandlerRequest, PluginContext, PreparedHandler, RunExtras} from './contracts.js'
import {isUserError} from './errors.js'
import {tpLabels} from './labels.js'
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

// ---------------------------------------------------------------------------------------------
// Cluster drivers

/** A cluster driver's context for tests (its log lines kept in `lines`); the cluster defaults to the local engine. */
export function fakeDriverContext(
  cluster: ClusterTarget = {driver: 'test', engine: 'unix:///var/run/docker.sock'},
  cacheDir = '/tmp/tp-test-cache',
): ClusterDriverContext & {lines: string[]} {
  return {...fakeContext(cacheDir), cluster}
}

export interface ClusterDriverCheck {
  /** A namespace of the driver's cluster that has `workload` running. */
  namespace: string
  /** A running workload there (by name or alias), with at least one replica. */
  workload: string
  /** The connection the kit's agent belongs to, and what `sweep` is given (default `tp-kit`). */
  connection?: string
  /** The image the kit's agent request names (default: what `ensureImages()` gives). */
  image?: string
  /** More of the agent's environment (the kit sets TP_AGENT_INTERCEPT_ID). */
  env?: Record<string, string>
  /** What `removeAgent` is given (default 2). */
  graceSeconds?: number
  /** How long `exited` may take to resolve once removeAgent has (default graceSeconds + 5 s). */
  exitTimeoutMs?: number
  /** How long the injected agent must keep running before the kit removes it (default 300 ms). */
  settleMs?: number
}

export interface ClusterDriverCheckResult {
  /** The workload as `workload(namespace, name)` gave it. */
  workload: Workload
  /** The agent request the kit made (for the first replica). */
  request: AgentRequest
  /** What its `exited` resolved with. */
  exitCode: number | undefined
  /** What `sweep(connection)` returned. */
  swept: string[]
}

const KIT = 'checkClusterDriver'
const MISSING_NAMESPACE = 'tp-kit-no-such-namespace'
const MISSING_WORKLOAD = 'tp-kit-no-such-workload'

function fail(message: string, cause?: unknown): never {
  throw new Error(`${KIT}: ${message}`, cause === undefined ? undefined : {cause})
}

function show(value: unknown): string {
  if (value instanceof Error) return `${value.name}: ${value.message}`
  const text = JSON.stringify(value)
  return text === undefined ? String(value) : text.length > 200 ? `${text.slice(0, 200)}…` : text
}

/** Calls a driver method; a rejection becomes an Error that names the call. */
async function call<T>(what: string, run: () => Promise<T>): Promise<T> {
  try {
    return await run()
  } catch (error) {
    return fail(`${what} rejected: ${show(error)}`, error)
  }
}

/** The call must reject with a user error (kind 'user') that has a next step. */
async function expectUserError(what: string, run: () => Promise<unknown>): Promise<void> {
  let result: unknown
  try {
    result = await run()
  } catch (error) {
    if (!isUserError(error)) fail(`${what} must reject with a user error (an Error with kind 'user' and a next step), not ${show(error)}`, error)
    const next = (error as {next?: unknown}).next
    if (typeof next !== 'string' || next.trim() === '')
      fail(`${what} rejects with a user error without a next step ("${error.message}"): give \`next\`, what the user does about it`)
    return
  }
  fail(`${what} must reject with a user error, but resolved with ${show(result)}`)
}

function sortedBy<T>(items: T[], key: (item: T) => string | number): boolean {
  return items.every((item, i) => {
    if (i === 0) return true
    const [a, b] = [key(items[i - 1]), key(item)]
    return typeof a === 'number' && typeof b === 'number' ? a <= b : String(a).localeCompare(String(b)) <= 0
  })
}

function checkWorkload(w: Workload, where: string, namespace: string): void {
  if (typeof w?.name !== 'string' || w.name === '') fail(`${where} has a workload without a name: ${show(w)}`)
  if (w.namespace !== namespace) fail(`${where}: workload ${w.name} has namespace ${show(w.namespace)}, not "${namespace}"`)
  if (!Array.isArray(w.aliases)) fail(`${where}: workload ${w.name} has no aliases array`)
  if (typeof w.environment !== 'object' || w.environment === null) fail(`${where}: workload ${w.name} has no environment object`)
  if (!Array.isArray(w.mounts)) fail(`${where}: workload ${w.name} has no mounts array`)
  if (!Array.isArray(w.ports)) fail(`${where}: workload ${w.name} has no ports array`)
  if (!sortedBy(w.ports, (p) => p.port)) fail(`${where}: workload ${w.name}'s ports are not sorted by number: ${w.ports.map((p) => p.port).join(', ')}`)
  if (!Array.isArray(w.replicas) || w.replicas.length === 0) fail(`${where}: workload ${w.name} has no replicas (a driver returns only workloads that run)`)
  for (const r of w.replicas) {
    if (typeof r.id !== 'string' || r.id === '' || typeof r.name !== 'string' || r.name === '')
      fail(`${where}: workload ${w.name} has a replica without an id or a name: ${show(r)}`)
    if (typeof r.address !== 'string' || typeof r.startedAt !== 'string')
      fail(`${where}: replica ${r.name} of ${w.name} has no address or startedAt string: ${show(r)}`)
  }
}

function within<T>(promise: Promise<T>, ms: number): Promise<{value: T} | undefined> {
  let timer: NodeJS.Timeout | undefined
  return Promise.race([
    promise.then((value) => ({value})),
    new Promise<undefined>((resolve) => {
      timer = setTimeout(() => resolve(undefined), ms)
    }),
  ]).finally(() => clearTimeout(timer))
}

/**
 * Drives a cluster driver through its contract, as the daemon uses it, against a real namespace
 * and workload of its cluster; throws an Error that says what is wrong. It injects one agent
 * (role 'agent', on the workload's first replica), removes it and sweeps `connection`: the
 * driver's cluster must be one a test may do that to.
 */
export async function checkClusterDriver(driver: ClusterDriver, check: ClusterDriverCheck): Promise<ClusterDriverCheckResult> {
  const {namespace, connection = 'tp-kit', graceSeconds = 2} = check
  const exitTimeoutMs = check.exitTimeoutMs ?? (graceSeconds + 5) * 1000
  const settleMs = check.settleMs ?? 300

  const namespaces = await call('namespaces()', () => driver.namespaces())
  if (!Array.isArray(namespaces)) fail(`namespaces() must resolve with an array, not ${show(namespaces)}`)
  const names = namespaces.map((n) => n.name)
  if (!names.includes(namespace)) fail(`namespaces() does not list namespace "${namespace}" (it lists: ${names.join(', ') || 'nothing'})`)
  if (!sortedBy(names, (n) => n)) fail(`namespaces() is not sorted by name: ${names.join(', ')}`)
  if (namespaces.some((n) => typeof n.workloads !== 'number')) fail(`namespaces() must give each namespace's number of workloads: ${show(namespaces)}`)

  const resolved = await call(`resolveNamespace("${namespace}")`, () => driver.resolveNamespace(namespace))
  if (resolved !== namespace) fail(`resolveNamespace("${namespace}") resolved with ${show(resolved)}, not "${namespace}"`)
  await expectUserError(`resolveNamespace("${MISSING_NAMESPACE}")`, () => driver.resolveNamespace(MISSING_NAMESPACE))

  const workloads = await call(`workloads("${namespace}")`, () => driver.workloads(namespace))
  if (!Array.isArray(workloads)) fail(`workloads("${namespace}") must resolve with an array, not ${show(workloads)}`)
  for (const w of workloads) checkWorkload(w, `workloads("${namespace}")`, namespace)
  if (!sortedBy(workloads, (w) => w.name)) fail(`workloads("${namespace}") is not sorted by name: ${workloads.map((w) => w.name).join(', ')}`)

  const what = `workload("${namespace}", "${check.workload}")`
  const workload = await call(what, () => driver.workload(namespace, check.workload))
  checkWorkload(workload, what, namespace)
  if (workload.name !== check.workload && !workload.aliases.includes(check.workload))
    fail(`${what} resolved with workload ${workload.name}, which is neither named nor aliased "${check.workload}"`)
  if (!workloads.some((w) => w.name === workload.name)) fail(`${what} found ${workload.name}, but workloads("${namespace}") does not list it`)
  await expectUserError(`workload("${namespace}", "${MISSING_WORKLOAD}")`, () => driver.workload(namespace, MISSING_WORKLOAD))

  const replica = workload.replicas[0]
  const why = await call(`whyNotRunning("${namespace}", ${replica.name})`, () => driver.whyNotRunning(namespace, replica))
  if (why !== undefined) fail(`whyNotRunning("${namespace}", ${replica.name}) of a running replica must be undefined, not ${show(why)}`)

  const reach = await call(`reach("${namespace}")`, () => driver.reach(namespace))
  if (typeof reach?.containerNetwork !== 'string' || reach.containerNetwork === '') fail(`reach("${namespace}") gives no containerNetwork: ${show(reach)}`)
  if (reach.hostAddress !== undefined && typeof reach.hostAddress !== 'string') fail(`reach("${namespace}")'s hostAddress is not a string: ${show(reach)}`)

  let image = check.image
  if (image === undefined) {
    const images = await call('ensureImages()', () => driver.ensureImages())
    if (typeof images?.runtime !== 'string' || images.runtime === '') fail(`ensureImages() must resolve with {runtime: <image>}, not ${show(images)}`)
    image = images.runtime
  }

  const request: AgentRequest = {
    role: 'agent',
    namespace,
    workload,
    replica,
    name: `tp-${connection}-agent-${replica.name}`,
    image,
    labels: tpLabels({connection, intercept: 'kit0001', role: 'agent'}),
    env: {TP_AGENT_INTERCEPT_ID: 'kit0001', ...check.env},
  }
  const injection = `injectAgent({role: 'agent', replica: ${replica.name}})`
  const agent: InjectedAgent = await call(injection, () => driver.injectAgent(request))
  let removed = false
  try {
    if (typeof agent?.id !== 'string' || agent.id === '' || typeof agent.name !== 'string' || !(agent.exited instanceof Promise))
      fail(`${injection} must resolve with {id, name, exited: Promise}, not ${show(agent)}`)
    const early = await within(
      agent.exited.catch(() => undefined),
      settleMs,
    )
    if (early !== undefined)
      fail(`${injection}: the agent ended by itself within ${settleMs} ms (exit code ${show(early.value)}); it must run until removeAgent stops it`)
    await call(`removeAgent("${agent.id}")`, () => driver.removeAgent(agent.id, {graceSeconds}))
    removed = true
    const exit = await within(
      agent.exited.catch((error: unknown) =>
        fail(`the agent's exited rejected (it must resolve, with undefined when the exit code cannot be known): ${show(error)}`, error),
      ),
      exitTimeoutMs,
    )
    if (exit === undefined) fail(`removeAgent("${agent.id}") resolved, but the agent's exited did not resolve within ${exitTimeoutMs} ms`)
    if (exit.value !== undefined && typeof exit.value !== 'number')
      fail(`the agent's exited resolved with ${show(exit.value)}, not an exit code (or undefined)`)
    await call(`removeAgent("${agent.id}") of an agent already removed (nothing there: nothing to do)`, () => driver.removeAgent(agent.id, {graceSeconds}))
    const swept = await call(`sweep("${connection}")`, () => driver.sweep(connection))
    if (!Array.isArray(swept) || swept.some((line) => typeof line !== 'string'))
      fail(`sweep("${connection}") must resolve with an array of lines, not ${show(swept)}`)
    return {workload, request, exitCode: exit.value, swept}
  } finally {
    if (!removed && typeof agent?.id === 'string') await driver.removeAgent(agent.id, {graceSeconds: 0}).catch(() => undefined)
  }
}

/**
 * Imports a cluster driver's module (a descriptor's `module`) the way tp's daemon image does: the
 * file alone, copied to an empty directory; resolves with its default export factory. Throws when
 * it imports anything but Node's own modules (a runtime import of @tp/sdk, a sibling file) or has
 * no default export factory.
 */
export async function checkDriverModule(modulePath: string): Promise<Factory<ClusterDriver, ClusterDriverContext>> {
  const dir = await mkdtemp(join(tmpdir(), 'tp-driver-module-'))
  try {
    const copy = join(dir, 'driver.mjs')
    await copyFile(modulePath, copy).catch((error: unknown) => fail(`the driver module ${modulePath} cannot be read: ${show(error)}`, error))
    let module: {default?: unknown}
    try {
      module = (await import(pathToFileURL(copy).href)) as {default?: unknown}
    } catch (error) {
      return fail(
        `the driver module ${modulePath} is not self-contained: imported alone (as tp's daemon image does) it fails: ${show(error)}; it may import only Node's modules (and @tp/sdk with \`import type\`)`,
        error,
      )
    }
    if (typeof module.default !== 'function') fail(`the driver module ${modulePath} has no default export factory (context) => ClusterDriver`)
    return module.default as Factory<ClusterDriver, ClusterDriverContext>
  } finally {
    await rm(dir, {recursive: true, force: true})
  }
}
