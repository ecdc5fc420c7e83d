import {mkdtemp, readdir, rmdir, stat, writeFile} from 'node:fs/promises'
import {dirname, join, resolve} from 'node:path'
import {
  type DaemonClient,
  type EnvSyntax,
  type HandlerIO,
  type InterceptLease,
  type InterceptSession,
  type Logger,
  type PluginContext,
  type PreparedHandler,
  type ProvidedVolumes,
  type RunExtras,
  UserError,
  type VolumeForm,
  type VolumeProvider,
  type VolumeRequest,
  type PlacementCapabilities,
  pluginLabel,
  debugLog,
  describeFilter,
  fitsCapabilities,
  formatEnv,
  swallow,
} from '@tp/sdk'
import type {Registries} from './extensions.js'
import type {Interrupts} from './interrupts.js'

/**
 * The steps of an intercept that `tp intercept` (and anything else that runs intercepts) shares:
 * checking --mount, turning remote mounts into volumes, running a prepared handler against its
 * lease, and saying what happens.
 */

/** What to do after an intercept ended by a fault, by its cause. */
export function nextStepAfter(reason: string): string {
  if (/link to the cluster's engine/.test(reason))
    return "its daemon has ended too: run the intercept again once the cluster's engine answers (`tp list` checks); nothing of tp's is left there"

  if (/daemon went away/.test(reason))
    return '`tp status` says what became of the connection; `tp connect` (or `tp intercept`, which connects by itself) starts a new daemon'
  if (/traffic agent/.test(reason)) return 'run the intercept again (a new agent is injected); `docker logs` of an agent that keeps dying says why'
  return 'run the intercept again once `tp list` shows the workload running; `tp status` shows the connection'
}

const trace = debugLog('tp:cli')

/** When to tell a user that the handler has not answered yet. */
const HINT_AFTER_MS = Number(process.env.TP_HINT_AFTER_MS ?? 10_000)

/** `--mount`: true, false, or the directory where a handler on this machine gets the volumes. */
export function parseMount(value: string): {wanted: boolean; root?: string} {
  if (value === 'true') return {wanted: true}
  if (value === 'false') return {wanted: false}
  if (value === '') throw new UserError('--mount needs a value', 'use --mount=true, --mount=false or --mount=<empty directory>')
  return {wanted: true, root: resolve(value)}
}

/** A `--mount=<dir>` is checked before anything exists: the handler takes a directory, and the directory is usable. */
export async function checkMountRoot(root: string, prepared: PreparedHandler | undefined): Promise<void> {
  if (prepared?.volumeForm !== 'directory') {
    throw new UserError(
      `--mount=${root} names a directory, but ${prepared ? 'this handler takes the volumes as Docker volumes' : 'there is no handler to give it to'}`,
      'use --mount=<dir> with a command on this machine (`tp intercept <workload> --mount=<dir> -- <command>`) or with --docker-mount; otherwise --mount=true or --mount=false',
    )
  }
  const entries = await readdir(root).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return undefined
    if (error.code === 'ENOTDIR') throw new UserError(`--mount=${root} is not a directory`, 'choose an empty directory, or one that does not exist yet')
    throw new UserError(`--mount=${root} cannot be read: ${error.message}`, 'choose an empty directory you can write to')
  })
  if (entries && entries.length > 0) {
    throw new UserError(
      `--mount=${root} is not empty (${entries.slice(0, 3).join(', ')}${entries.length > 3 ? ', …' : ''})`,
      'the volumes would hide what is there: choose an empty directory, or one that does not exist yet',
    )
  }
  // the directory, or the nearest parent that exists, must take a new directory (a real try:
  // permission bits say nothing to root, nor about read-only or pseudo file systems)
  let dir = root
  while (
    !(await stat(dir).then(
      () => true,
      () => false,
    ))
  )
    dir = dirname(dir)
  const probe = await mkdtemp(join(dir, '.tp-write-check-')).catch(() => {
    throw new UserError(`--mount=${root} is not writable (no directory can be made in ${dir})`, 'choose a directory you can write to')
  })
  await rmdir(probe)
}

/** Where a handler must listen, in words. */
export function where(session: InterceptSession): string {
  return session.placement.capabilities.sharesDaemonNetwork ? "in the daemon's network namespace" : 'on this machine'
}

/** What the user may start by hand for a held intercept. */
export function waitingFor(session: InterceptSession): string {
  const {placement, ports} = session
  const publish = placement.capabilities.canPublishPorts ? ` -p ${ports.local}:${ports.local}` : ''
  const container = `docker run${placement.containerArgs.length > 0 ? ` ${placement.containerArgs.join(' ')}` : ''}${publish} …`
  return `something to answer on port ${ports.local} ${where(session)} (e.g. ${container})`
}

/** Turns the session's remote mounts into what the handler takes, through the first provider that fits. */
/**
 * The volume provider for a handler's form on a placement: the one named (`--volume-provider`), or
 * the only one that fits. Several that fit is an error that names them: which one wins is never
 * left to the order plugins happen to load in. Checked before the intercept exists.
 */
