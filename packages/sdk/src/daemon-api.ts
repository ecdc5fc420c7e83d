import {BugError, UserError} from './errors.js'
import type {ClusterTarget, Workload} from './cluster.js'
import type {DaemonSession} from './session.js'
import type {HttpFilter} from './http-filter.js'

// not imported: Node 22 and 24 build an imported built-in's namespace from every export, and
// node:http's WebSocket and EventSource getters load undici (~90 ms at every command's start)
const {request} = process.getBuiltinModule('node:http')

/** The daemon's HTTP+JSON API (v1). Every request carries `Authorization: Bearer <token>`. */

/** A workload as `GET /v1/workloads` lists it (`tp list --json`): without its environment and volumes. */
export interface WorkloadInfo extends Omit<Workload, 'environment' | 'mounts'> {
  /** Intercepts active on this workload. */
  intercepts: Array<{name: string; servicePort: number; mode?: InterceptMode; ports?: number[]; filter?: HttpFilter}>
}

export interface InterceptInfo {
  name: string
  id: string
  workload: string
  servicePort: number
  localPort: number
  /** `waiting` until the handler answers on the local port; then `active` (traffic switched). */
  state: 'waiting' | 'active'
  /** The agent of its first replica (container name, with the Docker driver). */
  agentContainer: string
  /** How many replicas of the workload it intercepts (each has its own agent). */
  replicas: number
  createdAt: string
  /** What it does with the traffic (absent: `intercept`, from a daemon before modes). */
  mode?: InterceptMode
  /** `replace`: every service port it takes, and where the handler listens for each. */
  ports?: ReplacedPort[]
  /** A personal intercept: only the HTTP requests that match go to the handler. */
  filter?: HttpFilter
}

/**
 * What an intercept does: `intercept` takes one port's traffic; `ingest` takes no traffic (the
 * handler gets the environment and volumes only); `replace` takes every port's traffic and pauses
 * the workload while it runs; `wiretap` takes no traffic either, the handler gets a copy of what
 * clients send to one port (its answers are dropped; the workload answers).
 */
export type InterceptMode = 'intercept' | 'ingest' | 'replace' | 'wiretap'

export const INTERCEPT_MODES: readonly InterceptMode[] = ['intercept', 'ingest', 'replace', 'wiretap']

/** A service port a `replace` takes, and the port the handler listens on for it. */
export interface ReplacedPort {
  service: number
  local: number
}

export interface DaemonStatus {
  daemonId: string
  connection: string
  namespace: string
  /** The cluster as the daemon reaches it (a container daemon reaches the local engine at its own socket path). */
  cluster?: ClusterTarget
  version: string
  intercepts: InterceptInfo[]
}

export interface CreateInterceptRequest {
  workload: string
  /** Intercept name; defaults to the workload name (plus `-<port>` when the workload has several ports). */
  name?: string
  localPort: number
  containerPort?: number
  /** Service port by number or name; may be omitted when the workload exposes exactly one. */
  servicePort?: string
  /** Whether to export the workload's volumes (false with --mount=false). */
  mounts: boolean
  /** Where the handler listens: a container (the placement's `handler`), or a process here (its `process`). */
  handlerRunsAs?: 'container' | 'process'
  /** Default `intercept`. */
  mode?: InterceptMode
  /** `ingest` and `wiretap`: the volumes are read-only unless this is true. */
  writableMounts?: boolean
  /** `replace`: where the handler listens for a service port (number or name) other than its own number. */
  portMap?: Array<{service: string; local: number}>
  /** A personal intercept (`--http-header`, `--http-path-prefix`): only matching HTTP requests go to the handler. */
  filter?: HttpFilter
  /** Whose volumes the handler gets: a replica's name, slot (`web.2` → `2`) or id (prefix); default the first. */
  volumesReplica?: string
}

/** Lines of the NDJSON stream that answers POST /v1/intercepts. The stream is the CLI's lease. */
export type InterceptEvent =
  /**
   * `steps`: what creating it took in the daemon, each step's end in ms from the request (`TP_DEBUG=1`
   * prints them). `pending`: the session is sent as soon as it is known, before the workload's agent
   * is ready (its SFTP server may not answer yet); `ready` (or `error`) follows. A daemon that sends
   * no `pending` sends the session once the agent is ready.
   */
  | {type: 'session'; session: DaemonSession; steps?: InterceptStep[]; pending?: boolean}
  /** The agent is ready (its rule installed, its SFTP server answering); `steps` as for `session`. */
  | {type: 'ready'; steps?: InterceptStep[]}
  | {type: 'active'}
  | {type: 'heartbeat'}
  /** `normal`: ended on purpose (tp leave, tp quit); otherwise something failed (agent or workload gone). */
  | {type: 'ended'; reason: string; normal: boolean}
  | {type: 'error'; error: ApiErrorBody}

