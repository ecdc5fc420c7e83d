/**
 * A personal intercept's HTTP/1.1 path, end to end on loopback: crafted bytes from a client
 * through HttpRouter to two raw servers (the handler, the workload) and back. What each side
 * receives, and what the client reads, byte for byte.
 */
import {type AddressInfo, connect, createServer, type Server, type Socket} from 'node:net'
import {afterEach, describe, expect, it} from 'vitest'
import {HttpRouter, parseFilter} from '../dist/http-filter.js'
import {bodyFramer, headLength, parseRequestHead, requestFraming} from '../dist/http1-framing.js'

/** What a raw server answers to one request (its head and body as text): bytes, or null to say nothing. */
type Answer = (request: string, socket: Socket, n: number) => string | null

interface Raw {
  server: Server
  port: number
  /** Every byte each connection received, in order of connection. */
  received: string[]
  connections: number
}

/** A server that splits what it receives into requests (its own reading) and answers each with `answer`. */
async function rawServer(answer: Answer): Promise<Raw> {
  const raw: Raw = {server: createServer({allowHalfOpen: true}), port: 0, received: [], connections: 0}
  raw.server.on('connection', (socket) => {
    const index = raw.connections++
    raw.received[index] = ''
    let buf = Buffer.alloc(0)
    let served = 0
    socket.on('error', () => undefined)
    socket.on('end', () => socket.end())
    socket.on('data', (chunk: Buffer) => {
      raw.received[index] += chunk.toString('latin1')
      buf = Buffer.concat([buf, chunk])
      for (;;) {
        const length = headLength(buf)
        if (length < 0) return
        const framing = requestFraming(parseRequestHead(buf, length))
        const end = bodyFramer(framing).feed(buf, length)
        if (end < 0) return
        const text = buf.subarray(0, end).toString('latin1')
        buf = buf.subarray(end)
        const reply = answer(text, socket, served++)
        if (reply !== null && !socket.destroyed) socket.write(reply)
      }
    })
  })
  await new Promise<void>((resolve) => raw.server.listen(0, '127.0.0.1', resolve))
  raw.port = (raw.server.address() as AddressInfo).port
  return raw
}

const ok = (body: string, extra = '') => `HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\n${extra}\r\n${body}`

interface Setup {
  handler: Raw
  next: Raw
  port: number
  inFlight: () => number
  setClosing: (on: boolean) => void
  router: InstanceType<typeof HttpRouter>
  logs: string[]
}

const cleanups: Array<() => void> = []
afterEach(() => {
  for (const cleanup of cleanups.splice(0)) cleanup()
})

async function setup(handlerAnswer: Answer, nextAnswer: Answer, handlerDown = false, idleMs?: number): Promise<Setup> {
  const handler = await rawServer(handlerAnswer)
  const next = await rawServer(nextAnswer)
  let inFlight = 0
  let closing = false
  const logs: string[] = []
  const open = (port: number) =>
    new Promise<Socket>((resolve, reject) => {
      const socket = connect({host: '127.0.0.1', port, allowHalfOpen: true})
      socket.once('connect', () => resolve(socket))
      socket.once('error', reject)
    })
  const router = new HttpRouter({
    filter: parseFilter(JSON.stringify({headers: {'X-Dev': 'alice'}})),
    openHandler: async () => (handlerDown ? Promise.reject(new Error('connect ECONNREFUSED')) : open(handler.port)),
    openNext: () => open(next.port),
    active: () => true,
    handlerRequest: () => {
      inFlight++
      return () => inFlight--
    },
    closing: () => closing,
    log: (m) => logs.push(m),
    ...(idleMs === undefined ? {} : {idleMs}),
  })
  const front = createServer({pauseOnConnect: true, allowHalfOpen: true}, (socket) => router.take(socket))
  await new Promise<void>((resolve) => front.listen(0, '127.0.0.1', resolve))
  cleanups.push(() => {
    router.close()
    front.close()
    handler.server.close()
    next.server.close()
  })
  return {handler, next, port: (front.address() as AddressInfo).port, inFlight: () => inFlight, setClosing: (on) => (closing = on), router, logs}
}

