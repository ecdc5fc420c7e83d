import type {Socket} from 'node:net'
import type {Duplex} from 'node:stream'
import {debugLog} from '@tp/sdk'
import {
  type BodyFramer,
  bodyFramer,
  FramingError,
  type Framing,
  headLength,
  isTunnel,
  keepsAlive,
  parseRequestHead,
  parseResponseHead,
  type RequestHead,
  requestFraming,
  type ResponseHead,
  responseFraming,
  withClientKeptAlive,
  withConnectionClose,
} from './http1-framing.js'
import {splice} from './splice.js'

const debug = debugLog('tp:agent:http1')

export type Side = 'handler' | 'next'

export interface Http1ProxyOptions {
  /** Which side takes a request. */
  route: (head: RequestHead) => Side
  /** A new connection to a side. */
  open: (side: Side) => Promise<Duplex>
  /** A request to the handler began; the returned function says it ended. */
  handlerRequest: () => () => void
  /** Whether the agent is going: the connection closes after its response. */
  closing: () => boolean
  log: (message: string) => void
  /** How long a client's connection may stay idle between requests before it is closed (default 60 s). */
  idleMs?: number
}

const NAMES: Record<Side, string> = {handler: 'handler', next: 'workload'}
/** A response head may be larger than a request's (cookies); past this it is refused. */
const MAX_RESPONSE_HEAD = 64 * 1024
const EMPTY = Buffer.alloc(0)

/** Bytes as one chunk of a chunked body. */
function asChunk(bytes: Buffer): Buffer {
  if (bytes.length === 0) return bytes
  return Buffer.concat([Buffer.from(`${bytes.length.toString(16)}\r\n`, 'latin1'), bytes, Buffer.from('\r\n', 'latin1')])
}

/** One connection to a side, pinned to one client connection and reused across its requests. */
interface Upstream {
  socket: Duplex
  side: Side
  /** Responses it completed: more than none means a request sent on it reuses it. */
  served: number
  alive: boolean
  /** Its write buffer is full: the client is paused until it drains. */
  full: boolean
}

/** One request and its response. */
interface Exchange {
  side: Side
  method: string
  head: Buffer
  retryable: boolean
  /** What the client's request says of its connection. */
  keepAlive: boolean
  http10: boolean
  /** Decided at the answer's head: whether the client's connection closes after it. */
  clientCloses: boolean
  /** The answer ends with its connection, but is sent to the client in chunks (the client's connection stays). */
  rechunk: boolean
  requestBody: BodyFramer
  requestDone: boolean
  /** What waits for the upstream connection to be open. */
  queued: Buffer[]
  up?: Upstream
  retried: boolean
  /** Response bytes received from upstream / written to the client. */
  received: boolean
  sent: boolean
  responseBuf: Buffer
  response?: ResponseHead
  responseFraming?: Framing
  responseBody?: BodyFramer
  done: boolean
  ended: () => void
}

/**
 * A client's HTTP/1.1 connection, proxied request by request without re-serialising: each
 * request's head is read and parsed (to route it and to find its body's end), then its bytes go
 * unchanged to the connection of the side it is routed to, and the response's bytes come back
 * unchanged, framed the same way. One request at a time: the next (pipelined or not) is read once
 * this response is done, so answers keep their order.
 */
export class Http1Connection {
  private buf: Buffer
  private state: 'head' | 'body' | 'await' | 'tunnel' | 'closed' = 'head'
  private readonly ups: Partial<Record<Side, Upstream>> = {}
  private current?: Exchange
  private idleTimer?: NodeJS.Timeout
  private clientEnded = false
  /** Destroyed, and the router told. */
  private released = false
  private readonly onClientData = (chunk: Buffer) => this.clientData(chunk)
  private readonly onClientEnd = () => this.clientEnd()
  private readonly onClientClose = () => this.destroy()

  constructor(
    private readonly client: Socket,
    first: Buffer,
    private readonly o: Http1ProxyOptions,
    private readonly gone: (connection: Http1Connection) => void,
  ) {
    this.buf = first
  }

