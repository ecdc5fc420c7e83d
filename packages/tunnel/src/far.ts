import {type ServerHttp2Session, type ServerHttp2Stream, constants, performServerHandshake} from 'node:http2'
import {type Server, type Socket, connect, createServer} from 'node:net'
import {readFile} from 'node:fs/promises'
import type {Duplex} from 'node:stream'
import {join} from './pipe.js'
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

/**
 * The far end of a tunnel (tp's relay, beside the workloads): over one byte stream, each HTTP/2
 * stream is one TCP connection. `CONNECT host:port` opens a connection from here; `POST /accept`
 * with a port waits for a connection to arrive at this end's listener on that port (agents dial
 * it) and then carries it. Resolves when the tunnel ends: the near end closed it, or stopped
 * answering pings (a laptop that sleeps, a cut link); every connection it carried is closed then.
 */
export function serveTunnel(
  transport: Duplex,
  options: {log?: (m: string) => void; pingMs?: number; pingTimeoutMs?: number; listenHost?: string} = {},
): Promise<string> {
  const log = options.log ?? (() => undefined)
  const session = performServerHandshake(transport, {settings: SETTINGS, maxSessionMemory: MAX_SESSION_MEMORY})
  const listeners = new Map<number, Listener>()
  const sockets = new Set<Socket>()
  return new Promise<string>((resolve) => {
    let ended = false
    const end = (why: string) => {
      if (ended) return
      ended = true
      clearInterval(pinger)
      for (const listener of listeners.values()) listener.close()
      for (const socket of sockets) socket.destroy()
      session.destroy()
      transport.destroy()
      resolve(why)
    }
    session.on('connect', () => widenWindow(session))
    transport.on('error', (error) => end(`the tunnel’s stream failed: ${error.message}`))
    session.on('error', (error) => end(`the tunnel failed: ${error.message}`))
    session.on('close', () => end('the near end closed the tunnel'))
    session.on('goaway', () => end('the near end closed the tunnel'))
    transport.on('close', () => end('the tunnel’s stream closed'))
    const pinger = setInterval(() => {
      const timer = setTimeout(
        () => end(`the near end did not answer a ping within ${(options.pingTimeoutMs ?? PING_TIMEOUT_MS) / 1000} s`),
        options.pingTimeoutMs ?? PING_TIMEOUT_MS,
      )
      if (!session.ping((error) => (error ? end(`a ping failed: ${error.message}`) : clearTimeout(timer)))) clearTimeout(timer)
    }, options.pingMs ?? PING_MS)
    session.on('stream', (stream, headers) => {
      const method = headers[':method']
      if (method === 'CONNECT') return connectOut(stream, String(headers[':authority'] ?? ''), sockets, log)
      if (method === 'POST' && headers[':path'] === ACCEPT_PATH) {
        const port = Number(headers[PORT_HEADER])
        if (!Number.isInteger(port) || port < 1 || port > 65_535) return refuse(stream, 400, `no port to accept on (${headers[PORT_HEADER]})`)
        let listener = listeners.get(port)
        if (!listener) {
          listener = new Listener(port, options.listenHost ?? '0.0.0.0', sockets, log)
          listeners.set(port, listener)
        }
        return listener.park(stream)
      }
      const path = String(headers[':path'] ?? '')
      if (method === 'GET' && path.startsWith(`${LISTENING_PATH}?`)) return answerListening(stream, path)
      refuse(stream, 404, `no such request: ${method} ${path}`)
    })
  })
}

/**
 * `GET /listening?pids=1,2`: for each process, the TCP ports its network namespace listens on
 * for others (any address but loopback), read from /proc/<pid>/net/tcp{,6}: what a workload serves
 * whether or not its image says so. The relay sees other containers' processes when it runs in the
 * host's pid namespace; a pid it cannot see gets no ports.
 */
function answerListening(stream: ServerHttp2Stream, path: string): void {
  const pids = (new URLSearchParams(path.slice(path.indexOf('?') + 1)).get('pids') ?? '').split(',').filter((p) => /^\d+$/.test(p))
  void Promise.all(
    pids.map(async (pid) => {
      const tables = await Promise.all(['tcp', 'tcp6'].map((file) => readFile(`/proc/${pid}/net/${file}`, 'utf8').catch(() => '')))
      return [pid, listeningPorts(tables.join('\n'))] as const
    }),
  ).then((answers) => {
    if (stream.destroyed) return
    stream.respond({':status': 200, 'content-type': 'application/json'})
    stream.end(JSON.stringify(Object.fromEntries(answers)))
  })
}

