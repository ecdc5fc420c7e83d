import {type IncomingMessage, type Server, type ServerResponse, createServer} from 'node:http'
import {timingSafeEqual} from 'node:crypto'
import {
  type ApiErrorBody,
  type ClusterDriver,
  type CreateInterceptRequest,
  type DaemonSession,
  type DaemonStatus,
  type InterceptEvent,
  type InterceptStep,
  UserError,
  type WorkloadInfo,
  isUserError,
} from '@tp/sdk'
import type {DaemonConfig} from './config.js'
import type {InterceptManager} from './intercepts.js'

/** The daemon's HTTP+JSON API (see DaemonClient in @tp/sdk for the other side). */
export function createApi(options: {
  config: DaemonConfig
  driver: ClusterDriver
  intercepts: InterceptManager
  quit: () => Promise<void>
  log: (m: string) => void
}): Server {
  const {config, driver, intercepts} = options
  const expected = Buffer.from(`Bearer ${config.token}`)

  const authorized = (req: IncomingMessage): boolean => {
    const given = Buffer.from(req.headers.authorization ?? '')
    return given.length === expected.length && timingSafeEqual(given, expected)
  }

  const routes = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://daemon')
    const path = url.pathname
    if (req.method === 'GET' && path === '/v1/status') {
      const status: DaemonStatus = {
        daemonId: config.id,
        connection: config.connection,
        namespace: config.namespace,
        cluster: {driver: config.cluster.driver, engine: config.cluster.engine},
        version: config.version,
        intercepts: intercepts.list(),
      }
      return sendJson(res, 200, status)
    }
    if (req.method === 'GET' && path === '/v1/workloads') {
      const active = intercepts.list()
      const workloads: WorkloadInfo[] = (await driver.workloads(config.namespace)).map(({environment: _env, mounts: _mounts, ...w}) => ({
        ...w,
        intercepts: active
          .filter((i) => i.workload === w.name)
          .map((i) => ({
            name: i.name,
            servicePort: i.servicePort,
            ...(i.mode && i.mode !== 'intercept' ? {mode: i.mode} : {}),
            ...(i.ports ? {ports: i.ports.map((p) => p.service)} : {}),
            ...(i.filter ? {filter: i.filter} : {}),
          })),
      }))
      return sendJson(res, 200, workloads)
    }
    if (req.method === 'POST' && path === '/v1/intercepts') {
      const body = (await readJson(req)) as CreateInterceptRequest
      return createIntercept(body, req, res)
    }
    const drain = path.match(/^\/v1\/intercepts\/([^/]+)\/drain$/)
    if (req.method === 'POST' && drain) {
      // the hand-back before the handler stops: answers once what was in flight to it has ended
      await intercepts.drain(decodeURIComponent(drain[1]))
      return sendJson(res, 200, {drained: true})
    }
    const leave = path.match(/^\/v1\/intercepts\/([^/]+)$/)
    if (req.method === 'DELETE' && leave) {
      const name = decodeURIComponent(leave[1])
      if (!intercepts.has(name)) {
        const names = intercepts.list().map((i) => i.name)
        throw new UserError(
          `no intercept named "${name}" on connection ${config.connection}`,
          names.length > 0 ? `active intercepts: ${names.join(', ')}` : 'there are no active intercepts (`tp status` lists them)',
        )
      }
      // the intercept's own tp command says ?owner=1: it has already stopped its handler
      const owner = url.searchParams.get('owner') === '1'
      const why = url.searchParams.get('reason')
      await intercepts.remove(name, owner ? (why ?? 'ended by its tp command') : 'ended by tp leave', owner ? 'owner' : 'other')
      return sendJson(res, 200, {removed: name})
    }
    if (req.method === 'POST' && path === '/v1/quit') {
      sendJson(res, 200, {quitting: true})
      setImmediate(() => void options.quit())
      return
    }
    sendJson(res, 404, {error: {kind: 'bug', message: `no route ${req.method} ${path}`}})
  }

  const createIntercept = async (body: CreateInterceptRequest, req: IncomingMessage, res: ServerResponse) => {
    let open = true
    let failed = false
    let name: string | undefined
    let markClosed!: () => void
    const closed = new Promise<void>((resolve) => (markClosed = resolve))
    const lease = {
      closed,
      send(event: InterceptEvent) {
        if (open) res.write(JSON.stringify(event) + '\n')
      },
      fail(error: unknown) {
        if (failed) return
        failed = true
        lease.send({type: 'error', error: apiErrorBody(error, options.log)})
      },
      end() {
        if (open) res.end()
        open = false
      },
    }
    // The lease: when the CLI's request goes away (exit, Ctrl-C, kill -9), the intercept goes too.
    res.on('close', () => {
      open = false
      markClosed()
      if (name) void intercepts.remove(name, 'the tp command that created it has gone', 'lease-lost')
    })
    const started = performance.now()
    const steps: InterceptStep[] = []
    const step = (what: string) => steps.push({step: what, ms: Math.round(performance.now() - started)})
    // the session goes out before the agent is up: the CLI starts the handler meanwhile
    const sendSession = (session: DaemonSession) => {
      if (!open) return
      res.writeHead(200, {'content-type': 'application/x-ndjson', 'cache-control': 'no-store'})
      res.flushHeaders()
      req.socket.setKeepAlive(true, 1000)
      req.socket.setNoDelay(true)
      lease.send({type: 'session', session, steps: [...steps], pending: true})
    }
    try {
      name = (await intercepts.create(body, lease, step, sendSession)).name
    } catch (error) {
      if (res.headersSent) {
        lease.fail(error)
        lease.end()
        return
      }
      throw error
    }
    if (!open) {
      await intercepts.remove(name, 'the tp command that created it has gone', 'lease-lost')
      return
    }
    lease.send({type: 'ready', steps})
  }

  const server = createServer((req, res) => {
    if (!authorized(req)) {
      sendJson(res, 401, {
        error: {kind: 'user', message: 'the daemon refused the request: wrong or missing token', next: 'reconnect with `tp quit` then `tp connect`'},
      })
      return
    }
    routes(req, res).catch((error: unknown) => {
      const body = apiErrorBody(error, options.log)
      if (res.headersSent) {
        res.end(JSON.stringify({type: 'error', error: body}) + '\n')
      } else sendJson(res, isUserError(error) ? 400 : 500, {error: body})
    })
  })
  server.requestTimeout = 0 // lease streams live as long as their intercept
  return server
}

/** An error as the API sends it; a bug is logged here too (its stack is the daemon's). */
function apiErrorBody(error: unknown, log: (m: string) => void): ApiErrorBody {
  if (isUserError(error)) return {kind: 'user', message: error.message, next: error.next}
  const body: ApiErrorBody = {kind: 'bug', message: (error as Error)?.stack ?? String(error)}
  log(`error: ${body.message}`)
  return body
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body)
  res.writeHead(status, {'content-type': 'application/json', 'content-length': Buffer.byteLength(text)})
  res.end(text)
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  let text = ''
  for await (const chunk of req) text += chunk
  try {
    return JSON.parse(text || '{}')
  } catch {
    throw new UserError('the daemon received a request that is not JSON', 'use the tp CLI or DaemonClient from @tp/sdk')
  }
}
