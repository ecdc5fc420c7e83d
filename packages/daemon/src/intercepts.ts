import {randomBytes, randomInt} from 'node:crypto'
import type {AgentServer, AgentSession} from '@tp/agent'
import type {Workload} from '@tp/cluster-docker'
import {
  type CreateInterceptRequest,
  type DaemonSession,
  ENV_EXCLUDED,
  type EngineMount,
  type InterceptEvent,
  type InterceptInfo,
  type RemoteMount,
  UserError,
  debugLog,
  sleep,
  sortedEnv,
  swallow,
  tpLabels,
} from '@tp/sdk'
import type {Cluster, HandlerReach, Reach} from './cluster.js'
import type {DaemonConfig} from './config.js'
import {connectHandler, handlerAnswers} from './local-port.js'

/** Where the lease's events go: the open response of the CLI that created the intercept. */
export interface LeaseSink {
  send(event: InterceptEvent): void
  /** Sends the error that ended the intercept's creation (once: later calls do nothing). */
  fail(error: unknown): void
  end(): void
  /** Resolves when the holder's request is gone. */
  closed: Promise<void>
}

/**
 * Who ends an intercept: its own tp command (`owner`), `tp leave` elsewhere (`other`), `tp quit`,
 * the agent going away, or the lease lost (the tp command died).
 */
export type EndedBy = 'owner' | 'other' | 'quit' | 'agent' | 'lease-lost'

const trace = debugLog('tp:daemon')

interface Intercept {
  info: InterceptInfo
  session: DaemonSession
  agent: AgentSession
  agentContainerId: string
  /** The agent's exit code once its container ends (docker kill: 137). */
  agentExited: Promise<number | undefined>
  /** The guard's container, once started (it removes the agent's rule if the agent dies). */
  guard?: Promise<string | undefined>
  workloadContainerId: string
  /** When the workload started: a later start means it restarted under the intercept. */
  workloadStartedAt: string
  /** Where its handler is reached. */
  handler: HandlerReach
  lease: LeaseSink
  removing?: Promise<void>
  stopWatching: () => void
  /** Resolves when the lease holder has finished its teardown (lease closed, or its own leave). */
  holderDone: Promise<void>
  markHolderDone: () => void
}

/** How often a waiting intercept checks whether its handler answers (a refused connect costs next to nothing). */
const READINESS_POLL_MS = 20

/** The daemon's intercepts: creates them (agent + lease), switches traffic when the handler answers, removes them. */
export class InterceptManager {
  private readonly intercepts = new Map<string, Intercept>()
  /** workload/port pairs being created or intercepted → intercept name (guards concurrent creates). */
  private readonly claims = new Map<string, string>()

  constructor(
    private readonly config: Pick<DaemonConfig, 'connection' | 'namespace' | 'id' | 'runtimeImage' | 'placement' | 'holderTeardownMs' | 'drainMs'>,
    private readonly cluster: Cluster,
    private readonly agents: Pick<AgentServer, 'expect'>,
    private readonly reach: Reach,
    private readonly log: (m: string) => void,
    /** Removes what the CLI ran for an intercept (handler container, volumes) when the CLI is gone. */
    private readonly removeOrphans: (intercept: string) => Promise<void> = async () => undefined,
  ) {}

  list(): InterceptInfo[] {
    return [...this.intercepts.values()].map((i) => i.info)
  }

