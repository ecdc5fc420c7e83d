import type {ClientHttp2Session, IncomingHttpHeaders, ServerHttp2Session, ServerHttp2Stream} from 'node:http2'
import type {Socket} from 'node:net'
import type {Duplex} from 'node:stream'
import {type HttpFilter, debugLog} from '@tp/sdk'
import {Http1Connection, type Http1ProxyOptions} from './http1-proxy.js'
import {splice} from './splice.js'

// node's HTTP/2 is loaded when a personal intercept's router is made, not with the agent: every
// agent loads this file and few filter (http2 brings tls and assert: ~10 ms of each agent's start)
const http2 = () => process.getBuiltinModule('node:http2')
const codes = () => http2().constants

const debug = debugLog('tp:agent:http')

export type {HttpFilter}

/** Parses TP_AGENT_FILTER (JSON {headers, pathPrefix}); throws with what is wrong. */
export function parseFilter(text: string): HttpFilter {
  const value = JSON.parse(text) as {headers?: unknown; pathPrefix?: unknown}
  const headers: Record<string, string> = {}
  if (value.headers !== undefined) {
    if (typeof value.headers !== 'object' || value.headers === null || Array.isArray(value.headers))
      throw new Error('TP_AGENT_FILTER.headers must be an object')
    for (const [name, v] of Object.entries(value.headers)) {
      if (typeof v !== 'string') throw new Error(`TP_AGENT_FILTER.headers.${name} must be a string`)
      headers[name.toLowerCase()] = v
    }
  }
  if (value.pathPrefix !== undefined && typeof value.pathPrefix !== 'string') throw new Error('TP_AGENT_FILTER.pathPrefix must be a string')
  return {headers, ...(value.pathPrefix === undefined ? {} : {pathPrefix: value.pathPrefix})}
}

/** Whether a request (its headers, as Node gives them: lower-case names) matches the filter. */
export function matchesFilter(filter: HttpFilter, path: string | undefined, headers: Record<string, string | string[] | undefined>): boolean {
  for (const [name, want] of Object.entries(filter.headers)) {
    const got = headers[name]
    const values = Array.isArray(got) ? got : got === undefined ? [] : [got]
    if (!values.includes(want)) return false
  }
  return filter.pathPrefix === undefined || (path ?? '').startsWith(filter.pathPrefix)
}

/** What a first chunk says a connection speaks. */
export function sniffProtocol(first: Buffer): 'h2' | 'http1' | 'other' {
  const text = first.subarray(0, 24).toString('latin1')
  if ('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'.startsWith(text) || text.startsWith('PRI * HTTP/2.0')) return 'h2'
  return /^[A-Z]{3,12} /.test(text) ? 'http1' : 'other'
}

export interface HttpRouterOptions {
  filter: HttpFilter
  /** Whether requests that match go to the handler now (the intercept is active). */
  active: () => boolean
  /** A connection to the handler (direct, or through the daemon). */
  openHandler: () => Promise<Duplex>
  /** A connection to whoever takes what does not match: the next personal intercept's agent, else the app. */
  openNext: () => Promise<Socket>
  /** A request (or stream) to the handler began; the returned function says it ended (what a hand-back waits for). */
  handlerRequest: () => () => void
  /** Whether the agent is going: keep-alive connections are closed after their next response. */
  closing: () => boolean
  /** How long a connection may stay silent before it counts as not HTTP (default 500 ms). */
  sniffMs?: number
  /** How long an HTTP/1.1 client's connection may stay idle between requests (default 60 s). */
  idleMs?: number
  log: (message: string) => void
}

/**
 * Routes the connections of a personal intercept: HTTP/1.1 request by request (a keep-alive
 * connection may alternate), HTTP/2 cleartext (gRPC) stream by stream with trailers passed on, and
 * anything else (or a client that waits for the server to speak first) as bytes to the next hop.
 * HTTP/1.1 is framed here and its bytes passed on unchanged (http1-proxy.ts); Node's nghttp2 reads HTTP/2.
 */
export class HttpRouter {
  private readonly h2 = http2().createServer()
  /** Clients' HTTP/1.1 connections: a drain closes the idle ones now, the others after their response. */
  private readonly http1 = new Set<Http1Connection>()
  private readonly http1Options: Http1ProxyOptions
  private handlerSession?: Promise<ClientHttp2Session>
  private nextSession?: Promise<ClientHttp2Session>
  /** Clients' HTTP/2 connections: a drain says GOAWAY on each (streams in flight finish). */
  private readonly clientSessions = new Set<ServerHttp2Session>()

  constructor(private readonly o: HttpRouterOptions) {
    this.http1Options = {
      route: (head) => (this.toHandler(head.target, head.fields) ? 'handler' : 'next'),
      open: (side) => (side === 'handler' ? o.openHandler() : o.openNext()),
      handlerRequest: () => o.handlerRequest(),
      closing: () => o.closing(),
      log: (message) => o.log(message),
      ...(o.idleMs === undefined ? {} : {idleMs: o.idleMs}),
    }
    this.h2.on('stream', (stream, headers) => this.onStream(stream, headers))
    this.h2.on('sessionError', (error) => debug(`h2 session: ${error.message}`))
    this.h2.on('session', (session: ServerHttp2Session) => {
      this.clientSessions.add(session)
      session.once('close', () => this.clientSessions.delete(session))
    })
  }

