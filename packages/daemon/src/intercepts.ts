import {randomBytes, randomInt} from 'node:crypto'
import type {AgentServer, AgentSession} from '@tp/agent'
import {
  type ClusterDriver,
  type CreateInterceptRequest,
  type DaemonSession,
  ENV_EXCLUDED,
  type HttpFilter,
  type InjectedAgent,
  type InterceptEvent,
  type InterceptInfo,
  type InterceptMode,
  type RemoteMount,
  type ReplacedPort,
  type Replica,
  UserError,
  type Workload,
  debugLog,
  describeFilter,
  filtersOverlap,
  sleep,
  sortedEnv,
  swallow,
  tpLabels,
} from '@tp/sdk'
import type {DaemonConfig} from './config.js'
import {connectHandler, handlerAnswers} from './local-port.js'
import {resolvePort} from './ports.js'
import type {HandlerReach, Reach} from './reach.js'

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
export type EndedBy = 'owner' | 'other' | 'quit' | 'agent' | 'lease-lost' | 'link-lost'

const trace = debugLog('tp:daemon')

/** The agent beside one replica of an intercepted workload. */
interface ReplicaAgent {
  replica: Replica
  /** The service port it redirects, and where the handler listens for it. */
  port: ReplacedPort
  /** The agent's own id (its TP_AGENT_INTERCEPT_ID): the intercept's id for the first replica, `<id>-<n>` after. */
  agentId: string
  /** What the driver calls it. */
  name: string
  session: AgentSession
  injected: InjectedAgent
  /** The guard beside it, once started (it removes the agent's rule if the agent dies): its container's id. */
  guard?: Promise<string | undefined>
  /** Keeps a guard that has not started yet from starting (the agent is going). */
  cancelGuard?: () => void
}

interface Intercept {
  info: InterceptInfo
  mode: InterceptMode
  /** The service ports it takes (one, or every port with replace; ingest: none taken, the first port named), each with the handler's port. */
  ports: ReplacedPort[]
  /** Replicas paused while a replace runs (by id), with the name of their mark. */
  paused: Map<string, {replica: Replica; mark: string}>
  /** Pauses and resumes, one after the other. */
  pausing: Promise<void>
  session: DaemonSession
  /** The workload as it was found; `replicas` are those found then. */
  workload: Workload
  /** The agents, by replica id and service port (`agentKey`). */
  agents: Map<string, ReplicaAgent>
  /** Replicas whose agents are being started (by id). */
  adding: Map<string, Promise<void>>
  /** The next replica's number (its agent's id and name). */
  nextIndex: number
  token: string
  sftpPort: number | null
  /** Where its handler is reached. */
  handler: HandlerReach
  lease: LeaseSink
  /** Closes the port here that reaches its SFTP server on another machine. */
  closeForward?: () => void
  removing?: Promise<void>
  /** Since when it has had no replica, waiting for the cluster to replace the last one (ClusterDriver.replacesReplicas). */
  orphanedAt?: number
  stopWatching: () => void
  /** Resolves when the lease holder has finished its teardown (lease closed, or its own leave). */
  holderDone: Promise<void>
  markHolderDone: () => void
}

/** How long an intercept whose last replica went waits for the one the cluster replaces it with. */
const REPLACEMENT_WAIT_MS = 60_000
/** How long an agent gone silent on another machine waits for the link's own verdict (its ping, and the time it waits for the answer). */
const LINK_VERDICT_MS = 8000
/** How long an agent on another machine that exited waits for its link's verdict (the engine may be going, and the relay with it). */
const ENGINE_GONE_VERDICT_MS = 3000

/** How often a waiting intercept checks whether its handler answers (a refused connect costs next to nothing). */
const READINESS_POLL_MS = 20

/**
 * How long after its agent is ready a guard starts, by default. Until then the daemon itself
 * restores the traffic if the agent dies; the guard's container (the engine's and the machine's
 * time) is then not made while the handler's container starts and the first requests are switched.
 */
export const GUARD_DELAY_MS = 1500

/**
 * The daemon's intercepts: creates them (an agent beside every replica of the workload, and the
 * lease), switches traffic when the handler answers, follows replicas that come and go, removes them.
 */
export class InterceptManager {
  private readonly intercepts = new Map<string, Intercept>()
  /** workload/port pairs being created or intercepted → intercept name (guards concurrent creates). */
  private readonly claims = new Map<string, string>()
  /** The filter of each personal intercept (by name), made or being made: several share a port when no request can match two. */
  private readonly filters = new Map<string, HttpFilter>()