  /**
   * Creates an intercept; its lifetime is the lease (the CLI's open request). `step` hears the end
   * of each step (where the time to an intercept goes: `TP_DEBUG=1` on the CLI prints them).
   */
  async create(
    request: CreateInterceptRequest,
    lease: LeaseSink,
    step: (what: string) => void = () => undefined,
    /**
     * Hears the session as soon as it is known, before the agent is ready, so that the CLI can start
     * the handler and its volumes while the agent comes up. Once it was called, a failure is sent
     * on the lease, and whatever the CLI started is removed if it is gone.
     */
    onSession?: (session: DaemonSession) => void,
  ): Promise<DaemonSession> {
    validateLocalPort(request.localPort)
    if (request.handlerRunsAs === 'process' && !this.reach.process) {
      throw new UserError(
        `the ${this.config.placement.backend} daemon of connection ${this.config.connection} cannot reach a process on your machine`,
        'run the handler in a container (--docker-run), or connect with a daemon on this host: `tp connect`',
      )
    }
    const workload = await this.cluster.workload(this.config.namespace, request.workload)
    step(`workload ${workload.name} found`)
    const port = this.cluster.resolvePort(workload, request.servicePort)
    const name = request.name ?? (workload.ports.length > 1 ? `${workload.name}-${port.port}` : workload.name)
    if (!/^[a-z0-9][a-z0-9_.-]*$/i.test(name)) {
      throw new UserError(`"${name}" is not a usable intercept name`, 'use letters, digits, dots, dashes and underscores (--name)')
    }
    const claimKey = `${workload.containerId}/${port.port}`
    const claimedBy = this.claims.get(claimKey)
    if (claimedBy) {
      throw new UserError(
        `port ${port.port} of ${workload.name} is already intercepted by "${claimedBy}"`,
        `end it first with \`tp leave ${claimedBy}\`, or intercept another port`,
      )
    }
    if (this.intercepts.has(name) || [...this.claims.values()].includes(name)) {
      throw new UserError(`an intercept named "${name}" already exists`, `choose another with --name, or end it with \`tp leave ${name}\``)
    }
    this.claims.set(claimKey, name)
    try {
      return await this.start(name, workload, port.port, port.name, request, lease, step, onSession)
    } catch (error) {
      this.claims.delete(claimKey)
      throw error
    }
  }

  private async start(
    name: string,
    workload: Workload,
    servicePort: number,
    serviceName: string | undefined,
    request: CreateInterceptRequest,
    lease: LeaseSink,
    step: (what: string) => void,
    onSession?: (session: DaemonSession) => void,
  ): Promise<DaemonSession> {
    const id = randomBytes(4).toString('hex')
    const token = randomBytes(16).toString('hex')
    const localPort = request.localPort
    const exported = request.mounts ? workload.mounts : []
    const handler = (request.handlerRunsAs === 'process' ? this.reach.process : undefined) ?? this.reach.container
    const {handlerHost, directHost} = handler
    // chosen here rather than by the agent, so the session (and the volumes made from it) can be
    // sent before the agent is up; the agent shares the workload's address
    const sftpPort = exported.length > 0 ? sftpPortForAgent() : null
    const session = this.sessionOf({id, name, workload, servicePort, serviceName, request, exported, sftpPort})
    let onHandlerUnreachable = () => undefined as void
    const agent = this.agents.expect(id, token, {
      connectLocal: () => connectHandler(handlerHost, localPort),
      direct: directHost ? {host: directHost, port: localPort} : undefined,
      readyTimeoutMs: 20_000,
      sftpPort,
      onHandlerUnreachable: () => onHandlerUnreachable(),
    })
    const agentName = `tp-${this.config.connection}-agent-${name}`.slice(0, 120)
    // an agent of an earlier daemon of this connection may still be releasing: let it go first
    await Promise.all([this.cluster.removeAgent(agentName, 2), this.cluster.removeAgent(`${agentName}-guard`, 0)])
    step('no earlier agent left')
    onSession?.(session)
    let containerId: string | undefined
    let ready: Awaited<AgentSession['ready']>
    let agentExited: Promise<number | undefined>
    try {
      const started = await this.cluster.injectAgent({
        workload,
        image: this.config.runtimeImage,
        name: agentName,
        labels: tpLabels({connection: this.config.connection, intercept: name, role: 'agent'}),
        env: {
          TP_AGENT_DAEMON: this.reach.agentsDial,
          TP_AGENT_TOKEN: token,
          TP_AGENT_INTERCEPT_ID: id,
          TP_AGENT_SERVICE_PORT: String(servicePort),
          TP_AGENT_MOUNTS: JSON.stringify(exported.map((m) => ({path: m.path, readOnly: m.readOnly}))),
          ...(sftpPort === null ? {} : {TP_AGENT_SFTP_PORT: String(sftpPort)}),
        },
      })
      containerId = started.containerId
      agentExited = started.exited
      step(`agent ${agentName} started`)
      ready = await agent.ready
      step('agent ready (rule installed)')
    } catch (error) {
      if (containerId) await this.cluster.removeAgent(containerId, 1).catch(swallow(trace, `removing the agent of ${name} that never became ready`))
      if (onSession) await this.failAfterSession(name, lease, error)
      throw error
    }
    const intercept: Intercept = {
      info: {
        name,
        id,
        workload: workload.name,
        servicePort,
        localPort,
        state: 'waiting',
        agentContainer: agentName,
        createdAt: new Date().toISOString(),
      },
      session,
      agent,
      agentContainerId: containerId,
      agentExited,
      workloadContainerId: workload.containerId,
      workloadStartedAt: workload.startedAt,
      handler,
      lease,
      stopWatching: () => undefined,
      holderDone: Promise.resolve(),
      markHolderDone: () => undefined,
    }
    intercept.holderDone = new Promise<void>((resolve) => (intercept.markHolderDone = resolve))
    void lease.closed.then(() => intercept.markHolderDone())
    this.intercepts.set(name, intercept)
    this.log(`intercept ${name} (${id}): ${workload.name}:${servicePort} → ${handlerHost}:${localPort}; agent ${agentName}`)
    void agent.gone.then(async (reason) => {
      if (intercept.removing) return // it went because the intercept is ending
      await this.remove(name, await this.whyAgentWent(intercept, reason), 'agent')
    })
    // the guard: if the agent dies without removing its rule, the workload's port is redirected to
    // nothing; a second process in that namespace removes the rule the moment the agent's gone
    if (ready.guardPort !== undefined) intercept.guard = this.startGuard(intercept, workload, agentName, ready.guardPort)
    onHandlerUnreachable = () => {
      if (intercept.info.state !== 'active' || intercept.removing) return
      void intercept.agent.deactivate()
      intercept.info.state = 'waiting'
      this.log(`intercept ${name}: the handler stopped taking connections, traffic back to the workload`)
    }
    intercept.stopWatching = this.watchHandler(intercept)
    return session
  }

