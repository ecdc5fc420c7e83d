import {execFile} from 'node:child_process'
import {randomBytes} from 'node:crypto'
import {mkdtemp, readFile, rm, writeFile} from 'node:fs/promises'
import {createServer, connect, type Server, type Socket} from 'node:net'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {promisify} from 'node:util'
import {afterAll, afterEach, beforeAll, describe, expect, it} from 'vitest'
import {type Agent, type AgentConfig, AgentServer, type AgentSession} from '@tp/agent'
import {isNotFound} from '@tp/sdk'
import {DockerDriver} from '@tp/plugin-cluster-docker'
import type {Workload} from '@tp/sdk'
import {ensureRuntimeImage} from '@tp/images'
import {Fixtures, httpdCmd} from './fixture.js'
import {converse, eventuallyWith, get, open} from './net.js'

// Real engine: a busybox workload on its own network, the real agent container in its namespace,
// and this test process playing the daemon through AgentServer.
const execFileAsync = promisify(execFile)
const NET = 'tpt-agent-net'
const fx = new Fixtures()
const cluster = new DockerDriver(fx.docker, {networkFilter: (name) => name === NET})
const logs: string[] = []
const eventually = eventuallyWith(() => logs.join('\n'))

let runtime: string
let busybox: string
let gateway: string
let workload: Workload
let before: {id: string; startedAt: string}
let handler: Server
let handlerPort: number // where connectLocal connects; tests may point it elsewhere
let server: AgentServer
let serverPort: number

const HTTP_GET = 'GET / HTTP/1.0\r\nHost: web\r\n\r\n'
const body = (response: string) => response.split('\r\n\r\n')[1]?.trim()

async function containerGone(id: string): Promise<boolean> {
  return fx.docker
    .getContainer(id)
    .inspect()
    .then(() => false, isNotFound)
}

async function startServer(options: {pingMs?: number} = {}): Promise<void> {
  server = new AgentServer({log: (m) => logs.push(`daemon: ${m}`), ...options})
  serverPort = (await server.listen()).port
}

/** Injects an agent for the workload's port 80 and waits until it is ready. */
/**
 * An agent in this process (no container) that dials this file's daemon, with an iptables that
 * always fails: for what an agent reports before or instead of installing its rule.
 */
async function agentHere(interceptId: string, token: string, extra: Partial<AgentConfig> = {}): Promise<Agent> {
  const {Agent} = await import('@tp/agent')
  return new Agent({
    daemonHost: '127.0.0.1',
    daemonPort: serverPort,
    token,
    interceptId,
    servicePort: 9,
    mounts: [],
    leaseMs: 3000,
    drainMs: 100,
    iptables: '/bin/false',
    log: (m) => logs.push(`agent: ${m}`),
    ...extra,
  })
}

async function inject(
  name: string,
  extra: Record<string, string> = {},
  target: Workload = workload,
  directPort?: number,
): Promise<{session: AgentSession; containerId: string}> {
  const interceptId = randomBytes(4).toString('hex')
  const token = randomBytes(16).toString('hex')
  const session = server.expect(interceptId, token, {
    direct: directPort ? {host: gateway, port: directPort} : undefined,
    connectLocal: () =>
      new Promise<Socket>((resolve, reject) => {
        const s = connect({host: '127.0.0.1', port: handlerPort, allowHalfOpen: true})
        s.once('connect', () => resolve(s))
        s.once('error', reject)
      }),
    readyTimeoutMs: 20_000,
  })
  const {id: containerId} = await cluster.injectAgent({
    role: 'agent',
    namespace: NET,
    workload: target,
    replica: target.replicas[0],
    image: runtime,
    name: `tpt-agent-${name}`,
    labels: {'tp.fixture': 'true'},
    env: {
      TP_AGENT_DAEMON: `${gateway}:${serverPort}`,
      TP_AGENT_TOKEN: token,
      TP_AGENT_INTERCEPT_ID: interceptId,
      TP_AGENT_SERVICE_PORT: '80',
      TP_AGENT_MOUNTS: '[]',
      ...extra,
    },
  })
  try {
    await session.ready
  } catch (error) {
    const logsOfAgent = await fx.docker
      .getContainer(containerId)
      .logs({stdout: true, stderr: true})
      .catch(() => '')
    throw new Error(`${(error as Error).message}\n${String(logsOfAgent)}`)
  }
  return {session, containerId}
}

