import {createServer, connect, type Socket} from 'node:net'
import {describe, expect, it} from 'vitest'
import {
  AgentServer,
  type AgentMessage,
  type DaemonMessage,
  decodeAgentMessage,
  decodeDaemonMessage,
  encode,
  type InvalidLine,
  readHeaderLine,
  readMessages,
  splice,
} from '@tp/agent'

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

describe('decodeAgentMessage', () => {
  const hello = {type: 'hello', token: 't0k', interceptId: 'i-1', redirectPort: 40001, dialPort: 40002, sftpPort: 40003}

  it('decodes every message the agent sends, keeping only the known fields', () => {
    const sent: AgentMessage[] = [hello as AgentMessage, {type: 'ready'}, {type: 'failed', message: 'iptables: no'}, {type: 'dial', id: 'c7'}, {type: 'pong'}]
    sent.push({type: 'pong', counters: {toHandler: 3, toApp: 0, kernelPath: true}})
    for (const message of sent) expect(decodeAgentMessage(JSON.parse(encode(message)))).toEqual(message)
    expect(decodeAgentMessage({type: 'ready', extra: 1})).toEqual({type: 'ready'})
    expect(decodeAgentMessage({...hello, sftpPort: null})).toEqual({...hello, sftpPort: null})
    expect(decodeAgentMessage({...hello, sftpPort: undefined})).toEqual({...hello, sftpPort: null})
  })

  it("carries the agent's uptime in hello and ready (its start-up timeline); a bad one is dropped, the message kept", () => {
    expect(decodeAgentMessage({...hello, upMs: 92})).toEqual({...hello, upMs: 92})
    expect(decodeAgentMessage({type: 'ready', upMs: 131})).toEqual({type: 'ready', upMs: 131})
    for (const bad of [-1, 1.5, '92', null]) {
      expect(decodeAgentMessage({...hello, upMs: bad})).toEqual(hello)
      expect(decodeAgentMessage({type: 'ready', upMs: bad})).toEqual({type: 'ready'})
    }
  })

  it.each([
    ['not an object', 'hello'],
    ['null', null],
    ['an array', [{type: 'ready'}]],
    ['no type', {token: 'x'}],
    ['an unknown type', {type: 'activate'}],
    ['a hello without token', {...hello, token: undefined}],
    ['a hello with a port as text', {...hello, redirectPort: '40001'}],
    ['a hello with port 0', {...hello, dialPort: 0}],
    ['a hello with a fractional sftp port', {...hello, sftpPort: 1.5}],
    ['failed without a message', {type: 'failed'}],
    ['dial with a numeric id', {type: 'dial', id: 7}],
    ['a pong with a negative count', {type: 'pong', counters: {toHandler: -1, toApp: 0, kernelPath: false}}],
    ['a pong without kernelPath', {type: 'pong', counters: {toHandler: 1, toApp: 0}}],
  ])('rejects %s', (_title, value) => {
    expect(decodeAgentMessage(value)).toBeUndefined()
  })
})

describe('decodeDaemonMessage', () => {
  it('decodes every message the daemon sends', () => {
    const sent: DaemonMessage[] = [
      {type: 'activate'},
      {type: 'activate', directPort: 8080},
      {type: 'activate', directPort: 8080, directHost: '172.18.0.1'},
      {type: 'deactivate'},
      {type: 'dial-failed', id: 'c7'},
      {type: 'ping'},
      {type: 'release'},
    ]
    for (const message of sent) expect(decodeDaemonMessage(JSON.parse(encode(message)))).toEqual(message)
    expect(decodeDaemonMessage({type: 'activate', directPort: null})).toEqual({type: 'activate'})
  })

  it.each([
    ['an agent message', {type: 'hello'}],
    ['an unknown type', {type: 'reboot'}],
    ['activate with a port as text', {type: 'activate', directPort: '8080'}],
    ['activate with an out-of-range port', {type: 'activate', directPort: 70_000}],
    ['activate with an empty host', {type: 'activate', directPort: 8080, directHost: ''}],
    ['dial-failed without id', {type: 'dial-failed'}],
  ])('rejects %s', (_title, value) => {
    expect(decodeDaemonMessage(value)).toBeUndefined()
  })
})

