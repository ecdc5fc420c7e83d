import {appendFileSync, readFileSync} from 'node:fs'
import {type ChildProcess, spawn} from 'node:child_process'
import {randomBytes} from 'node:crypto'
import {connect, createServer, isIPv4, type Server, type Socket} from 'node:net'
import {execFile} from 'node:child_process'
import {promisify} from 'node:util'
import type {Duplex} from 'node:stream'
import {debugLog, ipv4Addresses, listen, probeTcp, sleep} from '@tp/sdk'
import {type AgentMessage, type DaemonMessage, decodeDaemonMessage, encode, readHeaderLine, readMessages} from './protocol.js'
import {RedirectRule} from './iptables.js'
import {Copy, tap} from './wiretap.js'
import {Capture} from './capture.js'
import {KernelPath} from './kernel-path.js'
import {splice} from './splice.js'
import {type HttpFilter, HttpRouter, parseFilter} from './http-filter.js'
import {nextRedirectPort} from './rules.js'

export interface AgentConfig {
  daemonHost: string
  daemonPort: number
  token: string
  interceptId: string
  servicePort: number
  /**
   * `ingest`: no rule and no traffic, only the volumes (the handler of `tp ingest`); `wiretap`: the
   * traffic goes on to the workload (through the next agent of the port, if any) and the handler
   * gets a copy of what clients send; `intercept` (default): the service port's traffic.
   */
  mode?: 'intercept' | 'ingest' | 'wiretap'
  mounts: Array<{path: string; readOnly: boolean}>
  /**
   * A personal intercept: only HTTP requests (HTTP/1.1 one by one, HTTP/2 stream by stream) that
   * match go to the handler; the rest, and bytes that are not HTTP, go on to the next personal
   * intercept's agent in this namespace, else the app.
   */
  filter?: HttpFilter
  leaseMs: number
  drainMs: number
  /** How long a redirected connection waits for the daemon's dial-back (default 5 s). */
  dialTimeoutMs?: number
  /** How long a direct connection to the handler may take before the daemon's relay is used (default 1 s). */
  directTimeoutMs?: number
  sftpServer?: string
  /**
   * Who the SFTP server runs as (the workload's own user): files written through it are owned as
   * the workload's own writes are. Undefined: root.
   */
  sftpUser?: {uid: number; gid: number}
  /** Port to serve the volumes on (the daemon names it in the session before the agent is up); 0 or undefined: any free port. */
  sftpPort?: number
  iptables?: string
  /**
   * Let the kernel carry connections to a handler the namespace can reach (DNAT), instead of this
   * process (default true; TP_AGENT_KERNEL_PATH=0 turns it off).
   */
  kernelPath?: boolean
  /**
   * A wiretap copies what it captures (tcpdump) instead of redirecting the port's connections
   * through itself, so clients keep the kernel path (default true; TP_AGENT_WIRETAP_CAPTURE=0 turns
   * it off). When tcpdump cannot run, the redirect is used.
   */
  capture?: boolean
  /** The tcpdump to run for a wiretap's capture (default `tcpdump` on PATH). */
  tcpdump?: string
  log?: (message: string) => void
}

/** How often the agent checks that the handler still takes connections while the kernel carries them. */
const HANDLER_WATCH_MS = 20
/** How often a hand-back looks at the connection table for connections still in flight. */
const DRAIN_POLL_MS = 50

const debug = debugLog('tp:agent:kernel-path')