beforeAll(async () => {
  runtime = (await ensureRuntimeImage(fx.docker, {require: ['agent']})).ref
  busybox = await fx.busybox()
  const network = await fx.network(NET)
  gateway = network.IPAM!.Config![0].Gateway!
  await fx.volume('tpt-agent-data')
  await fx.volume('tpt-agent-ro')
  await fx.container({
    name: 'tpt-agent-web',
    Image: busybox,
    Cmd: ['sh', '-c', `echo hello from the volume > /data/hello.txt; ${httpdCmd('app')[2]}`],
    ExposedPorts: {'80/tcp': {}},
    HostConfig: {NetworkMode: NET, Binds: ['tpt-agent-data:/data', 'tpt-agent-ro:/ro:ro']},
    NetworkingConfig: {EndpointsConfig: {[NET]: {Aliases: ['web']}}},
  })
  workload = await cluster.workload(NET, 'web')
  before = {id: workload.replicas[0].id, startedAt: workload.replicas[0].startedAt}
  await eventually(
    'the workload answers',
    () => get(workload.replicas[0].address),
    (b) => b === 'app',
  )
  // HTTP requests get `handler`; anything else is counted until the client half-closes, then
  // the count is the answer (half-close must travel through both splices)
  handler = createServer({allowHalfOpen: true}, (socket) => {
    let bytes = 0
    socket.on('data', (chunk: Buffer) => {
      if (bytes === 0 && chunk.subarray(0, 4).toString() === 'GET ') {
        socket.removeAllListeners('data')
        socket.end('HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\nhandler\n')
        return
      }
      bytes += chunk.length
    })
    socket.on('end', () => socket.end(`got ${bytes} bytes`))
    socket.on('error', () => undefined)
  })
  handlerPort = await new Promise((resolve) => handler.listen(0, '127.0.0.1', () => resolve((handler.address() as {port: number}).port)))
  await startServer()
})

/** The workload's NAT rules (Docker's DNS rules aside) and its forwarding switch. */
async function namespaceState(): Promise<string> {
  const script = 'iptables -w -t nat -S | grep -v DOCKER_ && echo ip_forward=$(cat /proc/sys/net/ipv4/ip_forward)'
  const {output, code} = await fx.run(runtime, `container:${workload.replicas[0].id}`, ['sh', '-c', script], 'tpt-agent-state', {CapAdd: ['NET_ADMIN']})
  expect(code, output).toBe(0)
  return output.trim()
}
let namespaceBefore: string
/** One agent serves several tests (its rule stays between them): checked when it is removed. */
let sharedAgent = false

beforeAll(async () => {
  namespaceBefore = await namespaceState()
})

// whatever a test did, the agent's rules are gone and forwarding is as it was
afterEach(async () => {
  if (!sharedAgent) expect(await namespaceState()).toBe(namespaceBefore)
})

afterAll(async () => {
  await server?.close()
  handler?.close()
  await fx.cleanup()
})