/** One step of creating an intercept in the daemon, and when it ended (ms from the request). */
export interface InterceptStep {
  step: string
  ms: number
}

export interface ApiErrorBody {
  kind: 'user' | 'bug'
  message: string
  next?: string
}

export interface DaemonEndpoint {
  url: string
  token: string
}

/** Converts an error body sent by the daemon back into a typed error. */
export function errorFromApi(body: ApiErrorBody): Error {
  return body.kind === 'user' ? new UserError(body.message, body.next) : new BugError(`daemon: ${body.message}`)
}

export class DaemonUnreachableError extends UserError {
  constructor(url: string, cause: unknown) {
    super(
      `the tp daemon at ${url} does not answer (${(cause as Error)?.message ?? cause})`,
      'run `tp status` to check the connection, or `tp quit` and connect again',
      {cause},
    )
  }
}

/** A lease on one intercept: events as they come; closing it ends the intercept. */
export interface InterceptLease {
  /** The session without its placement (the CLI adds the one its backend gives). */
  session: DaemonSession
  /**
   * What creating the intercept took in the daemon (empty from a daemon that does not say); the
   * whole list once `ready` has resolved.
   */
  steps: InterceptStep[]
  /**
   * Resolves once the workload's agent is ready: its rule installed, its SFTP server answering.
   * Rejects (typed, from the daemon) when the agent could not start; the intercept is then gone.
   * Already resolved unless the lease was asked for `early`.
   */
  ready: Promise<void>
  /** Resolves once the handler answers and traffic is switched. */
  active: Promise<void>
  /** Resolves when the daemon ends the intercept (leave, quit, agent gone) or the daemon is lost. */
  ended: Promise<{reason: string; normal: boolean}>
  /** Ends the intercept by dropping the lease. */
  close(): void
}

export class DaemonClient {
  constructor(
    readonly endpoint: DaemonEndpoint,
    private readonly timeoutMs = 30_000,
  ) {}

  status(): Promise<DaemonStatus> {
    return this.json('GET', '/v1/status')
  }

  workloads(): Promise<WorkloadInfo[]> {
    return this.json('GET', '/v1/workloads')
  }

  /**
   * Ends an intercept. `owner`: the caller holds its lease and has already stopped its handler;
   * otherwise the daemon first lets the lease holder stop its handler, then removes the agent.
   */
  async leave(name: string, options: {owner?: boolean; reason?: string} = {}): Promise<void> {
    const query = new URLSearchParams()
    if (options.owner) query.set('owner', '1')
    if (options.reason) query.set('reason', options.reason)
    const search = query.size > 0 ? `?${query}` : ''
    await this.json('DELETE', `/v1/intercepts/${encodeURIComponent(name)}${search}`)
  }

  /**
   * The hand-back before a planned end: new connections go to the workload; resolves once those in
   * flight to the handler have ended (bounded by the daemon's drain time). The intercept stays.
   */
  async drain(name: string): Promise<void> {
    await this.json('POST', `/v1/intercepts/${encodeURIComponent(name)}/drain`)
  }

  async quit(): Promise<void> {
    await this.json('POST', '/v1/quit')
  }

