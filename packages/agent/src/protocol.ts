import type {Duplex} from 'node:stream'

/**
 * The control protocol between the agent and the daemon: one JSON object per line, both ways,
 * on one TCP connection the agent opens to the daemon.
 */
export type AgentMessage =
  /** upMs (hello, ready): the agent's process uptime when it sent it, for the daemon's timeline (TP_DEBUG) */
  | {type: 'hello'; token: string; interceptId: string; redirectPort: number; dialPort: number; sftpPort: number | null; guardPort?: number; upMs?: number}
  | {type: 'ready'; upMs?: number}
  | {type: 'failed'; message: string}
  | {type: 'dial'; id: string}
  | {type: 'pong'; counters?: AgentCounters}
  /** After a deactivate: no connection to the handler is open any more (the hand-back has drained). */
  | {type: 'drained'}

/**
 * What the agent's own process has carried since it started (in each pong): redirected connections
 * it passed to the handler (directly or through the daemon) and to the app, and whether new
 * connections to the handler take the kernel path (then they pass through no process of tp's).
 */
export interface AgentCounters {
  toHandler: number
  toApp: number
  kernelPath: boolean
}

function isCount(value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= 0
}

function decodeCounters(value: unknown): AgentCounters | undefined {
  if (typeof value !== 'object' || value === null) return undefined
  const {toHandler, toApp, kernelPath} = value as Record<string, unknown>
  return isCount(toHandler) && isCount(toApp) && typeof kernelPath === 'boolean' ? {toHandler, toApp, kernelPath} : undefined
}

export type DaemonMessage =
  /**
   * New redirected connections go to the handler. With directPort, the handler is reachable at
   * directHost (default: the daemon's address) on that port: the agent connects to it directly and
   * uses the daemon's relay only if that is refused.
   */
  {type: 'activate'; directPort?: number; directHost?: string} | {type: 'deactivate'} | {type: 'dial-failed'; id: string} | {type: 'ping'} | {type: 'release'}

/** The first line the daemon writes on a dial-back connection. */
export interface DialBackHeader {
  id: string
}

/**
 * The first line of a spare connection: the daemon opens a few ahead of time while an intercept is
 * active, so a new redirected connection needs no dial round trip. The token proves it is the daemon.
 */
export interface SpareHeader {
  spare: string
}

/** What the agent writes on a spare connection when it puts it to use; the stream follows. */
export interface GoHeader {
  go: true
}

export function encode(message: AgentMessage | DaemonMessage | DialBackHeader | SpareHeader | GoHeader): string {
  return `${JSON.stringify(message)}\n`
}

/** Longest line accepted; a peer that sends more without a newline is not speaking this protocol. */
export const MAX_LINE = 64 * 1024

type Fields = Record<string, unknown>

function isPort(value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= 1 && value <= 65_535
}

function envelope(value: unknown): Fields | undefined {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && typeof (value as Fields).type === 'string' ? (value as Fields) : undefined
}

/**
 * A message from the agent, validated: the typed message (only its known fields), or undefined if
 * `value` is not one (unknown type, a field missing or of the wrong type).
 */
export function decodeAgentMessage(value: unknown): AgentMessage | undefined {
  const m = envelope(value)
  switch (m?.type) {
    case 'hello': {
      const {token, interceptId, redirectPort, dialPort, sftpPort, guardPort, upMs} = m
      if (typeof token !== 'string' || typeof interceptId !== 'string' || !isPort(redirectPort) || !isPort(dialPort)) return undefined
      if (sftpPort !== undefined && sftpPort !== null && !isPort(sftpPort)) return undefined
      if (guardPort !== undefined && !isPort(guardPort)) return undefined
      const hello: Extract<AgentMessage, {type: 'hello'}> = {type: 'hello', token, interceptId, redirectPort, dialPort, sftpPort: sftpPort ?? null}
      if (guardPort !== undefined) hello.guardPort = guardPort
      // only a timing: a wrong one is left out, not a reason to refuse the agent
      if (isCount(upMs)) hello.upMs = upMs
      return hello
    }
    case 'ready':
      return isCount(m.upMs) ? {type: 'ready', upMs: m.upMs} : {type: 'ready'}
    case 'drained':
      return {type: m.type}
    case 'pong': {
      if (m.counters === undefined) return {type: 'pong'}
      const counters = decodeCounters(m.counters)
      return counters ? {type: 'pong', counters} : undefined
    }
    case 'failed':
      return typeof m.message === 'string' ? {type: 'failed', message: m.message} : undefined
    case 'dial':
      return typeof m.id === 'string' ? {type: 'dial', id: m.id} : undefined
    default:
      return undefined
  }
}

