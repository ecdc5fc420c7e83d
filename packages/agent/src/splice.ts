import type {Duplex} from 'node:stream'

/**
 * Joins two byte streams both ways: TCP_NODELAY on sockets, no buffering beyond pipe(), half-close
 * honoured (when one side ends, only that direction is ended), both destroyed on any error.
 * Sockets must have been created with allowHalfOpen. Resolves when both are closed. A stream may
 * be a tunnel's (a connection carried to a cluster on another machine).
 */
export function splice(a: Duplex, b: Duplex): Promise<void> {
  noDelay(a)
  noDelay(b)
  const destroyBoth = () => {
    a.destroy()
    b.destroy()
  }
  a.on('error', destroyBoth)
  b.on('error', destroyBoth)
  const closed = (s: Duplex) => new Promise<void>((resolve) => (s.destroyed ? resolve() : s.once('close', () => resolve())))
  // a side that closes without having ended its stream (reset, abort) takes the other with it,
  // instead of leaving it half-open forever
  a.once('close', () => !a.readableEnded && b.destroy())
  b.once('close', () => !b.readableEnded && a.destroy())
  a.pipe(b)
  b.pipe(a)
  a.resume()
  b.resume()
  return Promise.all([closed(a), closed(b)]).then(() => undefined)
}

function noDelay(stream: Duplex): void {
  const socket = stream as Duplex & {setNoDelay?: (on: boolean) => void}
  socket.setNoDelay?.(true)
}
