/** The pure parts of a personal intercept's routing: the filter, the protocol sniff, the next agent's rule. */
import {connect as h2Connect, createServer as createH2Server} from 'node:http2'
import {type AddressInfo, connect, createServer as createNetServer} from 'node:net'
import {describe, expect, it} from 'vitest'
import {HttpRouter, matchesFilter, parseFilter, sniffProtocol} from '../dist/http-filter.js'
import {nextRedirectPort} from '../dist/rules.js'

describe('personal intercept routing', () => {
  it('matches every header (names without case, values exactly) and the path prefix', () => {
    const filter = parseFilter('{"headers":{"X-Dev":"alice"},"pathPrefix":"/api"}')
    expect(matchesFilter(filter, '/api/x', {'x-dev': 'alice'})).toBe(true)
    expect(matchesFilter(filter, '/web', {'x-dev': 'alice'})).toBe(false)
    expect(matchesFilter(filter, '/api', {'x-dev': 'Alice'})).toBe(false)
    expect(matchesFilter(filter, '/api', {})).toBe(false)
    expect(matchesFilter(filter, '/api', {'x-dev': ['bob', 'alice']})).toBe(true)
  })

  it('tells HTTP/1, HTTP/2 (the preface) and other bytes apart', () => {
    expect(sniffProtocol(Buffer.from('GET / HTTP/1.1\r\n'))).toBe('http1')
    expect(sniffProtocol(Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'))).toBe('h2')
    expect(sniffProtocol(Buffer.from('PRI * HT'))).toBe('h2')
    expect(sniffProtocol(Buffer.from([0, 1, 2, 3]))).toBe('other')
    expect(sniffProtocol(Buffer.from('SSH-2.0-OpenSSH\r\n'))).toBe('other')
  })

  it("finds the next agent's redirect port after its own, for the same port only", () => {
    const rules = [
      '-P PREROUTING ACCEPT',
      '-A PREROUTING -p tcp -m tcp --dport 80 -m comment --comment tp-agent:b -j REDIRECT --to-ports 4002',
      '-A PREROUTING -p tcp -m tcp --dport 81 -m comment --comment tp-agent:x -j REDIRECT --to-ports 4009',
      '-A PREROUTING -p tcp -m tcp --dport 80 -m comment --comment tp-agent:a -j REDIRECT --to-ports 4001',
      '-A PREROUTING -p tcp -m tcp --dport 80 -j REDIRECT --to-ports 9999',
    ].join('\n')
    expect(nextRedirectPort(rules, 80, 4002)).toBe(4001)
    expect(nextRedirectPort(rules, 80, 4001)).toBeUndefined()
    // its own rule gone (it is releasing): the app
    expect(nextRedirectPort(rules, 80, 4005)).toBeUndefined()
  })
})

describe('personal intercept routing of HTTP/2', () => {
  it('ends every stream of an answer without trailers (a plain h2c server), whichever side answers', async () => {
    const server = (name: string) => {
      const s = createH2Server((req, res) => {
        req.resume()
        req.on('end', () => res.end(`${name}\n`))
      })
      return new Promise<number>((resolve) => s.listen(0, '127.0.0.1', () => resolve((s.address() as AddressInfo).port))).then((port) => ({s, port}))
    }
    const handler = await server('handler')
    const next = await server('workload')
    const router = new HttpRouter({
      filter: parseFilter(JSON.stringify({headers: {'X-Dev': 'alice'}})),
      openHandler: async () => connect({host: '127.0.0.1', port: handler.port}),
      openNext: async () => connect({host: '127.0.0.1', port: next.port}),
      active: () => true,
      handlerRequest: () => () => undefined,
      closing: () => false,
      log: () => undefined,
    })
    const front = createNetServer({pauseOnConnect: true}, (socket) => router.take(socket))
    await new Promise<void>((resolve) => front.listen(0, '127.0.0.1', resolve))
    const {port} = front.address() as AddressInfo
    // a request on a session of its own; '' when its stream did not end within a second
    const get = (dev: string | undefined) =>
      new Promise<string>((resolve) => {
        const session = h2Connect(`http://127.0.0.1:${port}`)
        const timer = setTimeout(() => {
          session.destroy()
          resolve('')
        }, 1000)
        session.on('error', () => undefined)
        const stream = session.request({':path': '/', ...(dev ? {'x-dev': dev} : {})})
        let body = ''
        stream.setEncoding('utf8')
        stream.on('data', (c: string) => (body += c))
        stream.on('end', () => {
          clearTimeout(timer)
          session.close()
          resolve(body)
        })
        stream.on('error', () => undefined)
        stream.end()
      })
    try {
      const asked = Array.from({length: 30}, (_, k) => (k % 3 === 0 ? 'alice' : k % 3 === 1 ? 'bob' : undefined))
      const got = await Promise.all(asked.map(get))
      expect(got).toEqual(asked.map((dev) => (dev === 'alice' ? 'handler\n' : 'workload\n')))
    } finally {
      router.close()
      front.close()
      handler.s.close()
      next.s.close()
    }
  })
})
