import type {Duplex} from 'node:stream'

/**
 * Joins two byte streams both ways, half-close included (one side's end ends the other's writing
 * only); an error or an abrupt close of either destroys both.
 */
export function join(a: Duplex, b: Duplex): void {
  a.pipe(b)
  b.pipe(a)
  const destroyBoth = () => {
    a.destroy()
    b.destroy()
  }
  a.once('error', destroyBoth)
  b.once('error', destroyBoth)
  // a stream destroyed without ending (reset, aborted) takes the other one with it
  a.once('close', () => {
    if (!a.readableEnded) b.destroy()
  })
  b.once('close', () => {
    if (!b.readableEnded) a.destroy()
  })
}
