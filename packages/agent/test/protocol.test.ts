import {createServer, connect, type Socket} from 'node:net'
import {describe, expect, it} from 'vitest'
import {readHeaderLine, splice} from '@tp/agent'

// Real sockets on loopback; no Docker.
function pair(): Promise<{client: Socket; server: Socket; close: () => void}> {
  return new Promise((resolve) => {
    const srv = createServer({allowHalfOpen: true, pauseOnConnect: true}, (server) => resolve({client, server, close: () => srv.close()}))
    let client: Socket
    srv.listen(0, '127.0.0.1', () => {
      client = connect({port: (srv.address() as {port: number}).port, host: '127.0.0.1', allowHalfOpen: true})
    })
  })
}

const readAll = (s: Socket) =>
  new Promise<string>((resolve) => {
    let text = ''
    s.on('data', (c: Buffer) => (text += c.toString()))
    s.on('end', () => resolve(text))
    s.resume()
  })

describe('dial-back header', () => {
  it('reads the id line and leaves the bytes after it in the stream', async () => {
    const {client, server, close} = await pair()
    client.write('{"id":"abc"}\nfirst bytes of the stream')
    client.end(' and the rest')
    expect(await readHeaderLine(server, 2000)).toBe('{"id":"abc"}')
    expect(await readAll(server)).toBe('first bytes of the stream and the rest')
    close()
  })

  it('gives up when no header comes in time', async () => {
    const {server, client, close} = await pair()
    await expect(readHeaderLine(server, 200)).rejects.toThrow('no header')
    client.destroy()
    close()
  })
})

describe('splice', () => {
  it('relays both ways and honours half-close in each direction separately', async () => {
    const a = await pair()
    const b = await pair()
    const done = splice(a.server, b.client)
    // b.server answers only after the request side has ended
    const request = readAll(b.server)
    a.client.end('request')
    expect(await request).toBe('request')
    const response = readAll(a.client)
    b.server.end('response after half-close')
    expect(await response).toBe('response after half-close')
    await done
    a.close()
    b.close()
  })

  it('closes the other side when one side is reset', async () => {
    const a = await pair()
    const b = await pair()
    const done = splice(a.server, b.client)
    const ended = new Promise((resolve) => b.server.on('end', resolve))
    b.server.resume()
    a.client.resetAndDestroy()
    await ended
    await done
    b.server.destroy()
    a.close()
    b.close()
  })

  it('cleans up after a peer that closed completely once the other side writes', async () => {
    const a = await pair()
    const b = await pair()
    const done = splice(a.server, b.client)
    b.server.resume()
    b.server.on('error', () => undefined)
    // a FIN looks like a half-close, so the other direction stays open...
    a.client.destroy()
    await new Promise((resolve) => b.server.once('end', resolve))
    // ...until something is written to the closed peer, which answers with a reset
    const closed = new Promise((resolve) => b.server.once('close', resolve))
    const write = () => !b.server.destroyed && b.server.write('late answer', () => setTimeout(write, 20))
    write()
    await done
    await closed
    a.close()
    b.close()
  })
})
