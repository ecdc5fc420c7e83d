import type {Socket} from 'node:net'

/**
 * The control protocol between the agent and the daemon: one JSON object per line, both ways,
 * on one TCP connection the agent opens to the daemon.
 */
export type AgentMessage =
  | {type: 'hello'; token: string; interceptId: string; redirectPort: number; dialPort: number; sftpPort: number | null}
  | {type: 'ready'}
  | {type: 'failed'; message: string}
  | {type: 'dial'; id: string}
  | {type: 'pong'}

export type DaemonMessage =
  /**
   * New redirected connections go to the handler. With directPort, the handler is reachable at
   * directHost (default: the daemon's address) on that port: the agent connects to it directly and
   * uses the daemon's relay only if that is refused.
   */
  | {type: 'activate'; directPort?: number; directHost?: string}
  | {type: 'deactivate'}
  | {type: 'dial-failed'; id: string}
  | {type: 'ping'}
  | {type: 'release'}

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

/**
 * Calls onMessage for every JSON line read from the socket. Lines that are not JSON objects are
 * given to onInvalid (default: ignored).
 */
export function readMessages(socket: Socket, onMessage: (message: Record<string, unknown>) => void, onInvalid?: (line: string) => void): void {
  let buffer = ''
  socket.setEncoding('utf8')
  socket.on('data', (chunk: string) => {
    buffer += chunk
    let at: number
    while ((at = buffer.indexOf('\n')) >= 0) {
      const line = buffer.slice(0, at).trim()
      buffer = buffer.slice(at + 1)
      if (line === '') continue
      let parsed: unknown
      try {
        parsed = JSON.parse(line)
      } catch {
        onInvalid?.(line)
        continue
      }
      if (typeof parsed === 'object' && parsed !== null && typeof (parsed as {type?: unknown}).type === 'string') onMessage(parsed as Record<string, unknown>)
      else onInvalid?.(line)
    }
    if (buffer.length > MAX_LINE) {
      onInvalid?.(buffer.slice(0, 200))
      socket.destroy()
    }
  })
}

/**
 * Reads one line (the dial-back header) from a raw socket without consuming anything after it:
 * bytes after the newline are pushed back so they stay part of the stream.
 */
export function readHeaderLine(socket: Socket, timeoutMs: number): Promise<string> {
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
