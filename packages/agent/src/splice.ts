import type {Socket} from 'node:net'

/**
 * Joins two sockets both ways: TCP_NODELAY on both, no buffering beyond pipe(), half-close
 * honoured (when one side ends, only that direction is ended), both destroyed on any error.
 * Both sockets must have been created with allowHalfOpen. Resolves when both are closed.
 */
export function splice(a: Socket, b: Socket): Promise<void> {
  a.setNoDelay(true)
  b.setNoDelay(true)
  const destroyBoth = () => {
    a.destroy()
    b.destroy()
  }
  a.on('error', destroyBoth)
  b.on('error', destroyBoth)
  const closed = (s: Socket) => new Promise<void>((resolve) => (s.destroyed ? resolve() : s.once('close', () => resolve())))
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
