import {randomBytes} from 'node:crypto'
import {type AddressInfo, type Server, type Socket, connect, createServer} from 'node:net'
import {afterEach, describe, expect, it} from 'vitest'
import {type Accepted, Tunnel, listeningPorts, serveTunnel} from '@tp/tunnel'

/**
 * Both ends of a tunnel in this process, joined by a loopback TCP connection that a test can
 * freeze (a laptop that sleeps: nothing passes either way, nothing is closed). No Docker.
 */

const servers: Server[] = []
const cleanups: Array<() => void> = []
afterEach(() => {
  for (const c of cleanups.splice(0)) c()
  for (const s of servers.splice(0)) s.close()
})

function listen(server: Server): Promise<number> {
  servers.push(server)
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)))
}

/** An echo server: what arrives goes back; its end ends the echo's writing. */
async function echoServer(): Promise<number> {
  return listen(createServer({allowHalfOpen: true}, (s) => s.pipe(s)))
}

/** The two ends of a tunnel over a freezable link. */
async function tunnelPair(options: {pingMs?: number; pingTimeoutMs?: number} = {}) {
  // far end ← proxy ← near end: the relay's stdin/stdout is `far`, the daemon's attach stream is `near`
  let frozen = false
  let farSocket!: Socket
  const farReady = new Promise<Socket>((resolve) => void listen(createServer((s) => resolve(s))).then((port) => (farSocket = connect(port, '127.0.0.1'))))
  const farProxySide = await farReady
  let nearSocket!: Socket
  const nearReady = new Promise<Socket>((resolve) => void listen(createServer((s) => resolve(s))).then((port) => (nearSocket = connect(port, '127.0.0.1'))))
  const nearProxySide = await nearReady
  for (const s of [farSocket, nearSocket, farProxySide, nearProxySide]) s.on('error', () => undefined) // reset when a test ends
  // bytes, and a close, pass unless the link is frozen
  for (const [from, to] of [
    [farProxySide, nearProxySide],
    [nearProxySide, farProxySide],
  ]) {
    from.on('data', (c: Buffer) => (frozen ? undefined : to.write(c)))
    from.on('close', () => (frozen ? undefined : to.destroy()))
  }
  const logs: string[] = []
  const farEnded = serveTunnel(farSocket, {log: (m) => logs.push(m), listenHost: '127.0.0.1', ...options})
  const tunnel = new Tunnel(nearSocket, options)
  cleanups.push(() => {
    tunnel.close()
    for (const s of [farSocket, nearSocket, farProxySide, nearProxySide]) s.destroy()
  })
  return {tunnel, farEnded, logs, freeze: () => (frozen = true)}
}

function collect(stream: NodeJS.ReadableStream): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    stream.on('data', (c: Buffer) => chunks.push(c))
    stream.on('end', () => resolve(Buffer.concat(chunks)))
    stream.on('error', reject)
  })
}

async function freePort(): Promise<number> {
  const server = createServer()
  const port = await listen(server)
  server.close()
  servers.splice(servers.indexOf(server), 1)
  return port
}

