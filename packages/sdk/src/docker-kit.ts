/**
 * Small Docker and networking idioms shared by the packages and plugins: the Engine API's status
 * code and message on an error, waiting until an object is gone, a container's log buffer as text,
 * listening on a free port, this host's IPv4 addresses.
 *
 * Structural types only: the sdk does not load dockerode (a plugin has its own copy of it, or none).
 */
import {type AddressInfo, connect} from 'node:net'
import {networkInterfaces} from 'node:os'
import {Readable, Writable} from 'node:stream'
import {setTimeout as delay} from 'node:timers/promises'

/** The HTTP status the Engine answered with (dockerode puts it on the error), else undefined (no answer at all). */
export function dockerStatusCode(error: unknown): number | undefined {
  const code = (error as {statusCode?: unknown} | null | undefined)?.statusCode
  return typeof code === 'number' ? code : undefined
}

/** The Engine answered 404: no such container, image, volume, network or plugin. */
export function isNotFound(error: unknown): boolean {
  return dockerStatusCode(error) === 404
}

/** The Engine answered 409: a conflict (the name is taken, a removal is already in progress, …). */
export function isConflict(error: unknown): boolean {
  return dockerStatusCode(error) === 409
}

/** Docker's own message (the JSON body's `message`), else the error's message, trimmed. */
export function dockerMessage(error: unknown): string {
  const e = error as {json?: {message?: unknown} | null; message?: unknown} | null | undefined
  const fromJson = e?.json?.message
  if (typeof fromJson === 'string' && fromJson.trim() !== '') return fromJson.trim()
  if (typeof e?.message === 'string') return e.message.trim()
  return String(error).trim()
}

/** Resolves after `ms` milliseconds (early, with an AbortError, when `signal` aborts). */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return delay(ms, undefined, signal ? {signal} : undefined)
}

export interface WaitUntilGoneOptions {
  /** How long to wait at most. */
  timeoutMs: number
  /** How long between two inspects (default 100 ms). */
  pollMs?: number
}

/**
 * Polls `inspect` (e.g. `() => container.inspect()`) until it rejects with 404. Resolves true once
 * the object is gone, false if it is still there after `timeoutMs`; any other error is thrown.
 */
export async function waitUntilGone(inspect: () => Promise<unknown>, options: WaitUntilGoneOptions): Promise<boolean> {
  const deadline = Date.now() + options.timeoutMs
  const pollMs = options.pollMs ?? 100
  for (;;) {
    try {
      await inspect()
    } catch (error) {
      if (isNotFound(error)) return true
      throw error
    }
    if (Date.now() >= deadline) return false
    await sleep(Math.max(0, Math.min(pollMs, deadline - Date.now())))
  }
}

/** What demuxLogs needs of a dockerode client: its modem's demultiplexer. */
export interface DockerDemuxer {
  modem: {demuxStream(stream: NodeJS.ReadableStream, stdout: NodeJS.WritableStream, stderr: NodeJS.WritableStream): void}
}

/**
 * A non-TTY container's `logs()` buffer (8-byte frame headers before each chunk) as text, stdout and
 * stderr interleaved as they came, through dockerode's own `modem.demuxStream`. A TTY container's
 * buffer (no headers) comes back as it is.
 */
export async function demuxLogs(docker: DockerDemuxer, logs: Buffer | string): Promise<string> {
  const buffer = Buffer.from(logs)
  // shorter than a frame header: demuxStream would keep it waiting for the rest
  if (buffer.length < 8) return buffer.toString('utf8')
  const chunks: Buffer[] = []
  const sink = () =>
    new Writable({
      write(chunk: Buffer, _encoding, done) {
        chunks.push(Buffer.from(chunk))
        done()
      },
    })
  const source = Readable.from([buffer])
  const ended = new Promise<void>((resolve, reject) => {
    source.once('end', resolve)
    source.once('error', reject)
  })
  docker.modem.demuxStream(source, sink(), sink())
  await ended
  return Buffer.concat(chunks).toString('utf8')
}

/** What listen needs of a server (node:net, node:http and node:https servers all fit). */
export interface ListeningServer {
  listen(port: number, host: string, callback: () => void): unknown
  once(event: 'error', listener: (error: Error) => void): unknown
  off(event: 'error', listener: (error: Error) => void): unknown
  address(): AddressInfo | string | null
}

/** Listens on `host` (default all IPv4 interfaces) and `port` (default 0: a free one); resolves with the port. */
export function listen(server: ListeningServer, host = '0.0.0.0', port = 0): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, host, () => {
      server.off('error', reject)
      const address = server.address()
      resolve(typeof address === 'object' && address ? address.port : port)
    })
  })
}

/**
 * Opens a TCP connection and closes it again: undefined when host:port took it, else why not (the
 * socket's error, or ETIMEDOUT after `timeoutMs`). Whether something listens, without talking to it.
 */
export function probeTcp(host: string, port: number, timeoutMs: number): Promise<NodeJS.ErrnoException | undefined> {
  return new Promise((resolve) => {
    const socket = connect({host, port})
    const timer = setTimeout(() => {
      socket.destroy()
      resolve(Object.assign(new Error(`no answer within ${timeoutMs} ms`), {code: 'ETIMEDOUT'}))
    }, timeoutMs)
    socket.once('connect', () => {
      clearTimeout(timer)
      socket.destroy()
      resolve(undefined)
    })
    socket.once('error', (error: NodeJS.ErrnoException) => {
      clearTimeout(timer)
      socket.destroy()
      resolve(error)
    })
  })
}

/** This host's (or network namespace's) non-internal IPv4 addresses, in interface order. */
export function ipv4Addresses(): string[] {
  const out: string[] = []
  for (const addresses of Object.values(networkInterfaces())) {
    for (const address of addresses ?? []) if (address.family === 'IPv4' && !address.internal) out.push(address.address)
  }
  return out
}
