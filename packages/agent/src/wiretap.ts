import type {Socket} from 'node:net'
import type {Duplex} from 'node:stream'
import {splice} from './splice.js'

/** How many bytes of a connection's copy may wait for a slow handler before the copy is dropped. */
export const COPY_LIMIT_BYTES = 1 << 20
/** How long a copy may stay open after its connection closed (the handler's answer is not wanted). */
const COPY_LINGER_MS = 5000

/**
 * A copy of one connection's client bytes on its way to the handler, on a connection to it that
 * may still be opening (`copy`). Never holds anything up: written without waiting, dropped when
 * more than `limitBytes` wait for the handler (a slow handler), when the handler fails, or when
 * there is none (`copy` undefined or rejected). The handler's answers are read and dropped.
 */
export class Copy {
  private handler?: Duplex
  private dropped: boolean
  private ended = false
  private readonly waiting: Buffer[] = []
  private waitingBytes = 0

  constructor(
    copy: Promise<Duplex> | undefined,
    private readonly limitBytes = COPY_LIMIT_BYTES,
  ) {
    this.dropped = copy === undefined
    copy?.then(
      (h) => {
        if (this.dropped) {
          h.destroy()
          return
        }
        this.handler = h
        h.on('error', () => this.drop())
        // its answers are not wanted
        h.on('data', () => undefined)
        for (const chunk of this.waiting.splice(0)) h.write(chunk)
        this.waitingBytes = 0
        if (this.ended) this.close()
      },
      () => this.drop(),
    )
  }

  write(chunk: Buffer): void {
    if (this.dropped || this.ended) return
    const handler = this.handler
    if (!handler) {
      this.waitingBytes += chunk.length
      if (this.waitingBytes > this.limitBytes) this.drop()
      else this.waiting.push(chunk)
      return
    }
    if (handler.writableLength + chunk.length > this.limitBytes) this.drop()
    else handler.write(chunk)
  }

  /** The client's bytes are over: the handler's connection ends (and goes a while later). */
  end(): void {
    if (this.ended) return
    this.ended = true
    if (this.handler) this.close()
  }

  drop(): void {
    this.dropped = true
    this.waiting.length = 0
    this.handler?.destroy()
  }

  private close(): void {
    const handler = this.handler
    if (!handler || handler.destroyed) return
    handler.end()
    setTimeout(() => handler.destroy(), COPY_LINGER_MS).unref()
  }
}

/**
 * One connection of a wiretap: the client's bytes go on to `next` (the next agent or the app),
 * which answers the client; a copy of what the client sends goes to the handler (see Copy).
 * Resolves when the connection closes.
 */
export function tap(client: Socket, next: Duplex, copy: Promise<Duplex> | undefined, limitBytes = COPY_LIMIT_BYTES): Promise<void> {
  const sink = new Copy(copy, limitBytes)
  // the client's data flows once splice pipes it; this listener sees each chunk too
  const joined = splice(client, next)
  client.on('data', (chunk: Buffer) => sink.write(chunk))
  client.once('end', () => sink.end())
  return joined.then(() => sink.end())
}