/** Parses the agent's environment (TP_AGENT_*); throws with a message naming what is wrong. */
export function configFromEnv(env: NodeJS.ProcessEnv): AgentConfig {
  const need = (name: string): string => {
    const value = env[name]
    if (!value) throw new Error(`${name} is not set`)
    return value
  }
  const daemon = need('TP_AGENT_DAEMON')
  const colon = daemon.lastIndexOf(':')
  const daemonPort = Number(daemon.slice(colon + 1))
  if (colon <= 0 || !Number.isInteger(daemonPort) || daemonPort < 1 || daemonPort > 65535)
    throw new Error(`TP_AGENT_DAEMON must be <host>:<port>, not ${daemon}`)
  const mode = env.TP_AGENT_MODE ?? 'intercept'
  if (mode !== 'intercept' && mode !== 'ingest' && mode !== 'wiretap') throw new Error(`TP_AGENT_MODE must be intercept, ingest or wiretap, not ${mode}`)
  // an ingest takes no port: the workload may have none
  const servicePort = Number(mode === 'ingest' ? (env.TP_AGENT_SERVICE_PORT ?? 0) : need('TP_AGENT_SERVICE_PORT'))
  if (!Number.isInteger(servicePort) || servicePort < (mode === 'ingest' ? 0 : 1) || servicePort > 65535)
    throw new Error(`TP_AGENT_SERVICE_PORT must be a port number, not ${env.TP_AGENT_SERVICE_PORT}`)
  let mounts: AgentConfig['mounts'] = []
  if (env.TP_AGENT_MOUNTS) {
    const parsed = JSON.parse(env.TP_AGENT_MOUNTS) as unknown
    if (!Array.isArray(parsed)) throw new Error('TP_AGENT_MOUNTS must be a JSON array of {path, readOnly}')
    mounts = parsed.map((m: {path?: unknown; readOnly?: unknown}) => ({path: String(m.path), readOnly: m.readOnly === true}))
  }
  const sftpPort = env.TP_AGENT_SFTP_PORT ? Number(env.TP_AGENT_SFTP_PORT) : undefined
  if (sftpPort !== undefined && (!Number.isInteger(sftpPort) || sftpPort < 1 || sftpPort > 65535))
    throw new Error(`TP_AGENT_SFTP_PORT must be a port number, not ${env.TP_AGENT_SFTP_PORT}`)
  const user = env.TP_AGENT_SFTP_USER ? /^(\d+):(\d+)$/.exec(env.TP_AGENT_SFTP_USER) : undefined
  if (env.TP_AGENT_SFTP_USER && !user) throw new Error(`TP_AGENT_SFTP_USER must be <uid>:<gid>, not ${env.TP_AGENT_SFTP_USER}`)
  const millis = (name: string, fallback: number) => {
    const n = Number(env[name] ?? fallback)
    return Number.isFinite(n) && n > 0 ? n : fallback
  }
  const filter = env.TP_AGENT_FILTER ? parseFilter(env.TP_AGENT_FILTER) : undefined
  return {
    ...(filter ? {filter} : {}),
    daemonHost: daemon.slice(0, colon).replace(/^\[(.*)\]$/, '$1'),
    daemonPort,
    token: need('TP_AGENT_TOKEN'),
    interceptId: need('TP_AGENT_INTERCEPT_ID'),
    servicePort,
    ...(mode === 'intercept' ? {} : {mode}),
    mounts,
    sftpPort,
    ...(user ? {sftpUser: {uid: Number(user[1]), gid: Number(user[2])}} : {}),
    leaseMs: millis('TP_AGENT_LEASE_MS', 3000),
    drainMs: millis('TP_AGENT_DRAIN_MS', 5000),
    kernelPath: env.TP_AGENT_KERNEL_PATH !== '0',
    capture: env.TP_AGENT_WIRETAP_CAPTURE !== '0',
  }
}

interface PendingDial {
  /** The redirected connection the dial-back carries, or (a personal intercept's request) who takes the dial-back. */
  client?: Socket
  deliver?: {resolve: (socket: Socket) => void; reject: (error: Error) => void}
  timer: NodeJS.Timeout
}

const execFileAsync = promisify(execFile)

/**
 * The traffic agent. Lives in the workload's network namespace; redirects the service port to
 * itself; passes connections to the app or, while active, to the daemon (dial-back); serves the
 * workload's volumes over SFTP; gives the traffic back when the daemon goes away.
 */
export class Agent {
  private readonly log: (m: string) => void
  private readonly redirectServer: Server
  private readonly dialServer: Server
  private sftpServer?: Server
  private control?: Socket
  private rule?: RedirectRule
  /** A wiretap's capture, while it runs (else a wiretap's connections are redirected through tap()). */
  private capture?: Capture
  private mode: 'passthrough' | 'active' = 'passthrough'
  /**
   * While active: the handler's port on the daemon's address, if the daemon offered it and the
   * handler has not refused a connection there (it may listen on loopback only).
   */
  private directPort?: number
  private directHost?: string
  private releasing?: Promise<void>
  private readonly pending = new Map<string, PendingDial>()
  /** Connections the daemon opened ahead of time; each carries one redirected connection. */
  private readonly spares: Socket[] = []
  /** Every open connection the agent serves (redirected, dialled back), for draining. */
  private readonly open = new Set<Socket>()
  /** The sftp-server of each open SFTP connection (it owns the connection's socket). */
  private readonly sftpSessions = new Set<ChildProcess>()
  /** Redirected connections that went to the handler (directly or through the daemon): what a hand-back drains. */
  private readonly toHandler = new Set<Socket>()
  /** A deactivate is waiting for `toHandler` to empty (and the connections the kernel carries to end) before it says `drained`. */
  private drainPending = false
  /** A hand-back is reading the connection table for connections the kernel still carries. */
  private drainWatching = false
  /** A direct connection to the handler worked since the last activation: a refusal now means it went away. */
  private directWorked = false
  /** The guard's connections: a guard in this namespace removes the rule the moment this process dies. */
  private readonly guardServer: Server
  private readonly guards = new Set<Socket>()
  private lastHeard = Date.now()
  private leaseTimer?: NodeJS.Timeout
  /** The kernel path to the handler, when it can be used (see changePath). */
  private readonly kernel: KernelPath
  /** Changes of the kernel path, one after the other (activate and deactivate may come close together). */
  private pathChanges: Promise<void> = Promise.resolve()
  /** Bumped by each activate, deactivate and release: a path change of an older one stops. */
  private generation = 0
  /** Redirected connections this process passed to the handler and to the app (the counters of pong). */
  private carriedToHandler = 0
  private carriedToApp = 0
  /** A personal intercept's router (HTTP parsed here, request by request). */
  private readonly router?: HttpRouter
  private redirectPort = 0
  /** Requests (and streams) of a personal intercept in flight to the handler: a hand-back waits for them too. */
  private handlerRequests = 0
  private nextHop?: {port: number | undefined; at: number}
  private resolveDone!: (code: number) => void
  /** Resolves with the exit code once the agent has released and drained. */
  readonly done: Promise<number>

