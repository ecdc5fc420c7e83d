// Client helpers of the agent tests: connections to a workload's port 80 and waiting for a state.
import {request} from 'node:http'
import {connect, type Socket} from 'node:net'

/** Opens a TCP connection to the workload's port 80 and waits until it is established. */
export function open(host: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({host, port: 80, allowHalfOpen: true})
    s.once('connect', () => resolve(s))
    s.once('error', reject)
  })
}

/** Writes `data`, half-closes (unless told not to), and resolves with everything read until the peer ends. */
export function converse(socket: Socket, data: string | Buffer, halfClose = true): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    socket.on('data', (c: Buffer) => chunks.push(c))
    socket.once('end', () => {
      socket.end()
      resolve(Buffer.concat(chunks).toString('utf8'))
    })
    socket.once('error', reject)
    socket.write(data)
    if (halfClose) socket.end()
  })
}

/** GET http://host/ with a fresh connection (and `headers`); resolves with the body, rejects on any failure. */
export function get(host: string, timeoutMs = 3000, headers: Record<string, string> = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request({host, port: 80, path: '/', agent: false, timeout: timeoutMs, headers}, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (c) => (body += c))
      res.on('end', () => (res.statusCode === 200 ? resolve(body.trim()) : reject(new Error(`HTTP ${res.statusCode}`))))
      res.on('error', reject)
    })
    req.on('timeout', () => req.destroy(new Error('timeout')))
    req.on('error', reject)
    req.end()
  })
}

export type Eventually = <T>(what: string, fn: () => Promise<T> | T, ok: (v: T) => boolean, timeoutMs?: number) => Promise<T>

/** `eventually(what, fn, ok)`: polls fn until ok says yes; on a timeout it throws with the last value and `context()` (e.g. the agent's log). */
export function eventuallyWith(context: () => string): Eventually {
  return async (what, fn, ok, timeoutMs = 10_000) => {
    const deadline = Date.now() + timeoutMs
    let last: unknown
    while (Date.now() < deadline) {
      try {
        const value = await fn()
        if (ok(value)) return value
        last = value
      } catch (error) {
        last = error
      }
      await new Promise((r) => setTimeout(r, 50))
    }
    const shown = last instanceof Error ? String(last) : (JSON.stringify(last) ?? String(last))
    throw new Error(`${what}: still ${shown} after ${timeoutMs} ms\n${context()}`)
  }
}
