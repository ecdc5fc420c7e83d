import type {Socket} from 'node:net'
import type {Duplex} from 'node:stream'
import {splice} from './splice.js'

/** How many bytes of a connection's copy may wait for a slow handler before the copy is dropped. */
export const COPY_LIMIT_BYTES = 1 << 20
/** How long a copy may stay open after its connection closed (the handler's answer is not wanted). */
const COPY_LINGER_MS = 5000

/**
 * One connection of a wiretap: the client's bytes go on to `next` (the next agent or the app),
 * which answers the client; a copy of what the client sends goes to the handler, whose answers
 * are read and dropped. The copy never holds the client up: it is written without waiting, and
 * dropped when more than `limitBytes` wait for the handler (a slow handler), when the handler
 * fails, or when there is none (`copy` undefined or rejected). Resolves when the connection closes.
 */
export function tap(client: Socket, next: Duplex, copy: Promise<Duplex> | undefined, limitBytes = COPY_LIMIT_BYTES): Promise<void> {
  let handler: Duplex | undefined
  let dropped = copy === undefined
  let clientEnded = false
  const waiting: Buffer[] = []
  let waitingBytes = 0
  const drop = () => {
    dropped = true
    waiting.length = 0
    handler?.destroy()
  }
  const toCopy = (chunk: Buffer) => {
    if (dropped) return
    if (!handler) {
      waitingBytes += chunk.length
      if (waitingBytes > limitBytes) drop()
      else waiting.push(chunk)
      return
    }
    if (handler.writableLength + chunk.length > limitBytes) drop()
    else handler.write(chunk)
  }
  copy?.then(
    (h) => {
      if (dropped) {
        h.destroy()
        return
      }
      handler = h
      h.on('error', drop)
      // its answers are not wanted
      h.on('data', () => undefined)
      for (const chunk of waiting.splice(0)) h.write(chunk)
      if (clientEnded) h.end()
    },
    () => drop(),
  )
  // the client's data flows once splice pipes it; this listener sees each chunk too
  const joined = splice(client, next)
  client.on('data', toCopy)
  client.once('end', () => {
    clientEnded = true
    handler?.end()
  })
  return joined.then(() => {
    if (!handler || handler.destroyed) return
    handler.end()
    setTimeout(() => handler?.destroy(), COPY_LINGER_MS).unref()
  })
}
