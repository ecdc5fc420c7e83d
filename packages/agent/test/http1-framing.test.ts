/** HTTP/1.1 framing of a personal intercept's proxy, on crafted bytes: heads, bodies, where each ends. */
import {describe, expect, it} from 'vitest'
import {
  bodyFramer,
  ChunkedFramer,
  FramingError,
  headLength,
  isTunnel,
  keepsAlive,
  parseRequestHead,
  parseResponseHead,
  requestFraming,
  responseFraming,
  withClientKeptAlive,
  withConnectionClose,
} from '../dist/http1-framing.js'

const b = (text: string) => Buffer.from(text, 'latin1')
const request = (text: string) => {
  const buf = b(text)
  return parseRequestHead(buf, headLength(buf))
}
const response = (text: string) => {
  const buf = b(text)
  return parseResponseHead(buf, headLength(buf, 65536, 502))
}
/** The status of the FramingError `fn` throws (undefined when it does not throw). */
const refused = (fn: () => unknown) => {
  try {
    fn()
  } catch (error) {
    if (error instanceof FramingError) return error.status
    throw error
  }
  return undefined
}

/** Feeds `bytes` split at each of `cuts` and returns the body's end in the whole, or -1. */
function endOf(framer: {feed(buf: Buffer, start: number): number}, bytes: Buffer, cuts: number[]): number {
  let from = 0
  for (const cut of [...cuts, bytes.length]) {
    const end = framer.feed(bytes.subarray(from, cut), 0)
    if (end >= 0) return from + end
    from = cut
  }
  return -1
}

describe('HTTP/1.1 heads', () => {
  it('finds the end of a head, waits for more, and refuses an oversize or bare-LF one', () => {
    expect(headLength(b('GET / HTTP/1.1\r\nHost: a\r\n'))).toBe(-1)
    expect(headLength(b('GET / HTTP/1.1\r\nHost: a\r\n\r\nbody'))).toBe(27)
    expect(refused(() => headLength(b(`GET / HTTP/1.1\r\nX: ${'a'.repeat(20000)}`)))).toBe(431)
    expect(refused(() => headLength(b(`GET / HTTP/1.1\r\nX: ${'a'.repeat(20000)}\r\n\r\n`)))).toBe(431)
    expect(refused(() => headLength(b('GET / HTTP/1.1\nHost: a\n\n')))).toBe(400)
    // a response's: its own limit, and 502
    expect(refused(() => headLength(b(`HTTP/1.1 200 OK\r\nX: ${'a'.repeat(100)}`), 64, 502))).toBe(502)
  })

  it('reads the request line and every field (names without case, values trimmed, repeated ones kept)', () => {
    const head = request(
      'POST /api/x?y=1 HTTP/1.1\r\nHost: web\r\nX-Dev:  alice \r\nx-dev: bob\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\r\n',
    )
    expect(head).toMatchObject({method: 'POST', target: '/api/x?y=1', minor: 1, connection: ['keep-alive', 'upgrade']})
    expect({...head.fields}).toEqual({host: ['web'], 'x-dev': ['alice', 'bob'], connection: ['keep-alive, Upgrade'], upgrade: ['websocket']})
    expect(isTunnel(head)).toBe(true)
    expect(isTunnel(request('CONNECT a:443 HTTP/1.1\r\nHost: a\r\n\r\n'))).toBe(true)
    expect(isTunnel(request('GET / HTTP/1.1\r\nUpgrade: websocket\r\n\r\n'))).toBe(false)
  })

  it('refuses header folding, malformed lines and control characters (400), and a malformed status line (502)', () => {
    expect(refused(() => request('GET / HTTP/1.1\r\nX-Dev: a\r\n  lice\r\n\r\n'))).toBe(400)
    expect(refused(() => request('GET / HTTP/1.1\r\nX-Dev : alice\r\n\r\n'))).toBe(400)
    expect(refused(() => request('GET / HTTP/1.1\r\nno colon\r\n\r\n'))).toBe(400)
    expect(refused(() => request('GET / HTTP/1.1\r\nX: a\x00b\r\n\r\n'))).toBe(400)
    expect(refused(() => request('GET  / HTTP/1.1\r\n\r\n'))).toBe(400)
    expect(refused(() => request('GET / HTTP/2.0\r\n\r\n'))).toBe(400)
    expect(refused(() => response('HTTP/1.1 OK\r\n\r\n'))).toBe(502)
    expect(refused(() => response('HTTP/1.1 200 OK\r\nX: a\r\n\tb\r\n\r\n'))).toBe(502)
    expect(response('HTTP/1.1 204\r\n\r\n').status).toBe(204)
  })

  it('tells whether a connection stays open after a message (version, Connection)', () => {
    expect(keepsAlive(request('GET / HTTP/1.1\r\n\r\n'))).toBe(true)
    expect(keepsAlive(request('GET / HTTP/1.1\r\nConnection: Close\r\n\r\n'))).toBe(false)
    expect(keepsAlive(request('GET / HTTP/1.0\r\n\r\n'))).toBe(false)
    expect(keepsAlive(request('GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n'))).toBe(true)
    expect(keepsAlive(response('HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n'))).toBe(false)
  })

  it('rewrites what a head says of its connection: Connection: close; kept alive for the client', () => {
    const buf = b('HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\nContent-Length: 2\r\n\r\nok')
    expect(withConnectionClose(buf, headLength(buf)).toString('latin1')).toBe('HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n')
    // a server's closing answer, for a client that keeps its connection (in chunks when it had no length)
    const closing = b('HTTP/1.0 200 OK\r\nConnection: close\r\nX: y\r\n\r\n')
    expect(withClientKeptAlive(closing, headLength(closing), true, false).toString('latin1')).toBe(
      'HTTP/1.1 200 OK\r\nX: y\r\nTransfer-Encoding: chunked\r\n\r\n',
    )
    expect(withClientKeptAlive(closing, headLength(closing), false, true).toString('latin1')).toBe('HTTP/1.1 200 OK\r\nX: y\r\nConnection: keep-alive\r\n\r\n')
  })
})