describe('traffic agent', () => {
  it('passes traffic to the app, hands it to the daemon when active, and back', async () => {
    const {session, containerId} = await inject('switch')
    expect(await get(workload.replicas[0].address)).toBe('app')

    session.activate()
    await eventually(
      'intercepted answer',
      () => get(workload.replicas[0].address),
      (b) => b === 'handler',
    )
    // a client on the namespace network, by workload name
    const viaName = await fx.run(busybox, NET, ['sh', '-c', 'timeout 5 wget -q -O - http://web/'], 'tpt-agent-client')
    expect(viaName).toEqual({output: 'handler\n', code: 0})
    expect(session.stats().connections).toBeGreaterThanOrEqual(2)

    session.deactivate()
    await eventually(
      'app answer',
      () => get(workload.replicas[0].address),
      (b) => b === 'app',
    )

    await cluster.removeAgent(containerId, {graceSeconds: 5})
    expect(await containerGone(containerId)).toBe(true)
    expect(await get(workload.replicas[0].address)).toBe('app')
    expect(await session.gone).toBeTypeOf('string')
  })

  it('loses no request while an intercept starts and is released', async () => {
    const {session, containerId} = await inject('loop')
    const answers: string[] = []
    const failures: string[] = []
    let running = true
    const loop = (async () => {
      while (running) {
        try {
          answers.push(await get(workload.replicas[0].address, 10_000)) // a slow answer on a busy machine is not a lost one
        } catch (error) {
          failures.push((error as Error).message)
        }
      }
    })()
    const until = (n: number, answer: string) =>
      eventually(
        `${n} answers of ${answer}`,
        async () => answers.filter((a) => a === answer).length,
        (c) => c >= n,
      )
    await until(20, 'app')
    session.activate()
    await until(50, 'handler')
    await session.release()
    const handled = answers.length
    await eventually(
      'app again',
      async () => answers.slice(handled).filter((a) => a === 'app').length,
      (c) => c >= 20,
    )
    await eventually(
      'agent container gone',
      () => containerGone(containerId),
      (g) => g,
    )
    await until(answers.filter((a) => a === 'app').length + 20, 'app')
    running = false
    await loop
    expect(failures).toEqual([])
    expect(answers.length).toBeGreaterThan(100)
  })

  it('gives the traffic back and exits when the daemon goes away', async () => {
    const {session, containerId} = await inject('daemon-gone')
    session.activate()
    await eventually(
      'intercepted answer',
      () => get(workload.replicas[0].address),
      (b) => b === 'handler',
    )
    const closedAt = Date.now()
    await server.close()
    await eventually(
      'app answer',
      () => get(workload.replicas[0].address),
      (b) => b === 'app',
      10_000,
    )
    await eventually(
      'agent container gone',
      () => containerGone(containerId),
      (g) => g,
      10_000 - (Date.now() - closedAt),
    )
    expect(await session.gone).toContain('shutting down')
    await startServer()
  })

  it('releases by itself when the daemon stops answering (lease)', async () => {
    await server.close()
    await startServer({pingMs: 60_000})
    const {session, containerId} = await inject('lease', {TP_AGENT_LEASE_MS: '1500'})
    session.activate()
    await eventually(
      'agent container gone',
      () => containerGone(containerId),
      (g) => g,
      10_000,
    )
    expect(await get(workload.replicas[0].address)).toBe('app')
    await server.close()
    await startServer()
  })

  it('serves the workload volumes over SFTP, read-only where they are', async () => {
    const mnt = await mkdtemp(join(tmpdir(), 'tpt-agent-sftp-'))
    // the daemon names the port in the session before the agent is up: the agent serves there
    const {session, containerId} = await inject('sftp', {
      TP_AGENT_MOUNTS: JSON.stringify([
        {path: '/data', readOnly: false},
        {path: '/ro', readOnly: true},
      ]),
      TP_AGENT_SFTP_PORT: '24555',
    })
    const {address, sftpPort} = await session.ready
    expect(sftpPort).toBe(24555)
    try {
      await execFileAsync('sshfs', ['-o', `directport=${sftpPort}`, `${address}:/`, mnt])
      expect(await readFile(join(mnt, 'data/hello.txt'), 'utf8')).toBe('hello from the volume\n')
      await writeFile(join(mnt, 'data/from-sftp.txt'), 'written over sftp\n')
      const exec = await fx.docker.getContainer(workload.replicas[0].id).exec({Cmd: ['cat', '/data/from-sftp.txt'], AttachStdout: true, AttachStderr: true})
      const stream = await exec.start({})
      const out = await new Promise<string>((resolve) => {
        const chunks: Buffer[] = []
        stream.on('data', (c: Buffer) => chunks.push(c))
        stream.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')))
      })
      expect(out).toContain('written over sftp')
      await expect(writeFile(join(mnt, 'ro/nope.txt'), 'x')).rejects.toThrow()
    } finally {
      await execFileAsync('fusermount', ['-u', mnt]).catch(() => undefined)
      await rm(mnt, {recursive: true, force: true})
      await cluster.removeAgent(containerId, {graceSeconds: 5})
    }
  })

  it("serves the volumes as the workload's own user: what is written through it is that user's", async () => {
    // a workload that runs as 1000:1000, its volume its own
    await fx.volume('tpt-agent-user-data')
    // (not empty, or Docker gives the volume the image's ownership of /data again at each mount)
    await fx.run(busybox, 'none', ['sh', '-c', 'mkdir -p /data/www && chown -R 1000:1000 /data'], 'tpt-agent-user-chown', {
      Binds: ['tpt-agent-user-data:/data'],
    })
    await fx.container({
      name: 'tpt-agent-user-web',
      Image: busybox,
      User: '1000:1000',
      // as 1000 it can write only in its volume: its page goes there
      Cmd: ['sh', '-c', 'mkdir -p /data/www && echo user app > /data/www/index.html && exec httpd -f -p 8080 -h /data/www'],
      ExposedPorts: {'8080/tcp': {}},
      HostConfig: {NetworkMode: NET, Binds: ['tpt-agent-user-data:/data']},
    })
    const target = await cluster.workload(NET, 'tpt-agent-user-web')
    expect(target.user).toEqual({uid: 1000, gid: 1000})
    // tp serves its volume over SFTP, never straight from the engine: a handler there writes as itself
    expect(target.mounts).toEqual([{path: '/data', readOnly: false}])
    const mnt = await mkdtemp(join(tmpdir(), 'tpt-agent-sftp-user-'))
    const {session, containerId} = await inject(
      'sftp-user',
      {TP_AGENT_MOUNTS: JSON.stringify([{path: '/data', readOnly: false}]), TP_AGENT_SERVICE_PORT: '8080', TP_AGENT_SFTP_USER: '1000:1000'},
      target,
    )
    const {address, sftpPort} = await session.ready
    try {
      await execFileAsync('sshfs', ['-o', `directport=${sftpPort}`, `${address}:/`, mnt])
      await writeFile(join(mnt, 'data/from-the-handler.txt'), 'written over sftp\n')
      const {output} = await fx.run(busybox, 'none', ['stat', '-c', '%u:%g', '/data/from-the-handler.txt'], 'tpt-agent-user-stat', {
        Binds: ['tpt-agent-user-data:/data'],
      })
      expect(output.trim()).toBe('1000:1000')
    } finally {
      await execFileAsync('fusermount', ['-u', mnt]).catch(() => undefined)
      await rm(mnt, {recursive: true, force: true})
      await cluster.removeAgent(containerId, {graceSeconds: 5})
    }
  })

  it('serves read-only when every mount is read-only', async () => {
    const mnt = await mkdtemp(join(tmpdir(), 'tpt-agent-sftp-'))
    const {session, containerId} = await inject('sftp-ro', {TP_AGENT_MOUNTS: JSON.stringify([{path: '/ro', readOnly: true}])})
    const {address, sftpPort} = await session.ready
    try {
      await execFileAsync('sshfs', ['-o', `directport=${sftpPort}`, `${address}:/`, mnt])
      // /tmp is writable in the agent's own filesystem: only sftp-server's read-only mode refuses it
      await expect(writeFile(join(mnt, 'tmp/nope.txt'), 'x')).rejects.toThrow()
      expect((await readFile(join(mnt, 'etc/passwd'), 'utf8')).startsWith('root:')).toBe(true)
    } finally {
      await execFileAsync('fusermount', ['-u', mnt]).catch(() => undefined)
      await rm(mnt, {recursive: true, force: true})
      await cluster.removeAgent(containerId, {graceSeconds: 5})
    }
  })
})

