import {open, rm, stat} from 'node:fs/promises'
import {dirname, join, resolve} from 'node:path'
import {Args, Flags} from '@oclif/core'
import {
  type HandlerDescriptor,
  type InterceptLease,
  type InterceptMode,
  type InterceptSession,
  type PlacementCapabilities,
  type PreparedHandler,
  type ProvidedVolumes,
  UserError,
  ENV_SYNTAXES,
  type EnvSyntax,
  debugLog,
  parseHttpFilter,
  swallow,
} from '@tp/sdk'
import {TpCommand} from '../base-command.js'
import {requirePinnedSet} from '../pins/state.js'
import {Connections, type LiveConnection} from '../connections.js'
import {chooseHandler} from '../handler-choice.js'
import {Interrupts} from '../interrupts.js'
import {openIntercept, planVolumes} from '../intercept-flow.js'
import {
  checkMountRoot,
  endIntercept,
  hintWhileWaiting,
  nextStepAfter,
  parseMount,
  printSession,
  runHandler,
  trafficNow,
  waitingFor,
  writeEnvFiles,
} from '../intercept-steps.js'
import {parseModePorts} from '../port-spec.js'

const trace = debugLog('tp:cli')
/** The daemon's own steps, as it reports them. */
const daemonTrace = debugLog('tp:daemon')

// oclif's flag types are too precise for a map built at run time
// biome-ignore lint/suspicious/noExplicitAny: oclif's flag builders return types a map built at run time cannot name
type FlagMap = Record<string, any>

/** The flags handlers own become flags of `tp intercept`. */
function handlerFlags(descriptors: HandlerDescriptor[]): FlagMap {
  const flags: FlagMap = {}
  for (const d of descriptors) {
    for (const [name, spec] of Object.entries(d.flags ?? {})) {
      flags[name] =
        spec.type === 'boolean'
          ? Flags.boolean({description: spec.description})
          : spec.multiple
            ? Flags.string({description: spec.description, helpValue: spec.helpValue, multiple: true})
            : Flags.string({description: spec.description, helpValue: spec.helpValue})
    }
  }
  return flags
}

/** `--env-file`, `--env-json`: files tp will write once the intercept exists, so checked before: not a directory, writable. */
async function checkOutputFiles(files: Record<string, string | undefined>): Promise<void> {
  const given = Object.entries(files).filter((e): e is [string, string] => typeof e[1] === 'string')
  const seen = new Map<string, string>()
  for (const [flag, path] of given) {
    const full = resolve(path)
    const twice = seen.get(full)
    if (twice) throw new UserError(`--${twice} and --${flag} both name ${path}`, 'give each its own file')
    seen.set(full, flag)
    if (path === '') throw new UserError(`--${flag} needs a file name`, `write --${flag} <path>`)
    const info = await stat(full).catch(() => undefined)
    if (info?.isDirectory()) {
      throw new UserError(
        `--${flag} ${path} is a directory; tp writes the environment to a file`,
        `name a file, e.g. --${flag} ${join(path, flag === 'env-json' ? 'env.json' : 'intercept.env')}`,
      )
    }
    // a real try (permission bits say nothing to root, nor about read-only or pseudo file systems):
    // an existing file is opened for writing without truncating it, a new one is made and removed
    try {
      if (info) await (await open(full, 'r+')).close()
      else {
        await (await open(full, 'wx', 0o600)).close()
        await rm(full, {force: true})
      }
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code
      const parentIsDirectory = await stat(dirname(full)).then(
        (p) => p.isDirectory(),
        () => false,
      )
      const why =
        code === 'ENOENT' || code === 'ENOTDIR'
          ? parentIsDirectory
            ? `no file can be made in ${dirname(full)}`
            : `${dirname(full)} is not a directory that exists`
          : code === 'EACCES' || code === 'EPERM'
            ? 'permission denied'
            : code === 'EROFS'
              ? 'the file system is read-only'
              : (code ?? (error as Error).message)
      throw new UserError(`--${flag} ${path} cannot be written: ${why}`, 'name a file in a directory you can write to')
    }
  }
}