describe('readMessages', () => {
  it('delivers decoded messages and says why other lines were not', async () => {
    const {client, server, close} = await pair()
    server.resume()
    const messages: DaemonMessage[] = []
    const invalid: [string, InvalidLine][] = []
    const ended = new Promise((resolve) => server.once('end', resolve))
    readMessages(
      server,
      decodeDaemonMessage,
      (m) => messages.push(m),
      (line, why) => invalid.push([line, why]),
    )
    client.write(`${encode({type: 'ping'})}not json\n{"type":"reboot"}\n\n[1]\n{"type":"activate","directPort":`)
    client.end('9000}\n')
    await ended
    expect(messages).toEqual([{type: 'ping'}, {type: 'activate', directPort: 9000}])
    expect(invalid).toEqual([
      ['not json', 'not-protocol'],
      ['{"type":"reboot"}', 'unknown-message'],
      ['[1]', 'not-protocol'],
    ])
    close()
  })
})

describe('AgentServer hello', () => {
  /** A fake agent: connects to the server, sends the lines, collects what the daemon sends back. */
  async function agent(port: number, lines: string[]): Promise<{received: DaemonMessage[]; closed: Promise<void>; socket: Socket}> {
    const socket = connect({host: '127.0.0.1', port})
    await new Promise((resolve) => socket.once('connect', resolve))
    const received: DaemonMessage[] = []
    readMessages(socket, decodeDaemonMessage, (m) => received.push(m))
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()))
    for (const line of lines) socket.write(line)
    return {received, closed, socket}
  }

  it('accepts a valid hello, then ready; rejects a wrong token and a malformed hello', async () => {
    const logs: string[] = []
    const server = new AgentServer({host: '127.0.0.1', log: (m) => logs.push(m)})
    const {port} = await server.listen()
    try {
      const session = server.expect('i-1', 'secret', {connectLocal: () => Promise.reject(new Error('no handler'))})
      const hello = {type: 'hello', token: 'secret', interceptId: 'i-1', redirectPort: 40001, dialPort: 40002, sftpPort: null} as const

      const wrong = await agent(port, [encode({...hello, token: 'guess!'})])
      await wrong.closed
      const malformed = await agent(port, [`${JSON.stringify({...hello, dialPort: 'x'})}\n`])
      await malformed.closed
      expect(logs.filter((l) => l.includes('rejected an agent connection'))).toHaveLength(2)

      const good = await agent(port, [encode(hello), encode({type: 'ready'}), '{"type":"from-the-future"}\n'])
      expect(await session.ready).toEqual({address: '127.0.0.1', redirectPort: 40001, dialPort: 40002, sftpPort: null})
      await new Promise((resolve) => setTimeout(resolve, 50))
      expect(logs.some((l) => /agent i-1: unexpected message .*from-the-future/.test(l))).toBe(true)
      expect(good.socket.destroyed).toBe(false)
      good.socket.destroy()
      expect(await session.gone).toMatch(/closed/)

      // an agent that tells its uptime: the daemon's timeline gets both
      const timed = server.expect('i-2', 'secret', {connectLocal: () => Promise.reject(new Error('no handler'))})
      const told = await agent(port, [encode({...hello, interceptId: 'i-2', upMs: 92}), encode({type: 'ready', upMs: 131})])
      expect(await timed.ready).toEqual({address: '127.0.0.1', redirectPort: 40001, dialPort: 40002, sftpPort: null, upMs: {hello: 92, ready: 131}})
      told.socket.destroy()
    } finally {
      await server.close()
    }
  })
})
