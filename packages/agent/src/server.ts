import {createServer, connect, type Server, type Socket} from 'node:net'
import type {Duplex} from 'node:stream'
import {timingSafeEqual} from 'node:crypto'
import {UserError, listen} from '@tp/sdk'
import {type AgentCounters, type AgentMessage, type DaemonMessage, decodeAgentMessage, encode, readHeaderLine, readMessages} from './protocol.js'
import {splice} from './splice.js'

export interface AgentServerOptions {
  /** Address to listen on; default 0.0.0.0 (agents reach the daemon over the namespace network). */
  host?: string
  /** 0 = ephemeral. */
  port?: number
  log?: (message: string) => void
  /** Ping interval (default 1000 ms). */
  pingMs?: number
  /** An agent silent for this long is gone (default 3000 ms). */
  leaseMs?: number
  /**
   * How the daemon opens a connection to an agent (dial-backs, spares): straight by default; through
   * a tunnel when the agents are on a cluster on another machine.
   */
  dial?: (host: string, port: number) => Promise<Duplex>
}

/** A TCP connection to host:port, once it is made. */
export function dialDirect(host: string, port: number): Promise<Duplex> {
  return new Promise((resolve, reject) => {
    const socket = connect({host, port, allowHalfOpen: true, noDelay: true})
    socket.once('connect', () => resolve(socket))
    socket.once('error', reject)
  })
}

export interface AgentReady {
  /** The agent's IP as seen by the daemon. */
  address: string
  redirectPort: number
  dialPort: number
  sftpPort: number | null
  /** Where a guard in the workload's namespace connects to watch the agent (loopback there). */
  guardPort?: number
  /** The agent's process uptime (ms) when it said hello, and when it said ready, if it told them (the daemon's timeline). */
  upMs?: {hello: number; ready?: number}
}

export interface ExpectOptions {
  /** Opens a connection to the handler (the daemon connects to 127.0.0.1:<local port>). */
  connectLocal: () => Promise<Socket>
  /** How long the agent may take to connect and install its rule (default 30 s). */
  readyTimeoutMs?: number
  /**
   * Where the agent may reach the handler itself (the placement says where, e.g. the daemon's
   * address when handlers share its network namespace): the agent then connects to it directly,
   * without the daemon's relay in between, as long as the handler listens on more than loopback.
   */
  direct?: {host: string; port: number}
  /** The daemon could not reach the handler for a redirected connection (it stopped listening). */
  onHandlerUnreachable?: () => void
  /**
   * The port the agent was told to serve the volumes on (the session already names it); an agent
   * that says another is refused. Undefined: whatever it says.
   */
  sftpPort?: number | null
}

export interface AgentSession {
  /** Resolves once the agent's rule is installed; rejects (UserError) on timeout or failure. */
  ready: Promise<AgentReady>
  /** New redirected connections go to the handler. */
  activate(): void
  /**
   * New redirected connections go to the workload's own app again; resolves once the connections
   * in flight to the handler have ended (the agent says so), or after `drainMs` (default 0: at once).
   */
  deactivate(drainMs?: number): Promise<void>
  /** Asks the agent to remove its rule and exit; resolves when it closed the connection (≤ 10 s). */
  release(): Promise<void>
  /** Resolves (never rejects) with a reason when the agent disconnects or stops answering. */
  gone: Promise<string>
  /**
   * connections: relayed through this daemon so far (not those the agent made directly); active:
   * open now; spares: idle spare connections; agent: what the agent's process carried, as of its
   * last pong (`at`, ms since the epoch).
   */
  stats(): AgentSessionStats
}

export interface AgentSessionStats {
  connections: number
  active: number
  spares: number
  agent?: AgentCounters & {at: number}
}

const RELEASE_WAIT_MS = 10_000
/** Spare connections kept open to an active agent, so a new redirected connection needs no dial round trip. */
const SPARES = 2

function sameSecret(a: string, b: string): boolean {
  const x = Buffer.from(a)
  const y = Buffer.from(b)
  return x.length === y.length && timingSafeEqual(x, y)
}

function plainAddress(address: string | undefined): string {
  return (address ?? '').replace(/^::ffff:/, '')
}