  /** The session of a new intercept, all of it known before its agent starts. */
  private sessionOf(parts: {
    id: string
    name: string
    workload: Workload
    servicePort: number
    serviceName: string | undefined
    request: CreateInterceptRequest
    exported: Workload['mounts']
    sftpPort: number | null
  }): DaemonSession {
    const {id, name, workload, servicePort, serviceName, request, exported, sftpPort} = parts
    const mounts: RemoteMount[] =
      sftpPort === null
        ? []
        : exported.map((m) => {
            const engine = engineMount(workload, m)
            return {path: m.path, readOnly: m.readOnly, sftp: {host: workload.address, port: sftpPort, dir: m.path}, ...(engine ? {engine} : {})}
          })
    const environment: Record<string, string> = {}
    for (const [key, value] of Object.entries(workload.environment)) {
      if (!(ENV_EXCLUDED as readonly string[]).includes(key)) environment[key] = value
    }
    Object.assign(environment, {
      TP_INTERCEPT_ID: id,
      TP_INTERCEPT_NAME: name,
      TP_WORKLOAD: workload.name,
      TP_CONTAINER: workload.container,
      TP_MOUNTS: mounts.map((m) => m.path).join(':'),
    })
    return {
      id,
      name,
      workload: workload.name,
      namespace: this.config.namespace,
      ports: {local: request.localPort, container: request.containerPort ?? request.localPort, service: servicePort, serviceName, protocol: 'tcp'},
      environment: sortedEnv(environment),
      mounts,
      daemon: {connection: this.config.connection, id: this.config.id, backend: this.config.placement.backend, where: this.config.placement.where},
    }
  }

