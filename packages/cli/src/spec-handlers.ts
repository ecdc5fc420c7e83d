import {writeFile} from 'node:fs/promises'
import {resolve} from 'node:path'
import {
  type HandlerIO,
  type HandlerRequest,
  type InterceptSession,
  type PlacementCapabilities,
  type PluginContext,
  type PreparedHandler,
  type RunExtras,
  UserError,
  sortedEnv,
} from '@tp/sdk'
import {type ExternalHandlerSpec, type HandlerSpec, type PluginKind, handlerKind} from '@tp/spec'
import {stringify} from 'yaml'
import type {Registries} from './extensions.js'

/** The handler descriptors whose `specSchema` makes them kinds of a spec's handlers. */
export function pluginKinds(registries: Registries): PluginKind[] {
  return registries.handlers
    .list()
    .filter((e) => e.descriptor.specSchema !== undefined)
    .map((e) => ({name: e.descriptor.name, schema: e.descriptor.specSchema as Record<string, unknown>, plugin: e.plugin.name}))
}

/** How a spec handler maps onto an installed handler: which one, and the request it gets. */
export interface HandlerCall {
  /** The installed handler (descriptor name); undefined: tp's own (external, or an empty handler). */
  descriptor?: string
  flags: Record<string, unknown>
  args: string[]
  spec?: Record<string, unknown>
  /** What it runs, in words (for --dry-run and the status block, before prepare). */
  describe: string
}

const quote = (a: string) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)

/** The installed handler and request for a handler of the spec (relative paths from the spec's directory). */
export function handlerCall(handler: HandlerSpec, kinds: readonly PluginKind[], specDir: string): HandlerCall {
  const kind = handlerKind(handler, kinds)
  if (kind === 'docker' && handler.docker) {
    const d = handler.docker
    const tail = [...(d.command !== undefined ? [d.command] : []), ...(d.args ?? [])]
    if (d.build) {
      const context = resolve(specDir, d.build.context)
      const args = [...(d.options ?? []), 'IMAGE', ...tail]
      const options = [...(d.build.options ?? []), ...(d.build.args ?? []).map((a) => `build-arg=${a}`)]
      return {
        descriptor: 'docker-build',
        flags: {'docker-build': context, 'docker-build-opt': options},
        args,
        describe: `docker build ${context}${options.map((o) => ` --docker-build-opt ${quote(o)}`).join('')}, then docker run ${args.map(quote).join(' ')}`,
      }
    }
    const args = [...(d.options ?? []), d.image ?? '', ...tail]
    return {descriptor: 'docker-run', flags: {'docker-run': true}, args, describe: `docker run ${args.map(quote).join(' ')}`}
  }
  if (kind === 'script' && handler.script) {
    const args = [handler.script.shell ?? 'sh', '-c', handler.script.run]
    return {descriptor: 'process', flags: {}, args, describe: `${args[0]} -c ${quote(handler.script.run.trim())}`}
  }
  if (kind === 'external' && handler.external) {
    const e = handler.external
    return {flags: {}, args: [], describe: `writes the session as ${e.outputFormat ?? 'json'} to ${e.outputPath ?? 'stdout'}, then waits`}
  }
  if (kind !== undefined) {
    const spec = handler[kind] as Record<string, unknown>
    return {descriptor: kind, flags: {}, args: [], spec, describe: `${kind} ${JSON.stringify(spec)}`}
  }
  return {flags: {}, args: [], describe: 'nothing (an empty handler: the traffic waits for something on the local port)'}
}

/** Runs until stopped: an empty handler, and what an external handler does after writing the session. */
class Waiting {
  private release?: () => void
  private stopped = false
  wait(): Promise<number> {
    if (this.stopped) return Promise.resolve(0)
    return new Promise((r) => (this.release = () => r(0)))
  }
  stop(): Promise<void> {
    this.stopped = true
    this.release?.()
    return Promise.resolve()
  }
}

/** `external`: writes the session (environment, mounts, ports) for a program someone else starts, then waits. */
export function externalHandler(spec: ExternalHandlerSpec, capabilities: PlacementCapabilities, specDir: string): PreparedHandler {
  const waiting = new Waiting()
  const target = spec.outputPath ?? 'stdout'
  const inContainer = spec.isDocker === true
  return {
    describe: `external: the session as ${spec.outputFormat ?? 'json'} on ${target}`,
    wantsVolumes: inContainer || capabilities.hostReachesCluster,
    volumeForm: inContainer ? 'docker-volumes' : 'directory',
    runsAs: inContainer ? 'container' : 'process',
    async run(session: InterceptSession, io: HandlerIO, extras: RunExtras): Promise<number> {
      const data = {
        intercept: {id: session.id, name: session.name, workload: session.workload, namespace: session.namespace},
        ports: session.ports,
        environment: session.environment,
        mounts: session.mounts.map((m) => ({path: m.path, readOnly: m.readOnly})),
        ...(extras.root ? {root: extras.root} : {}),
        dockerRunArgs: [...session.placement.containerArgs, ...extras.dockerRunArgs],
      }
      const text = spec.outputFormat === 'yaml' ? stringify(data) : `${JSON.stringify(data, null, 2)}\n`
      if (target === 'stdout') io.stdout.write(text)
      else if (target === 'stderr') io.stderr.write(text)
      else await writeFile(resolve(specDir, target), text, {mode: 0o600})
      return waiting.wait()
    },
    stop: () => waiting.stop(),
  }
}

/** An empty handler: does nothing, and holds its intercept until the end. */
export function emptyHandler(): PreparedHandler {
  const waiting = new Waiting()
  return {describe: 'nothing (empty handler)', wantsVolumes: false, run: () => waiting.wait(), stop: () => waiting.stop()}
}

/** Prepares the handler of one intercept, as `tp intercept` prepares a command line's. */
export async function prepareSpecHandler(
  registries: Registries,
  context: PluginContext,
  handler: HandlerSpec,
  kinds: readonly PluginKind[],
  request: Omit<HandlerRequest, 'flags' | 'args' | 'spec'>,
): Promise<PreparedHandler> {
  const call = handlerCall(handler, kinds, request.cwd)
  if (!call.descriptor) return handler.external ? externalHandler(handler.external, request.capabilities, request.cwd) : emptyHandler()
  if (!registries.handlers.has(call.descriptor)) {
    throw new UserError(`handler "${handler.name}" needs the ${call.descriptor} handler, which is not installed`, 'see `tp extensions`')
  }
  const loaded = await registries.handlers.load(call.descriptor, context)
  return loaded.prepare({...request, flags: call.flags, args: call.args, ...(call.spec ? {spec: call.spec} : {})})
}

/** The session a handler gets: the spec's `environment` entries win over the intercepted environment. */
export function withEnvironment(session: InterceptSession, handler: HandlerSpec): InterceptSession {
  if (!handler.environment?.length) return session
  const environment = {...session.environment}
  for (const {name, value} of handler.environment) environment[name] = value
  return {...session, environment: sortedEnv(environment)}
}