  constructor(
    private readonly config: Pick<
      DaemonConfig,
      | 'connection'
      | 'namespace'
      | 'id'
      | 'runtimeImage'
      | 'placement'
      | 'holderTeardownMs'
      | 'drainMs'
      | 'reconcileMs'
      | 'replacementWaitMs'
      | 'cluster'
      | 'guardDelayMs'
    >,
    private readonly driver: ClusterDriver,
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
     * Hears the session as soon as it is known, before the agents are ready, so that the CLI can
     * start the handler and its volumes while they come up. Once it was called, a failure is sent
     * on the lease, and whatever the CLI started is removed if it is gone.
     */
    onSession?: (session: DaemonSession) => void,
  ): Promise<DaemonSession> {
    // a replace's ports come from the workload's (0: the first one's number)
    if (!(request.mode === 'replace' && request.localPort === 0)) validateLocalPort(request.localPort)
    for (const entry of request.portMap ?? []) validateLocalPort(entry.local)
    if (request.handlerRunsAs === 'process' && !this.reach.process) {
      throw new UserError(
        `the ${this.config.placement.backend} daemon of connection ${this.config.connection} cannot reach a process on your machine`,
        'run the handler in a container (--docker-run), or connect with a daemon on this host: `tp connect`',
      )
    }
    const mode = request.mode ?? 'intercept'
    if (mode === 'replace' && (!this.driver.pause || !this.driver.resume)) {
      throw new UserError(
        `the ${this.config.cluster.driver} cluster driver cannot pause a workload, which tp replace needs`,
        'take the traffic of one port with `tp intercept` instead',
      )
    }
    const workload = await this.driver.workload(this.config.namespace, request.workload)
    step(`workload ${workload.name} found (${workload.replicas.length} replica${workload.replicas.length === 1 ? '' : 's'})`)
    const {ports, serviceName} = modePorts(mode, workload, request)
    const taken = new Set([...this.intercepts.keys(), ...this.claims.values()])
    const name = request.name ?? defaultName(mode, workload, ports[0]?.service, taken)
    if (!/^[a-z0-9][a-z0-9_.-]*$/i.test(name)) {
      throw new UserError(`"${name}" is not a usable intercept name`, 'use letters, digits, dots, dashes and underscores (--name)')
    }
    const filter = request.filter
    if (filter && mode !== 'intercept') {
      throw new UserError(`--http-header and --http-path-prefix make a personal intercept; tp ${mode} takes no filter`, 'use them with `tp intercept`')
    }
    // ingest and wiretap take no traffic: any number of them, beside an intercept too
    const portKeys = mode === 'ingest' || mode === 'wiretap' ? [] : ports.map((p) => `${workload.name}/${p.service}`)
    for (const key of portKeys) this.checkClaim(key, workload.name, filter, mode)
    // a personal intercept's claim is its own: others with other filters share the port
    const claimKeys = filter ? portKeys.map((key) => `${key}#${name}`) : portKeys
    if (taken.has(name)) {
      throw new UserError(`an intercept named "${name}" already exists`, `choose another with --name, or end it with \`tp leave ${name}\``)
    }
    const holder = `\u0000${name}`
    // the name is held while it is made, even by an ingest (which claims no port)
    this.claims.set(holder, name)
    for (const key of claimKeys) this.claims.set(key, name)
    if (filter) this.filters.set(name, filter)
    try {
      return await this.start(name, mode, workload, ports, serviceName, request, lease, step, onSession)
    } catch (error) {
      for (const key of [holder, ...claimKeys]) this.claims.delete(key)
      this.filters.delete(name)
      throw error
    }
  }

  /**
   * Whether a new intercept may take a port (`<workload>/<port>`): a plain one only alone; personal
   * ones beside each other when no request could match two of their filters. The refusal names
   * the other intercept.
   */
  private checkClaim(key: string, workload: string, filter: HttpFilter | undefined, mode: InterceptMode): void {
    const port = key.slice(key.lastIndexOf('/') + 1)
    for (const [claimKey, claimant] of this.claims) {
      if (claimKey !== key && !claimKey.startsWith(`${key}#`)) continue
      const other = this.filters.get(claimant)
      if (!filter && !other) {
        throw new UserError(
          `port ${port} of ${workload} is already intercepted by "${claimant}"`,
          `end it first with \`tp leave ${claimant}\`${mode === 'replace' ? '' : ', or intercept another port'}`,
        )
      }
      if (!filter && other) {
        throw new UserError(
          `port ${port} of ${workload} has the personal intercept "${claimant}" (${describeFilter(other)}); an intercept of all its traffic would take that too`,
          `end it first with \`tp leave ${claimant}\`, or make this one personal too: --http-header NAME=VALUE`,
        )
      }
      if (filter && !other) {
        throw new UserError(
          `port ${port} of ${workload} is intercepted by "${claimant}", which takes all of its traffic`,
          `end it first with \`tp leave ${claimant}\``,
        )
      }
      if (filter && other && filtersOverlap(filter, other)) {
        throw new UserError(
          `the filter ${describeFilter(filter)} overlaps that of the personal intercept "${claimant}" on port ${port} of ${workload} (${describeFilter(other)}): a request could match both`,
          `give a header another value than "${claimant}" does (e.g. --http-header X-Dev=<you>), or end it with \`tp leave ${claimant}\``,
        )
      }
    }
  }

  /** The name of the agent beside a workload's n-th replica: the first keeps the name tp always gave it. */
  private agentName(intercept: string, index: number): string {
    const base = `tp-${this.config.connection}-agent-${intercept}`.slice(0, 120)
    return index === 0 ? base : `${base}-${index}`
  }