  /**
   * The agent did not come up after the CLI had the session (and may have started its handler and
   * volumes): the CLI hears why and stops them; if it is gone, or does not close its lease within
   * the holder's time, what it started is removed here.
   */
  private async failAfterSession(name: string, lease: LeaseSink, error: unknown): Promise<void> {
    lease.fail(error)
    const closed = await Promise.race([lease.closed.then(() => true), sleep(this.config.holderTeardownMs).then(() => false)])
    if (!closed) this.log(`intercept ${name}: its tp command did not end within ${this.config.holderTeardownMs / 1000}s after its agent failed`)
    await this.removeOrphans(name).catch((e: Error) => this.log(`removing what the CLI started for ${name}: ${e.message}`))
  }

  private async startGuard(intercept: Intercept, workload: Workload, agentName: string, guardPort: number): Promise<string | undefined> {
    try {
      const {containerId} = await this.cluster.injectAgent({
        workload,
        image: this.config.runtimeImage,
        name: `${agentName}-guard`,
        labels: tpLabels({connection: this.config.connection, intercept: intercept.info.name, role: 'agent-guard'}),
        env: {TP_AGENT_INTERCEPT_ID: intercept.info.id, TP_AGENT_GUARD_PORT: String(guardPort)},
        command: ['node', '/opt/tp/agent.cjs', 'guard'],
        volumes: false,
      })
      return containerId
    } catch (error) {
      this.log(`intercept ${intercept.info.name}: no guard for its agent (${(error as Error).message}); if the agent dies, the daemon restores the traffic`)
      return undefined
    }
  }