describe('direct connections to the handler', () => {
  // a handler that listens on every address, like one in the daemon's network namespace that
  // binds 0.0.0.0; it answers with the address it sees the connection come from
  let wide: Server
  let widePort: number

  beforeAll(async () => {
    wide = createServer({allowHalfOpen: true}, (socket) => {
      let bytes = 0
      socket.on('data', (chunk: Buffer) => {
        if (bytes === 0 && chunk.subarray(0, 4).toString() === 'GET ') {
          socket.removeAllListeners('data')
          socket.end(`HTTP/1.0 200 OK\r\nConnection: close\r\n\r\nfrom ${socket.remoteAddress?.replace(/^::ffff:/, '')}\n`)
          return
        }
        bytes += chunk.length
      })
      socket.on('end', () => socket.end(`got ${bytes} bytes`))
      socket.on('error', () => undefined)
    })
    widePort = await new Promise((resolve) => wide.listen(0, '0.0.0.0', () => resolve((wide.address() as {port: number}).port)))
  })

  afterAll(() => {
    wide?.close()
  })

  it("with the handler reachable at the daemon's address, connections skip the daemon's relay", async () => {
    const saved = handlerPort
    handlerPort = widePort // readiness and any relay would reach the same handler
    const {session, containerId} = await inject('direct', {}, workload, widePort)
    try {
      session.activate()
      // the handler sees the workload's own address: the agent connected to it, not the daemon
      await eventually(
        'direct answer',
        () => get(workload.replicas[0].address),
        (b) => b === `from ${workload.replicas[0].address}`,
      )
      const before = session.stats().connections
      const answers = await Promise.all(Array.from({length: 10}, () => get(workload.replicas[0].address)))
      expect(new Set(answers)).toEqual(new Set([`from ${workload.replicas[0].address}`]))
      expect(session.stats().connections).toBe(before)
      // half-close and a large upload travel through the direct splice too
      const payload = Buffer.alloc(2 * 1024 * 1024, 'y')
      expect(await converse(await open(workload.replicas[0].address), payload)).toBe(`got ${payload.length} bytes`)
      session.deactivate()
      await eventually(
        'app answer',
        () => get(workload.replicas[0].address),
        (b) => b === 'app',
      )
    } finally {
      handlerPort = saved
      await cluster.removeAgent(containerId, {graceSeconds: 5})
    }
  })

  it('a handler on loopback only refuses the direct connection: the daemon relays it, and the next ones', async () => {
    // handlerPort's server listens on 127.0.0.1 only; the agent's direct attempt at the daemon's address is refused
    const {session, containerId} = await inject('direct-refused', {}, workload, handlerPort)
    try {
      session.activate()
      const before = session.stats().connections
      expect(await get(workload.replicas[0].address)).toBe('handler')
      expect(await get(workload.replicas[0].address)).toBe('handler')
      expect(session.stats().connections - before).toBe(2)
      const agentLog = String(await fx.docker.getContainer(containerId).logs({stdout: true, stderr: true}))
      expect(agentLog).toMatch(/does not take connections on .*ECONNREFUSED.*relaying through the daemon/)
      expect(agentLog.match(/relaying through the daemon/g)).toHaveLength(1)
    } finally {
      await cluster.removeAgent(containerId, {graceSeconds: 5})
    }
  })
})

