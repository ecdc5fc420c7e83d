import {spawn} from 'node:child_process'
import {readFile} from 'node:fs/promises'
import {dirname, resolve} from 'node:path'
import {Readable} from 'node:stream'
import {
  type HttpFilter,
  type InterceptLease,
  type InterceptMode,
  type InterceptSession,
  type PlacementCapabilities,
  type PluginContext,
  type PreparedHandler,
  type ProvidedVolumes,
  UserError,
  debugLog,
  describeFilter,
  labelArgs,
  swallow,
  tpLabels,
} from '@tp/sdk'
import {
  type HandlerSpec,
  type InterceptSpec,
  type PluginKind,
  type PrerequisiteSpec,
  type ValidatedSpec,
  formatProblem,
  interceptFilter,
  interceptMode,
  interceptName,
  localPortOf,
  validateSpec,
} from '@tp/spec'
import {Connections, type LiveConnection} from './connections.js'
import type {Registries} from './extensions.js'
import {type VolumePlan, openIntercept, planVolumes} from './intercept-flow.js'
import {checkMountRoot, endIntercept, hintWhileWaiting, parseMount, runHandler, trafficNow} from './intercept-steps.js'
import type {Interrupts} from './interrupts.js'
import {handlerCall, pluginKinds, prepareSpecHandler, withEnvironment} from './spec-handlers.js'

const trace = debugLog('tp:cli')

/** A spec file read and validated; throws a UserError listing every problem with its line and column. */
export async function loadSpec(file: string, registries: Registries): Promise<{spec: ValidatedSpec; kinds: PluginKind[]; dir: string}> {
  const text = await readFile(file, 'utf8').catch((error: NodeJS.ErrnoException) => {
    throw new UserError(`cannot read ${file}: ${error.code === 'ENOENT' ? 'no such file' : error.message}`, 'give the path of a spec file (YAML or JSON)')
  })
  const kinds = pluginKinds(registries)
  const result = validateSpec(text, {file, kinds})
  if (!result.spec) {
    const list = result.problems.map((p) => formatProblem(p, file)).join('\n')
    throw new UserError(
      `${file} has ${result.problems.length} problem${result.problems.length === 1 ? '' : 's'}:\n${list}`,
      'fix them; `tp spec validate` checks again',
    )
  }
  return {spec: result.spec, kinds, dir: dirname(resolve(file))}
}

/** One enabled intercept of the spec, with its ports worked out. */
export interface PlannedIntercept {
  workload: string
  intercept: InterceptSpec
  handler: HandlerSpec
  local: number
  container: number
  service?: string
  mount: {wanted: boolean; root?: string}
  /** As the command of that name (`tp wiretap`, …). */
  mode: InterceptMode
  /** A personal intercept's (`headers`, `pathPrefix`). */
  filter?: HttpFilter
  /** `name`, else a personal intercept's `<workload>-<handler>`, else the daemon chooses (as `tp intercept` without --name). */
  name?: string
  /** `replace` with `port` and `localPort`: as `tp replace --port <localPort>:<port>`. */
  portMap: Array<{service: string; local: number}>
  /** `writable` (ingest, wiretap). */
  writable: boolean
}