  private async start(
    name: string,
    mode: InterceptMode,
    workload: Workload,
    ports: ReplacedPort[],
    serviceName: string | undefined,
    request: CreateInterceptRequest,
    lease: LeaseSink,
    step: (what: string) => void,
    onSession?: (session: DaemonSession) => void,
  ): Promise<DaemonSession> {
    const id = randomBytes(4).toString('hex')
    const token = randomBytes(16).toString('hex')
    const servicePort = ports[0]?.service ?? 0
    const exported = request.mounts
      ? workload.mounts.map((m) => ((mode === 'ingest' || mode === 'wiretap') && !request.writableMounts ? {...m, readOnly: true} : m))
      : []
    const handler = (request.handlerRunsAs === 'process' ? this.reach.process : undefined) ?? this.reach.container
    // chosen here rather than by the agent, so the session (and the volumes made from it) can be
    // sent before the agent is up; the agent shares its replica's address
    const sftpPort = exported.length > 0 ? sftpPortForAgent() : null
    // a namespace on another machine: its first replica's SFTP server is reached through a port here
    let agentsReady!: () => void
    let agentsFailed!: (error: unknown) => void
    const ready = new Promise<void>((resolve, reject) => {
      agentsReady = resolve
      agentsFailed = reject
    })
    ready.catch(() => undefined)
    // every replica's agent serves its own volumes (a named volume is per node): the handler mounts one's
    const volumesFrom = volumeReplica(workload, request.volumesReplica)
    const forward = sftpPort !== null && this.reach.forward ? await this.reach.forward(volumesFrom.address, sftpPort, ready) : undefined
    const session = this.sessionOf({id, name, mode, ports, workload, servicePort, serviceName, request, exported, sftpPort, sftpAt: forward, volumesFrom})
    const intercept: Intercept = {
      info: {
        name,
        id,
        workload: workload.name,
        servicePort,
        localPort: ports[0]?.local ?? request.localPort,
        state: 'waiting',
        agentContainer: this.agentName(name, 0),
        replicas: 0,
        createdAt: new Date().toISOString(),
        mode,
        ...(mode === 'replace' ? {ports} : {}),
        ...(request.filter ? {filter: request.filter} : {}),
      },
      mode,
      ports: ports.length > 0 ? ports : [{service: 0, local: request.localPort}],
      paused: new Map(),
      pausing: Promise.resolve(),
      session,
      workload,
      agents: new Map(),
      adding: new Map(),
      nextIndex: 0,
      token,
      sftpPort,
      handler,
      lease,
      closeForward: forward?.close,
      stopWatching: () => undefined,
      holderDone: Promise.resolve(),
      markHolderDone: () => undefined,
    }
    // agents of an earlier daemon of this connection may still be releasing: let them go first
    const pairs = workload.replicas.flatMap((replica) => intercept.ports.map((port) => ({replica, port, index: intercept.nextIndex++})))
    const names = pairs.map(({index}) => this.agentName(name, index))
    await Promise.all(
      names.flatMap((agent) => [this.driver.removeAgent(agent, {graceSeconds: 2}), this.driver.removeAgent(`${agent}-guard`, {graceSeconds: 0})]),
    )
    step('no earlier agent left')
    onSession?.(session)
    const started = await Promise.allSettled(pairs.map(({replica, port, index}) => this.startAgent(intercept, replica, port, index, step)))
    const failed = started.find((r): r is PromiseRejectedResult => r.status === 'rejected')
    if (failed) agentsFailed(failed.reason)
    else agentsReady()
    if (failed) {
      const ready = started.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []))
      await Promise.all(ready.map((a) => this.dropAgent(intercept, a, 1)))
      if (onSession) await this.failAfterSession(name, lease, failed.reason)
      forward?.close()
      throw failed.reason
    }
    for (const result of started) if (result.status === 'fulfilled') this.addAgent(intercept, result.value)
    intercept.holderDone = new Promise<void>((resolve) => (intercept.markHolderDone = resolve))
    void lease.closed.then(() => intercept.markHolderDone())
    this.intercepts.set(name, intercept)
    this.log(
      `${mode} ${name} (${id}): ${workload.name}:${intercept.ports.map((p) => `${p.service} → ${handler.handlerHost}:${p.local}`).join(', ')}; agents ${[...intercept.agents.values()].map((a) => a.name).join(', ')}`,
    )
    intercept.stopWatching = this.watch(intercept)
    return session
  }

  /**
   * Starts the agent beside one replica and waits until it is ready (its rule installed); then its
   * guard. A failure leaves nothing of this agent behind.
   */
  private async startAgent(intercept: Intercept, replica: Replica, port: ReplacedPort, index: number, step: (what: string) => void): Promise<ReplicaAgent> {
    const {info} = intercept
    const agentId = index === 0 ? info.id : `${info.id}-${index}`
    const name = this.agentName(info.name, index)
    // one agent per replica serves the volumes (that of its first port): two in one namespace would want one port
    const servesVolumes = port === intercept.ports[0]
    const sftpPort = servesVolumes ? intercept.sftpPort : null
    const session = this.agents.expect(agentId, intercept.token, {
      connectLocal: () => connectHandler(intercept.handler.handlerHost, port.local),
      direct: intercept.handler.directHost ? {host: intercept.handler.directHost, port: port.local} : undefined,
      readyTimeoutMs: 20_000,
      sftpPort,
      onHandlerUnreachable: () => this.handlerUnreachable(intercept),
    })
    let injected: InjectedAgent | undefined
    try {
      injected = await this.driver.injectAgent({
        role: 'agent',
        namespace: this.config.namespace,
        workload: intercept.workload,
        replica,
        image: this.config.runtimeImage,
        name,
        labels: tpLabels({connection: this.config.connection, intercept: info.name, role: 'agent'}),
        env: {
          TP_AGENT_DAEMON: this.reach.agentsDial,
          TP_AGENT_TOKEN: intercept.token,
          TP_AGENT_INTERCEPT_ID: agentId,
          TP_AGENT_SERVICE_PORT: String(port.service),
          ...(intercept.mode === 'ingest' || intercept.mode === 'wiretap' ? {TP_AGENT_MODE: intercept.mode} : {}),
          ...(intercept.info.filter ? {TP_AGENT_FILTER: JSON.stringify(intercept.info.filter)} : {}),
          TP_AGENT_MOUNTS: JSON.stringify(servesVolumes ? intercept.session.mounts.map((m) => ({path: m.path, readOnly: m.readOnly})) : []),
          ...(sftpPort === null ? {} : {TP_AGENT_SFTP_PORT: String(sftpPort)}),
          // what the handler writes into the volumes is the workload's user's, as its own writes are
          ...(intercept.workload.user ? {TP_AGENT_SFTP_USER: `${intercept.workload.user.uid}:${intercept.workload.user.gid}`} : {}),
        },
      })
      step(`agent ${name} started`)
      const ready = await session.ready
      // the agent's own times: its process's start (node's time origin), its hello, its ready
      const up = ready.upMs?.ready !== undefined ? `; its process up ${ready.upMs.ready} ms, hello at ${ready.upMs.hello} ms` : ''
      step(`agent ${name} ready (rule installed${up})`)
      const agent: ReplicaAgent = {replica, port, agentId, name, session, injected}
      // the guard: if the agent dies without removing its rule, the replica's port is redirected to
      // nothing; a second process in that namespace removes the rule the moment the agent's gone.
      // It starts a little later, off the way to the first intercepted reply (until then the daemon
      // restores the traffic itself, as it does when the guard could not start)
      if (ready.guardPort !== undefined) agent.guard = this.startGuardLater(intercept, agent, ready.guardPort)
      return agent
    } catch (error) {
      if (injected) await this.driver.removeAgent(injected.id, {graceSeconds: 1}).catch(swallow(trace, `removing the agent ${name} that never became ready`))
      throw error
    }
  }

  /** An agent that is ready joins its intercept: it follows the intercept's state, and its going is watched. */
  private addAgent(intercept: Intercept, agent: ReplicaAgent): void {
    intercept.agents.set(agentKey(agent.replica, agent.port), agent)
    intercept.info.replicas = replicaCount(intercept)
    intercept.orphanedAt = undefined
    if (intercept.info.state === 'active') agent.session.activate()
    void agent.session.gone.then((reason) => this.agentGone(intercept, agent, reason))
  }

  /**
   * An agent went. Its replica gone (stopped, removed, restarted): the others go on, and the
   * intercept ends with the last — unless the cluster replaces it (a swarm task), whose
   * replacement it waits for. The agent gone while its replica runs (killed, crashed): the
   * intercept ends, and says why.
   */
  private async agentGone(intercept: Intercept, agent: ReplicaAgent, reason: string): Promise<void> {
    if (intercept.removing || intercept.agents.get(agentKey(agent.replica, agent.port)) !== agent) return // it went because the intercept is ending
    // an agent on another machine that went silent: most likely the link itself, which says so
    // within its ping time; one that exited may have gone with its engine (stopping, restarting),
    // whose relay goes at once. Then the link's end ends the intercept, with the link's reason
    if (this.reach.linkClosed) {
      const verdictMs = /stopped answering/.test(reason) ? LINK_VERDICT_MS : ENGINE_GONE_VERDICT_MS
      const linkGone = await Promise.race([this.reach.linkClosed.then(() => true), sleep(verdictMs).then(() => false)])
      if (linkGone || intercept.removing) return
    }
    const replicaGone = await this.driver.whyNotRunning(this.config.namespace, agent.replica)
    if (intercept.removing) return
    if (replicaGone && (replicaCount(intercept) > 1 || this.driver.replacesReplicas)) {
      await this.dropReplica(intercept, agent.replica, `${replicaGone}; its agent is gone`)
      return
    }
    const why = replicaGone ? `the workload ${intercept.info.workload} ${replicaGone}` : await this.whyAgentWent(intercept, agent, reason)
    await this.remove(intercept.info.name, why, 'agent')
  }

  /**
   * Removes a replica that went from a running intercept (its agents, one per port); the others stay
   * intercepted. The last one's going leaves the intercept waiting for its replacement.
   */
  private async dropReplica(intercept: Intercept, replica: Replica, why: string): Promise<void> {
    const last = replicaCount(intercept) <= 1
    this.log(
      `intercept ${intercept.info.name}: replica ${replica.name} ${why}; ${last ? `waiting up to ${Math.round(this.replacementWaitMs / 1000)} s for the one that replaces it` : 'the other replicas stay intercepted'}`,
    )
    await Promise.all([...intercept.agents.values()].filter((a) => a.replica.id === replica.id).map((a) => this.dropAgent(intercept, a, 1)))
    if (replicaCount(intercept) === 0) intercept.orphanedAt ??= Date.now()
  }

  private get replacementWaitMs(): number {
    return this.config.replacementWaitMs ?? REPLACEMENT_WAIT_MS
  }

  /** Removes one replica's agent (and guard) from a running intercept. */
  private async dropAgent(intercept: Intercept, agent: ReplicaAgent, graceSeconds: number): Promise<void> {
    const key = agentKey(agent.replica, agent.port)
    if (intercept.agents.get(key) === agent) intercept.agents.delete(key)
    intercept.info.replicas = replicaCount(intercept)
    const guarding = this.guardOf(agent)
    await agent.session.release().catch(swallow(trace, `releasing the agent ${agent.name}`))
    await this.driver.removeAgent(agent.injected.id, {graceSeconds}).catch((error: Error) => this.log(`removing agent ${agent.name}: ${error.message}`))
    const guard = await guarding
    if (guard)
      await this.driver.removeAgent(guard, {graceSeconds: 0}).catch((error: Error) => this.log(`removing the guard of ${agent.name}: ${error.message}`))
  }

  /**
   * Replicas that appeared since (scaled up, rescheduled, replaced) get an agent; agents whose
   * replica is no longer listed and no longer runs go.
   */
  private async reconcile(intercept: Intercept): Promise<void> {
    const workload = await this.driver
      .workload(this.config.namespace, intercept.info.workload)
      .catch(swallow(trace, `looking up the replicas of ${intercept.info.workload}`))
    if (intercept.removing) return
    // no replica since the last went: the one the cluster replaces it with has a while to come
    const {orphanedAt} = intercept
    const waited = orphanedAt === undefined ? 0 : Date.now() - orphanedAt
    if (
      !workload?.replicas.length &&
      orphanedAt !== undefined &&
      intercept.agents.size === 0 &&
      intercept.adding.size === 0 &&
      waited > this.replacementWaitMs
    ) {
      await this.remove(intercept.info.name, `the workload ${intercept.info.workload} has had no running replica for ${Math.round(waited / 1000)} s`, 'agent')
      return
    }
    if (!workload) return
    const listed = new Set(workload.replicas.map((r) => r.id))
    for (const agent of [...intercept.agents.values()]) {
      if (listed.has(agent.replica.id) || intercept.agents.get(agentKey(agent.replica, agent.port)) !== agent) continue
      const gone = await this.driver.whyNotRunning(this.config.namespace, agent.replica)
      // the last one's going ends the intercept (agentGone), unless the cluster replaces it
      if (!gone || intercept.removing || (replicaCount(intercept) <= 1 && !this.driver.replacesReplicas)) continue
      await this.dropReplica(intercept, agent.replica, `${gone}; its agent goes`)
    }
    for (const replica of workload.replicas) {
      for (const port of intercept.ports) this.addReplicaPort(intercept, replica, port)
    }
  }

  /** A new replica's agent for one port (reconcile). */
  private addReplicaPort(intercept: Intercept, replica: Replica, port: ReplacedPort): void {
    {
      const key = agentKey(replica, port)
      if (intercept.agents.has(key) || intercept.adding.has(key) || intercept.removing) return
      const index = intercept.nextIndex++
      const adding = this.startAgent(intercept, replica, port, index, (what) => trace(`intercept ${intercept.info.name}: ${what}`)).then(
        async (agent) => {
          if (intercept.removing) await this.dropAgent(intercept, agent, 1)
          else {
            this.addAgent(intercept, agent)
            this.log(`intercept ${intercept.info.name}: replica ${replica.name} appeared; agent ${agent.name} intercepts it`)
          }
        },
        (error: Error) => this.log(`intercept ${intercept.info.name}: no agent for the new replica ${replica.name}: ${error.message}`),
      )
      intercept.adding.set(key, adding)
      void adding.finally(() => intercept.adding.delete(key))
    }
  }

  private handlerUnreachable(intercept: Intercept): void {
    if (intercept.info.state !== 'active' || intercept.removing) return
    void this.resumeReplicas(intercept).then(() => {
      for (const agent of intercept.agents.values()) void agent.session.deactivate()
    })
    intercept.info.state = 'waiting'
    this.log(`intercept ${intercept.info.name}: the handler stopped taking connections, traffic back to the workload`)
  }

  /** The session of a new intercept, all of it known before its agents start. */
  private sessionOf(parts: {
    id: string
    name: string
    mode: InterceptMode
    ports: ReplacedPort[]
    workload: Workload
    servicePort: number
    serviceName: string | undefined
    request: CreateInterceptRequest
    exported: Workload['mounts']
    sftpPort: number | null
    /** Where this side reaches the SFTP server, when not at the replica's own address (a namespace on another machine). */
    sftpAt?: {host: string; port: number}
    /** The replica whose agent serves the volumes. */
    volumesFrom: Replica
  }): DaemonSession {
    const {id, name, mode, ports, workload, servicePort, serviceName, request, exported, sftpPort, sftpAt, volumesFrom} = parts
    const local = mode === 'replace' ? (ports[0]?.local ?? request.localPort) : request.localPort
    const [first] = workload.replicas
    const mounts: RemoteMount[] =
      sftpPort === null
        ? []
        : exported.map((m) => ({
            path: m.path,
            readOnly: m.readOnly,
            sftp: {host: sftpAt?.host ?? volumesFrom.address, port: sftpAt?.port ?? sftpPort, dir: m.path},
            // an engine's own mount is the first replica's (the docker driver's workloads have one)
            ...(m.engine && !sftpAt && volumesFrom === first ? {engine: m.engine} : {}),
          }))
    const environment: Record<string, string> = {}
    for (const [key, value] of Object.entries(workload.environment)) {
      if (!(ENV_EXCLUDED as readonly string[]).includes(key)) environment[key] = value
    }
    Object.assign(environment, {
      TP_INTERCEPT_ID: id,
      TP_INTERCEPT_NAME: name,
      TP_WORKLOAD: workload.name,
      TP_CONTAINER: first.name,
      TP_MOUNTS: mounts.map((m) => m.path).join(':'),
    })
    return {
      id,
      name,
      workload: workload.name,
      namespace: this.config.namespace,
      ports: {local, container: request.containerPort || local, service: servicePort, serviceName, protocol: 'tcp'},
      environment: sortedEnv(environment),
      mounts,
      ...(mounts.length > 0 && (workload.replicas.length > 1 || volumesFrom.node)
        ? {volumesFrom: {replica: volumesFrom.name, ...(volumesFrom.node ? {node: volumesFrom.node} : {})}}
        : {}),
      ...(request.mounts && workload.unservedFiles?.length ? {unservedFiles: workload.unservedFiles} : {}),
      daemon: {
        connection: this.config.connection,
        id: this.config.id,
        backend: this.config.placement.backend,
        where: this.config.placement.where,
        cluster: {driver: this.config.cluster.driver, engine: this.config.cluster.engine},
      },
      ...(mode === 'intercept' ? {} : {mode}),
      ...(mode === 'replace' ? {replacedPorts: ports} : {}),
      ...(request.filter ? {filter: request.filter} : {}),
    }
  }

  /**
   * The agents did not come up after the CLI had the session (and may have started its handler and
   * volumes): the CLI hears why and stops them; if it is gone, or does not close its lease within
   * the holder's time, what it started is removed here.
   */
  private async failAfterSession(name: string, lease: LeaseSink, error: unknown): Promise<void> {
    lease.fail(error)
    const closed = await Promise.race([lease.closed.then(() => true), sleep(this.config.holderTeardownMs).then(() => false)])
    if (!closed) this.log(`intercept ${name}: its tp command did not end within ${this.config.holderTeardownMs / 1000}s after its agent failed`)
    await this.removeOrphans(name).catch((e: Error) => this.log(`removing what the CLI started for ${name}: ${e.message}`))
  }

  /**
   * Starts an agent's guard after `guardDelayMs`, unless the agent goes first (`cancelGuard`, or
   * its connection ends): then nothing is started. Resolves with the guard's id, if it started.
   */
  private async startGuardLater(intercept: Intercept, agent: ReplicaAgent, guardPort: number): Promise<string | undefined> {
    // on another machine the guard starts at once: a fault there (a cut link, the daemon killed)
    // during a delayed start would leave a guard created but never started, which nothing removes
    const delayMs = this.config.guardDelayMs ?? (this.config.cluster.linked ? 0 : GUARD_DELAY_MS)
    if (delayMs > 0) {
      let timer: NodeJS.Timeout | undefined
      let cancelled = false
      await Promise.race([
        new Promise<void>((resolve) => (timer = setTimeout(resolve, delayMs))),
        new Promise<void>((resolve) => {
          agent.cancelGuard = () => {
            cancelled = true
            resolve()
          }
        }),
        agent.session.gone.then(() => {
          cancelled = true
        }),
      ])
      clearTimeout(timer)
      if (cancelled || intercept.removing) return undefined
    }
    agent.cancelGuard = undefined
    return this.startGuard(intercept, agent, guardPort)
  }

  /** The guard of an agent that is going: one that has not started yet never will; one that did, its id. */
  private guardOf(agent: ReplicaAgent): Promise<string | undefined> | undefined {
    agent.cancelGuard?.()
    return agent.guard
  }

  private async startGuard(intercept: Intercept, agent: ReplicaAgent, guardPort: number): Promise<string | undefined> {
    try {
      const {id} = await this.driver.injectAgent({
        role: 'guard',
        namespace: this.config.namespace,
        workload: intercept.workload,
        replica: agent.replica,
        image: this.config.runtimeImage,
        name: `${agent.name}-guard`,
        labels: tpLabels({connection: this.config.connection, intercept: intercept.info.name, role: 'agent-guard'}),
        env: {TP_AGENT_INTERCEPT_ID: agent.agentId, TP_AGENT_GUARD_PORT: String(guardPort)},
      })
      return id
    } catch (error) {
      this.log(
        `intercept ${intercept.info.name}: no guard for its agent ${agent.name} (${(error as Error).message}); if the agent dies, the daemon restores the traffic`,
      )
      return undefined
    }
  }

  /** What ended an agent whose replica still runs: it was killed, or it stopped answering. */
  private async whyAgentWent(intercept: Intercept, agent: ReplicaAgent, reason: string): Promise<string> {
    const {workload} = intercept.info
    let timer: NodeJS.Timeout | undefined
    const code = await Promise.race([agent.injected.exited, new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), 1000)))])
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
    await this.deactivate(intercept, this.config.drainMs)
  }

  /** Every replica's traffic back to the workload; resolves once what was in flight to the handler ended (up to drainMs). */
  private async deactivate(intercept: Intercept, drainMs?: number): Promise<void> {
    // a paused workload could not take what comes back to it
    if (intercept.paused.size > 0) await this.resumeReplicas(intercept)
    await Promise.all([...intercept.agents.values()].map((agent) => agent.session.deactivate(drainMs)))
  }

  /**
   * Readiness gating: traffic stays with the workload until the handler answers on the local port;
   * if the handler stops answering, traffic goes back to the workload until it answers again.
   * Meanwhile replicas that come and go are followed.
   */
  private watch(intercept: Intercept): () => void {
    let stopped = false
    const loop = async () => {
      // an ingest takes no traffic: nothing to switch
      while (!stopped && intercept.mode !== 'ingest') {
        const answers = await handlerAnswers(intercept.handler.handlerHost, intercept.info.localPort)
        if (stopped) return
        if (answers && intercept.info.state === 'waiting') {
          for (const agent of intercept.agents.values()) agent.session.activate()
          intercept.info.state = 'active'
          if (intercept.mode === 'replace') await this.pauseReplicas(intercept)
          intercept.lease.send({type: 'active'})
          this.log(`intercept ${intercept.info.name}: handler answers, traffic switched`)
        } else if (!answers && intercept.info.state === 'active') {
          void this.deactivate(intercept)
          intercept.info.state = 'waiting'
          this.log(`intercept ${intercept.info.name}: handler stopped answering, traffic back to the workload`)
        }
        await sleep(intercept.info.state === 'active' ? 1000 : READINESS_POLL_MS)
      }
    }
    void loop()
    const heartbeat = setInterval(() => intercept.lease.send({type: 'heartbeat'}), 2000)
    let reconciling = false
    const replicas = setInterval(() => {
      if (reconciling || stopped) return
      reconciling = true
      void this.reconcile(intercept).finally(() => (reconciling = false))
    }, this.config.reconcileMs)
    return () => {
      stopped = true
      clearInterval(heartbeat)
      clearInterval(replicas)
    }
  }

  has(name: string): boolean {
    return this.intercepts.has(name)
  }

  /**
   * `replace`: the workload's replicas stop (paused) while the handler takes their traffic; a
   * failure to pause one is said and the intercept goes on (the workload then still runs).
   */
  private pauseReplicas(intercept: Intercept): Promise<void> {
    intercept.pausing = intercept.pausing.then(async () => {
      if (intercept.removing || intercept.info.state !== 'active' || !this.driver.pause) return
      const replicas = new Map([...intercept.agents.values()].map((a) => [a.replica.id, a.replica]))
      for (const replica of replicas.values()) {
        if (intercept.paused.has(replica.id)) continue
        const mark = `tp-${this.config.connection}-paused-${replica.id.slice(0, 12)}`
        try {
          await this.driver.pause({
            namespace: this.config.namespace,
            replica,
            image: this.config.runtimeImage,
            name: mark,
            labels: tpLabels({connection: this.config.connection, intercept: intercept.info.name, role: 'paused-workload'}),
          })
          intercept.paused.set(replica.id, {replica, mark})
          this.log(`replace ${intercept.info.name}: ${replica.name} paused`)
        } catch (error) {
          this.log(`replace ${intercept.info.name}: could not pause ${replica.name}: ${(error as Error).message}`)
        }
        // ended (or the handler went) while this one was being paused: the end did not see it paused
        if (intercept.removing || intercept.info.state !== 'active') {
          await this.driver.resume?.({namespace: this.config.namespace, replica, name: mark}).catch(swallow(trace, `resuming ${replica.name}`))
          intercept.paused.delete(replica.id)
        }
      }
    })
    return intercept.pausing
  }

  /** Resumes what `pauseReplicas` paused (every end of a replace, and while its handler does not answer). */
  private resumeReplicas(intercept: Intercept): Promise<void> {
    intercept.pausing = intercept.pausing.then(async () => {
      await Promise.all(
        [...intercept.paused.values()].map(async ({replica, mark}) => {
          try {
            await this.driver.resume?.({namespace: this.config.namespace, replica, name: mark})
            intercept.paused.delete(replica.id)
            this.log(`replace ${intercept.info.name}: ${replica.name} resumed`)
          } catch (error) {
            this.log(`replace ${intercept.info.name}: could not resume ${replica.name}: ${(error as Error).message}`)
          }
        }),
      )
    })
    return intercept.pausing
  }

  /**
   * Ends an intercept, in the reverse order of its making: traffic back to every replica at once;
   * the lease holder told, and given time to stop its handler and remove its volumes (which read
   * through the agent); if the holder is gone, its handler and volumes removed here; then the
   * agents, then their guards. Idempotent: a second call waits for the first.
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
      if (by === 'other' || by === 'quit') await this.deactivate(intercept, this.config.drainMs)
      else {
        // a replaced workload runs again before anything else
        if (intercept.paused.size > 0) await this.resumeReplicas(intercept)
        void this.deactivate(intercept)
      }
      intercept.lease.send({type: 'ended', reason, normal: by !== 'agent' && by !== 'lease-lost' && by !== 'link-lost'})
      let holderGone = by === 'lease-lost'
      if (by === 'other' || by === 'quit' || by === 'agent' || by === 'link-lost') {
        const closed = await Promise.race([intercept.holderDone.then(() => true), sleep(this.config.holderTeardownMs).then(() => false)])
        if (!closed) {
          this.log(`intercept ${name}: its tp command did not end within ${this.config.holderTeardownMs / 1000}s; removing its handler here`)
          holderGone = true
        }
      }
      if (holderGone) await this.removeOrphans(name).catch((error: Error) => this.log(`removing what the CLI left of ${name}: ${error.message}`))
      // agents still being started for new replicas remove themselves once they are (intercept.removing)
      await Promise.all(intercept.adding.values())
      // the link to a cluster on another machine is gone: its agents give the traffic back and
      // remove themselves there (nothing here could reach them to do it)
      const agents = by === 'link-lost' ? [] : [...intercept.agents.values()]
      await Promise.all(
        agents.map(async (agent) => {
          const guarding = this.guardOf(agent)
          await agent.session.release().catch(swallow(trace, `releasing the agent ${agent.name}`))
          await this.driver
            .removeAgent(agent.injected.id, {graceSeconds: 5})
            .catch((error: Error) => this.log(`removing agent ${agent.name}: ${error.message}`))
          // the agent has removed its rule (or the guard has): the guard may go
          const guard = await guarding
          if (guard)
            await this.driver.removeAgent(guard, {graceSeconds: 1}).catch((error: Error) => this.log(`removing the guard of ${agent.name}: ${error.message}`))
          if (by === 'agent') {
            // an agent killed from outside (docker kill, out of memory) could not take its rule out
            await this.driver
              .restoreTraffic({
                namespace: this.config.namespace,
                replica: agent.replica,
                image: this.config.runtimeImage,
                interceptId: agent.agentId,
                labels: tpLabels({connection: this.config.connection, intercept: name, role: 'agent-cleanup'}),
              })
              .catch((error: Error) => this.log(`restoring the traffic of ${agent.replica.name}: ${error.message}`))
          }
        }),
      )
      intercept.closeForward?.()
      this.intercepts.delete(name)
      for (const [key, claimant] of this.claims) if (claimant === name) this.claims.delete(key)
      this.filters.delete(name)
      intercept.lease.end()
    })()
    return intercept.removing
  }

  /** Ends every intercept: on purpose (`quit`), or because something failed for all of them (`link-lost`). */
  async removeAll(reason: string, by: EndedBy = 'quit'): Promise<void> {
    await Promise.all([...this.intercepts.keys()].map((name) => this.remove(name, reason, by)))
  }
}