/** The daemon's side of one agent. */
class Session implements AgentSession {
  readonly ready: Promise<AgentReady>
  readonly gone: Promise<string>
  private resolveReady!: (r: AgentReady) => void
  private rejectReady!: (e: Error) => void
  private resolveGone!: (reason: string) => void
  private socket?: Duplex
  private hello?: AgentReady
  private isReady = false
  private active = false
  private ended = false
  private relayed = 0
  private agentCounters?: AgentCounters & {at: number}
  private readonly open = new Set<Duplex>()
  private readonly spares = new Set<Duplex>()
  /** Hand-backs waiting for the agent's `drained`. */
  private readonly drainWaiters: Array<() => void> = []
  private pingTimer?: NodeJS.Timeout
  private readyTimer: NodeJS.Timeout
  private lastHeard = Date.now()

  constructor(
    readonly interceptId: string,
    readonly token: string,
    private readonly options: ExpectOptions,
    private readonly server: {
      pingMs: number
      leaseMs: number
      log: (m: string) => void
      forget: (s: Session) => void
      dial: (host: string, port: number) => Promise<Duplex>
    },
  ) {
    this.ready = new Promise((resolve, reject) => {
      this.resolveReady = resolve
      this.rejectReady = reject
    })
    // callers that only await `gone` must not see an unhandled rejection
    this.ready.catch(() => undefined)
    this.gone = new Promise((resolve) => (this.resolveGone = resolve))
    const timeout = options.readyTimeoutMs ?? 30_000
    this.readyTimer = setTimeout(() => {
      this.fail(
        new UserError(
          `the traffic agent of intercept ${interceptId} did not become ready within ${Math.round(timeout / 1000)} s`,
          'check that the agent container started (`docker ps -a --filter label=tp.role=agent`, `docker logs <agent>`) and can reach the daemon',
        ),
        'the agent never became ready',
      )
    }, timeout)
  }

  /** The agent connected and said hello. */
  attach(socket: Duplex, hello: AgentReady): void {
    if (this.ended || this.socket) {
      socket.destroy()
      return
    }
    this.socket = socket
    this.hello = hello
    this.lastHeard = Date.now()
    const asked = this.options.sftpPort
    if (asked !== undefined && hello.sftpPort !== null && hello.sftpPort !== asked) {
      // the session the CLI holds names the asked port: volumes on another would not mount
      this.fail(
        new UserError(
          `the traffic agent of intercept ${this.interceptId} serves the volumes on port ${hello.sftpPort}, not on ${asked} as the daemon asked`,
          'the agent image does not match this daemon: reconnect (`tp quit`, then `tp connect`) so both come from this tp',
        ),
        'the agent serves its volumes on another port',
      )
      return
    }
    socket.on('close', () => this.end('the agent closed its control connection'))
    socket.on('error', (e) => this.server.log(`agent ${this.interceptId}: control connection error: ${e.message}`))
    this.pingTimer = setInterval(() => {
      if (Date.now() - this.lastHeard > this.server.leaseMs) {
        this.end(`the agent stopped answering for ${this.server.leaseMs} ms`)
        return
      }
      this.send({type: 'ping'})
    }, this.server.pingMs)
  }

  onMessage(message: AgentMessage): void {
    this.lastHeard = Date.now()
    switch (message.type) {
      case 'ready':
        clearTimeout(this.readyTimer)
        this.isReady = true
        if (this.active) {
          this.send(this.activation())
          this.fillSpares()
        }
        this.resolveReady(this.hello?.upMs && message.upMs !== undefined ? {...this.hello, upMs: {...this.hello.upMs, ready: message.upMs}} : this.hello!)
        break
      case 'failed':
        this.fail(
          new UserError(`the traffic agent of intercept ${this.interceptId} failed: ${message.message}`, 'check `docker logs` of the agent container'),
          'the agent failed',
        )
        break
      case 'dial':
        void this.dial(message.id)
        break
      case 'pong':
        if (message.counters) this.agentCounters = {...message.counters, at: Date.now()}
        break
      case 'drained':
        for (const resolve of this.drainWaiters.splice(0)) resolve()
        break
      case 'hello':
        this.server.log(`agent ${this.interceptId}: unexpected second hello`)
        break
      default:
        message satisfies never
    }
  }

  private send(message: DaemonMessage): void {
    if (this.socket && !this.socket.destroyed && this.socket.writable) this.socket.write(encode(message))
  }