/** The intercepts to create, in the file's order; ports as `tp intercept --port` would have them. */
export function planIntercepts(spec: ValidatedSpec, capabilities: PlacementCapabilities, specDir: string): PlannedIntercept[] {
  const handlers = new Map(spec.handlers.map((h) => [h.name, h]))
  const planned: PlannedIntercept[] = []
  for (const workload of spec.workloads) {
    for (const intercept of workload.intercepts) {
      if (intercept.enabled === false) continue
      const handler = handlers.get(intercept.handler) as HandlerSpec
      const mode = interceptMode(intercept)
      // as `tp ingest` (no port: 8080, which nothing uses) and `tp replace` (0: the first service port's own number)
      const local = mode === 'ingest' ? 8080 : mode === 'replace' ? (intercept.localPort ?? 0) : localPortOf(intercept, handler)
      const portMap =
        mode === 'replace' && intercept.port !== undefined && intercept.localPort !== undefined
          ? [{service: String(intercept.port), local: intercept.localPort}]
          : []
      const wanted = mode === 'intercept' || mode === 'wiretap' ? handler.docker?.ports?.[0] : undefined
      let container = local
      if (wanted !== undefined && wanted !== local) {
        if (!capabilities.canPublishPorts) {
          throw new UserError(
            `handler "${handler.name}" listens on port ${wanted}, but the intercept of ${workload.name} has localPort ${local}, and with this daemon the handler shares the daemon's network: there is no separate container port`,
            `make them the same (localPort: ${wanted}), or connect with a daemon on this host (connection.docker: false)`,
          )
        }
        container = wanted
      }
      const mountPoint = intercept.mountPoint
      const mount = mountPoint === undefined ? {wanted: true} : parseMount(typeof mountPoint === 'boolean' ? String(mountPoint) : resolve(specDir, mountPoint))
      planned.push({
        workload: workload.name,
        intercept,
        handler,
        local,
        container,
        service: intercept.port === undefined || mode === 'replace' ? undefined : String(intercept.port),
        mount,
        mode,
        filter: interceptFilter(intercept),
        name: interceptName(workload.name, intercept),
        portMap,
        writable: intercept.writable === true && (mode === 'ingest' || mode === 'wiretap'),
      })
    }
  }
  return planned
}

/**
 * The connection a spec runs on: the spec's `connection.name` if live, else the only live
 * connection (which must be to the spec's namespace, when it names one), else a new one made
 * with the spec's `connection` options — which `made` says, so the run can quit it at the end.
 */
export async function specConnection(
  connections: Connections,
  spec: ValidatedSpec,
): Promise<{existing?: LiveConnection; connect?: {name: string; namespace?: string; docker: boolean; cluster?: string}}> {
  const wanted = spec.connection ?? {}
  const live = await connections.live()
  const check = (c: LiveConnection) => {
    if (wanted.namespace && c.record.namespace !== wanted.namespace) {
      throw new UserError(
        `connection "${c.record.name}" is to namespace ${c.record.namespace}, but the spec's connection.namespace is ${wanted.namespace}`,
        `give the spec a connection.name of its own (tp makes that connection), or \`tp quit --name ${c.record.name}\` first`,
      )
    }
    return {existing: c}
  }
  const make = {name: wanted.name ?? 'default', namespace: wanted.namespace, docker: wanted.docker === true, cluster: wanted.cluster}
  if (wanted.name) {
    const found = live.find((c) => c.record.name === wanted.name)
    return found ? check(found) : {connect: make}
  }
  if (live.length === 1) return check(live[0])
  if (live.length > 1) {
    const matching = wanted.namespace ? live.filter((c) => c.record.namespace === wanted.namespace) : []
    if (matching.length === 1) return {existing: matching[0]}
    throw new UserError(
      `there are ${live.length} connections (${live.map((c) => c.record.name).join(', ')}) and the spec does not say which to use`,
      'set connection.name in the spec',
    )
  }
  return {connect: make}
}

function signalNumber(signal: NodeJS.Signals | null): number {
  return signal === 'SIGINT' ? 2 : signal === 'SIGKILL' ? 9 : signal === 'SIGHUP' ? 1 : 15
}

/**
 * A prerequisite, to completion, with no intercept: a script (`<shell> -c <run>` from the spec's
 * directory), or a container (`docker run --rm`, joined to the connection as handler containers
 * are, tp-labelled); an empty handler does nothing. A signal stops it when `interrupts` is given.
 */