const interceptFlags = {
  port: Flags.string({char: 'p', description: 'local port, and optionally the service port: <local>[:<service port>]', default: '8080'}),
  name: Flags.string({description: 'intercept name (default: the workload name, plus -<port> when it has several ports)'}),
  docker: Flags.boolean({description: 'if not connected, connect with a container daemon'}),
  namespace: Flags.string({char: 'n', description: 'namespace to connect to, if not connected'}),
  cluster: Flags.string({
    description:
      "the cluster's engine, if not connected: a Docker context or an engine URL (unix://, tcp://, ssh://[user@]host[:port]); default: $TP_CLUSTER, else the handlers' own engine",
    helpValue: '<context|URL>',
  }),
  use: Flags.string({description: 'connection to use, when there are several'}),
  mount: Flags.string({
    description: "mount the workload's volumes in the handler (true, false, or for a handler on this machine the empty directory to mount them under: TP_ROOT)",
    helpValue: 'true|false|<dir>',
    default: 'true',
  }),
  replica: Flags.string({
    description:
      "whose volumes the handler gets, when the workload has several replicas (a named volume is per node): a replica's name, its slot, or its id (default: the first, e.g. slot 1)",
    helpValue: '<name|slot|id>',
  }),
  'volume-provider': Flags.string({description: 'the volume provider to use when several fit (see `tp extensions`)', helpValue: '<name>'}),
  output: Flags.string({char: 'o', description: 'print the session as JSON (no handler)', options: ['text', 'json'], default: 'text'}),
  'env-file': Flags.string({description: 'write the intercepted environment to this file'}),
  // no default: --env-syntax without --env-file must be told apart (docker when left out)
  'env-syntax': Flags.string({description: 'syntax of --env-file (default: docker)', options: [...ENV_SYNTAXES]}),
  'env-json': Flags.string({description: 'write the intercepted environment to this file as JSON'}),
  'http-header': Flags.string({
    description: 'a personal intercept: only HTTP requests with this header go to the handler, the rest to the workload (repeatable: all must match)',
    helpValue: 'NAME=VALUE',
    multiple: true,
  }),
  'http-path-prefix': Flags.string({
    description: 'a personal intercept: only HTTP requests whose path starts with this go to the handler',
    helpValue: '/path',
  }),
}

export default class Intercept extends TpCommand {
  static override summary = 'Intercept a workload: its traffic goes to a handler on your side'
  static override description =
    `Without a handler flag, the intercept sends the workload's traffic to <local port> in the daemon's network namespace and holds until Ctrl-C.
With --docker-run, everything after -- is docker run arguments: tp runs that container with the workload's environment and volumes, routes the traffic to it, and ends the intercept when it exits.`
  static override examples = [
    '<%= config.bin %> intercept --docker frontend-v1 --port 8000 --docker-run -- frontend-v2',
    '<%= config.bin %> intercept frontend-v1 --port 8000 --docker-build ./images/frontend-v2 --docker-build-opt tag=mytag -- IMAGE',
    '<%= config.bin %> intercept frontend-v1 --port 8000 --output json',
  ]
  // handler flags are added at run time from the installed handlers: run() parses with them (strictly)
  static override usage = 'intercept WORKLOAD [FLAGS] [-- COMMAND [ARGS...] | --docker-run -- [DOCKER RUN OPTIONS] IMAGE [ARGS...]]'
  static override args = {workload: Args.string({description: 'workload to intercept (one)', required: true})}
  // typed loosely: tp ingest and tp replace (subclasses) change --port
  static override flags: FlagMap = interceptFlags

  /** What the command does with the traffic (`tp ingest` and `tp replace` are this command in another mode). */
  static mode: InterceptMode = 'intercept'

  private stopHandler?: (reason: string) => Promise<void>