/**
 * The replica whose volumes the handler gets: the one `wanted` names (its name, its slot — the
 * name's last part — or a prefix of its id), else the first (by name: a swarm service's slot 1).
 */
export function volumeReplica(workload: Pick<Workload, 'name' | 'replicas'>, wanted: string | undefined): Replica {
  if (wanted === undefined) return workload.replicas[0]
  const match =
    workload.replicas.find((r) => r.name === wanted) ??
    workload.replicas.find((r) => r.name.endsWith(`.${wanted}`)) ??
    (wanted.length >= 4 ? workload.replicas.find((r) => r.id.startsWith(wanted)) : undefined)
  if (match) return match
  throw new UserError(
    `${workload.name} has no replica "${wanted}"`,
    `pass --replica with one of: ${workload.replicas.map((r) => `${r.name}${r.node ? ` (on ${r.node})` : ''}`).join(', ')}`,
  )
}

/** The key of an agent in its intercept: one per replica and service port. */
function agentKey(replica: Replica, port: ReplacedPort): string {
  return `${replica.id}/${port.service}`
}

/** How many replicas an intercept's agents are beside. */
function replicaCount(intercept: Intercept): number {
  return new Set([...intercept.agents.values()].map((a) => a.replica.id)).size
}

/**
 * The service ports a mode takes, each with the port the handler listens on: `intercept` one (by
 * the request's service port), `replace` every TCP port (the handler on the same number unless
 * `portMap` says otherwise), `ingest` none (its first TCP port is named, for the session).
 */