/** A raw client: write what you like, read until some text has arrived or the connection ends. */
async function client(port: number) {
  const socket = connect({host: '127.0.0.1', port, allowHalfOpen: true})
  await new Promise((resolve) => socket.once('connect', resolve))
  let got = ''
  let ended = false
  const waiters: Array<() => void> = []
  const wake = () => {
    for (const w of waiters.splice(0)) w()
  }
  socket.on('data', (c: Buffer) => {
    got += c.toString('latin1')
    wake()
  })
  socket.on('end', () => {
    ended = true
    wake()
  })
  socket.on('close', () => {
    ended = true
    wake()
  })
  socket.on('error', () => undefined)
  cleanups.push(() => socket.destroy())
  const until = async (ok: () => boolean, what: string) => {
    const deadline = Date.now() + 3000
    while (!ok()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; got ${JSON.stringify(got)} (ended: ${ended})`)
      await new Promise<void>((resolve) => {
        waiters.push(resolve)
        setTimeout(resolve, 50)
      })
    }
  }
  return {
    socket,
    write: (text: string) => socket.write(Buffer.from(text, 'latin1')),
    got: () => got,
    ended: () => ended,
    /** Waits until `text` has arrived; returns all read so far and starts afresh. */
    async read(text: string) {
      await until(() => got.includes(text), JSON.stringify(text))
      const all = got
      got = ''
      return all
    },
    async end() {
      await until(() => ended, 'the end of the connection')
      return got
    },
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

describe('personal intercept HTTP/1.1 proxy', () => {
  it('routes each request of one keep-alive connection to its side, its bytes unchanged, one connection per side', async () => {
    const s = await setup(
      () => ok('handler'),
      () => ok('workload'),
    )
    const c = await client(s.port)
    const alice = 'GET /a HTTP/1.1\r\nHost: web\r\nx-DEV: alice\r\nX-Odd-Case:  kept  \r\n\r\n'
    const other = 'GET /b HTTP/1.1\r\nHost: web\r\nX-Dev: bob\r\n\r\n'
    for (const [request, answer] of [
      [alice, 'handler'],
      [other, 'workload'],
      [alice, 'handler'],
      [other, 'workload'],
    ]) {
      c.write(request as string)
      expect(await c.read(answer as string)).toBe(ok(answer as string))
    }
    await sleep(20)
    expect(s.handler.received).toEqual([alice + alice])
    expect(s.next.received).toEqual([other + other])
    expect(s.inFlight()).toBe(0)
  })

  it('passes a chunked request body split across writes, and a chunked answer with trailers, byte for byte', async () => {
    const answer = 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: Grpc-Status\r\n\r\n4\r\nwiki\r\n5;x=y\r\npedia\r\n0\r\nGrpc-Status: 0\r\n\r\n'
    const s = await setup(
      () => answer,
      () => ok('workload'),
    )
    const c = await client(s.port)
    const request = 'POST /up HTTP/1.1\r\nX-Dev: alice\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n10\r\n0123456789abcdef\r\n0\r\nX-T: 1\r\n\r\n'
    for (const piece of [request.slice(0, 20), request.slice(20, 60), request.slice(60, 75), request.slice(75)]) {
      c.write(piece)
      await sleep(10)
    }
    expect(await c.read('Grpc-Status: 0\r\n\r\n')).toBe(answer)
    // the same connection goes on: the next request (no header) reaches the workload
    c.write('GET / HTTP/1.1\r\n\r\n')
    expect(await c.read('workload')).toBe(ok('workload'))
    expect(s.handler.received).toEqual([request])
  })

  it('carries a large upload and a large answer whole', async () => {
    const size = 2 * 1024 * 1024
    const s = await setup(
      (request) => ok('x'.repeat(request.length)),
      () => ok('workload'),
    )
    const c = await client(s.port)
    const head = `PUT /big HTTP/1.1\r\nX-Dev: alice\r\nContent-Length: ${size}\r\n\r\n`
    c.write(head + 'y'.repeat(size))
    const answer = await c.read(`${'x'.repeat(64)}`)
    const expected = ok('x'.repeat(head.length + size))
    const all =
      answer +
      (await (async () => {
        let more = ''
        while (answer.length + more.length < expected.length) more += await c.read('x')
        return more
      })())
    expect(all.length).toBe(expected.length)
    expect(all === expected).toBe(true)
  })

  it('frames answers without a body (HEAD, 204, 304) and a Content-Length one, in order, on one connection', async () => {
    const s = await setup(
      () => null,
      (request) =>
        request.startsWith('HEAD')
          ? 'HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n'
          : request.includes('/204')
            ? 'HTTP/1.1 204 No Content\r\n\r\n'
            : request.includes('/304')
              ? 'HTTP/1.1 304 Not Modified\r\nContent-Length: 50\r\n\r\n'
              : ok('done'),
    )
    const c = await client(s.port)
    for (const [request, answer] of [
      ['HEAD / HTTP/1.1\r\n\r\n', 'HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n'],
      ['GET /204 HTTP/1.1\r\n\r\n', 'HTTP/1.1 204 No Content\r\n\r\n'],
      ['GET /304 HTTP/1.1\r\n\r\n', 'HTTP/1.1 304 Not Modified\r\nContent-Length: 50\r\n\r\n'],
      ['GET / HTTP/1.1\r\n\r\n', ok('done')],
    ] as const) {
      c.write(request)
      expect(await c.read(answer)).toBe(answer)
    }
    expect(c.ended()).toBe(false)
  })

  it('answers pipelined requests in order, each from its side', async () => {
    const s = await setup(
      (request) => ok(`handler ${request.split(' ')[1]}`),
      // the workload answers late: the handler's answer must still come after it
      (request, socket) => {
        setTimeout(() => socket.write(ok(`workload ${request.split(' ')[1]}`)), 100)
        return null
      },
    )
    const c = await client(s.port)
    c.write('GET /1 HTTP/1.1\r\n\r\nGET /2 HTTP/1.1\r\nX-Dev: alice\r\n\r\nGET /3 HTTP/1.1\r\n\r\n')
    const all = await c.read('workload /3')
    expect(all).toBe(ok('workload /1') + ok('handler /2') + ok('workload /3'))
  })

  it('passes 100 Continue and then the body the client sends after it', async () => {
    const s = await setup(
      () => null,
      (request) => ok(`got ${request.split('\r\n\r\n')[1]}`),
    )
    // the workload says 100 Continue as soon as it has the head
    s.next.server.prependListener('connection', (socket: Socket) => socket.once('data', () => socket.write('HTTP/1.1 100 Continue\r\n\r\n')))
    const c = await client(s.port)
    c.write('PUT /x HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n')
    expect(await c.read('\r\n\r\n')).toBe('HTTP/1.1 100 Continue\r\n\r\n')
    c.write('hello')
    expect(await c.read('got hello')).toBe(ok('got hello'))
  })

  it('passes an answer delimited by the close of its connection: in chunks to a client that keeps its connection, as is to one that closes it', async () => {
    const s = await setup(
      () => null,
      (_request, socket) => {
        socket.end('HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end')
        return null
      },
    )
    const kept = await client(s.port)
    kept.write('GET / HTTP/1.1\r\n\r\n')
    expect(await kept.read('0\r\n\r\n')).toBe(
      'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\nd\r\nuntil the end\r\n0\r\n\r\n',
    )
    kept.write('GET / HTTP/1.1\r\n\r\n')
    expect(await kept.read('0\r\n\r\n')).toContain('until the end')
    expect(kept.ended()).toBe(false)
    expect(s.next.connections).toBe(2)
    const closing = await client(s.port)
    closing.write('GET / HTTP/1.1\r\nConnection: close\r\n\r\n')
    expect(await closing.end()).toBe('HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end')
  })

  it("honours Connection: close from the client, and from the server on the server's connection only", async () => {
    const s = await setup(
      () => ok('handler', 'Connection: close\r\n'),
      () => ok('workload'),
    )
    const fromClient = await client(s.port)
    fromClient.write('GET / HTTP/1.1\r\nConnection: close\r\n\r\n')
    expect(await fromClient.end()).toBe(ok('workload'))
    const fromServer = await client(s.port)
    for (let i = 0; i < 2; i++) {
      fromServer.write('GET / HTTP/1.1\r\nX-Dev: alice\r\n\r\n')
      expect(await fromServer.read('handler')).toBe(ok('handler'))
    }
    expect(fromServer.ended()).toBe(false)
    expect(s.handler.connections).toBe(2)
  })

  it('refuses header folding (400) and an oversize head (431), then closes', async () => {
    const s = await setup(
      () => ok('handler'),
      () => ok('workload'),
    )
    const folded = await client(s.port)
    folded.write('GET / HTTP/1.1\r\nX-Dev: bob\r\n alice\r\n\r\n')
    expect(await folded.end()).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n[\s\S]*connection: close\r\n\r\ntp: a folded header line/)
    const big = await client(s.port)
    big.write(`GET / HTTP/1.1\r\nX-Big: ${'x'.repeat(20_000)}`)
    expect(await big.end()).toMatch(/^HTTP\/1\.1 431 /)
    expect(s.next.received).toEqual([])
  })

  it('answers 502 with a clear text when a side cannot be reached, and counts no request left in flight', async () => {
    const s = await setup(
      () => ok('handler'),
      () => ok('workload'),
      true,
    )
    const c = await client(s.port)
    c.write('GET / HTTP/1.1\r\nX-Dev: alice\r\n\r\n')
    const got = await c.end()
    expect(got).toMatch(/^HTTP\/1\.1 502 Bad Gateway\r\n/)
    expect(got).toContain('\r\n\r\ntp: the handler did not answer (connect ECONNREFUSED)\n')
    expect(s.inFlight()).toBe(0)
  })

  it('sends a bodiless GET again when its kept connection turns out closed, unseen by the client', async () => {
    // the handler's first connection closes at its second request without answering (its keep-alive timeout, just then)
    const s = await setup(
      (_request, socket, n) => {
        if (s.handler.connections === 1 && n === 1) {
          socket.destroy()
          return null
        }
        return ok(`handler ${n}`)
      },
      () => ok('workload'),
    )
    const c = await client(s.port)
    c.write('GET / HTTP/1.1\r\nX-Dev: alice\r\n\r\n')
    expect(await c.read('handler 0')).toBe(ok('handler 0'))
    c.write('GET / HTTP/1.1\r\nX-Dev: alice\r\n\r\n')
    expect(await c.read('handler 0')).toBe(ok('handler 0'))
    expect(s.handler.connections).toBe(2)
    // a POST is not sent again: the client learns of it
    const posting = await setup(
      (_request, socket, n) => {
        if (n === 1) {
          socket.destroy()
          return null
        }
        return ok('handler')
      },
      () => ok('workload'),
    )
    const p = await client(posting.port)
    p.write('POST / HTTP/1.1\r\nX-Dev: alice\r\nContent-Length: 1\r\n\r\nx')
    await p.read('handler')
    p.write('POST / HTTP/1.1\r\nX-Dev: alice\r\nContent-Length: 1\r\n\r\nx')
    expect(await p.end()).toMatch(/^HTTP\/1\.1 502 /)
  })

  it('keeps a client whose server closed its idle connection (the next request opens another), and closes one idle too long', async () => {
    const s = await setup(
      () => ok('handler'),
      (_request, socket) => {
        // answers, then closes without saying so
        socket.end(ok('workload'))
        return null
      },
      false,
      300,
    )
    const c = await client(s.port)
    for (let i = 0; i < 2; i++) {
      c.write('GET / HTTP/1.1\r\n\r\n')
      expect(await c.read('workload')).toBe(ok('workload'))
      await sleep(50)
    }
    expect(s.next.connections).toBe(2)
    expect(c.ended()).toBe(false)
    expect(await c.end()).toBe('')
  })

  it('closes what a drain finds: an idle connection now, a busy one after its answer (which says so)', async () => {
    const s = await setup(
      (_request, socket) => {
        setTimeout(() => socket.write(ok('handler')), 150)
        return null
      },
      () => ok('workload'),
    )
    const idle = await client(s.port)
    const busy = await client(s.port)
    idle.write('GET / HTTP/1.1\r\nX-Dev: alice\r\n\r\n')
    await idle.read('handler')
    busy.write('GET / HTTP/1.1\r\nX-Dev: alice\r\n\r\n')
    await sleep(50)
    expect(s.inFlight()).toBe(1)
    s.setClosing(true)
    s.router.drain()
    expect(await idle.end()).toBe('')
    expect(await busy.end()).toBe('HTTP/1.1 200 OK\r\nContent-Length: 7\r\nConnection: close\r\n\r\nhandler')
    expect(s.inFlight()).toBe(0)
  })

  it('joins the two connections after an Upgrade, on the side its headers choose', async () => {
    const s = await setup(
      (request, socket) => {
        if (!request.includes('Upgrade')) return ok('handler')
        socket.on('data', (c: Buffer) => socket.write(`echo ${c.toString()}`))
        return 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n'
      },
      () => ok('workload'),
    )
    const c = await client(s.port)
    c.write('GET / HTTP/1.1\r\nX-Dev: alice\r\n\r\n')
    await c.read('handler')
    c.write('GET /ws HTTP/1.1\r\nX-Dev: alice\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n')
    expect(await c.read('\r\n\r\n')).toMatch(/^HTTP\/1\.1 101 Switching Protocols\r\n/)
    c.write('again')
    expect(await c.read('echo again')).toBe('echo again')
    // the upgrade had a connection of its own
    expect(s.handler.connections).toBe(2)
  })
})