  constructor(private readonly config: AgentConfig) {
    this.log = config.log ?? ((m) => process.stderr.write(`tp-agent: ${m}\n`))
    this.done = new Promise((resolve) => (this.resolveDone = resolve))
    this.redirectServer = createServer({allowHalfOpen: true, pauseOnConnect: true}, (s) => this.onRedirected(s))
    this.dialServer = createServer({allowHalfOpen: true, pauseOnConnect: true}, (s) => void this.onDialBack(s))
    if (config.mounts.length > 0) this.sftpServer = createServer({pauseOnConnect: true}, (s) => this.onSftp(s))
    this.guardServer = createServer((s) => this.onGuard(s))
    this.kernel = new KernelPath(config.servicePort, config.interceptId, {iptables: config.iptables})
    if (config.filter) {
      this.router = new HttpRouter({
        filter: config.filter,
        active: () => this.mode === 'active' && !this.releasing && this.control?.writable === true,
        openHandler: () => this.openHandler(),
        openNext: () => this.openNext(),
        handlerRequest: () => {
          this.carriedToHandler++
          this.handlerRequests++
          let ended = false
          return () => {
            if (ended) return
            ended = true
            this.handlerRequests--
            this.reportDrained()
          }
        },
        closing: () => this.releasing !== undefined,
        log: this.log,
      })
    }
  }