  /** One redirected connection: connect to the handler, dial back to the agent, splice. */
  private async dial(id: string): Promise<void> {
    const hello = this.hello!
    let local: Socket
    try {
      local = await this.options.connectLocal()
    } catch (error) {
      this.server.log(`intercept ${this.interceptId}: cannot reach the handler: ${(error as Error).message}`)
      this.send({type: 'dial-failed', id})
      this.options.onHandlerUnreachable?.()
      return
    }
    const back = await this.server.dial(hello.address, hello.dialPort).catch(() => undefined)
    if (!back) {
      local.destroy()
      this.send({type: 'dial-failed', id})
      return
    }
    back.write(encode({id}))
    this.relayed++
    this.open.add(local)
    await splice(local, back)
    this.open.delete(local)
  }

  activate(): void {
    this.active = true
    if (this.isReady) {
      this.send(this.activation())
      this.fillSpares()
    }
  }

  private activation(): DaemonMessage {
    const direct = this.options.direct
    return direct ? {type: 'activate', directPort: direct.port, directHost: direct.host} : {type: 'activate'}
  }

  /** The agent closes its spares when it reads this; one it already took is still served. */
  deactivate(drainMs = 0): Promise<void> {
    this.active = false
    if (!this.isReady || this.ended) return Promise.resolve()
    const drained = new Promise<void>((resolve) => this.drainWaiters.push(resolve))
    this.send({type: 'deactivate'})
    if (drainMs <= 0) return Promise.resolve()
    let timer: NodeJS.Timeout | undefined
    return Promise.race([drained, new Promise<void>((resolve) => (timer = setTimeout(resolve, drainMs)))]).finally(() => clearTimeout(timer))
  }

  private fillSpares(): void {
    while (this.active && this.isReady && !this.ended && this.spares.size + this.sparesDialling < SPARES) this.openSpare()
  }

  /** Spares being dialled (a dial through a tunnel takes a round trip). */
  private sparesDialling = 0

  /** A connection to the agent's dial-back port that waits until the agent puts it to use. */
  private openSpare(): void {
    const hello = this.hello!
    this.sparesDialling++
    const dialled = this.server.dial(hello.address, hello.dialPort).finally(() => this.sparesDialling--)
    void dialled.then((spare) => {
      this.spares.add(spare)
      spare.once('close', () => this.spares.delete(spare))
      spare.on('error', () => spare.destroy())
      if (this.ended || !this.active) {
        spare.destroy()
        return
      }
      spare.write(encode({spare: this.token}))
      readHeaderLine(spare, 0).then(
        async () => {
          // the agent took it for a redirected connection: replace it, then serve this one
          this.spares.delete(spare)
          this.fillSpares()
          let local: Duplex
          try {
            local = await this.options.connectLocal()
          } catch (error) {
            this.server.log(`intercept ${this.interceptId}: cannot reach the handler: ${(error as Error).message}`)
            // this one connection is lost (the agent already gave it to this spare); the next ones go to the app
            this.options.onHandlerUnreachable?.()
            spare.destroy()
            return
          }
          this.relayed++
          this.open.add(local)
          await splice(local, spare)
          this.open.delete(local)
        },
        () => spare.destroy(),
      )
    }, swallowDialError)
  }

  async release(): Promise<void> {
    if (this.ended || !this.socket) {
      this.fail(new UserError(`intercept ${this.interceptId} was released before its agent became ready`), 'released')
      return
    }
    this.send({type: 'release'})
    const socket = this.socket
    let timer: NodeJS.Timeout | undefined
    await Promise.race([this.gone, new Promise((resolve) => (timer = setTimeout(resolve, RELEASE_WAIT_MS)))])
    clearTimeout(timer)
    socket.destroy()
    this.end('released')
  }

  stats(): AgentSessionStats {
    return {connections: this.relayed, active: this.open.size, spares: this.spares.size, agent: this.agentCounters}
  }

  private fail(error: Error, reason: string): void {
    this.rejectReady(error)
    this.end(reason)
  }

  /** Ends the session: idempotent; relayed connections are left to finish on their own. */
  end(reason: string): void {
    if (this.ended) return
    this.ended = true
    clearTimeout(this.readyTimer)
    clearInterval(this.pingTimer)
    this.rejectReady(new UserError(`the traffic agent of intercept ${this.interceptId} went away before it was ready: ${reason}`))
    for (const spare of this.spares) spare.destroy()
    for (const resolve of this.drainWaiters.splice(0)) resolve()
    this.socket?.destroy()
    this.server.forget(this)
    this.server.log(`agent ${this.interceptId}: ${reason}`)
    this.resolveGone(reason)
  }