export function chooseVolumeProvider(registries: Registries, capabilities: PlacementCapabilities, form: VolumeForm, wanted?: string): string {
  const fits = (e: {descriptor: {forms?: VolumeForm[]; requires: Partial<PlacementCapabilities>}}) =>
    (e.descriptor.forms ?? ['docker-volumes']).includes(form) && fitsCapabilities(e.descriptor.requires, capabilities)
  const how = form === 'directory' ? 'as a directory on this machine' : 'as Docker volumes'
  if (wanted) {
    const entry = registries['volume-providers'].get(wanted)
    if (!fits(entry)) {
      throw new UserError(
        `volume provider "${wanted}" does not give volumes ${how} with this daemon`,
        'choose another with --volume-provider (see `tp extensions`), or --mount=false',
      )
    }
    return wanted
  }
  const candidates = registries['volume-providers'].list().filter(fits)
  if (candidates.length === 0) {
    throw new UserError(
      `no installed volume provider gives the workload's volumes ${how} with this daemon`,
      'install one (see `tp extensions`), or run without remote mounts: --mount=false',
    )
  }
  if (candidates.length > 1) {
    const names = candidates.map((e) => `${e.descriptor.name} (${pluginLabel(e.plugin)})`)
    throw new UserError(`several volume providers give volumes ${how}: ${names.join(', ')}`, `choose one with --volume-provider <name>`)
  }
  return candidates[0].descriptor.name
}

/** Turns the session's remote mounts into what the handler takes, through the chosen provider (or the only one that fits). */
export async function provideVolumes(
  registries: Registries,
  context: PluginContext,
  session: InterceptSession,
  request: VolumeRequest,
  provider: string | VolumeProvider = chooseVolumeProvider(registries, session.placement.capabilities, request.form),
): Promise<ProvidedVolumes> {
  return (typeof provider === 'string' ? await registries['volume-providers'].load(provider, context) : provider).provide(session, request)
}

/**
 * Loads a volume provider ahead of time and lets it warm up (`warmUp`) while the intercept is being
 * created. A failed warm-up is only logged: `provide` meets the problem again and says so.
 */
export async function loadVolumeProviderEarly(registries: Registries, context: PluginContext, name: string): Promise<VolumeProvider> {
  const started = performance.now()
  const provider = await registries['volume-providers'].load(name, context)
  const loaded = performance.now()
  void provider
    .warmUp?.()
    .then(() => trace(`volume provider ${name} loaded in ${Math.round(loaded - started)} ms, warmed up ${Math.round(performance.now() - loaded)} ms later`))
    .catch(swallow(trace, `warming up volume provider ${name}`))
  return provider
}

export interface HandlerOutcome {
  /** tp's exit code: the handler's, or 0 when it was stopped on purpose. */
  code: number
  /** Why the intercept ends, when the handler ended it by exiting on its own. */
  reason?: string
}

/**
 * Runs the handler until it exits, Ctrl-C/SIGTERM arrive, or the daemon ends the intercept. `io`:
 * this process's stdin, stdout and stderr unless given (`tp spec run` runs several handlers at once).
 */
export async function runHandler(
  prepared: PreparedHandler,
  session: InterceptSession,
  lease: InterceptLease,
  interrupts: Interrupts,
  extras: RunExtras,
  /** The hand-back before a planned stop: resolves once new connections go to the workload and those in flight have ended. */
  drain: () => Promise<void>,
  io: HandlerIO = {stdin: process.stdin, stdout: process.stdout, stderr: process.stderr},
): Promise<HandlerOutcome> {
  let endedBy: {reason: string; normal: boolean} | undefined
  const stop = (reason: string) => {
    void prepared.stop(reason)
  }
  interrupts.action = 'giving the traffic back, then stopping the handler'
  const cancel = interrupts.onInterrupt((signal) => {
    if (endedBy) return
    endedBy = {reason: signal, normal: true}
    // the handler keeps serving what is in flight until the workload has its traffic back
    void drain()
      .catch((error: Error) => process.stderr.write(`Could not give the traffic back first (${error.message}); stopping the handler.\n`))
      .finally(() => stop(signal))
  })
  let finished = false
  // the handler may start while the workload's agent comes up: if the agent fails, it stops
  let agentFailed: Error | undefined
  lease.ready.catch((error: Error) => {
    if (endedBy || finished) return
    agentFailed = error
    endedBy = {reason: error.message, normal: false}
    stop('the traffic agent did not start')
  })
  void lease.ended.then((end) => {
    if (endedBy || finished) return // already stopping, or the handler is gone and the intercept is being ended
    endedBy = end
    process.stderr.write(`The intercept ended: ${end.reason}. Stopping the handler…\n`)
    stop(end.reason)
  })
  try {
    const code = await prepared.run(session, io, extras)
    if (agentFailed) throw agentFailed // the daemon's own error: what failed and what to do
    if (endedBy?.normal) return {code: 0} // stopped on purpose: Ctrl-C, tp leave, tp quit
    if (endedBy) throw new UserError(`the intercept ended unexpectedly: ${endedBy.reason}`, nextStepAfter(endedBy.reason))
    const reason = `the handler exited with code ${code}`
    io.stderr.write(
      session.mode === 'ingest' || session.mode === 'wiretap'
        ? `The handler exited with code ${code}.\n`
        : `The handler exited by itself with code ${code}: traffic to ${session.workload}${session.mode === 'replace' ? '' : `:${session.ports.service}`} goes back to the workload.\n`,
    )
    return {code, reason}
  } finally {
    finished = true
    cancel()
  }
}