/** A message from the daemon, validated (as decodeAgentMessage). */
export function decodeDaemonMessage(value: unknown): DaemonMessage | undefined {
  const m = envelope(value)
  switch (m?.type) {
    case 'activate':
      if (m.directPort === undefined || m.directPort === null) return {type: 'activate'}
      if (!isPort(m.directPort)) return undefined
      if (m.directHost === undefined) return {type: 'activate', directPort: m.directPort}
      return typeof m.directHost === 'string' && m.directHost !== '' ? {type: 'activate', directPort: m.directPort, directHost: m.directHost} : undefined
    case 'deactivate':
    case 'ping':
    case 'release':
      return {type: m.type}
    case 'dial-failed':
      return typeof m.id === 'string' ? {type: 'dial-failed', id: m.id} : undefined
    default:
      return undefined
  }
}

/**
 * Why a line was not delivered: `not-protocol`, it is not a JSON object with a string `type` (or a
 * line too long: the socket is then destroyed); `unknown-message`, it is one, but not a message
 * this side knows (a newer peer, a field of the wrong type).
 */
export type InvalidLine = 'not-protocol' | 'unknown-message'

/**
 * Reads JSON lines from the socket, decodes each once with `decode` (decodeAgentMessage or
 * decodeDaemonMessage) and calls onMessage with the typed message. Lines that do not decode are
 * given to onInvalid (default: ignored).
 */
export function readMessages<M>(
  socket: Duplex,
  decode: (value: unknown) => M | undefined,
  onMessage: (message: M) => void,
  onInvalid?: (line: string, why: InvalidLine) => void,
): void {
  let buffer = ''
  socket.setEncoding('utf8')
  socket.on('data', (chunk: string) => {
    buffer += chunk
    for (let at = buffer.indexOf('\n'); at >= 0; at = buffer.indexOf('\n')) {
      const line = buffer.slice(0, at).trim()
      buffer = buffer.slice(at + 1)
      if (line === '') continue
      let parsed: unknown
      try {
        parsed = JSON.parse(line)
      } catch {
        onInvalid?.(line, 'not-protocol')
        continue
      }
      if (!envelope(parsed)) {
        onInvalid?.(line, 'not-protocol')
        continue
      }
      const message = decode(parsed)
      if (message === undefined) onInvalid?.(line, 'unknown-message')
      else onMessage(message)
    }
    if (buffer.length > MAX_LINE) {
      onInvalid?.(buffer.slice(0, 200), 'not-protocol')
      socket.destroy()
    }
  })
}

/**
 * Reads one line (the dial-back header) from a raw socket without consuming anything after it:
 * bytes after the newline are pushed back so they stay part of the stream.
 */
export function readHeaderLine(socket: Duplex, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let buffer = Buffer.alloc(0)
    // timeoutMs 0: wait as long as the socket lives (an idle spare connection)
    const timer = timeoutMs > 0 ? setTimeout(() => finish(new Error(`no header within ${timeoutMs} ms`)), timeoutMs) : undefined
    const onData = (chunk: Buffer) => {
      buffer = Buffer.concat([buffer, chunk])
      const at = buffer.indexOf(0x0a)
      if (at >= 0) {
        const rest = buffer.subarray(at + 1)
        finish(undefined, buffer.subarray(0, at).toString('utf8'))
        if (rest.length > 0) socket.unshift(rest)
      } else if (buffer.length > MAX_LINE) finish(new Error('header too long'))
    }
    const onEnd = () => finish(new Error('closed before the header'))
    function finish(error?: Error, line?: string) {
      clearTimeout(timer)
      socket.off('data', onData)
      socket.off('end', onEnd)
      socket.off('error', onEnd)
      socket.off('close', onEnd)
      socket.pause()
      if (error) reject(error)
      else resolve(line!)
    }
    socket.on('data', onData)
    socket.on('end', onEnd)
    socket.on('error', onEnd)
    socket.on('close', onEnd)
    // a socket accepted with pauseOnConnect does not start flowing by itself
    socket.resume()
  })
}