describe('tunnel', () => {
  it('carries a connection from the far end, whole and in order, half-close included', async () => {
    const echo = await echoServer()
    const {tunnel} = await tunnelPair()
    const stream = await tunnel.connect('127.0.0.1', echo)
    const payload = randomBytes(5 * 1024 * 1024)
    const back = collect(stream)
    stream.end(payload)
    expect((await back).equals(payload)).toBe(true)
  })

  it('says why a connection could not be made at the far end', async () => {
    const {tunnel} = await tunnelPair()
    await expect(tunnel.connect('127.0.0.1', await freePort())).rejects.toThrow(/ECONNREFUSED/)
  })

  it('carries many connections at once, each its own', async () => {
    const echo = await echoServer()
    const {tunnel} = await tunnelPair()
    const results = await Promise.all(
      Array.from({length: 40}, async () => {
        const payload = randomBytes(256 * 1024)
        const stream = await tunnel.connect('127.0.0.1', echo)
        const back = collect(stream)
        stream.end(payload)
        return (await back).equals(payload)
      }),
    )
    expect(results.every(Boolean)).toBe(true)
  })

  it('takes the connections that arrive at the far end, with their peer, both ways', async () => {
    const {tunnel} = await tunnelPair()
    const port = await freePort()
    const accepted: Accepted[] = []
    tunnel.listen(port, (a) => {
      accepted.push(a)
      a.stream.pipe(a.stream) // an echo on the near end
    })
    // the far end's listener comes up once the first accept arrives there
    let client: Socket | undefined
    for (let i = 0; i < 50 && !client; i++) {
      client = await new Promise<Socket | undefined>((resolve) => {
        const s = connect(port, '127.0.0.1')
        s.once('connect', () => resolve(s))
        s.once('error', () => setTimeout(() => resolve(undefined), 20))
      })
    }
    const socket = client as Socket
    const localPort = socket.localPort
    const back = collect(socket)
    socket.end('hello through the tunnel')
    expect((await back).toString()).toBe('hello through the tunnel')
    expect(accepted).toHaveLength(1)
    expect(accepted[0].peer).toEqual({address: '127.0.0.1', port: localPort})
  })

  it('both ends call it dead when the link freezes, and close what it carried', async () => {
    const echo = await echoServer()
    const {tunnel, farEnded, freeze} = await tunnelPair({pingMs: 100, pingTimeoutMs: 400})
    const stream = await tunnel.connect('127.0.0.1', echo)
    const closed = new Promise((resolve) => stream.once('close', resolve))
    freeze()
    expect(await farEnded).toMatch(/did not answer a ping/)
    expect(await tunnel.closed).toMatch(/did not answer a ping|closed/)
    await closed
    await expect(tunnel.connect('127.0.0.1', echo)).rejects.toThrow(/tunnel is closed/)
  })

  it('the far end ends at once when the near end closes the tunnel', async () => {
    const {tunnel, farEnded} = await tunnelPair({pingMs: 60_000, pingTimeoutMs: 60_000})
    tunnel.close('done')
    expect(await farEnded).toMatch(/closed/)
  })
})

describe('what listens at the far end', () => {
  it("reads a process's listening TCP ports from /proc, but those on loopback only", async () => {
    const open = createServer()
    servers.push(open)
    const openPort = await new Promise<number>((resolve) => open.listen(0, '0.0.0.0', () => resolve((open.address() as AddressInfo).port)))
    const loopbackOnly = await echoServer()
    const {tunnel} = await tunnelPair()
    const ports = await tunnel.listeningPorts([process.pid, 999_999_999])
    expect(ports.get(process.pid)).toContain(openPort)
    expect(ports.get(process.pid)).not.toContain(loopbackOnly)
    // a process it cannot see has no ports
    expect(ports.get(999_999_999)).toEqual([])
  })

  it('parses /proc/net/tcp and tcp6 tables', () => {
    const table = [
      '  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode',
      '   0: 00000000:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0',
      '   1: 0B00007F:A0A5 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2 1 0 100 0 0 10 0',
      '   2: 0200A8C0:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 3 1 0 100 0 0 10 0',
      '   3: 0200A8C0:0050 0300A8C0:C350 01 00000000:00000000 00:00000000 00000000     0        0 4 1 0 100 0 0 10 0',
      '   0: 00000000000000000000000000000000:1F91 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 5 1',
      '   1: 00000000000000000000000001000000:1F92 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 6 1',
    ].join('\n')
    // 80 on any address, 8080 on its own, 8081 on any IPv6; not Docker's DNS on 127.0.0.11, an established connection or ::1
    expect(listeningPorts(table)).toEqual([80, 8080, 8081])
  })
})