/** What one intercept has to end: whatever exists of it (each part is optional). */
export interface InterceptParts {
  prepared?: PreparedHandler
  volumes?: ProvidedVolumes
  lease?: InterceptLease
  /** The client of the connection that holds the lease. */
  client?: DaemonClient
  log: Logger
  /** Why it ends, when its handler ended it (the daemon logs it). */
  reason?: string
}

/**
 * Ends one intercept in order, on every path: the handler, its volumes, the intercept (the
 * daemon gives the traffic back and removes the agent), then whatever prepare made.
 */
export async function endIntercept({prepared, volumes, lease, client, log, reason}: InterceptParts): Promise<void> {
  if (prepared) await prepared.stop('tp is ending the intercept').catch(swallow(trace, 'stopping the handler'))
  if (volumes) await volumes.release().catch((error: Error) => log.warn(`could not remove volumes: ${error.message}`))
  // an agent still coming up: once it is, the intercept can be ended in order (if it failed, the
  // daemon has removed it already)
  if (lease) await lease.ready.catch(swallow(trace, 'the agent did not start'))
  if (lease && client) {
    await client.leave(lease.session.name, {owner: true, reason}).catch(swallow(trace, 'leaving (the daemon may be gone)'))
    lease.close()
  }
  if (prepared?.dispose) await prepared.dispose().catch(swallow(trace, 'disposing of the handler'))
}

/**
 * Traffic switches only when the handler answers on the local port. A handler that listens on
 * another port would leave the user waiting with no clue: say so after a while.
 */
export function hintWhileWaiting(session: InterceptSession, lease: InterceptLease): void {
  const timer = setTimeout(() => {
    process.stderr.write(
      `Still waiting for something to answer on port ${session.ports.local} ${where(session)}; until then ${session.workload} keeps its traffic. If your handler listens on another port, run again with --port <that port>.\n`,
    )
  }, HINT_AFTER_MS)
  timer.unref()
  void lease.active.then(() => clearTimeout(timer))
  void lease.ended.then(() => clearTimeout(timer))
}

/** What the intercept is, on stderr. */
export function printSession(session: InterceptSession, handler?: string, root?: string): void {
  const lines = [
    `Intercept ${session.name} (id ${session.id}): ${session.workload}:${session.ports.service}${session.ports.serviceName ? `/${session.ports.serviceName}` : ''} in ${session.namespace} → port ${session.ports.local}`,
    `  connection ${session.daemon.connection} (${session.placement.where})`,
    `  environment: ${Object.keys(session.environment).join(' ')}`,
    `  volumes: ${session.mounts.length > 0 ? session.mounts.map((m) => `${m.path}${m.readOnly ? ' (read-only)' : ''}`).join(', ') : 'none'}${root ? ` (mounted under ${root})` : ''}`,
  ]
  // a named volume is per node: whose copy the handler sees
  if (session.volumesFrom) lines.push(`  volumes from ${session.volumesFrom.replica}${session.volumesFrom.node ? ` on node ${session.volumesFrom.node}` : ''}`)
  for (const file of session.unservedFiles ?? []) lines.push(`  not served: ${file.path} (${file.why})`)
  if (session.filter) lines.push(`  personal: only HTTP requests with ${describeFilter(session.filter)}; the rest reach ${session.workload}`)
  if (handler) lines.push(`  handler: ${handler}`)
  process.stderr.write(lines.join('\n') + '\n')
}

/** `--env-file` and `--env-json`. */
export async function writeEnvFiles(session: InterceptSession, envFile: string | undefined, syntax: EnvSyntax, envJson: string | undefined): Promise<void> {
  if (envFile) await writeFile(envFile, formatEnv(session.environment, syntax), {mode: 0o600})
  if (envJson) await writeFile(envJson, JSON.stringify(session.environment, null, 2) + '\n', {mode: 0o600})
}

/** What traffic a running intercept takes, in words (`tp intercept` and `tp spec run`). */
export function trafficNow(session: InterceptSession): string {
  if (session.mode === 'replace' && session.replacedPorts)
    return `Traffic to ${session.workload} (${session.replacedPorts.map((p) => (p.service === p.local ? `${p.service}` : `${p.service} → ${p.local}`)).join(', ')})`
  if (session.mode === 'wiretap') return `A copy of the traffic to ${session.workload}:${session.ports.service} (the workload still answers)`
  if (session.filter) return `HTTP traffic to ${session.workload}:${session.ports.service} with ${describeFilter(session.filter)}`
  return `Traffic to ${session.workload}:${session.ports.service}`
}