describe('relayed connections', () => {
  let session: AgentSession
  let containerId: string

  beforeAll(async () => {
    ;({session, containerId} = await inject('relay'))
    sharedAgent = true
  })

  afterAll(async () => {
    await cluster.removeAgent(containerId, {graceSeconds: 5})
    sharedAgent = false
    expect(await namespaceState()).toBe(namespaceBefore)
  })

  it('carries a large upload, honours half-close and returns the answer', async () => {
    session.activate()
    await eventually(
      'intercepted answer',
      () => get(workload.replicas[0].address),
      (b) => b === 'handler',
    )
    const payload = Buffer.alloc(4 * 1024 * 1024, 'x')
    expect(await converse(await open(workload.replicas[0].address), payload)).toBe(`got ${payload.length} bytes`)
  })

  it('keeps spare connections while active, and serves a burst larger than them (spares, then dial-backs)', async () => {
    session.activate()
    await eventually(
      'spare connections open',
      async () => session.stats().spares,
      (n) => n === 2,
    )
    const before = session.stats().connections
    const answers = await Promise.all(Array.from({length: 20}, () => get(workload.replicas[0].address)))
    expect(answers).toEqual(Array.from({length: 20}, () => 'handler'))
    expect(session.stats().connections - before).toBe(20)
    // used spares are replaced
    await eventually(
      'spares refilled',
      async () => session.stats().spares,
      (n) => n === 2,
    )
    session.deactivate()
    await eventually(
      'spares closed by the agent',
      async () => session.stats().spares,
      (n) => n === 0,
    )
    expect(await get(workload.replicas[0].address)).toBe('app')
    session.activate()
  })

  it('passes what the handler says first (server-first protocols)', async () => {
    const banner = createServer((socket) => socket.end('banner from the handler\n'))
    const bannerPort = await new Promise<number>((resolve) => banner.listen(0, '127.0.0.1', () => resolve((banner.address() as {port: number}).port)))
    const saved = handlerPort
    handlerPort = bannerPort
    try {
      expect(await converse(await open(workload.replicas[0].address), '', false)).toBe('banner from the handler\n')
    } finally {
      handlerPort = saved
      banner.close()
    }
  })

  it('closes the client at once when the daemon cannot reach the handler', async () => {
    const saved = handlerPort
    const closed = createServer()
    handlerPort = await new Promise<number>((resolve) => closed.listen(0, '127.0.0.1', () => resolve((closed.address() as {port: number}).port)))
    await new Promise((resolve) => closed.close(resolve))
    try {
      const started = Date.now()
      await expect(get(workload.replicas[0].address, 8000)).rejects.toThrow()
      expect(Date.now() - started).toBeLessThan(2000)
    } finally {
      handlerPort = saved
    }
    expect(await get(workload.replicas[0].address)).toBe('handler')
  })

  it('never cuts open connections when the mode changes', async () => {
    session.deactivate()
    await eventually(
      'app answer',
      () => get(workload.replicas[0].address),
      (b) => b === 'app',
    )
    const toApp = await open(workload.replicas[0].address)
    session.activate()
    await eventually(
      'intercepted answer',
      () => get(workload.replicas[0].address),
      (b) => b === 'handler',
    )
    const toHandler = await open(workload.replicas[0].address)
    session.deactivate()
    await eventually(
      'app answer',
      () => get(workload.replicas[0].address),
      (b) => b === 'app',
    )
    expect(body(await converse(toApp, HTTP_GET))).toBe('app')
    expect(body(await converse(toHandler, HTTP_GET))).toBe('handler')
  })

  it('keeps serving open relayed connections after release, then exits', async () => {
    session.activate()
    await eventually(
      'intercepted answer',
      () => get(workload.replicas[0].address),
      (b) => b === 'handler',
    )
    const held = await open(workload.replicas[0].address)
    await new Promise((r) => setTimeout(r, 200)) // the dial-back completes
    await session.release()
    expect(await get(workload.replicas[0].address)).toBe('app')
    expect(body(await converse(held, HTTP_GET))).toBe('handler')
    await eventually(
      'agent container gone',
      () => containerGone(containerId),
      (g) => g,
      10_000,
    )
  })
})

