/** A wiretap's connection (tap): the next hop answers the client; the handler's copy never holds it up. */
import {type AddressInfo, connect, createServer, type Server, type Socket} from 'node:net'
import type {Duplex} from 'node:stream'
import {afterEach, describe, expect, it} from 'vitest'
import {tap} from '../dist/wiretap.js'

const servers: Server[] = []
afterEach(() => {
  for (const s of servers.splice(0)) s.close()
})

async function listen(onConnection: (socket: Socket) => void): Promise<number> {
  const server = createServer({allowHalfOpen: true}, onConnection)
  servers.push(server)
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return (server.address() as AddressInfo).port
}

const dial = (port: number) =>
  new Promise<Socket>((resolve, reject) => {
    const s = connect({host: '127.0.0.1', port, allowHalfOpen: true})
    s.once('connect', () => resolve(s))
    s.once('error', reject)
  })

/** An echo server (the "app"), a tapped front door, and what the client got back. */
async function tapped(copy: () => Promise<Duplex> | undefined, send: Buffer, limit?: number): Promise<Buffer> {
  const app = await listen((s) => s.pipe(s))
  const door = await listen((client) => void dial(app).then((next) => tap(client, next, copy(), limit)))
  const client = await dial(door)
  const got: Buffer[] = []
  client.on('data', (c: Buffer) => got.push(c))
  client.end(send)
  await new Promise((resolve) => client.once('close', resolve))
  return Buffer.concat(got)
}

describe('wiretap', () => {
  it('copies what the client sends to the handler; the app answers, the handler answer is dropped', async () => {
    const copied: Buffer[] = []
    const handler = await listen((s) => {
      s.on('data', (c: Buffer) => copied.push(c))
      s.on('end', () => s.end('the handler answers this, nobody sees it'))
    })
    const got = await tapped(() => dial(handler), Buffer.from('GET / HTTP/1.1\r\n\r\n'))
    expect(got.toString()).toBe('GET / HTTP/1.1\r\n\r\n')
    await expect.poll(() => Buffer.concat(copied).toString()).toBe('GET / HTTP/1.1\r\n\r\n')
  })

  it('a handler that never reads: the copy is dropped past the limit, the client gets all its answer', async () => {
    // counted from the start (the socket paused, so nothing is read until the client is answered)
    let copied = 0
    let handlerSocket: Socket | undefined
    let handlerGone: Promise<unknown> = Promise.resolve()
    const handler = await listen((s) => {
      handlerSocket = s
      s.on('error', () => undefined)
      handlerGone = new Promise((resolve) => {
        s.once('end', resolve)
        s.once('close', resolve)
      })
      s.on('data', (c: Buffer) => (copied += c.length))
      s.pause()
    })
    const big = Buffer.alloc(8 << 20, 7)
    const got = await tapped(() => dial(handler), big, 64 << 10)
    expect(got.length).toBe(big.length)
    // what reached the handler before its copy was dropped: far from all of it, then the end
    handlerSocket?.resume()
    await handlerGone
    expect(copied).toBeLessThan(big.length / 2)
  })

  it('no handler there (refused) or none asked for: the client is answered alike', async () => {
    const closed = await listen((s) => s.destroy())
    const refusedPort = (() => {
      const p = (servers[servers.length - 1].address() as AddressInfo).port
      servers.pop()?.close()
      return p
    })()
    expect((await tapped(() => dial(refusedPort), Buffer.from('one'))).toString()).toBe('one')
    expect((await tapped(() => dial(closed), Buffer.from('two'))).toString()).toBe('two')
    expect((await tapped(() => undefined, Buffer.from('three'))).toString()).toBe('three')
  })
})