export function runPrerequisite(handler: HandlerSpec, cwd: string, connection: LiveConnection, interrupts?: Interrupts): Promise<number> {
  const env: NodeJS.ProcessEnv = {...process.env}
  for (const {name, value} of handler.environment ?? []) env[name] = value
  let command: string
  let args: string[]
  if (handler.script) {
    command = handler.script.shell ?? 'sh'
    args = ['-c', handler.script.run]
  } else if (handler.docker?.image) {
    const d = handler.docker
    command = process.env.TP_DOCKER_COMMAND ?? 'docker'
    // values travel in the docker client's environment (multi-line ones too), never in argv
    args = [
      'run',
      '--rm',
      '--name',
      `tp-${connection.record.name}-pre-${handler.name}-${process.pid}`,
      ...labelArgs(tpLabels({connection: connection.record.name, role: 'prerequisite'})),
      ...connection.placement.containerArgs,
      ...(handler.environment ?? []).flatMap((e) => ['-e', e.name]),
      ...(d.options ?? []),
      d.image as string,
      ...(d.command !== undefined ? [d.command] : []),
      ...(d.args ?? []),
    ]
  } else return Promise.resolve(0) // an empty handler
  return new Promise((resolvePromise, reject) => {
    const child = spawn(command, args, {cwd, env, stdio: ['ignore', 'inherit', 'inherit']})
    const cancel = interrupts?.onInterrupt(() => child.kill('SIGTERM')) ?? (() => {})
    child.once('error', (error) => {
      cancel()
      reject(new UserError(`prerequisite handler "${handler.name}" could not start ${command}: ${error.message}`, `check that ${command} is installed`))
    })
    child.once('exit', (code, signal) => {
      cancel()
      resolvePromise(code ?? 128 + signalNumber(signal))
    })
  })
}

/** A handler of the spec that runs, with what it needs until the end. */
interface Running {
  planned: PlannedIntercept
  prepared: PreparedHandler
  volumePlan: VolumePlan
  lease?: InterceptLease
  drain?: () => Promise<void>
  /** Why the daemon ended the intercept, once it did (tp leave, tp quit, the workload gone). */
  ended?: string
  session?: InterceptSession
  volumes?: ProvidedVolumes
}

export interface SpecRunOptions {
  registries: Registries
  context: PluginContext
  spec: ValidatedSpec
  kinds: PluginKind[]
  dir: string
  interrupts: Interrupts
  write: (text: string) => void
}

/**
 * `tp spec run`: connect if needed, run the creates in order, prepare every handler, create every
 * intercept, run every handler at once; the first to end (or Ctrl-C, `tp leave`, `tp quit`) ends
 * them all; then, in reverse order, handlers, volumes, intercepts, the deletes of the creates that
 * ran, and the connection if this run made it. Resolves with the exit code.
 */