  async run(): Promise<void> {
    const self = this.constructor as typeof Intercept
    const {mode} = self
    const verb = mode
    requirePinnedSet() // before anything is created: a repository's pinned plugins must be installed as locked
    const separator = this.argv.indexOf('--')
    const own = separator === -1 ? this.argv : this.argv.slice(0, separator)
    const handlerArgs = separator === -1 ? [] : this.argv.slice(separator + 1)
    const registries = await this.registries()
    const descriptors = registries.handlers.list().map((e) => e.descriptor)
    // a handler flag that is missing because its plugin was refused: say why, not "Nonexistent flag"
    const known = new Set([...Object.keys(self.flags), ...Object.keys(handlerFlags(descriptors))])
    for (const arg of own) {
      const flag = /^--([a-z][a-z0-9-]*)/.exec(arg)?.[1]
      const problem = flag && !known.has(flag) ? registries.handlers.problemWithFlag(flag) : undefined
      if (problem) throw new UserError(`--${flag} is not available: ${problem.message}`, 'see `tp extensions` for every plugin and its problems')
    }
    const {args, flags, argv} = await this.parse(
      // the workload is checked below: oclif's own message for a missing one is about multiple-value flags
      {flags: {...(self.flags as typeof interceptFlags), ...handlerFlags(descriptors)}, args: {workload: Args.string({required: false})}, strict: true},
      own,
    )
    const example = mode === 'intercept' ? `tp intercept frontend-v1 --port 8000 --docker-run -- <image>` : `tp ${mode} frontend-v1 --docker-run -- <image>`
    if (!args.workload) {
      throw new UserError(`the workload to ${verb} is missing`, `\`tp list\` shows the workloads; e.g. \`${example}\``)
    }
    if (argv.length > 1) {
      throw new UserError(`unexpected argument "${argv[1]}" before --`, `put docker run options, the image and its arguments after --, e.g. \`${example}\``)
    }
    const descriptor = chooseHandler(descriptors, flags as Record<string, unknown>, handlerArgs)

    const context = this.pluginContext()
    // TP_DEBUG=1 shows where the time to an intercept goes: each step's end in ms since this
    // process started, and how long the step took
    let previous = 0
    const step = (what: string) => {
      const now = performance.now()
      context.log.debug(`at ${Math.round(now)} ms (+${Math.round(now - previous)}): ${what}`)
      previous = now
    }
    step('tp loaded')
    const connections = new Connections(registries, context)
    // every path the user names is checked before anything exists
    if (flags['env-syntax'] && !flags['env-file']) {
      throw new UserError(
        `--env-syntax ${flags['env-syntax']} says how to write --env-file, but there is no --env-file`,
        `add --env-file <path> (e.g. \`--env-file intercept.env --env-syntax ${flags['env-syntax']}\`), or leave --env-syntax out`,
      )
    }
    flags['env-syntax'] ??= 'docker'
    if (flags.output === 'json' && descriptor) {
      throw new UserError(
        '--output json prints the session of an intercept that has no handler; with a handler it would be mixed with what the handler prints',
        'leave out --output json, or the handler (a command after --, or --docker-run/--docker-build) and start it yourself; --env-json <file> writes the environment',
      )
    }
    await checkOutputFiles({'env-file': flags['env-file'], 'env-json': flags['env-json']})
    // the handler's code loads while the connections are looked up (loading it creates nothing)
    const handlerLoading = descriptor ? registries.handlers.load(descriptor.name, context) : undefined
    handlerLoading?.catch(swallow(trace, 'loading the handler (awaited below)'))
    // what works where the handler will run is known before anything exists; --use names a
    // connection that exists (never made here), --namespace agrees with the one chosen
    let connection: LiveConnection | undefined = await connections.choose({use: flags.use, namespace: flags.namespace})
    const capabilities: PlacementCapabilities = connection
      ? connection.placement.capabilities
      : connections.capabilitiesOf(connections.backendName(flags.docker))
    step(connection ? `connection ${connection.record.name} found` : 'no connection yet')
    // only a handler container has a port of its own to publish
    const publishes = {canPublishPorts: capabilities.canPublishPorts && descriptor?.publishesPorts === true}
    const {port, portMap} = parseModePorts(mode, flags.port as string | string[] | undefined, publishes)
    const mount = parseMount(flags.mount)
    const filter = parseHttpFilter(flags['http-header'], flags['http-path-prefix'])
    if (flags['env-syntax'] && !ENV_SYNTAXES.includes(flags['env-syntax'] as EnvSyntax))
      throw new UserError(`unknown --env-syntax ${flags['env-syntax']}`, `use one of ${ENV_SYNTAXES.join(', ')}`)

    // 1. the handler checks and resolves everything that can fail, before the intercept exists
    let prepared: PreparedHandler | undefined
    if (descriptor) {
      const handler = await handlerLoading!
      prepared = await handler.prepare({
        workload: args.workload,
        flags: flags as Record<string, unknown>,
        args: handlerArgs,
        capabilities,
        localPort: port.local,
        containerPort: port.container,
        cwd: process.cwd(),
      })
      step(`handler ${descriptor.name} prepared`)
    }
    if (mount.root) await checkMountRoot(mount.root, prepared)
    // which provider gives the volumes is settled before anything exists (that none fits only
    // matters if the workload turns out to have volumes); it loads and warms up meanwhile
    const volumePlan = planVolumes(registries, context, capabilities, prepared, mount, flags['volume-provider'])
    let lease: InterceptLease | undefined
    let volumes: ProvidedVolumes | undefined
    let endReason: string | undefined
    // from here on a signal ends what exists in order, at whatever step it arrives
    const interrupts = new Interrupts((text) => process.stderr.write(text))
    try {
      // 2. connect (implicitly when needed)
      if (!connection) {
        connection = await connections.current({use: flags.use, implicit: {docker: flags.docker, namespace: flags.namespace, cluster: flags.cluster}})
        step(`connected ${connection.record.name}`)
      }
      if (interrupts.signal) return
      // 3. the intercept, held by this process's lease, and 4. its volumes: the session comes
      // before the agents are ready, so that the volumes and the handler start while they come up
      const opened = await openIntercept({
        registries,
        context,
        connection,
        request: {
          workload: args.workload,
          name: flags.name,
          localPort: port.local,
          containerPort: port.container,
          servicePort: port.service,
          mounts: mount.wanted && (prepared ? prepared.wantsVolumes : true),
          handlerRunsAs: prepared?.runsAs ?? 'container',
          ...(mode === 'intercept' ? {} : {mode}),
          ...((mode === 'ingest' || mode === 'wiretap') && (flags as Record<string, unknown>).writable ? {writableMounts: true} : {}),
          ...(portMap.length > 0 ? {portMap} : {}),
          ...(filter ? {filter} : {}),
          ...(flags.replica ? {volumesReplica: flags.replica} : {}),
        },
        prepared,
        mount,
        volumes: volumePlan,
        step,
        onLease: (made) => (lease = made),
        cancelled: () => interrupts.signal !== undefined,
      })
      const {session, drain} = opened
      volumes = opened.volumes
      void opened.lease.ready.then(
        () => {
          for (const s of opened.lease.steps) daemonTrace(`+${s.ms} ms into creating it: ${s.step}`)
          step(`intercept ${session.name}: agents ready`)
        },
        swallow(trace, 'the agents (awaited below)'),
      )
      if (interrupts.signal) return
      await writeEnvFiles(session, flags['env-file'], flags['env-syntax'] as EnvSyntax, flags['env-json'])
      if (!prepared) {
        await opened.lease.ready
        await this.hold(session, opened.lease, interrupts, flags.output === 'json', drain)
        return
      }
      if (interrupts.signal) return
      printSession(session, prepared.describe, volumes?.root)
      for (const note of prepared.notes ?? []) process.stderr.write(`${note}\n`)
      if (mode !== 'ingest') hintWhileWaiting(session, opened.lease)
      void opened.lease.active.then(() => {
        step('handler answers; traffic switched')
        process.stderr.write(`${trafficNow(session)} now goes to your handler${mode === 'replace' ? `; ${session.workload} is paused` : ''}.\n`)
      })
      const outcome = await runHandler(prepared, session, opened.lease, interrupts, {dockerRunArgs: volumes?.dockerRunArgs ?? [], root: volumes?.root}, drain)
      this.exitCode = outcome.code
      endReason = outcome.reason
    } finally {
      // 6. tear down in reverse order, on every path
      interrupts.action = 'ending the intercept (handler, volumes, traffic)'
      await endIntercept({prepared, volumes, lease, client: connection?.client, log: context.log, reason: endReason})
      interrupts.dispose()
    }
    if (this.exitCode) this.exit(this.exitCode)
  }