  /** Daemon shutdown: also cut what is relayed. */
  destroy(reason: string): void {
    for (const s of this.open) s.destroy()
    this.end(reason)
  }
}

/**
 * The daemon's listener for traffic agents. Each agent connects, says hello with its intercept id
 * and token, and is then driven over that connection; redirected connections come back as
 * dial-backs that the daemon opens to the agent.
 */
export class AgentServer {
  private readonly server: Server
  private readonly sessions = new Map<string, Session>()
  private readonly controlSockets = new Set<Duplex>()
  private readonly log: (m: string) => void
  private readonly pingMs: number
  private readonly leaseMs: number

  constructor(private readonly options: AgentServerOptions = {}) {
    this.log = options.log ?? (() => undefined)
    this.pingMs = options.pingMs ?? 1000
    this.leaseMs = options.leaseMs ?? 3000
    this.server = createServer({noDelay: true}, (socket) => this.onConnection(socket, plainAddress(socket.remoteAddress)))
  }

  /**
   * An agent's control connection that arrived another way than at this server's listener (through
   * a tunnel from a cluster on another machine), with the agent's address as its side sees it.
   */
  accept(stream: Duplex, remoteAddress: string): void {
    this.onConnection(stream, plainAddress(remoteAddress))
  }

  async listen(): Promise<{port: number}> {
    return {port: await listen(this.server, this.options.host ?? '0.0.0.0', this.options.port ?? 0)}
  }

  expect(interceptId: string, token: string, options: ExpectOptions): AgentSession {
    const existing = this.sessions.get(interceptId)
    existing?.end('replaced by a new agent for the same intercept')
    const session = new Session(interceptId, token, options, {
      pingMs: this.pingMs,
      leaseMs: this.leaseMs,
      log: this.log,
      dial: this.options.dial ?? dialDirect,
      forget: (s) => {
        if (this.sessions.get(s.interceptId) === s) this.sessions.delete(s.interceptId)
      },
    })
    this.sessions.set(interceptId, session)
    return session
  }

  private onConnection(socket: Duplex, remoteAddress: string): void {
    let session: Session | undefined
    const helloTimer = setTimeout(() => socket.destroy(), 10_000)
    socket.on('error', () => undefined)
    this.controlSockets.add(socket)
    socket.on('close', () => {
      clearTimeout(helloTimer)
      this.controlSockets.delete(socket)
    })
    const reject = () => {
      clearTimeout(helloTimer)
      this.log(`rejected an agent connection from ${remoteAddress}: unknown intercept or wrong token`)
      socket.destroy()
    }
    readMessages(
      socket,
      decodeAgentMessage,
      (message) => {
        if (session) {
          session.onMessage(message)
          return
        }
        if (message.type !== 'hello') return reject()
        const candidate = this.sessions.get(message.interceptId)
        if (!candidate || !sameSecret(message.token, candidate.token)) return reject()
        clearTimeout(helloTimer)
        session = candidate
        session.attach(socket, {
          address: remoteAddress,
          redirectPort: message.redirectPort,
          dialPort: message.dialPort,
          sftpPort: message.sftpPort,
          guardPort: message.guardPort,
          ...(message.upMs === undefined ? {} : {upMs: {hello: message.upMs}}),
        })
      },
      (line, why) => {
        if (why === 'unknown-message' && session) {
          this.log(`agent ${session.interceptId}: unexpected message ${line.slice(0, 200)}`)
          return
        }
        if (why === 'unknown-message') return reject()
        clearTimeout(helloTimer)
        this.log(`agent connection from ${remoteAddress} sent something that is not protocol: ${line.slice(0, 80)}`)
        socket.destroy()
      },
    )
  }

  /** Stops listening and drops every agent (they restore their workloads' traffic by themselves). */
  async close(): Promise<void> {
    for (const session of [...this.sessions.values()]) session.destroy('the daemon is shutting down')
    for (const socket of this.controlSockets) socket.destroy()
    await new Promise<void>((resolve) => this.server.close(() => resolve()))
  }
}

/** A spare that could not be dialled: the next redirected connection dials its own. */
function swallowDialError(): void {}