export async function runSpec(options: SpecRunOptions): Promise<number> {
  const {registries, context, spec, kinds, dir, interrupts, write} = options
  const connections = new Connections(registries, context)
  const handlers = new Map(spec.handlers.map((h) => [h.name, h]))
  const target = await specConnection(connections, spec)
  let connection = target.existing
  let made = false
  const created: HandlerSpec[] = []
  /** The prerequisites whose create was started (their deletes run at the end). */
  const started = new Set<PrerequisiteSpec>()
  const running: Running[] = []
  let exitCode = 0
  let failure: unknown
  const main = async (): Promise<number> => {
    if (!connection && target.connect) {
      write(`Connecting "${target.connect.name}"${target.connect.namespace ? ` to ${target.connect.namespace}` : ''}…\n`)
      connection = await connections.connect(target.connect)
      made = true
    }
    if (interrupts.signal || !connection) return 0
    const live: LiveConnection = connection
    for (const workload of spec.workloads) {
      if (workload.namespace && workload.namespace !== live.record.namespace) {
        throw new UserError(
          `workload ${workload.name} is in namespace ${workload.namespace}, but connection "${live.record.name}" is to ${live.record.namespace}`,
          'a spec runs on one namespace: fix workloads[].namespace, or set connection.namespace',
        )
      }
    }
    const capabilities = live.placement.capabilities
    const plan = planIntercepts(spec, capabilities, dir)

    // 1. the creates, in order; a failing one ends the run
    interrupts.action = 'stopping the prerequisite and running the deletes of the creates that ran'
    for (const prerequisite of spec.prerequisites) {
      if (!prerequisite.create) continue
      const handler = handlers.get(prerequisite.create) as HandlerSpec
      write(`Prerequisite: running create "${handler.name}"…\n`)
      created.push(handler)
      started.add(prerequisite)
      const code = await runPrerequisite(handler, dir, live, interrupts)
      if (interrupts.signal) return 0
      if (code !== 0) {
        write(`Prerequisite create "${handler.name}" failed with exit code ${code}; no intercept is created.\n`)
        exitCode = code
        return code
      }
    }

    // 2. every handler checks what can fail before any intercept exists
    interrupts.action = 'ending the intercepts (handlers, volumes, traffic) and running the deletes'
    for (const planned of plan) {
      const prepared = await prepareSpecHandler(registries, context, planned.handler, kinds, {
        workload: planned.workload,
        capabilities,
        localPort: planned.local,
        containerPort: planned.container,
        cwd: dir,
      })
      // its volume provider, chosen before any intercept exists, loads meanwhile
      running.push({planned, prepared, volumePlan: planVolumes(registries, context, capabilities, prepared, planned.mount)})
      if (planned.mount.root) await checkMountRoot(planned.mount.root, prepared)
      if (interrupts.signal) return 0
    }

    // 3. the intercepts and their volumes, as `tp intercept` makes them: each session comes
    // before its agents are ready, and its volumes and handler start while they come up
    for (const r of running) {
      const {planned, prepared} = r
      const opened = await openIntercept({
        registries,
        context,
        connection: live,
        // as `tp intercept|wiretap|ingest|replace` build it
        request: {
          workload: planned.workload,
          name: planned.name,
          localPort: planned.local,
          containerPort: planned.container,
          servicePort: planned.service,
          mounts: planned.mount.wanted && prepared.wantsVolumes,
          handlerRunsAs: prepared.runsAs ?? 'container',
          ...(planned.mode === 'intercept' ? {} : {mode: planned.mode}),
          ...(planned.writable ? {writableMounts: true} : {}),
          ...(planned.portMap.length > 0 ? {portMap: planned.portMap} : {}),
          ...(planned.filter ? {filter: planned.filter} : {}),
        },
        prepared,
        mount: planned.mount,
        volumes: r.volumePlan,
        shape: (session) => withEnvironment(session, planned.handler),
        onLease: (lease) => {
          r.lease = lease
          void lease.ended.then((end) => {
            r.ended = end.reason
          })
        },
        cancelled: () => interrupts.signal !== undefined,
      })
      r.session = opened.session
      r.volumes = opened.volumes
      r.drain = opened.drain
      if (interrupts.signal) return 0
    }

    // 4. one status block, then every handler at once
    write(statusBlock(spec, live, created, running))
    if (running.length === 0) {
      write('No intercept to run (the spec has none, or none enabled); ending.\n')
      return 0
    }
    for (const r of running) {
      const session = r.session as InterceptSession
      const lease = r.lease as InterceptLease
      for (const note of r.prepared.notes ?? []) write(`${r.planned.handler.name}: ${note}\n`)
      if (r.planned.mode === 'ingest') continue // no traffic to wait for
      hintWhileWaiting(session, lease)
      void lease.active.then(() =>
        write(
          `${trafficNow(session)} now goes to your handler (${r.planned.handler.name})${session.mode === 'replace' ? `; ${session.workload} is paused` : ''}.\n`,
        ),
      )
    }
    // several handlers share this terminal: none reads its input
    const runs = running.map((r, index) =>
      runHandler(
        r.prepared,
        r.session as InterceptSession,
        r.lease as InterceptLease,
        interrupts,
        {dockerRunArgs: r.volumes?.dockerRunArgs ?? [], root: r.volumes?.root},
        r.drain as () => Promise<void>,
        {stdin: Readable.from([]), stdout: process.stdout, stderr: process.stderr},
      ).then(
        ({code}) => ({index, code}),
        (error: unknown) => ({index, code: 1, error}),
      ),
    )
    // runHandler says what it stops; here a signal ends all of it
    interrupts.action = 'ending every intercept (handlers, volumes, traffic), then running the deletes'
    const first = await Promise.race(runs)
    const ending = running[first.index]
    const name = ending.planned.handler.name
    if ('error' in first) failure = first.error
    else if (ending.ended) write(`Intercept ${ending.session?.name} ended (${ending.ended}); ending the others.\n`)
    else if (!interrupts.signal) write(`Handler "${name}" exited${first.code === 0 ? '' : ` with exit code ${first.code}`}; ending the others.\n`)
    exitCode = first.code
    interrupts.action = 'ending the intercepts (handlers, volumes, traffic) and running the deletes'
    // each gives its traffic back before its handler stops
    await Promise.all(
      running.map(async (r) => {
        if (r !== ending && r.drain) await r.drain().catch(swallow(trace, 'giving the traffic back'))
        await r.prepared.stop(`handler "${name}" ended`).catch(swallow(trace, 'stopping a handler'))
      }),
    )
    await Promise.all(runs)
    return exitCode
  }
  const teardown = async (): Promise<void> => {
    // reverse order, on every path
    for (const r of [...running].reverse()) {
      await endIntercept({prepared: r.prepared, volumes: r.volumes, lease: r.lease, client: connection?.client, log: context.log})
    }
    const deletes = spec.prerequisites
      .filter((p) => p.delete && started.has(p))
      .map((p) => handlers.get(p.delete as string) as HandlerSpec)
      .reverse()
    for (const handler of deletes) {
      write(`Prerequisite: running delete "${handler.name}"…\n`)
      // a signal during the run must not stop the deletes: they run on their own
      const code = await runPrerequisite(handler, dir, connection as LiveConnection).catch((error: Error) => {
        context.log.warn(error.message)
        return 1
      })
      if (code !== 0) {
        context.log.warn(`prerequisite delete "${handler.name}" failed with exit code ${code}`)
        if (exitCode === 0 && !failure) exitCode = code
      }
    }
    // the connection this run made goes with it (unless `tp quit` ended it already)
    if (made && connection && (await connection.backend.find(connection.record.name).catch(() => connection?.record))) {
      write(`Quitting connection "${connection.record.name}", which this run made…\n`)
      await connections.quit(connection).catch((error: Error) => context.log.warn(`could not quit the connection: ${error.message}`))
    }
  }
  try {
    exitCode = await main()
  } catch (error) {
    failure = error
  }
  await teardown()
  if (failure) throw failure
  return exitCode
}

