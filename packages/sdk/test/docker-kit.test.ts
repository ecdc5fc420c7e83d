import {createServer} from 'node:net'
import Modem from 'docker-modem'
import {describe, expect, it} from 'vitest'
import {demuxLogs, dockerMessage, dockerStatusCode, ipv4Addresses, isConflict, isNotFound, listen, sleep, waitUntilGone} from '@tp/sdk'

/** An error as docker-modem makes it for an HTTP answer of the Engine. */
function engineError(statusCode: number, message: string): Error & {statusCode: number; json: {message: string}} {
  return Object.assign(new Error(`(HTTP code ${statusCode}) unexpected - ${message} `), {statusCode, json: {message: `${message}\n`}})
}

/** One frame of Docker's multiplexed log format: stream type, 3 zero bytes, big-endian length, payload. */
function frame(stream: 1 | 2, text: string): Buffer {
  const payload = Buffer.from(text)
  const header = Buffer.alloc(8)
  header.writeUInt8(stream, 0)
  header.writeUInt32BE(payload.length, 4)
  return Buffer.concat([header, payload])
}

describe('dockerStatusCode / isNotFound / isConflict', () => {
  it('reads the status the Engine answered with', () => {
    expect(dockerStatusCode(engineError(404, 'no such container'))).toBe(404)
    expect(isNotFound(engineError(404, 'no such container'))).toBe(true)
    expect(isConflict(engineError(409, 'name in use'))).toBe(true)
    expect(isNotFound(engineError(409, 'name in use'))).toBe(false)
  })

  it('is undefined when there was no answer, or for things that are not errors', () => {
    expect(dockerStatusCode(Object.assign(new Error('connect ENOENT /var/run/docker.sock'), {code: 'ENOENT'}))).toBeUndefined()
    expect(dockerStatusCode(undefined)).toBeUndefined()
    expect(dockerStatusCode(null)).toBeUndefined()
    expect(dockerStatusCode('404')).toBeUndefined()
    expect(dockerStatusCode({statusCode: '404'})).toBeUndefined()
    expect(isNotFound(undefined)).toBe(false)
  })
})

describe('dockerMessage', () => {
  it("prefers Docker's JSON message, trimmed", () => {
    expect(dockerMessage(engineError(500, 'plugin is already enabled'))).toBe('plugin is already enabled')
  })

  it("falls back to the error's message, then to the value as text", () => {
    expect(dockerMessage(new Error(' socket hang up '))).toBe('socket hang up')
    expect(dockerMessage(Object.assign(new Error('raw'), {json: null}))).toBe('raw')
    expect(dockerMessage(Object.assign(new Error('raw'), {json: {message: ''}}))).toBe('raw')
    expect(dockerMessage('just text')).toBe('just text')
    expect(dockerMessage(undefined)).toBe('undefined')
  })
})

describe('sleep', () => {
  it('waits about as long as asked', async () => {
    const started = Date.now()
    await sleep(30)
    expect(Date.now() - started).toBeGreaterThanOrEqual(25)
  })

  it('ends early when aborted', async () => {
    const controller = new AbortController()
    const slept = sleep(10_000, controller.signal)
    controller.abort()
    await expect(slept).rejects.toMatchObject({name: 'AbortError'})
  })
})

describe('waitUntilGone', () => {
  it('resolves true once inspect rejects with 404', async () => {
    let calls = 0
    const gone = await waitUntilGone(
      async () => {
        calls++
        if (calls >= 3) throw engineError(404, 'no such container')
        return {State: {Status: 'removing'}}
      },
      {timeoutMs: 5000, pollMs: 5},
    )
    expect(gone).toBe(true)
    expect(calls).toBe(3)
  })

  it('resolves false when the object is still there after the timeout', async () => {
    const started = Date.now()
    expect(await waitUntilGone(async () => ({}), {timeoutMs: 60, pollMs: 10})).toBe(false)
    expect(Date.now() - started).toBeLessThan(1000)
  })

  it('throws any other error (the engine did not say it is gone)', async () => {
    await expect(waitUntilGone(() => Promise.reject(engineError(500, 'boom')), {timeoutMs: 1000})).rejects.toThrow(/boom/)
  })
})

describe('demuxLogs', () => {
  const docker = {modem: new Modem()}

  it("turns a non-TTY container's log buffer into text, stdout and stderr in order", async () => {
    const logs = Buffer.concat([frame(1, 'hello '), frame(2, 'oops\n'), frame(1, 'world\n')])
    expect(await demuxLogs(docker, logs)).toBe('hello oops\nworld\n')
  })

  it('keeps multi-byte characters that a frame boundary splits', async () => {
    const bytes = Buffer.from('grüße')
    const split = Buffer.concat([
      Buffer.from([1, 0, 0, 0, 0, 0, 0, 3]),
      bytes.subarray(0, 3),
      Buffer.from([1, 0, 0, 0, 0, 0, 0, bytes.length - 3]),
      bytes.subarray(3),
    ])
    expect(await demuxLogs(docker, split)).toBe('grüße')
  })

  it("passes a TTY container's log (no frame headers) through as it is", async () => {
    expect(await demuxLogs(docker, Buffer.from('plain tty output\n'))).toBe('plain tty output\n')
    expect(await demuxLogs(docker, 'short')).toBe('short')
    expect(await demuxLogs(docker, Buffer.alloc(0))).toBe('')
  })
})

describe('listen', () => {
  it('listens on a free port and resolves with it', async () => {
    const server = createServer()
    try {
      const port = await listen(server, '127.0.0.1')
      expect(port).toBeGreaterThan(0)
      expect(server.address()).toMatchObject({address: '127.0.0.1', port})
    } finally {
      server.close()
    }
  })

  it('rejects when the port is taken', async () => {
    const first = createServer()
    const second = createServer()
    try {
      const port = await listen(first, '127.0.0.1')
      await expect(listen(second, '127.0.0.1', port)).rejects.toMatchObject({code: 'EADDRINUSE'})
    } finally {
      first.close()
      second.close()
    }
  })
})

describe('ipv4Addresses', () => {
  it('lists non-internal IPv4 addresses only', () => {
    const addresses = ipv4Addresses()
    for (const address of addresses) expect(address).toMatch(/^\d+\.\d+\.\d+\.\d+$/)
    expect(addresses).not.toContain('127.0.0.1')
  })
})