  /**
   * Creates an intercept and holds its lease until `close()` or until the daemon ends it. Resolves
   * once the agent is ready; with `early`, as soon as the daemon knows the session, so that the
   * handler can start while the agent comes up (`lease.ready` says when it is up).
   */
  createIntercept(body: CreateInterceptRequest, options: {early?: boolean} = {}): Promise<InterceptLease> {
    const url = new URL('/v1/intercepts', this.endpoint.url)
    return new Promise((resolve, reject) => {
      let settled = false
      let resolveActive!: () => void
      let resolveEnded!: (end: {reason: string; normal: boolean}) => void
      let resolveReady!: () => void
      let rejectReady!: (error: Error) => void
      let isReady = false
      const active = new Promise<void>((r) => (resolveActive = r))
      const ended = new Promise<{reason: string; normal: boolean}>((r) => (resolveEnded = r))
      const ready = new Promise<void>((res, rej) => {
        resolveReady = () => {
          isReady = true
          res()
        }
        rejectReady = rej
      })
      ready.catch(() => undefined) // a lease whose holder only awaits `ended` must not see an unhandled rejection
      const steps: InterceptStep[] = []
      let pendingSession: DaemonSession | undefined
      const lease = (session: DaemonSession): InterceptLease => ({session, steps, ready, active, ended, close: () => req.destroy()})
      const settle = (session: DaemonSession) => {
        settled = true
        resolve(lease(session))
      }
      const req = request(url, {
        method: 'POST',
        headers: {authorization: `Bearer ${this.endpoint.token}`, 'content-type': 'application/json'},
      })
      const fail = (error: Error, fromDaemon = false) => {
        if (!settled) {
          settled = true
          reject(error)
        } else if (!isReady) {
          // an early lease whose agent never became ready: the daemon's own error says why, or
          // the daemon went away before it could
          const why = fromDaemon
            ? error
            : new UserError(
                `the tp daemon went away before the intercept's agent was ready (${error.message})`,
                'run `tp status` to check the connection, or `tp quit` and connect again',
                {cause: error},
              )
          rejectReady(why)
          resolveEnded({reason: why.message, normal: false})
        } else if (fromDaemon) resolveEnded({reason: error.message, normal: false})
        else resolveEnded({reason: `the tp daemon went away (${error.message}); the agents give the traffic back by themselves`, normal: false})
      }
      req.on('error', (error) => fail(settled ? error : new DaemonUnreachableError(this.endpoint.url, error)))
      req.on('response', (res) => {
        if (res.statusCode !== 200) {
          let text = ''
          res.setEncoding('utf8')
          res.on('data', (c: string) => (text += c))
          res.on('end', () => fail(parseErrorResponse(res.statusCode ?? 0, text)))
          return
        }
        let buffer = ''
        res.setEncoding('utf8')
        res.on('data', (chunk: string) => {
          buffer += chunk
          for (let nl = buffer.indexOf('\n'); nl !== -1; nl = buffer.indexOf('\n')) {
            const line = buffer.slice(0, nl)
            buffer = buffer.slice(nl + 1)
            if (!line.trim()) continue
            const event = JSON.parse(line) as InterceptEvent
            if (event.type === 'session' && !settled && !pendingSession) {
              steps.push(...(event.steps ?? []))
              if (!event.pending) {
                resolveReady()
                settle(event.session)
              } else if (options.early) settle(event.session)
              else pendingSession = event.session
            } else if (event.type === 'ready' && !isReady) {
              steps.splice(0, steps.length, ...(event.steps ?? steps))
              resolveReady()
              if (!settled && pendingSession) settle(pendingSession)
            } else if (event.type === 'error') fail(errorFromApi(event.error), true)
            else if (event.type === 'active') resolveActive()
            else if (event.type === 'ended') resolveEnded({reason: event.reason, normal: event.normal})
          }
        })
        res.on('close', () => fail(new Error('the daemon closed the intercept stream')))
      })
      req.end(JSON.stringify(body))
    })
  }

  private json<T>(method: string, path: string, body?: unknown): Promise<T> {
    const url = new URL(path, this.endpoint.url)
    return new Promise((resolve, reject) => {
      const req = request(url, {
        method,
        timeout: this.timeoutMs,
        headers: {authorization: `Bearer ${this.endpoint.token}`, 'content-type': 'application/json'},
      })
      req.on('timeout', () => req.destroy(new Error(`no answer within ${this.timeoutMs / 1000}s`)))
      req.on('error', (error) => reject(new DaemonUnreachableError(this.endpoint.url, error)))
      req.on('response', (res) => {
        let text = ''
        res.setEncoding('utf8')
        res.on('data', (c: string) => (text += c))
        res.on('end', () => {
          if (res.statusCode && res.statusCode >= 200 && res.statusCode < 300) {
            resolve((text ? JSON.parse(text) : undefined) as T)
          } else reject(parseErrorResponse(res.statusCode ?? 0, text))
        })
      })
      req.end(body === undefined ? undefined : JSON.stringify(body))
    })
  }
}

function parseErrorResponse(status: number, text: string): Error {
  try {
    const parsed = JSON.parse(text) as {error?: ApiErrorBody}
    if (parsed.error) return errorFromApi(parsed.error)
  } catch {
    // not JSON: fall through
  }
  return new BugError(`daemon answered HTTP ${status}: ${text.slice(0, 300)}`)
}