/** The ports in LISTEN state (0A) of a /proc/net/tcp or tcp6 table, but those bound to loopback only. */
export function listeningPorts(table: string): number[] {
  const ports = new Set<number>()
  for (const line of table.split('\n')) {
    const fields = line.trim().split(/\s+/)
    if (fields[3] !== '0A' || !fields[1]?.includes(':')) continue
    const [address, port] = fields[1].split(':')
    if (isLoopback(address)) continue
    ports.add(Number.parseInt(port, 16))
  }
  return [...ports].sort((a, b) => a - b)
}

/** A /proc/net address in hex: 127/8 (IPv4, little-endian), ::1, or 127/8 mapped into IPv6. */
function isLoopback(hex: string): boolean {
  if (hex.length === 8) return hex.endsWith('7F')
  if (hex === '00000000000000000000000001000000') return true
  return hex.startsWith('0000000000000000FFFF0000') && hex.endsWith('7F')
}

function refuse(stream: ServerHttp2Stream, status: number, why: string): void {
  if (stream.destroyed) return
  stream.respond({':status': status, [ERROR_HEADER]: why}, {endStream: true})
}

/** A CONNECT: a connection from this end to host:port, carried by the stream once it is made. */
function connectOut(stream: ServerHttp2Stream, authority: string, sockets: Set<Socket>, log: (m: string) => void): void {
  const at = authority.lastIndexOf(':')
  const host = authority.slice(0, at).replace(/^\[|\]$/g, '')
  const port = Number(authority.slice(at + 1))
  if (at <= 0 || !Number.isInteger(port)) {
    refuse(stream, 400, `not host:port: ${authority}`)
    return
  }
  const socket = connect({host, port, allowHalfOpen: true})
  sockets.add(socket)
  socket.once('close', () => sockets.delete(socket))
  socket.once('connect', () => {
    socket.setNoDelay(true)
    if (stream.destroyed) return socket.destroy()
    stream.respond({':status': 200})
    join(socket, stream)
  })
  socket.once('error', (error) => {
    log(`CONNECT ${authority}: ${error.message}`)
    refuse(stream, 502, error.message)
  })
  stream.once('close', () => {
    if (socket.connecting) socket.destroy()
  })
}

/** A port this end listens on; each connection that arrives takes a parked accept stream. */
class Listener {
  private readonly server: Server
  private readonly parked: ServerHttp2Stream[] = []
  private readonly waiting: Socket[] = []
  private failed?: string

  constructor(
    private readonly port: number,
    host: string,
    private readonly sockets: Set<Socket>,
    private readonly log: (m: string) => void,
  ) {
    this.server = createServer({allowHalfOpen: true}, (socket) => {
      socket.setNoDelay(true)
      this.sockets.add(socket)
      socket.once('close', () => this.sockets.delete(socket))
      this.waiting.push(socket)
      this.match()
    })
    this.server.on('error', (error) => {
      this.failed = error.message
      this.log(`listening on ${port}: ${error.message}`)
      for (const stream of this.parked.splice(0)) refuse(stream, 503, `cannot listen on port ${port}: ${error.message}`)
    })
    this.server.listen(port, host)
  }

  park(stream: ServerHttp2Stream): void {
    if (this.failed) {
      refuse(stream, 503, `cannot listen on port ${this.port}: ${this.failed}`)
      return
    }
    this.parked.push(stream)
    stream.once('close', () => {
      const at = this.parked.indexOf(stream)
      if (at >= 0) this.parked.splice(at, 1)
    })
    this.match()
  }

  private match(): void {
    while (this.parked.length > 0 && this.waiting.length > 0) {
      const stream = this.parked.shift() as ServerHttp2Stream
      const socket = this.waiting.shift() as Socket
      if (socket.destroyed) {
        this.parked.unshift(stream)
        continue
      }
      if (stream.destroyed) {
        this.waiting.unshift(socket)
        continue
      }
      stream.respond({':status': 200, [PEER_HEADER]: `${socket.remoteAddress}:${socket.remotePort}`})
      join(socket, stream)
    }
  }

  close(): void {
    this.server.close()
    for (const stream of this.parked.splice(0)) stream.close(constants.NGHTTP2_CANCEL)
  }
}

export type {ServerHttp2Session}