describe('a personal intercept through the daemon (no direct path to the handler)', () => {
  it('sends the matching requests to the handler over spares and dial-backs, the rest to the app', async () => {
    const {session, containerId} = await inject('personal-relay', {TP_AGENT_FILTER: JSON.stringify({headers: {'x-dev': 'alice'}})})
    try {
      session.activate()
      const ask = async (dev?: string) => {
        const head = `GET / HTTP/1.0\r\nHost: web\r\n${dev ? `X-Dev: ${dev}\r\n` : ''}\r\n`
        const socket = await open(workload.replicas[0].address)
        // an answer that never comes fails the ask (the bug this guards against hung)
        socket.setTimeout(5000, () => socket.destroy(new Error('no answer within 5 s')))
        // not half-closed after the request: an HTTP server takes that as the client giving up
        return body(await converse(socket, head, false))
      }
      await eventually(
        'the handler answers alice',
        () => ask('alice'),
        (b) => b === 'handler',
      )
      // more than the daemon keeps spare: the later ones come by dial-back (each read its header
      // line first, as a spare did, and must still be read by the HTTP client)
      expect(await Promise.all(Array.from({length: 6}, () => ask('alice')))).toEqual(Array(6).fill('handler'))
      expect(await ask('bob')).toBe('app')
      expect(await ask()).toBe('app')
    } finally {
      await cluster.removeAgent(containerId, {graceSeconds: 5})
    }
  })
})