  private exitCode = 0

  /** No handler: print the session and keep the intercept until Ctrl-C or until it is ended elsewhere. */
  private async hold(session: InterceptSession, lease: InterceptLease, interrupts: Interrupts, json: boolean, drain: () => Promise<void>): Promise<void> {
    if (json) this.log(JSON.stringify(session, null, 2))
    else if (session.mode === 'ingest') {
      printSession(session)
      process.stderr.write(`No traffic is taken. Ctrl-C ends the ingest.\n`)
    } else {
      printSession(session)
      process.stderr.write(`Waiting for ${waitingFor(session)}; traffic switches when it does. Ctrl-C ends the ${session.mode ?? 'intercept'}.\n`)
      hintWhileWaiting(session, lease)
      void lease.active.then(() =>
        process.stderr.write(
          `${trafficNow(session)} now goes to ${session.mode === 'replace' ? 'your side' : `port ${session.ports.local}`}${session.mode === 'replace' ? `; ${session.workload} is paused` : ''}.\n`,
        ),
      )
    }
    const end = await new Promise<{reason: string; normal: boolean}>((resolve) => {
      // what serves on the local port keeps what is in flight until the workload has its traffic back
      interrupts.onInterrupt(
        (signal) =>
          void drain()
            .then(swallow(trace, 'nothing'), swallow(trace, 'giving the traffic back'))
            .finally(() => resolve({reason: signal, normal: true})),
      )
      void lease.ended.then(resolve)
    })
    process.stderr.write(`Intercept ${session.name} ended (${end.reason}).\n`)
    if (!end.normal) throw new UserError(`the intercept ended unexpectedly: ${end.reason}`, nextStepAfter(end.reason))
  }
}