function statusBlock(spec: ValidatedSpec, connection: LiveConnection, created: HandlerSpec[], running: Running[]): string {
  const lines = [
    `Spec ${spec.name}: connection "${connection.record.name}" to namespace ${connection.record.namespace} (${connection.placement.where})`,
    `  prerequisites run: ${created.length > 0 ? created.map((h) => h.name).join(', ') : 'none'}`,
  ]
  for (const r of running) {
    const s = r.session as InterceptSession
    const env = (r.planned.handler.environment ?? []).map((e) => e.name)
    const what = `${s.mode ?? 'intercept'} ${s.name}${s.filter ? ` for ${describeFilter(s.filter)}` : ''}`
    const where =
      s.mode === 'ingest'
        ? `${s.workload} (no traffic)`
        : s.mode === 'replace' && s.replacedPorts
          ? `${s.workload}:${s.replacedPorts.map((p) => (p.service === p.local ? `${p.service}` : `${p.service} → port ${p.local}`)).join(',')}`
          : `${s.workload}:${s.ports.service} → port ${s.ports.local}`
    lines.push(
      `  ${where}: ${what}, handler ${r.planned.handler.name} (${r.prepared.describe.trim().replace(/\s*\n\s*/g, '; ')})${env.length > 0 ? `, environment +${env.join(' +')}` : ''}${
        s.mounts.length > 0 ? `, volumes ${s.mounts.map((m) => m.path).join(' ')}${r.volumes?.root ? ` under ${r.volumes.root}` : ''}` : ''
      }`,
    )
  }
  if (running.length === 0) lines.push('  no intercepts')
  else lines.push('Ctrl-C (or `tp leave <intercept>`, `tp quit`, a handler ending) ends every intercept, then runs the deletes.')
  return `${lines.join('\n')}\n`
}