describe('AgentServer', () => {
  it('rejects an agent with a wrong token, and times out with a UserError', async () => {
    const session = server.expect('wrong-token', 'the-right-token', {connectLocal: () => Promise.reject(new Error('unused')), readyTimeoutMs: 1500})
    const socket = connect({host: '127.0.0.1', port: serverPort})
    await new Promise((resolve) => socket.once('connect', resolve))
    socket.write('{"type":"hello","token":"a-wrong-token!!","interceptId":"wrong-token","redirectPort":1,"dialPort":2,"sftpPort":null}\n')
    await new Promise((resolve) => socket.once('close', resolve))
    const error = await session.ready.then(
      () => undefined,
      (e: unknown) => e as {kind?: string; message: string},
    )
    expect(error?.kind).toBe('user')
    expect(error?.message).toContain('did not become ready')
    expect(await session.gone).toContain('never became ready')
  })

  it('refuses an agent that serves the volumes on another port than the daemon asked', async () => {
    const session = server.expect('other-port', 'token-other-port!', {connectLocal: () => Promise.reject(new Error('unused')), sftpPort: 24_001})
    const socket = connect({host: '127.0.0.1', port: serverPort})
    await new Promise((resolve) => socket.once('connect', resolve))
    socket.write('{"type":"hello","token":"token-other-port!","interceptId":"other-port","redirectPort":1,"dialPort":2,"sftpPort":24002}\n')
    await expect(session.ready).rejects.toMatchObject({kind: 'user', message: expect.stringContaining('serves the volumes on port 24002, not on 24001')})
    socket.destroy()
  })

  it('reports an agent whose SFTP port is taken in the workload namespace, before it touches a rule', async () => {
    const taken = createServer()
    const port = await new Promise<number>((resolve) => taken.listen(0, '0.0.0.0', () => resolve((taken.address() as {port: number}).port)))
    try {
      const session = server.expect('sftp-taken', 'token-2', {connectLocal: () => Promise.reject(new Error('unused')), sftpPort: port})
      // iptables never runs: the taken port is reported before the rule
      const agent = await agentHere('sftp-taken', 'token-2', {mounts: [{path: '/data', readOnly: false}], sftpPort: port})
      await agent.start()
      expect(await agent.done).toBe(1)
      await expect(session.ready).rejects.toMatchObject({
        kind: 'user',
        message: expect.stringContaining(`port ${port}, where the daemon asked the agent to serve the volumes, is taken`),
      })
    } finally {
      await new Promise((resolve) => taken.close(resolve))
    }
  })

  it('reports an agent that cannot install its rule', async () => {
    const session = server.expect('no-iptables', 'token-1', {connectLocal: () => Promise.reject(new Error('unused'))})
    const agent = await agentHere('no-iptables', 'token-1')
    await agent.start()
    expect(await agent.done).toBe(1)
    await expect(session.ready).rejects.toMatchObject({kind: 'user', message: expect.stringContaining('could not install the redirect rule')})
  })
})

describe('an agent killed before it could clean up', () => {
  it('removeAgent restores the traffic when it had to kill the agent', async () => {
    const {session, containerId} = await inject('killed-by-stop')
    session.activate()
    await eventually(
      'intercepted answer',
      () => get(workload.replicas[0].address),
      (b) => b === 'handler',
    )
    await cluster.removeAgent(containerId, {graceSeconds: 0}) // no grace: SIGKILL at once
    expect(await containerGone(containerId)).toBe(true)
    expect(await get(workload.replicas[0].address)).toBe('app')
  })

  it('restoreTraffic removes the rule of an agent killed from outside', async () => {
    const {session, containerId} = await inject('killed')
    const interceptId = (await fx.docker.getContainer(containerId).inspect()).Config.Env.find((e) => e.startsWith('TP_AGENT_INTERCEPT_ID='))!.split('=')[1]
    await fx.docker.getContainer(containerId).kill()
    await session.gone
    // the rule outlived the agent: nobody listens where it points
    await expect(get(workload.replicas[0].address, 2000)).rejects.toThrow()
    await cluster.restoreTraffic({namespace: NET, replica: workload.replicas[0], image: runtime, interceptId, labels: {'tp.fixture': 'true'}})
    expect(await get(workload.replicas[0].address)).toBe('app')
  })
})