  /** Listens, says hello, installs the rule. Resolves once ready; on failure the agent exits 1. */
  async start(): Promise<void> {
    // the SFTP server first: the handler's volumes may already be waiting for it
    let sftpPort: number | null = null
    let problem: string | undefined
    if (this.sftpServer) {
      const asked = this.config.sftpPort ?? 0
      try {
        sftpPort = await listen(this.sftpServer, '0.0.0.0', asked)
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code
        problem =
          code === 'EADDRINUSE'
            ? `port ${asked}, where the daemon asked the agent to serve the volumes, is taken in the workload's network namespace; run the intercept again (another port is chosen each time)`
            : `could not serve the volumes on port ${asked}: ${(error as Error).message}`
      }
    }
    const redirectPort = await listen(this.redirectServer)
    this.redirectPort = redirectPort
    const dialPort = await listen(this.dialServer)
    // loopback only: the guard shares this network namespace
    const guardPort = await listen(this.guardServer, '127.0.0.1')
    this.log(`listening: redirect ${redirectPort}, dial-back ${dialPort}, sftp ${sftpPort ?? 'off'}, guard ${guardPort}`)

    this.control = await this.connectControl()
    const ingest = this.config.mode === 'ingest'
    // an ingest has no rule, so nothing for a guard to remove
    this.send({
      type: 'hello',
      token: this.config.token,
      interceptId: this.config.interceptId,
      redirectPort,
      dialPort,
      sftpPort,
      ...(ingest ? {} : {guardPort}),
      upMs: Math.round(performance.now()),
    })
    try {
      if (problem) throw new Error(problem)
      if (this.config.mode === 'wiretap' && this.config.capture !== false) await this.startCapture()
      if (!ingest && !this.capture)
        this.rule = new RedirectRule(this.config.servicePort, redirectPort, this.config.interceptId, this.config.iptables, this.config.mode === 'wiretap')
      await this.rule?.install()
    } catch (error) {
      const message = (error as Error).message
      this.log(message)
      this.send({type: 'failed', message})
      // let the message reach the daemon before the connection goes
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 1000)
        this.control?.end(() => {
          clearTimeout(timer)
          resolve()
        })
      })
      this.finish(1)
      return
    }
    if (this.releasing) {
      // released (signal, daemon gone) while the rule was being installed
      this.capture?.stop()
      await this.rule?.remove().catch(() => this.rule?.removeSync())
      return
    }
    if (ingest) this.log('ingest: no traffic taken, serving the volumes')
    else if (this.capture) this.log(`capturing what clients send to port ${this.config.servicePort}: their connections are not redirected`)
    else this.log(`redirecting port ${this.config.servicePort} → ${redirectPort}`)
    this.send({type: 'ready', upMs: Math.round(performance.now())})
    this.lastHeard = Date.now()
    this.leaseTimer = setInterval(
      () => {
        if (Date.now() - this.lastHeard > this.config.leaseMs) void this.release(`no word from the daemon for ${this.config.leaseMs} ms`)
      },
      Math.min(250, this.config.leaseMs / 4),
    )
  }

  /**
   * A wiretap's capture: tcpdump in this namespace, each client connection's bytes rebuilt and
   * copied to the handler while the intercept is active. When tcpdump cannot run, logs why and
   * leaves `capture` unset (the redirect takes over); when it ends later, the redirect takes over then.
   */
  private async startCapture(): Promise<void> {
    const capture = new Capture({
      port: this.config.servicePort,
      tcpdump: this.config.tcpdump,
      log: this.log,
      open: () => this.openCopy(),
      onExit: (why) => {
        if (this.capture !== capture || this.releasing) return
        this.capture = undefined
        this.log(`the capture ended (${why}): connections to port ${this.config.servicePort} are redirected through this agent instead`)
        const rule = new RedirectRule(this.config.servicePort, this.redirectPort, this.config.interceptId, this.config.iptables, true)
        this.rule = rule
        rule.install().then(
          () => (this.releasing ? rule.remove() : undefined),
          (error: Error) => this.log(error.message),
        )
      },
    })
    try {
      await capture.start()
      this.capture = capture
    } catch (error) {
      this.log(`no capture (${(error as Error).message}): connections to port ${this.config.servicePort} pass through this agent`)
    }
  }

  /** A client connection the capture saw start: its copy, while the intercept is active. */
  private openCopy(): {write: (chunk: Buffer) => void; end: () => void; drop: (why: string) => void} | undefined {
    if (this.mode !== 'active' || this.releasing || this.control?.writable !== true) return undefined
    this.carriedToHandler++
    const copy = new Copy(this.openHandler())
    return {
      write: (chunk) => copy.write(chunk),
      end: () => copy.end(),
      drop: (why) => {
        debug(`a copy is dropped: ${why}`)
        copy.drop()
      },
    }
  }

  private connectControl(): Promise<Socket> {
    return new Promise((resolve, reject) => {
      const socket = connect({host: this.config.daemonHost, port: this.config.daemonPort, noDelay: true})
      const timer = setTimeout(() => {
        socket.destroy()
        reject(new Error(`the daemon at ${this.config.daemonHost}:${this.config.daemonPort} did not answer within 10 s`))
      }, 10_000)
      socket.once('error', (e) => {
        clearTimeout(timer)
        reject(new Error(`cannot reach the daemon at ${this.config.daemonHost}:${this.config.daemonPort}: ${e.message}`))
      })
      socket.once('connect', () => {
        clearTimeout(timer)
        socket.on('error', (e) => this.log(`control connection: ${e.message}`))
        socket.on('close', () => void this.release('the daemon closed the control connection'))
        readMessages(
          socket,
          decodeDaemonMessage,
          (m) => this.onControl(m),
          (line) => this.log(`ignoring unknown message ${line.slice(0, 120)}`),
        )
        resolve(socket)
      })
    })
  }

  private send(message: AgentMessage): void {
    if (this.control?.writable) this.control.write(encode(message))
  }

  private onControl(message: DaemonMessage): void {
    this.lastHeard = Date.now()
    switch (message.type) {
      case 'ping':
        this.send({type: 'pong', counters: {toHandler: this.carriedToHandler, toApp: this.carriedToApp, kernelPath: this.kernel.isOn}})
        break
      case 'activate':
        if (this.config.mode === 'ingest') break
        if (!this.releasing && this.mode !== 'active') this.log('intercept active: new connections go to the handler')
        if (!this.releasing) this.mode = 'active'
        this.directPort = message.directPort
        this.directHost = message.directHost
        this.directWorked = false
        this.drainPending = false
        if (!this.releasing) this.changePath(this.kernelPathTarget())
        break
      case 'deactivate':
        if (this.mode !== 'passthrough') this.log('intercept inactive: new connections go to the app')
        this.mode = 'passthrough'
        this.directPort = undefined
        for (const spare of this.spares.splice(0)) spare.destroy()
        // the daemon waits for the connections in flight to the handler before it stops it
        this.drainPending = true
        this.changePath(undefined)
        break
      case 'dial-failed':
        // nothing of the connection has been read yet: the app gets all of it
        this.toAppInstead(message.id, 'the daemon could not reach the handler')
        break
      case 'release':
        void this.release('released by the daemon')
        break
      default:
        message satisfies never
    }
  }

  private track(socket: Socket): void {
    this.open.add(socket)
    socket.once('close', () => this.open.delete(socket))
  }

  /** A redirected connection now goes to the handler: a hand-back waits for it. */
  private trackToHandler(client: Socket): void {
    this.carriedToHandler++
    this.toHandler.add(client)
    client.once('close', () => {
      this.toHandler.delete(client)
      this.reportDrained()
    })
  }

  private reportDrained(): void {
    if (!this.drainPending || this.toHandler.size > 0 || this.handlerRequests > 0 || this.kernel.isOn || this.drainWatching) return
    this.drainWatching = true
    void (async () => {
      try {
        // connections the kernel carries end without a word to this process: look until none is left
        while (this.drainPending && (await this.kernel.inFlight()) > 0) await sleep(DRAIN_POLL_MS)
      } finally {
        this.drainWatching = false
      }
      if (!this.drainPending || this.toHandler.size > 0 || this.handlerRequests > 0 || this.kernel.isOn) return
      this.drainPending = false
      this.send({type: 'drained'})
    })()
  }

  /** Where the kernel may send new connections now: the handler's address, if the daemon gave one. */
  private kernelPathTarget(): {host: string; port: number} | undefined {
    // a personal intercept reads every request itself
    // a personal intercept reads every request itself; a wiretap sends every connection on
    if (this.config.kernelPath === false || this.config.filter || this.config.mode === 'wiretap' || this.mode !== 'active' || !this.directPort) return undefined
    const host = this.directHost ?? this.config.daemonHost
    return {host, port: this.directPort}
  }

  /**
   * Turns the kernel path on towards `target`, or off (undefined), after the changes before it.
   * Turning on: once the handler takes a connection at its address (one on loopback only does not:
   * it is relayed through the daemon), the DNAT rule goes in; if that cannot be done, this process
   * carries the connections as before, and the reason is logged. While on, the handler is watched:
   * when it stops taking connections, new ones come back to this process (the app takes them).
   * Turning off (deactivate): new connections come back to this process, then the hand-back waits
   * for those in flight.
   */
  private changePath(target: {host: string; port: number} | undefined): void {
    const generation = ++this.generation
    this.pathChanges = this.pathChanges.then(async () => {
      if (!target) {
        await this.kernel.disable()
        this.reportDrained()
        return
      }
      if (!isIPv4(target.host)) {
        debug(`no kernel path: the handler's address ${target.host} is not an IPv4 address`)
        return
      }
      const answer = await this.probeHandler(target.host, target.port)
      if (generation !== this.generation) return
      if (answer) {
        this.noDirectPath(target.host, target.port, answer)
        return
      }
      this.directWorked = true
      try {
        await this.kernel.enable(target.host, target.port)
      } catch (error) {
        const why = (error as Error).message
        debug(`no kernel path to ${target.host}:${target.port}: ${why}`)
        this.log(`connections to the handler go through this agent: ${why}`)
        await this.kernel.restore().catch(() => undefined)
        return
      }
      if (generation !== this.generation) {
        await this.kernel.disable()
        return
      }
      debug(`kernel path on: port ${this.config.servicePort} → ${target.host}:${target.port}`)
      this.log(`the kernel carries new connections to the handler at ${target.host}:${target.port}`)
      void this.watchHandler(generation, target)
    })
  }

  /**
   * While the kernel carries connections to the handler, checks that it still takes them: when it
   * refuses (it stopped), the DNAT rule goes at once and new connections come to this process (which
   * gives them to the app when the handler refuses them too); when it takes them again, the rule
   * comes back. Ends with the activation it belongs to.
   */
  private async watchHandler(generation: number, target: {host: string; port: number}): Promise<void> {
    while (generation === this.generation && !this.releasing) {
      await sleep(HANDLER_WATCH_MS)
      if (generation !== this.generation || this.releasing) return
      const refused = await this.probeHandler(target.host, target.port, true)
      if (generation !== this.generation || this.releasing) return
      if (refused && this.kernel.isOn) {
        this.pathChanges = this.pathChanges.then(() => (generation === this.generation ? this.kernel.disable() : undefined))
        await this.pathChanges
        this.log(`the handler refused a connection on ${target.host}:${target.port} (${refused.code ?? refused.message}); new connections come to the agent`)
      } else if (!refused && !this.kernel.isOn) {
        this.pathChanges = this.pathChanges.then(() => (generation === this.generation ? this.kernel.enable(target.host, target.port) : undefined))
        await this.pathChanges.catch(() => undefined)
      }
    }
  }

  /**
   * Opens and closes a connection to the handler: undefined when it took it, else why not. With
   * `refusalsOnly`, a connection that takes too long is not a refusal (a busy handler).
   */
  private async probeHandler(host: string, port: number, refusalsOnly = false): Promise<NodeJS.ErrnoException | undefined> {
    const error = await probeTcp(host, port, this.config.directTimeoutMs ?? 1000)
    return refusalsOnly && error?.code === 'ETIMEDOUT' ? undefined : error
  }

  /** The handler does not listen at the address the daemon gave (loopback only): relay through the daemon. */
  private noDirectPath(host: string, port: number, error: NodeJS.ErrnoException): void {
    if (this.directPort !== port) return
    this.directPort = undefined
    this.log(`the handler does not take connections on ${host}:${port} (${error.code ?? error.message}); relaying through the daemon`)
  }

  /** A guard connected: it removes the rule when this connection drops without a goodbye. */
  private onGuard(socket: Socket): void {
    socket.on('error', () => socket.destroy())
    this.guards.add(socket)
    socket.once('close', () => this.guards.delete(socket))
  }

  /**
   * The original app: on 127.0.0.1, else on the namespace's own addresses (an app bound to its
   * interface address only). Local connections go through OUTPUT, so the rule never sees them.
   */
  private async connectApp(): Promise<Socket> {
    const own = ipv4Addresses()
    let last: Error | undefined
    for (const host of ['127.0.0.1', ...own]) {
      try {
        return await new Promise<Socket>((resolve, reject) => {
          const app = connect({host, port: this.config.servicePort, allowHalfOpen: true, noDelay: true})
          app.once('connect', () => resolve(app))
          app.once('error', reject)
        })
      } catch (error) {
        last = error as Error
      }
    }
    throw last ?? new Error('no address to reach the app on')
  }

  private toApp(client: Socket): void {
    this.carriedToApp++
    this.connectApp().then(
      (app) => {
        this.track(app)
        void splice(client, app)
      },
      (error: Error) => {
        this.log(`closing a connection: the app does not answer on port ${this.config.servicePort} (${error.message})`)
        client.destroy()
      },
    )
  }

  private onRedirected(client: Socket): void {
    this.track(client)
    client.on('error', () => client.destroy())
    if (this.router) {
      this.router.take(client)
      return
    }
    if (this.config.mode === 'wiretap') {
      void this.wiretap(client)
      return
    }
    if (this.mode === 'passthrough' || this.releasing || !this.control?.writable) {
      this.toApp(client)
      return
    }
    if (this.directPort) this.toHandlerDirectly(client, this.directPort)
    else this.relay(client)
  }

  /**
   * A wiretap's connection: on to the next agent of this port or the app (which answers), a copy
   * of what the client sends to the handler while the intercept is active. Nothing of the
   * handler's can delay or fail the client's connection.
   */
  private async wiretap(client: Socket): Promise<void> {
    let next: Socket
    try {
      next = await this.openNext()
    } catch (error) {
      this.log(`closing a connection: the app does not answer on port ${this.config.servicePort} (${(error as Error).message})`)
      client.destroy()
      return
    }
    const copying = this.mode === 'active' && !this.releasing && this.control?.writable === true
    const copy = copying ? this.openHandler() : undefined
    if (copy) this.carriedToHandler++
    await tap(client, next, copy)
  }

  /**
   * Straight to the handler at the address the daemon gave, saving the daemon's relay. A refusal
   * before any direct connection worked means the handler listens on loopback only: this
   * connection and the following ones go through the daemon until the next activation. A refusal
   * after one worked means the handler went away: the app takes the connection (nothing of it has
   * been read), and the daemon hears of it from its own watch.
   */
  private toHandlerDirectly(client: Socket, port: number): void {
    const host = this.directHost ?? this.config.daemonHost
    const handler = connect({host, port, allowHalfOpen: true, noDelay: true})
    const fallBack = (error: NodeJS.ErrnoException) => {
      clearTimeout(timer)
      handler.destroy()
      if (client.destroyed) return
      if (this.directWorked) {
        this.log(`the handler refused a connection on ${host}:${port} (${error.code ?? error.message}); the app takes it`)
        this.toApp(client)
        return
      }
      this.noDirectPath(host, port, error)
      this.relay(client)
    }
    const timer = setTimeout(() => handler.destroy(new Error('no answer')), this.config.directTimeoutMs ?? 1000)
    handler.once('error', fallBack)
    handler.once('connect', () => {
      clearTimeout(timer)
      handler.off('error', fallBack)
      this.directWorked = true
      this.track(handler)
      this.trackToHandler(client)
      void splice(client, handler)
    })
  }

  /** Through the daemon: on a spare connection it opened ahead of time, else by asking it to dial back. */
  private relay(client: Socket): void {
    if (this.mode === 'passthrough' || this.releasing || !this.control?.writable) {
      this.toApp(client)
      return
    }
    this.trackToHandler(client)
    const spare = this.spares.shift()
    if (spare) {
      spare.write(encode({go: true}))
      void splice(client, spare)
      return
    }
    const id = randomBytes(12).toString('hex')
    const timer = setTimeout(() => this.toAppInstead(id, 'no dial-back from the daemon in time'), this.config.dialTimeoutMs ?? 5000)
    this.pending.set(id, {client, timer})
    client.once('close', () => {
      const p = this.pending.get(id)
      if (p?.client === client) {
        clearTimeout(p.timer)
        this.pending.delete(id)
      }
    })
    this.send({type: 'dial', id})
  }

  /** A connection to the handler for a personal intercept's requests: directly, else through the daemon. */
  private async openHandler(): Promise<Duplex> {
    if (this.mode !== 'active' || !this.control?.writable) throw new Error('the intercept is not active')
    const port = this.directPort
    if (port) {
      const host = this.directHost ?? this.config.daemonHost
      try {
        const socket = await new Promise<Socket>((resolve, reject) => {
          const handler = connect({host, port, allowHalfOpen: true, noDelay: true})
          const timer = setTimeout(() => handler.destroy(new Error('no answer')), this.config.directTimeoutMs ?? 1000)
          handler.once('error', (error) => {
            clearTimeout(timer)
            reject(error)
          })
          handler.once('connect', () => {
            clearTimeout(timer)
            resolve(handler)
          })
        })
        this.directWorked = true
        this.track(socket)
        return socket
      } catch (error) {
        if (this.directWorked) throw error
        this.noDirectPath(host, port, error as NodeJS.ErrnoException)
      }
    }
    const spare = this.spares.shift()
    if (spare) {
      spare.write(encode({go: true}))
      return reading(spare)
    }
    const id = randomBytes(12).toString('hex')
    return new Promise<Socket>((resolve, reject) => {
      const timer = setTimeout(() => this.toAppInstead(id, 'no dial-back from the daemon in time'), this.config.dialTimeoutMs ?? 5000)
      this.pending.set(id, {deliver: {resolve, reject}, timer})
      this.send({type: 'dial', id})
    }).then(reading)
  }

  /**
   * Where what a personal intercept does not take goes: the agent of the next personal intercept of
   * this port in this namespace (the redirect rule after this one's), else the app. Looked up at
   * most once a second.
   */
  private async openNext(): Promise<Socket> {
    const now = Date.now()
    if (!this.nextHop || now - this.nextHop.at > 1000) {
      try {
        const {stdout} = await execFileAsync(this.config.iptables ?? 'iptables', ['-w', '-t', 'nat', '-S', 'PREROUTING'])
        this.nextHop = {port: nextRedirectPort(stdout, this.config.servicePort, this.redirectPort), at: now}
      } catch (error) {
        debug(`reading the redirect rules: ${(error as Error).message}`)
        this.nextHop = {port: undefined, at: now}
      }
    }
    const port = this.nextHop.port
    if (port !== undefined) {
      try {
        const socket = await new Promise<Socket>((resolve, reject) => {
          const next = connect({host: '127.0.0.1', port, allowHalfOpen: true, noDelay: true})
          next.once('connect', () => resolve(next))
          next.once('error', reject)
        })
        this.track(socket)
        return socket
      } catch {
        // that agent went meanwhile: look again next time; the app takes this one
        this.nextHop = undefined
      }
    }
    this.carriedToApp++
    const app = await this.connectApp()
    this.track(app)
    return app
  }

  /** A connection waiting for a dial-back that will not come: the app gets it (nothing of it was read). */
  private toAppInstead(id: string, why: string): void {
    const p = this.pending.get(id)
    if (!p) return
    clearTimeout(p.timer)
    this.pending.delete(id)
    if (p.deliver) {
      p.deliver.reject(new Error(why))
      return
    }
    if (!p.client) return
    this.log(`a redirected connection goes to the app: ${why}`)
    this.toHandler.delete(p.client)
    this.reportDrained()
    this.toApp(p.client)
  }

  private async onDialBack(socket: Socket): Promise<void> {
    this.track(socket)
    socket.on('error', () => socket.destroy())
    let header: {id?: unknown; spare?: unknown}
    try {
      header = JSON.parse(await readHeaderLine(socket, 5000)) as typeof header
    } catch (error) {
      this.log(`dropping a dial-back connection: ${(error as Error).message}`)
      socket.destroy()
      return
    }
    if (typeof header.spare === 'string') {
      if (header.spare !== this.config.token || this.releasing) {
        socket.destroy()
        return
      }
      this.spares.push(socket)
      socket.once('close', () => {
        const at = this.spares.indexOf(socket)
        if (at >= 0) this.spares.splice(at, 1)
      })
      return
    }
    const id = header.id as string
    const p = typeof id === 'string' ? this.pending.get(id) : undefined
    if (!p) {
      socket.destroy()
      return
    }
    clearTimeout(p.timer)
    this.pending.delete(id)
    if (p.deliver) p.deliver.resolve(socket)
    else if (p.client) void splice(p.client, socket)
  }

  /**
   * Each SFTP connection gets its own sftp-server with the connection itself as its stdin and
   * stdout, so the file data never passes through node (a 100 MB read through a volume ~1.6× faster
   * than piping it through node). The agent closes its own copy of the socket at once; the connection lives as long as
   * the sftp-server.
   */
  private onSftp(socket: Socket): void {
    const readOnly = this.config.mounts.every((m) => m.readOnly)
    // sftp-server writes each reply on its own; without NODELAY, Nagle holds replies back
    socket.setNoDelay(true)
    const user = this.config.sftpUser
    if (user) knownUser(user)
    const child = spawn(this.config.sftpServer ?? '/usr/lib/openssh/sftp-server', ['-e', ...(readOnly ? ['-R'] : [])], {
      stdio: [socket, socket, 'inherit'],
      ...(user ? {uid: user.uid, gid: user.gid} : {}),
    })
    socket.destroy()
    this.sftpSessions.add(child)
    child.once('exit', () => this.sftpSessions.delete(child))
    child.on('error', (e) => {
      this.sftpSessions.delete(child)
      this.log(`sftp-server: ${e.message}`)
    })
  }

  /**
   * Gives the traffic back: removes the rule (new connections reach the app directly), serves
   * what is open until it ends or the drain time passes, then exits 0. Idempotent.
   */
  release(reason: string): Promise<void> {
    this.releasing ??= this.doRelease(reason)
    return this.releasing
  }

  private async doRelease(reason: string): Promise<void> {
    this.log(`releasing: ${reason}`)
    clearInterval(this.leaseTimer)
    this.mode = 'passthrough'
    // the kernel path first (its rule comes before the redirect rule), after a change under way
    this.generation++
    await this.pathChanges.catch(() => undefined)
    await this.kernel.disable()
    // no new copies; those open end
    this.capture?.stop()
    try {
      await this.rule?.remove()
      if (this.rule) this.log(`rule removed: port ${this.config.servicePort} reaches the app directly`)
      // a personal intercept's (or a wiretap's) neighbour may still try this agent: it is refused and goes on
      if (this.router || this.config.mode === 'wiretap') this.redirectServer.close()
    } catch (error) {
      this.log(`could not remove the rule: ${(error as Error).message}`)
    }
    // connections still waiting for a dial-back: the daemon is going away, the app is still there
    // (nothing has been read from them yet, so the app gets the whole stream)
    for (const [id, p] of this.pending) {
      clearTimeout(p.timer)
      this.pending.delete(id)
      if (p.deliver) p.deliver.reject(new Error('the agent is releasing'))
      else if (p.client) this.toApp(p.client)
    }
    for (const spare of this.spares.splice(0)) spare.destroy()
    // the rule is gone: the guards may go (they remove nothing more)
    for (const guard of this.guards) guard.end()
    this.control?.end()
    this.sftpServer?.close()
    this.router?.drain()
    const deadline = Date.now() + this.config.drainMs
    // connections the kernel carries to the handler need forwarding until they end
    const openNow = async () => this.open.size + this.sftpSessions.size + (await this.kernel.inFlight())
    let open = await openNow()
    while (open > 0 && Date.now() < deadline) {
      await sleep(DRAIN_POLL_MS)
      open = await openNow()
    }
    if (open > 0) this.log(`drain time over: closing ${open} connection(s)`)
    await this.kernel.restore().catch((error: Error) => this.log(`could not remove the kernel path: ${error.message}`))
    this.finish(0)
  }

  private finish(code: number): void {
    clearInterval(this.leaseTimer)
    this.generation++
    this.kernel.restoreSync()
    this.capture?.stop()
    this.rule?.removeSync()
    for (const s of this.open) s.destroy()
    for (const child of this.sftpSessions) child.kill()
    this.control?.destroy()
    this.redirectServer.close()
    this.dialServer.close()
    this.sftpServer?.close()
    this.router?.close()
    for (const guard of this.guards) guard.destroy()
    this.guardServer.close()
    this.resolveDone(code)
  }

  /** For process exit handlers: the rule must never outlive the agent. */
  emergencyCleanup(): void {
    this.capture?.stop()
    this.kernel.restoreSync()
    this.rule?.removeSync()
  }
}

/**
 * sftp-server refuses to run as a uid with no entry in /etc/passwd ("No user found for uid"): the
 * agent's own image knows only root and nobody, so it adds one for the workload's user, once.
 */
function knownUser(user: {uid: number; gid: number}): void {
  const passwd = readFileSync('/etc/passwd', 'utf8')
  if (passwd.split('\n').some((line) => line.split(':')[2] === String(user.uid))) return
  appendFileSync('/etc/passwd', `${passwd.endsWith('\n') ? '' : '\n'}tp-workload-${user.uid}:x:${user.uid}:${user.gid}::/:/bin/false\n`)
}

/**
 * A dial-back connection comes paused (its server pauses on connect, for splice): one handed to a
 * reader that only listens (the personal intercept's HTTP client) would never be read, and its
 * requests would hang. Resumed here, before the request is written, so nothing of the answer is lost.
 */
function reading(socket: Socket): Socket {
  socket.resume()
  return socket
}