/** `--dry-run`: what a run would do, creating nothing. */
export async function describePlan(options: Omit<SpecRunOptions, 'interrupts' | 'write'>): Promise<string> {
  const {registries, context, spec, kinds, dir} = options
  const connections = new Connections(registries, context)
  const target = await specConnection(connections, spec)
  const capabilities = target.existing
    ? target.existing.placement.capabilities
    : connections.capabilitiesOf(connections.backendName(target.connect?.docker ?? false))
  const handlers = new Map(spec.handlers.map((h) => [h.name, h]))
  const lines = [`Spec ${spec.name} (dry run: nothing is created)`]
  if (target.existing) lines.push(`  connection: "${target.existing.record.name}" to ${target.existing.record.namespace} (live; it stays)`)
  else {
    const c = target.connect as {name: string; namespace?: string; docker: boolean; cluster?: string}
    lines.push(
      `  connection: would connect "${c.name}"${c.namespace ? ` to ${c.namespace}` : ''} with the ${connections.backendName(c.docker)} daemon, and quit it at the end`,
    )
  }
  const script = (name: string) => handlerCall(handlers.get(name) as HandlerSpec, kinds, dir).describe
  for (const p of spec.prerequisites) if (p.create) lines.push(`  create: ${p.create}: ${script(p.create)}`)
  for (const planned of planIntercepts(spec, capabilities, dir)) {
    const ports = planned.container !== planned.local ? `${planned.local} (container port ${planned.container})` : String(planned.local)
    const env = (planned.handler.environment ?? []).map((e) => `${e.name}=${JSON.stringify(e.value)}`)
    const target =
      planned.mode === 'ingest'
        ? `${planned.workload} (no traffic)`
        : planned.mode === 'replace'
          ? `${planned.workload}:<every port> (paused meanwhile)${planned.portMap.map((p) => `, ${p.service} → port ${p.local}`).join('')}`
          : `${planned.workload}:${planned.service ?? '<its one port>'}${planned.filter ? ` for ${describeFilter(planned.filter)}` : ''}${planned.mode === 'wiretap' ? ' (a copy; the workload answers)' : ''} → port ${ports}`
    lines.push(
      `  ${planned.mode}${planned.name ? ` ${planned.name}` : ''}: ${target}, handler ${planned.handler.name}: ${handlerCall(planned.handler, kinds, dir).describe}${
        env.length > 0 ? ` with ${env.join(' ')}` : ''
      }${planned.mount.wanted ? `${planned.mount.root ? `, volumes under ${planned.mount.root}` : ''}${planned.writable ? ' (writable)' : ''}` : ', without volumes'}`,
    )
  }
  for (const p of [...spec.prerequisites].reverse()) if (p.create && p.delete) lines.push(`  delete (if ${p.create} ran): ${p.delete}: ${script(p.delete)}`)
  return `${lines.join('\n')}\n`
}