describe('passthrough', () => {
  it('reaches an app that listens on its interface address only', async () => {
    await fx.container({
      name: 'tpt-agent-bound',
      Image: busybox,
      Cmd: ['sh', '-c', 'mkdir -p /www && echo bound > /www/index.html && exec httpd -f -p $(hostname -i):80 -h /www'],
      ExposedPorts: {'80/tcp': {}},
      HostConfig: {NetworkMode: NET},
    })
    const bound = await cluster.workload(NET, 'tpt-agent-bound')
    await eventually(
      'the bound app answers',
      () => get(bound.replicas[0].address),
      (b) => b === 'bound',
    )
    const {containerId} = await inject('bound-agent', {}, bound)
    try {
      for (let i = 0; i < 5; i++) expect(await get(bound.replicas[0].address)).toBe('bound')
    } finally {
      await cluster.removeAgent(containerId, {graceSeconds: 5})
    }
  })
})

describe('wiretap', () => {
  /** A recorder as the handler: what each connection to it carried. */
  async function withRecorder(fn: (copies: string[]) => Promise<void>): Promise<void> {
    const copies: string[] = []
    const recorder = createServer({allowHalfOpen: true}, (socket) => {
      const at = copies.push('') - 1
      socket.on('data', (c: Buffer) => (copies[at] += c.toString()))
      socket.on('end', () => socket.end())
      socket.on('error', () => undefined)
    })
    const saved = handlerPort
    handlerPort = await new Promise<number>((resolve) => recorder.listen(0, '127.0.0.1', () => resolve((recorder.address() as {port: number}).port)))
    try {
      await fn(copies)
    } finally {
      handlerPort = saved
      recorder.close()
    }
  }

  for (const [how, env, redirected] of [
    ['captures the packets: no rule, the app answers, the handler gets a copy', {}, false],
    ['without the capture (TP_AGENT_WIRETAP_CAPTURE=0): redirected through the agent, the copy alike', {TP_AGENT_WIRETAP_CAPTURE: '0'}, true],
  ] as const) {
    it(how, async () => {
      await withRecorder(async (copies) => {
        const {session, containerId} = await inject(redirected ? 'tap-redirect' : 'tap-capture', {TP_AGENT_MODE: 'wiretap', ...env})
        try {
          session.activate()
          const rules = await namespaceState()
          if (redirected) expect(rules).toMatch(/--dport 80 .*REDIRECT/)
          else expect(rules).toBe(namespaceBefore)
          // the copy starts with the activation: wait until a request is copied
          await eventually(
            'a copy',
            async () => {
              expect(await get(workload.replicas[0].address)).toBe('app')
              return copies.filter((c) => c.startsWith('GET / ')).length
            },
            (n) => n > 0,
          )
          const socket = await open(workload.replicas[0].address)
          const once = 'GET / HTTP/1.0\r\nHost: web\r\nX-Once: 1\r\n\r\n'
          expect(body(await converse(socket, once))).toBe('app')
          await eventually(
            'the copy of the request with X-Once',
            () => copies.find((c) => c.includes('X-Once')),
            (c) => c === once,
          )
          const agentLog = String(await fx.docker.getContainer(containerId).logs({stdout: true, stderr: true}))
          expect(agentLog).toContain(redirected ? 'redirecting port 80' : 'capturing what clients send to port 80')
        } finally {
          await cluster.removeAgent(containerId, {graceSeconds: 5})
        }
      })
    })
  }
})

describe('the workload', () => {
  it('never restarted or disconnected the workload', async () => {
    const now = await cluster.workload(NET, 'web')
    expect({id: now.replicas[0].id, startedAt: now.replicas[0].startedAt}).toEqual(before)
    expect(await get(workload.replicas[0].address)).toBe('app')
    // and no agent left a rule behind in its network namespace
    const rules = await fx.run(runtime, `container:${now.replicas[0].id}`, ['iptables-save', '-t', 'nat'], 'tpt-agent-rules', {CapAdd: ['NET_ADMIN']})
    expect(rules.code).toBe(0)
    expect(rules.output).toContain('*nat')
    expect(rules.output).not.toContain('REDIRECT')
    expect(rules.output).not.toContain('tp-agent')
  })
})