describe('HTTP/1.1 bodies', () => {
  it("frames a request's body by Content-Length or chunked, and refuses an ambiguous one (400)", () => {
    expect(requestFraming(request('GET / HTTP/1.1\r\n\r\n'))).toEqual({kind: 'none'})
    expect(requestFraming(request('POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n'))).toEqual({kind: 'none'})
    expect(requestFraming(request('POST / HTTP/1.1\r\nContent-Length: 12\r\n\r\n'))).toEqual({kind: 'length', length: 12})
    expect(requestFraming(request('POST / HTTP/1.1\r\nContent-Length: 12, 12\r\n\r\n'))).toEqual({kind: 'length', length: 12})
    expect(requestFraming(request('POST / HTTP/1.1\r\nTransfer-Encoding: gzip, Chunked\r\n\r\n'))).toEqual({kind: 'chunked'})
    expect(refused(() => requestFraming(request('POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n')))).toBe(400)
    expect(refused(() => requestFraming(request('POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n')))).toBe(400)
    expect(refused(() => requestFraming(request('POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n')))).toBe(400)
    expect(refused(() => requestFraming(request('POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n')))).toBe(400)
  })

  it("frames a response by its request's method and its status: HEAD, 1xx, 204 and 304 have none; else chunked, length or close", () => {
    expect(responseFraming(response('HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n'), 'HEAD')).toEqual({kind: 'none'})
    expect(responseFraming(response('HTTP/1.1 204 No Content\r\n\r\n'), 'GET')).toEqual({kind: 'none'})
    expect(responseFraming(response('HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n'), 'GET')).toEqual({kind: 'none'})
    expect(responseFraming(response('HTTP/1.1 100 Continue\r\n\r\n'), 'POST')).toEqual({kind: 'none'})
    expect(responseFraming(response('HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n'), 'GET')).toEqual({kind: 'length', length: 5})
    expect(responseFraming(response('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n'), 'GET')).toEqual({kind: 'chunked'})
    expect(responseFraming(response('HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n'), 'GET')).toEqual({kind: 'close'})
    expect(responseFraming(response('HTTP/1.1 200 OK\r\n\r\n'), 'GET')).toEqual({kind: 'close'})
    expect(refused(() => responseFraming(response('HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n'), 'GET'))).toBe(502)
  })

  it('finds the end of a Content-Length body however it is split', () => {
    const bytes = b('0123456789NEXT')
    for (const cuts of [[], [1], [3, 9], [10]]) expect(endOf(bodyFramer({kind: 'length', length: 10}), bytes, cuts)).toBe(10)
    expect(bodyFramer({kind: 'close'}).feed(bytes, 0)).toBe(-1)
    expect(bodyFramer({kind: 'none'}).feed(bytes, 4)).toBe(4)
  })

  it('finds the end of a chunked body (extensions, trailers) split at every byte, and nothing of what follows', () => {
    const body = '5;name=value\r\nhello\r\nA\r\n0123456789\r\n0\r\nGrpc-Status: 0\r\nX-Trailer: yes\r\n\r\n'
    const bytes = b(`${body}GET /next HTTP/1.1\r\n\r\n`)
    expect(endOf(new ChunkedFramer(), bytes, [])).toBe(body.length)
    for (let cut = 1; cut < body.length; cut++) expect(endOf(new ChunkedFramer(), bytes, [cut])).toBe(body.length)
    for (let cut = 1; cut + 3 < body.length; cut += 3) expect(endOf(new ChunkedFramer(), bytes, [cut, cut + 1, cut + 3])).toBe(body.length)
    // no trailers; and a body not yet complete
    expect(endOf(new ChunkedFramer(), b('3\r\nabc\r\n0\r\n\r\nX'), [])).toBe(13)
    expect(new ChunkedFramer().feed(b('3\r\nabc\r\n0\r\n'), 0)).toBe(-1)
  })

  it('refuses a malformed chunked body', () => {
    for (const bad of ['x\r\n', '\r\n', '3\nabc', '3\r\nabcd\r\n', '3\r\nabc\n', '1\r\na\r\n0\r\nTrailer: a\n', 'fffffffffffffff\r\n'])
      expect(refused(() => new ChunkedFramer(502).feed(b(bad), 0))).toBe(502)
  })
})
