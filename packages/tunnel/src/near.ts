import {type ClientHttp2Session, type ClientHttp2Stream, connect as connectHttp2, constants} from 'node:http2'
import type {Duplex} from 'node:stream'
import {
  ACCEPT_PATH,
  ERROR_HEADER,
  LISTENING_PATH,
  MAX_SESSION_MEMORY,
  PEER_HEADER,
  PING_MS,
  PING_TIMEOUT_MS,
  PORT_HEADER,
  SETTINGS,
  widenWindow,
} from './settings.js'

/** A connection that arrived at the far end's listener, and where it came from. */
export interface Accepted {
  stream: Duplex
  peer: {address: string; port: number}
}

export class TunnelError extends Error {}

/**
 * The near end of a tunnel (tp's daemon): opens connections from the far end (`connect`) and takes
 * those that arrive at the far end's listeners (`listen`), each as one HTTP/2 stream of the one
 * byte stream given. `closed` resolves, with why, when the tunnel ends: closed on purpose, the far
 * end gone, or no answer to a ping.
 */
export class Tunnel {
  readonly closed: Promise<string>
  private readonly session: ClientHttp2Session
  private ended?: string
  private markClosed!: (why: string) => void
  private readonly pinger: NodeJS.Timeout
  private readonly listening = new Set<{stop: () => void}>()

  constructor(transport: Duplex, options: {pingMs?: number; pingTimeoutMs?: number} = {}) {
    this.closed = new Promise((resolve) => (this.markClosed = resolve))
    this.session = connectHttp2('http://tp-tunnel', {createConnection: () => transport as never, settings: SETTINGS, maxSessionMemory: MAX_SESSION_MEMORY})
    this.session.on('connect', () => widenWindow(this.session))
    transport.on('error', (error) => this.end(`the tunnel’s stream failed: ${error.message}`))
    this.session.on('error', (error) => this.end(`the tunnel failed: ${error.message}`))
    this.session.on('close', () => this.end('the far end closed the tunnel'))
    this.session.on('goaway', () => this.end('the far end closed the tunnel'))
    transport.on('close', () => this.end('the tunnel’s stream closed'))
    const timeout = options.pingTimeoutMs ?? PING_TIMEOUT_MS
    this.pinger = setInterval(() => {
      const timer = setTimeout(() => this.end(`the far end did not answer a ping within ${timeout / 1000} s`), timeout)
      if (!this.session.ping((error) => (error ? this.end(`a ping failed: ${error.message}`) : clearTimeout(timer)))) clearTimeout(timer)
    }, options.pingMs ?? PING_MS)
    this.pinger.unref()
  }

  /** Why it ended, once it has. */
  get endedBecause(): string | undefined {
    return this.ended
  }

  /** A connection from the far end to host:port; rejects with why it could not be made there. */
  connect(host: string, port: number): Promise<Duplex> {
    if (this.ended) return Promise.reject(new TunnelError(`the tunnel is closed: ${this.ended}`))
    const authority = host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`
    const stream = this.session.request({':method': 'CONNECT', ':authority': authority})
    return this.response(stream, `connecting to ${authority}`).then(() => stream)
  }

  /**
   * Takes every connection that arrives at the far end's listener on `port`: `spares` accept
   * streams wait there at any time, so a connection never waits for a round trip. Returns a stop.
   */
  listen(port: number, onConnection: (accepted: Accepted) => void, options: {spares?: number; onError?: (error: Error) => void} = {}): () => void {
    let stopped = false
    const parked = new Set<ClientHttp2Stream>()
    const park = () => {
      if (stopped || this.ended) return
      const stream = this.session.request({':method': 'POST', ':path': ACCEPT_PATH, [PORT_HEADER]: String(port)}, {endStream: false})
      parked.add(stream)
      this.response(stream, `accepting on port ${port}`).then(
        (headers) => {
          parked.delete(stream)
          park()
          const [address, peerPort] = splitPeer(String(headers[PEER_HEADER] ?? ''))
          onConnection({stream, peer: {address, port: peerPort}})
        },
        (error: Error) => {
          parked.delete(stream)
          if (stopped || this.ended) return
          options.onError?.(error)
        },
      )
    }
    for (let i = 0; i < (options.spares ?? 4); i++) park()
    const handle = {
      stop: () => {
        stopped = true
        for (const stream of parked) stream.close(constants.NGHTTP2_CANCEL)
        this.listening.delete(handle)
      },
    }
    this.listening.add(handle)
    return handle.stop
  }

  /** For each pid (as the far end sees processes), the TCP ports its network namespace listens on for others. */
  async listeningPorts(pids: number[]): Promise<Map<number, number[]>> {
    if (this.ended) throw new TunnelError(`the tunnel is closed: ${this.ended}`)
    if (pids.length === 0) return new Map()
    const stream = this.session.request({':method': 'GET', ':path': `${LISTENING_PATH}?pids=${pids.join(',')}`}, {endStream: true})
    const body = this.response(stream, 'asking what listens').then(
      () =>
        new Promise<string>((resolve, reject) => {
          let text = ''
          stream.setEncoding('utf8')
          stream.on('data', (c: string) => (text += c))
          stream.once('end', () => resolve(text))
          stream.once('error', reject)
        }),
    )
    const answer = JSON.parse(await body) as Record<string, number[]>
    return new Map(Object.entries(answer).map(([pid, ports]) => [Number(pid), ports]))
  }

  /** Ends the tunnel and every connection it carries. */
  close(why = 'closed'): void {
    this.end(why)
  }

  private end(why: string): void {
    if (this.ended) return
    this.ended = why
    clearInterval(this.pinger)
    for (const handle of [...this.listening]) handle.stop()
    this.session.destroy()
    this.markClosed(why)
  }

  private response(stream: ClientHttp2Stream, what: string): Promise<Record<string, string | string[] | undefined>> {
    return new Promise((resolve, reject) => {
      stream.once('response', (headers) => {
        if (headers[':status'] === 200) return resolve(headers)
        reject(new TunnelError(`${what}: ${headers[ERROR_HEADER] ?? `status ${headers[':status']}`}`))
        stream.destroy()
      })
      stream.once('error', (error) => reject(new TunnelError(`${what}: ${error.message}`)))
      stream.once('close', () => reject(new TunnelError(`${what}: the stream closed (${this.ended ?? 'cancelled'})`)))
    })
  }
}

function splitPeer(peer: string): [string, number] {
  const at = peer.lastIndexOf(':')
  return at > 0 ? [peer.slice(0, at), Number(peer.slice(at + 1))] : [peer, 0]
}