  /** Reads the first request (the bytes the constructor was given), then the client's. */
  start(): void {
    const client = this.client
    client.setNoDelay(true)
    client.on('data', this.onClientData)
    client.on('end', this.onClientEnd)
    client.on('close', this.onClientClose)
    client.on('error', this.onClientClose)
    client.on('drain', () => {
      const up = this.current?.up
      if (up?.alive) up.socket.resume()
    })
    this.next()
    if (this.state === 'head' || this.state === 'body') client.resume()
  }

  /** The agent is going: an idle connection closes now, a busy one after its response. */
  drain(): void {
    if (this.state === 'head' && this.buf.length === 0) this.close()
  }

  destroy(): void {
    if (this.released) return
    this.released = true
    this.state = 'closed'
    clearTimeout(this.idleTimer)
    this.finish(this.current)
    for (const up of Object.values(this.ups)) this.discard(up)
    this.client.destroy()
    this.gone(this)
  }

  /** Ends the client's side after what was written; the pinned connections go. */
  private close(): void {
    if (this.state === 'closed') return
    this.state = 'closed'
    clearTimeout(this.idleTimer)
    for (const up of Object.values(this.ups)) this.discard(up)
    // the socket closes once the client's side has ended too
    this.client.end()
  }

  private clientData(chunk: Buffer): void {
    clearTimeout(this.idleTimer)
    switch (this.state) {
      case 'head':
        this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk])
        this.next()
        return
      case 'body':
        this.requestBytes(chunk)
        return
      case 'await':
        // a pipelined request: read once this response is done
        this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk])
        this.client.pause()
        return
      default:
    }
  }

  private clientEnd(): void {
    this.clientEnded = true
    if (this.state === 'head' && this.buf.length === 0 && !this.current) this.close()
    else if (this.state === 'head' || this.state === 'body') this.destroy()
    // awaiting a response: it is sent, then the connection closes
  }

  /** Reads the next request's head from what is buffered, and starts it. */
  private next(): void {
    if (this.state !== 'head') return
    // empty lines before a request line are ignored (RFC 9112 §2.2)
    let skip = 0
    while (this.buf.length >= skip + 2 && this.buf[skip] === 13 && this.buf[skip + 1] === 10) skip += 2
    if (skip > 0) this.buf = this.buf.subarray(skip)
    if (this.buf.length === 0) {
      if (this.clientEnded) this.close()
      return
    }
    let head: RequestHead
    let framing: Framing
    try {
      const length = headLength(this.buf)
      if (length < 0) return
      head = parseRequestHead(this.buf, length)
      framing = requestFraming(head)
    } catch (error) {
      if (!(error instanceof FramingError)) throw error
      debug(`refusing a request: ${error.message}`)
      this.refuse(error.status, error.message)
      return
    }
    const side = this.o.route(head)
    if (isTunnel(head)) {
      void this.tunnel(side)
      return
    }
    const raw = this.buf.subarray(0, head.length)
    const rest = this.buf.subarray(head.length)
    this.buf = EMPTY
    const ex: Exchange = {
      side,
      method: head.method,
      head: raw,
      retryable: framing.kind === 'none' && (head.method === 'GET' || head.method === 'HEAD' || head.method === 'OPTIONS'),
      keepAlive: keepsAlive(head),
      http10: head.minor === 0,
      clientCloses: !keepsAlive(head),
      rechunk: false,
      requestBody: bodyFramer(framing),
      requestDone: framing.kind === 'none',
      queued: [],
      retried: false,
      received: false,
      sent: false,
      responseBuf: EMPTY,
      done: false,
      ended: side === 'handler' ? this.o.handlerRequest() : () => undefined,
    }
    this.current = ex
    this.state = ex.requestDone ? 'await' : 'body'
    const up = this.ups[side]
    if (up?.alive) {
      ex.up = up
      this.send(ex, raw)
    } else {
      ex.queued.push(raw)
      this.connect(ex)
    }
    if (rest.length > 0) {
      if (ex.requestDone) {
        this.buf = rest
        this.client.pause()
      } else this.requestBytes(rest)
    }
  }

  /** Bytes of the current request's body (and perhaps what follows it). */
  private requestBytes(chunk: Buffer): void {
    const ex = this.current as Exchange
    let end: number
    try {
      end = ex.requestBody.feed(chunk, 0)
    } catch (error) {
      if (!(error instanceof FramingError)) throw error
      // part of it went on already: the upstream connection cannot be reused
      if (ex.up) this.drop(ex.up)
      this.finish(ex)
      this.refuse(error.status, error.message)
      return
    }
    if (end < 0) {
      this.send(ex, chunk)
      return
    }
    if (end > 0) this.send(ex, end === chunk.length ? chunk : chunk.subarray(0, end))
    ex.requestDone = true
    if (this.state === 'body') this.state = 'await'
    if (end < chunk.length) {
      this.buf = chunk.subarray(end)
      this.client.pause()
    }
  }

  private send(ex: Exchange, bytes: Buffer): void {
    const up = ex.up
    if (!up) {
      ex.queued.push(bytes)
      return
    }
    if (!up.socket.write(bytes) && !up.full) {
      up.full = true
      this.client.pause()
      up.socket.once('drain', () => {
        up.full = false
        if (this.state === 'head' || this.state === 'body') this.client.resume()
      })
    }
  }

  private connect(ex: Exchange): void {
    this.o.open(ex.side).then(
      (socket) => {
        if (this.current !== ex || ex.done || this.state === 'closed') {
          socket.destroy()
          return
        }
        const up = this.adopt(socket, ex.side)
        ex.up = up
        const queued = ex.queued
        ex.queued = []
        this.send(ex, queued.length === 1 ? (queued[0] as Buffer) : Buffer.concat(queued))
      },
      (error: Error) => {
        if (this.current !== ex || this.state === 'closed') return
        debug(`the ${NAMES[ex.side]} cannot be reached: ${error.message}`)
        this.failed(ex, error)
      },
    )
  }

  private adopt(socket: Duplex, side: Side): Upstream {
    const up: Upstream = {socket, side, served: 0, alive: true, full: false}
    const old = this.ups[side]
    if (old && old !== up) this.drop(old)
    this.ups[side] = up
    ;(socket as Partial<Socket>).setNoDelay?.(true)
    socket.on('data', (chunk: Buffer) => this.upstreamData(up, chunk))
    socket.on('end', () => this.upstreamGone(up))
    socket.on('close', () => this.upstreamGone(up, new Error('the connection closed')))
    socket.on('error', (error: Error) => this.upstreamGone(up, error))
    return up
  }

  private upstreamData(up: Upstream, chunk: Buffer): void {
    const ex = this.current
    if (!ex || ex.up !== up || ex.done) {
      // nothing asked: a server that speaks out of turn cannot be trusted with the next request
      debug(`the ${NAMES[up.side]} sent ${chunk.length} bytes unasked; dropping its connection`)
      this.drop(up)
      return
    }
    ex.received = true
    try {
      this.responseBytes(ex, up, chunk)
    } catch (error) {
      if (!(error instanceof FramingError)) throw error
      debug(`a response from the ${NAMES[up.side]}: ${error.message}`)
      this.drop(up)
      this.failed(ex, error)
    }
  }

  private responseBytes(ex: Exchange, up: Upstream, chunk: Buffer): void {
    let data = chunk
    let start = 0
    while (!ex.response) {
      const buf = ex.responseBuf.length === 0 ? data : Buffer.concat([ex.responseBuf, data])
      const length = headLength(buf, MAX_RESPONSE_HEAD, 502)
      if (length < 0) {
        ex.responseBuf = buf
        return
      }
      const head = parseResponseHead(buf, length)
      ex.responseBuf = EMPTY
      if (head.status === 101) {
        this.switched(ex, up, buf)
        return
      }
      if (head.status < 200) {
        // 100 Continue and other informational answers pass on; the final one follows
        this.write(ex, buf.subarray(0, length))
        data = buf.subarray(length)
        if (data.length === 0) return
        continue
      }
      ex.response = head
      const framing = responseFraming(head, ex.method)
      ex.responseFraming = framing
      ex.responseBody = bodyFramer(framing, 502)
      data = buf
      start = length
      const rewritten = this.clientHead(ex, head, framing, buf)
      if (rewritten) {
        this.write(ex, rewritten)
        data = buf.subarray(length)
        start = 0
      }
    }
    if (ex.rechunk) {
      // close-delimited: all of it is body, sent as one chunk
      this.write(ex, asChunk(start === 0 ? data : data.subarray(start)))
      return
    }
    const end = (ex.responseBody as BodyFramer).feed(data, start)
    if (end < 0) {
      this.write(ex, data)
      return
    }
    this.write(ex, end === data.length ? data : data.subarray(0, end))
    // bytes past the response: the server does not frame as this proxy does; its connection goes
    if (end < data.length) this.drop(up)
    this.responseDone(ex)
  }

  /**
   * Whether the client's connection closes after this answer, and the head it gets when that
   * differs from the server's: the agent going says Connection: close; a server that closes its
   * connection does not close the client's, which keeps it as it asked (the server's connection
   * alone goes, and the next request opens another).
   */
  private clientHead(ex: Exchange, head: ResponseHead, framing: Framing, buf: Buffer): Buffer | undefined {
    if (this.o.closing()) {
      ex.clientCloses = true
      return withConnectionClose(buf, head.length)
    }
    if (ex.clientCloses || (keepsAlive(head) && framing.kind !== 'close')) return undefined
    // an answer ending with its connection, already coded otherwise: it cannot be put in chunks
    if (framing.kind === 'close' && head.fields['transfer-encoding']) {
      ex.clientCloses = true
      return undefined
    }
    ex.rechunk = framing.kind === 'close'
    return withClientKeptAlive(buf, head.length, ex.rechunk, ex.http10)
  }

  private write(ex: Exchange, bytes: Buffer): void {
    if (bytes.length === 0) return
    ex.sent = true
    if (!this.client.write(bytes)) ex.up?.socket.pause()
  }

  private responseDone(ex: Exchange): void {
    ex.done = true
    this.finish(ex)
    const up = ex.up as Upstream
    up.served++
    const response = ex.response as ResponseHead
    if (!keepsAlive(response) || !ex.keepAlive || ex.responseFraming?.kind === 'close' || !ex.requestDone) this.drop(up)
    if (ex.requestDone) this.afterResponse(ex)
    else {
      // answered before its body was all sent: where the next request starts is not known
      this.close()
    }
  }

  private afterResponse(ex: Exchange): void {
    if (this.current !== ex || this.state === 'closed') return
    this.current = undefined
    if (ex.clientCloses || this.o.closing() || this.clientEnded) {
      this.close()
      return
    }
    this.state = 'head'
    this.next()
    if (this.state === 'head') {
      this.client.resume()
      this.idle()
    }
  }

  /** Between requests: closed once idle too long (a request's first bytes stop the clock). */
  private idle(): void {
    if (this.buf.length > 0 || this.current) return
    clearTimeout(this.idleTimer)
    this.idleTimer = setTimeout(() => {
      if (this.state === 'head' && this.buf.length === 0 && !this.current) this.close()
    }, this.o.idleMs ?? 60_000)
    this.idleTimer.unref?.()
  }

  /** Says the current request has ended (for the hand-back's count), once. */
  private finish(ex: Exchange | undefined): void {
    if (!ex) return
    const ended = ex.ended
    ex.ended = () => undefined
    ended()
  }

  /** An upstream connection ended or failed. */
  private upstreamGone(up: Upstream, error?: Error): void {
    if (!up.alive) return
    up.alive = false
    if (this.ups[up.side] === up) delete this.ups[up.side]
    up.socket.destroy()
    const ex = this.current
    if (ex && ex.up === up && !ex.done) {
      if (!error && ex.response && ex.responseFraming?.kind === 'close') {
        if (ex.rechunk) {
          this.client.write('0\r\n\r\n')
          this.responseDone(ex)
          return
        }
        ex.done = true
        this.finish(ex)
        this.close()
        return
      }
      if (!ex.received && ex.retryable && !ex.retried && up.served > 0) {
        // a kept connection the server closed just as it was reused: the request goes again, unseen
        debug(`${ex.method} to the ${NAMES[up.side]}: a kept connection was closed (${error?.message ?? 'end'}); sending it again`)
        ex.retried = true
        ex.up = undefined
        ex.queued = [ex.head]
        this.connect(ex)
        return
      }
      this.failed(ex, error ?? new Error('the connection closed before the answer'))
      return
    }
  }

  /** Forgets a pinned connection, closing it. */
  private drop(up: Upstream): void {
    if (this.ups[up.side] === up) delete this.ups[up.side]
    this.discard(up)
  }

  private discard(up: Upstream | undefined): void {
    if (!up) return
    up.alive = false
    up.socket.destroy()
  }

  /** The current request failed upstream: 502 with what went wrong when nothing was answered yet, else the client is cut. */
  private failed(ex: Exchange, error: Error): void {
    ex.done = true
    this.finish(ex)
    if (ex.up) this.drop(ex.up)
    if (ex.sent) {
      this.destroy()
      return
    }
    this.reply(502, `tp: the ${NAMES[ex.side]} did not answer (${error.message})\n`)
  }

  /** A request this proxy cannot pass on. */
  private refuse(status: number, why: string): void {
    this.reply(status, `tp: ${why}\n`)
  }

  private reply(status: number, body: string): void {
    if (this.state === 'closed') return
    const reason: Record<number, string> = {400: 'Bad Request', 431: 'Request Header Fields Too Large', 502: 'Bad Gateway'}
    const bytes = Buffer.byteLength(body)
    this.client.write(
      `HTTP/1.1 ${status} ${reason[status] ?? 'Error'}\r\ncontent-type: text/plain\r\ncontent-length: ${bytes}\r\nconnection: close\r\n\r\n${body}`,
    )
    this.close()
  }

  private detachClient(): void {
    this.client.off('data', this.onClientData)
    this.client.off('end', this.onClientEnd)
    this.client.pause()
  }

  /** An Upgrade (WebSocket) or CONNECT: a connection of its own to the side, its head and all that follows passed on. */
  private async tunnel(side: Side): Promise<void> {
    this.state = 'tunnel'
    this.detachClient()
    for (const up of Object.values(this.ups)) if (up) this.drop(up)
    const ended = side === 'handler' ? this.o.handlerRequest() : () => undefined
    const bytes = this.buf
    this.buf = EMPTY
    try {
      const target = await this.o.open(side)
      if (this.client.destroyed) {
        target.destroy()
        ended()
        return
      }
      target.write(bytes)
      target.once('close', ended)
      void splice(this.client, target)
    } catch (error) {
      ended()
      this.o.log(`closing an upgraded connection: the ${NAMES[side]} cannot be reached (${(error as Error).message})`)
      this.client.destroy()
    }
  }

  /** 101 to a request that did not ask to upgrade: from here on the two connections are joined. */
  private switched(ex: Exchange, up: Upstream, bytes: Buffer): void {
    this.state = 'tunnel'
    this.detachClient()
    if (this.ups[up.side] === up) delete this.ups[up.side]
    for (const other of Object.values(this.ups)) if (other) this.drop(other)
    up.socket.removeAllListeners('data')
    up.socket.removeAllListeners('end')
    up.socket.removeAllListeners('close')
    up.socket.removeAllListeners('error')
    up.socket.once('close', () => this.finish(ex))
    this.client.write(bytes)
    void splice(this.client, up.socket)
  }
}