  /** Takes a redirected connection (paused, nothing read). */
  take(client: Socket): void {
    let done = false
    const decide = (first: Buffer | undefined) => {
      if (done) return
      done = true
      clearTimeout(timer)
      client.off('data', onData)
      client.off('end', onEnd)
      client.pause()
      const kind = first ? sniffProtocol(first) : 'other'
      if (kind === 'http1' && first) {
        const connection = new Http1Connection(client, first, this.http1Options, (c) => this.http1.delete(c))
        this.http1.add(connection)
        connection.start()
        return
      }
      if (first) client.unshift(first)
      if (kind === 'h2') this.h2.emit('connection', client)
      else void this.raw(client)
    }
    const onData = (chunk: Buffer) => decide(chunk)
    const onEnd = () => decide(undefined)
    const timer = setTimeout(() => decide(undefined), this.o.sniffMs ?? 500)
    client.on('data', onData)
    client.once('end', onEnd)
    client.resume()
  }

  /** Bytes that are not HTTP (or a server-first protocol): the next hop gets all of them. */
  private async raw(client: Socket): Promise<void> {
    try {
      const next = await this.o.openNext()
      void splice(client, next)
    } catch (error) {
      this.o.log(`closing a connection: nothing takes it (${(error as Error).message})`)
      client.destroy()
    }
  }

  private toHandler(path: string | undefined, headers: Record<string, string | string[] | undefined>): boolean {
    return this.o.active() && matchesFilter(this.o.filter, path, headers)
  }

  /** One HTTP/2 stream: to the handler or onwards, with its trailers (gRPC's status) and resets passed on. */
  private onStream(stream: ServerHttp2Stream, headers: IncomingHttpHeaders): void {
    const handler = this.toHandler(headers[':path'], headers as Record<string, string | string[] | undefined>)
    const ended = handler ? this.o.handlerRequest() : () => undefined
    let finished = false
    const finish = () => {
      if (!finished) {
        finished = true
        ended()
      }
    }
    stream.once('close', finish)
    if (handler && !this.handlerSession) this.handlerSession = this.session(() => this.o.openHandler(), 'handler')
    if (!handler && !this.nextSession) this.nextSession = this.session(() => this.o.openNext(), 'next')
    const sessions = (handler ? this.handlerSession : this.nextSession) as Promise<ClientHttp2Session>
    sessions.then(
      (session) => {
        const forward: Record<string, string | string[]> = {}
        for (const [name, value] of Object.entries(headers)) {
          if (value === undefined || name === 'connection' || name === 'http2-settings') continue
          forward[name] = value
        }
        const upstream = session.request(forward, {endStream: stream.readableEnded})
        let trailers: Record<string, string | string[]> | undefined
        upstream.on('response', (answer, flags) => {
          const endStream = (flags & codes().NGHTTP2_FLAG_END_STREAM) !== 0
          if (stream.destroyed) return
          // a trailers-only answer (a gRPC error) ends the stream with its headers
          stream.respond(answer as Record<string, string>, endStream ? {endStream: true} : {waitForTrailers: true})
        })
        upstream.on('trailers', (t) => (trailers = t as Record<string, string | string[]>))
        // without trailers from upstream, sendTrailers({}) ends the stream with an empty DATA frame
        // (END_STREAM); close() would reset it instead, and a client may then never see its end
        stream.on('wantTrailers', () => stream.sendTrailers(trailers ?? {}))
        upstream.pipe(stream)
        stream.pipe(upstream)
        upstream.on('error', (error) => {
          debug(`h2 stream to the ${handler ? 'handler' : 'workload'}: ${error.message}`)
          if (!stream.headersSent && !stream.destroyed) {
            stream.respond({':status': 502}, {endStream: true})
          } else stream.close(codes().NGHTTP2_INTERNAL_ERROR)
        })
        upstream.on('close', () => {
          if (!stream.destroyed && upstream.rstCode && upstream.rstCode !== codes().NGHTTP2_NO_ERROR) stream.close(upstream.rstCode)
        })
        stream.on('close', () => {
          if (!upstream.destroyed) upstream.close(stream.rstCode ?? codes().NGHTTP2_CANCEL)
        })
        stream.on('error', () => upstream.destroy())
      },
      (error: Error) => {
        if (!stream.destroyed) stream.respond({':status': 502}, {endStream: true})
        this.o.log(`an HTTP/2 stream: the ${handler ? 'handler' : 'workload'} cannot be reached (${error.message})`)
      },
    )
  }

  /** One HTTP/2 connection per side, shared by every stream; made again once it closes. */
  private session(open: () => Promise<Duplex>, which: 'handler' | 'next'): Promise<ClientHttp2Session> {
    const made = open().then((socket) => {
      const session = http2().connect('http://tp-agent', {createConnection: () => socket})
      const forget = () => {
        if (which === 'handler' && this.handlerSession === made) this.handlerSession = undefined
        if (which === 'next' && this.nextSession === made) this.nextSession = undefined
      }
      session.on('close', forget)
      session.on('goaway', forget)
      session.on('error', (error) => {
        debug(`h2 session to the ${which}: ${error.message}`)
        forget()
      })
      return session
    })
    made.catch(() => {
      if (which === 'handler' && this.handlerSession === made) this.handlerSession = undefined
      if (which === 'next' && this.nextSession === made) this.nextSession = undefined
    })
    return made
  }

  /**
   * The agent is going: idle keep-alive connections close now (clients open new ones, which no
   * longer reach this agent); those with a request in flight close after its response.
   */
  drain(): void {
    for (const connection of this.http1) connection.drain()
    for (const session of this.clientSessions) session.close()
    void this.handlerSession?.then(
      (s) => s.close(),
      () => undefined,
    )
    void this.nextSession?.then(
      (s) => s.close(),
      () => undefined,
    )
  }

  close(): void {
    for (const connection of this.http1) connection.destroy()
    void this.handlerSession?.then(
      (s) => s.close(),
      () => undefined,
    )
    void this.nextSession?.then(
      (s) => s.close(),
      () => undefined,
    )
    this.h2.close()
  }
}