export function modePorts(
  mode: InterceptMode,
  workload: Pick<Workload, 'name' | 'ports'>,
  request: Pick<CreateInterceptRequest, 'servicePort' | 'localPort' | 'portMap'>,
): {ports: ReplacedPort[]; serviceName?: string} {
  const tcp = workload.ports.filter((p) => p.protocol === 'tcp')
  if (mode === 'ingest') return tcp.length > 0 ? {ports: [{service: tcp[0].port, local: request.localPort}], serviceName: tcp[0].name} : {ports: []}
  if (mode === 'intercept' || mode === 'wiretap') {
    const port = resolvePort(workload, request.servicePort)
    return {ports: [{service: port.port, local: request.localPort}], serviceName: port.name}
  }
  if (tcp.length === 0) {
    throw new UserError(`workload ${workload.name} exposes no TCP port, so there is nothing to replace`, 'give it the handler with `tp ingest` instead')
  }
  const local = new Map<number, number>()
  for (const entry of request.portMap ?? []) {
    const port = resolvePort(workload, entry.service)
    if (local.has(port.port)) throw new UserError(`--port maps service port ${port.port} twice`, 'give each service port one --port <local>:<service port>')
    local.set(port.port, entry.local)
  }
  const ports = tcp.map((p) => ({service: p.port, local: local.get(p.port) ?? p.port}))
  const seen = new Map<number, number>()
  for (const p of ports) {
    const other = seen.get(p.local)
    if (other !== undefined) {
      throw new UserError(
        `service ports ${other} and ${p.service} of ${workload.name} would both go to the handler's port ${p.local}`,
        `map one elsewhere: --port <local>:${p.service}`,
      )
    }
    seen.set(p.local, p.service)
  }
  return {ports, serviceName: tcp[0].name}
}

/** A mode's default name: the workload's (with `-<port>` when it has several); `-ingest`, `-ingest-2`… for ingests, `-wiretap`… for wiretaps. */
function defaultName(mode: InterceptMode, workload: Pick<Workload, 'name' | 'ports'>, servicePort: number | undefined, taken: ReadonlySet<string>): string {
  if (mode === 'replace') return workload.name
  if (mode === 'intercept') return workload.ports.length > 1 ? `${workload.name}-${servicePort}` : workload.name
  for (let n = 1; ; n++) {
    const name = n === 1 ? `${workload.name}-${mode}` : `${workload.name}-${mode}-${n}`
    if (!taken.has(name)) return name
  }
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