  /** What ended an agent: its workload stopped or restarted, it was killed, or it stopped answering. */
  private async whyAgentWent(intercept: Intercept, reason: string): Promise<string> {
    const {workload} = intercept.info
    const workloadGone = await this.cluster.whyNotRunning(intercept.workloadContainerId, intercept.workloadStartedAt)
    if (workloadGone) return `the workload ${workload} ${workloadGone}`
    let timer: NodeJS.Timeout | undefined
    const code = await Promise.race([intercept.agentExited, new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), 1000)))])
    clearTimeout(timer)
    if (code === undefined) return `the traffic agent of ${workload} went away (${reason})`
    const how = code === 137 ? 'was killed (exit code 137: SIGKILL, e.g. docker kill or out of memory)' : `exited with code ${code}`
    return `the traffic agent of ${workload} ${how}; the workload keeps its traffic`
  }

  /**
   * The hand-back, before the handler stops: new connections go to the workload, and those in
   * flight to the handler finish (up to `drainMs`). The intercept stays until it is removed.
   */
  async drain(name: string): Promise<void> {
    const intercept = this.intercepts.get(name)
    if (!intercept || intercept.removing) return
    intercept.stopWatching()
    intercept.info.state = 'waiting'
    await intercept.agent.deactivate(this.config.drainMs)
  }

  /**
   * Readiness gating: traffic stays with the workload until the handler answers on the local port;
   * if the handler stops answering, traffic goes back to the workload until it answers again.
   */
  private watchHandler(intercept: Intercept): () => void {
    let stopped = false
    const loop = async () => {
      while (!stopped) {
        const answers = await handlerAnswers(intercept.handler.handlerHost, intercept.info.localPort)
        if (stopped) return
        if (answers && intercept.info.state === 'waiting') {
          intercept.agent.activate()
          intercept.info.state = 'active'
          intercept.lease.send({type: 'active'})
          this.log(`intercept ${intercept.info.name}: handler answers, traffic switched`)
        } else if (!answers && intercept.info.state === 'active') {
          intercept.agent.deactivate()
          intercept.info.state = 'waiting'
          this.log(`intercept ${intercept.info.name}: handler stopped answering, traffic back to the workload`)
        }
        await sleep(intercept.info.state === 'active' ? 1000 : READINESS_POLL_MS)
      }
    }
    void loop()
    const heartbeat = setInterval(() => intercept.lease.send({type: 'heartbeat'}), 2000)
    return () => {
      stopped = true
      clearInterval(heartbeat)
    }
  }

  has(name: string): boolean {
    return this.intercepts.has(name)
  }

  /**
   * Ends an intercept, in the reverse order of its making: traffic back to the workload at once;
   * the lease holder told, and given time to stop its handler and remove its volumes (which read
   * through the agent); if the holder is gone, its handler and volumes removed here; then the agent.
   * Idempotent: a second call waits for the first.
   */
  remove(name: string, reason: string, by: EndedBy): Promise<void> {
    const intercept = this.intercepts.get(name)
    if (!intercept) return Promise.resolve()
    if (by === 'owner') intercept.markHolderDone()
    intercept.removing ??= (async () => {
      intercept.stopWatching()
      this.log(`intercept ${name}: ending (${reason})`)
      // ended elsewhere (tp leave, tp quit): the holder's handler still serves what is in flight,
      // so the hand-back drains before the holder is told to stop it
      if (by === 'other' || by === 'quit') await intercept.agent.deactivate(this.config.drainMs)
      else void intercept.agent.deactivate()
      intercept.lease.send({type: 'ended', reason, normal: by !== 'agent' && by !== 'lease-lost'})
      let holderGone = by === 'lease-lost'
      if (by === 'other' || by === 'quit' || by === 'agent') {
        const closed = await Promise.race([intercept.holderDone.then(() => true), sleep(this.config.holderTeardownMs).then(() => false)])
        if (!closed) {
          this.log(`intercept ${name}: its tp command did not end within ${this.config.holderTeardownMs / 1000}s; removing its handler here`)
          holderGone = true
        }
      }
      if (holderGone) await this.removeOrphans(name).catch((error: Error) => this.log(`removing what the CLI left of ${name}: ${error.message}`))
      await intercept.agent.release().catch(swallow(trace, `releasing the agent of ${name}`))
      await this.cluster.removeAgent(intercept.agentContainerId, 5).catch((error: Error) => this.log(`removing agent of ${name}: ${error.message}`))
      // the agent has removed its rule (or the guard has): the guard may go
      const guard = await intercept.guard
      if (guard) await this.cluster.removeAgent(guard, 1).catch((error: Error) => this.log(`removing the guard of ${name}: ${error.message}`))
      if (by === 'agent') {
        // an agent killed from outside (docker kill, out of memory) could not take its rule out
        await this.cluster
          .restoreTraffic({
            workloadContainerId: intercept.workloadContainerId,
            image: this.config.runtimeImage,
            interceptId: intercept.info.id,
            labels: tpLabels({connection: this.config.connection, intercept: name, role: 'agent-cleanup'}),
          })
          .catch((error: Error) => this.log(`restoring the traffic of ${intercept.info.workload}: ${error.message}`))
      }
      this.intercepts.delete(name)
      for (const [key, claimant] of this.claims) if (claimant === name) this.claims.delete(key)
      intercept.lease.end()
    })()
    return intercept.removing
  }

  async removeAll(reason: string): Promise<void> {
    await Promise.all([...this.intercepts.keys()].map((name) => this.remove(name, reason, 'quit')))
  }
}

/**
 * Where the workload's engine keeps a mount, for a handler on that engine to mount it directly: a
 * named volume or a bind mount, and only one with no other mount of the workload inside it (over
 * SFTP the handler sees those too; a direct mount would not).
 */
function engineMount(workload: Workload, mount: Workload['mounts'][number]): EngineMount | undefined {
  if ((mount.type !== 'volume' && mount.type !== 'bind') || !mount.source) return undefined
  const inside = `${mount.path.replace(/\/$/, '')}/`
  if (workload.mounts.some((other) => other !== mount && other.path.startsWith(inside))) return undefined
  return {container: workload.containerId, type: mount.type, source: mount.source}
}

/**
 * A port for the agent's SFTP server in the workload's network namespace: below Linux's ephemeral
 * range (32768+, where the agent's other listeners and outgoing connections get theirs), above the
 * ports services usually take. Should the workload listen there, the agent says so and the next
 * intercept picks another.
 */
export function sftpPortForAgent(): number {
  return 20_000 + randomInt(10_000)
}

function validateLocalPort(port: number): void {
  if (!Number.isInteger(port) || port < 1 || port > 65_535) {
    throw new UserError(`local port ${port} is not a TCP port`, 'give --port a number from 1 to 65535')
  }
}
