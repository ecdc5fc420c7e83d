import {randomBytes} from 'node:crypto'
import {connect, createServer, type Server, type Socket} from 'node:net'
import {afterAll, afterEach, beforeAll, describe, expect, it} from 'vitest'
import {AgentServer, type AgentSession} from '@tp/agent'
import {DockerDriver} from '@tp/plugin-cluster-docker'
import type {Workload} from '@tp/sdk'
import {ensureRuntimeImage} from '@tp/images'
import {Fixtures, httpdCmd} from './fixture.js'
import {converse, eventuallyWith, get, open} from './net.js'

// The kernel path: with a handler the workload's namespace can reach, the kernel rewrites new
// connections straight to it (DNAT + MASQUERADE) and the agent's process carries none of them; a
// handler on loopback only is relayed as before. Real engine, real agent; this process plays the
// daemon (AgentServer) and the handlers. After each test the workloads' namespaces are as before.
const NET = 'tpt-kpath-net'
const fx = new Fixtures()
const cluster = new DockerDriver(fx.docker, {networkFilter: (name) => name === NET})
const logs: string[] = []
const eventually = eventuallyWith(() => logs.join('\n'))

let runtime: string
let gateway: string
let server: AgentServer
let serverPort: number
/** Forwarding on in its namespace, as Docker leaves it. */
let web: Workload
/** Forwarding off in its namespace: the agent must turn it on, then off again. */
let noForward: Workload
/** Listens on every address: the kernel path can reach it at the gateway. */
let wide: Server
let widePort: number
/** Listens on 127.0.0.1 only: only the daemon's relay reaches it. */
let loopback: Server
let loopbackPort: number
const initial = new Map<string, string>()

/** A handler that says where the connection came from, or counts what it got until the client half-closes. */
function handlerServer(name: string): Server {
  return createServer({allowHalfOpen: true}, (socket) => {
    let bytes = 0
    socket.on('data', (chunk: Buffer) => {
      if (bytes === 0 && chunk.subarray(0, 4).toString() === 'GET ') {
        socket.removeAllListeners('data')
        socket.end(`HTTP/1.0 200 OK\r\nConnection: close\r\n\r\n${name} sees ${socket.remoteAddress?.replace(/^::ffff:/, '')}\n`)
        return
      }
      bytes += chunk.length
    })
    socket.on('end', () => socket.end(`got ${bytes} bytes`))
    socket.on('error', () => undefined)
  })
}

function listenOn(s: Server, host: string): Promise<number> {
  return new Promise((resolve) => s.listen(0, host, () => resolve((s.address() as {port: number}).port)))
}

/** The NAT rules and the forwarding switch of a workload's network namespace. */
async function namespaceState(w: Workload): Promise<string> {
  const script = 'iptables -w -t nat -S && echo ip_forward=$(cat /proc/sys/net/ipv4/ip_forward)'
  const {output, code} = await fx.run(runtime, `container:${w.replicas[0].id}`, ['sh', '-c', script], `tpt-kpath-state-${w.name}`, {CapAdd: ['NET_ADMIN']})
  expect(code, output).toBe(0)
  return output.trim()
}

/** What the agent's process carried, as of a pong after now. */
async function countersNow(session: AgentSession) {
  const since = Date.now()
  const {agent} = await eventually(
    'a pong with counters',
    () => session.stats(),
    (s) => (s.agent?.at ?? 0) > since,
  )
  return agent!
}

/**
 * An agent for the target's port 80 whose handler is this process at directPort. With
 * `dockerDefaults`, its container has Docker's read-only /proc/sys (not the driver's, where
 * /proc/sys/net is writable): the agent cannot turn forwarding on there.
 */
/** Activates the intercept and waits until the agent says the kernel carries its connections. */
async function activateOnKernelPath(session: AgentSession) {
  session.activate()
  await eventually(
    'the kernel path',
    () => countersNow(session),
    (c) => c.kernelPath,
  )
}

async function inject(name: string, target: Workload, directPort: number, env: Record<string, string> = {}, dockerDefaults = false) {
  const interceptId = randomBytes(4).toString('hex')
  const token = randomBytes(16).toString('hex')
  const session = server.expect(interceptId, token, {
    direct: {host: gateway, port: directPort},
    connectLocal: () =>
      new Promise<Socket>((resolve, reject) => {
        const s = connect({host: '127.0.0.1', port: directPort, allowHalfOpen: true})
        s.once('connect', () => resolve(s))
        s.once('error', reject)
      }),
    readyTimeoutMs: 20_000,
  })
  const agentEnv = {
    TP_AGENT_DAEMON: `${gateway}:${serverPort}`,
    TP_AGENT_TOKEN: token,
    TP_AGENT_INTERCEPT_ID: interceptId,
    TP_AGENT_SERVICE_PORT: '80',
    TP_AGENT_MOUNTS: '[]',
    ...env,
  }
  const containerId = dockerDefaults
    ? (
        await fx.container({
          name: `tpt-kpath-agent-${name}`,
          Image: runtime,
          Cmd: ['node', '/opt/tp/agent.cjs'],
          Env: Object.entries(agentEnv).map(([k, v]) => `${k}=${v}`),
          HostConfig: {NetworkMode: `container:${target.replicas[0].id}`, CapAdd: ['NET_ADMIN']},
        })
      ).Id
    : (
        await cluster.injectAgent({
          role: 'agent',
          namespace: NET,
          workload: target,
          replica: target.replicas[0],
          image: runtime,
          name: `tpt-kpath-agent-${name}`,
          labels: {'tp.fixture': 'true'},
          env: agentEnv,
        })
      ).id
  await session.ready
  return {session, containerId, interceptId}
}

const agentLog = async (containerId: string) =>
  String(
    await fx.docker
      .getContainer(containerId)
      .logs({stdout: true, stderr: true})
      .catch(() => ''),
  )

beforeAll(async () => {
  runtime = (await ensureRuntimeImage(fx.docker, {require: ['agent']})).ref
  const busybox = await fx.busybox()
  const network = await fx.network(NET)
  gateway = network.IPAM!.Config![0].Gateway!
  for (const [name, sysctls] of [
    ['tpt-kpath-web', {}],
    ['tpt-kpath-nofwd', {'net.ipv4.ip_forward': '0'}],
  ] as const) {
    await fx.container({name, Image: busybox, Cmd: httpdCmd('app'), ExposedPorts: {'80/tcp': {}}, HostConfig: {NetworkMode: NET, Sysctls: sysctls}})
  }
  web = await cluster.workload(NET, 'tpt-kpath-web')
  noForward = await cluster.workload(NET, 'tpt-kpath-nofwd')
  for (const w of [web, noForward]) {
    await eventually(
      `${w.name} answers`,
      () => get(w.replicas[0].address),
      (b) => b === 'app',
    )
    initial.set(w.name, await namespaceState(w))
  }
  expect(initial.get(noForward.name)).toContain('ip_forward=0')
  wide = handlerServer('wide')
  widePort = await listenOn(wide, '0.0.0.0')
  loopback = handlerServer('loopback')
  loopbackPort = await listenOn(loopback, '127.0.0.1')
  server = new AgentServer({log: (m) => logs.push(`daemon: ${m}`), pingMs: 100})
  serverPort = (await server.listen()).port
})

afterEach(async () => {
  // every rule gone and forwarding as it was, whatever the test did
  for (const w of [web, noForward]) expect(await namespaceState(w)).toBe(initial.get(w.name))
})

afterAll(async () => {
  await server?.close()
  wide?.close()
  loopback?.close()
  await fx.cleanup()
})

describe('the kernel path', () => {
  it("carries connections to a handler the namespace reaches: the agent's process carries none of them", async () => {
    const {session, containerId} = await inject('wide', web, widePort)
    try {
      await activateOnKernelPath(session)
      const answers = await Promise.all(Array.from({length: 40}, () => get(web.replicas[0].address)))
      // the handler sees the workload's address (MASQUERADE), as with the agent's own connections
      expect(new Set(answers)).toEqual(new Set([`wide sees ${web.replicas[0].address}`]))
      const payload = Buffer.alloc(2 * 1024 * 1024, 'k')
      expect(await converse(await open(web.replicas[0].address), payload)).toBe(`got ${payload.length} bytes`)
      const counters = await countersNow(session)
      expect(counters).toMatchObject({toHandler: 0, toApp: 0, kernelPath: true})
      expect(session.stats().connections).toBe(0)
      expect(await agentLog(containerId)).toContain(`the kernel carries new connections to the handler at ${gateway}:${widePort}`)
      await session.deactivate(5000)
      expect(await get(web.replicas[0].address)).toBe('app')
      expect(await countersNow(session)).toMatchObject({kernelPath: false, toApp: 1})
    } finally {
      await cluster.removeAgent(containerId, {graceSeconds: 5})
    }
  })

  it('falls back to the relay through the daemon for a handler on loopback only (the counters count it)', async () => {
    const {session, containerId} = await inject('loopback', web, loopbackPort)
    try {
      session.activate()
      await eventually(
        'the fallback',
        async () => agentLog(containerId),
        (l) => /does not take connections on .*ECONNREFUSED.*relaying through the daemon/.test(l),
      )
      for (let i = 0; i < 5; i++) expect(await get(web.replicas[0].address)).toBe('loopback sees 127.0.0.1')
      expect(await countersNow(session)).toMatchObject({toHandler: 5, kernelPath: false})
      expect(session.stats().connections).toBe(5)
    } finally {
      await cluster.removeAgent(containerId, {graceSeconds: 5})
    }
  })

  it('hand-back: new connections reach the app at once, one in flight to the handler finishes, and the drain waits for it', async () => {
    const {session, containerId} = await inject('drain', web, widePort)
    try {
      await activateOnKernelPath(session)
      const held = await open(web.replicas[0].address)
      held.write('some bytes ')
      let drained = false
      const drain = session.deactivate(10_000).then(() => (drained = true))
      await eventually(
        'the app answers new connections',
        () => get(web.replicas[0].address),
        (b) => b === 'app',
      )
      await new Promise((r) => setTimeout(r, 300))
      expect(drained).toBe(false)
      expect(await converse(held, 'and the rest')).toBe('got 23 bytes')
      await drain
      expect(drained).toBe(true)
    } finally {
      await cluster.removeAgent(containerId, {graceSeconds: 5})
    }
  })

  it('does not cut a connection already going to the app when it turns on', async () => {
    const {session, containerId} = await inject('switch-on', web, widePort)
    try {
      const toApp = await open(web.replicas[0].address)
      toApp.write('GET / HTTP/1.0\r\n')
      await activateOnKernelPath(session)
      expect(await get(web.replicas[0].address)).toBe(`wide sees ${web.replicas[0].address}`)
      const reply = await converse(toApp, 'Host: web\r\n\r\n')
      expect(reply.split('\r\n\r\n')[1]?.trim()).toBe('app')
    } finally {
      await cluster.removeAgent(containerId, {graceSeconds: 5})
    }
  })

  it('turns forwarding on where it is off, and off again when the agent ends', async () => {
    const {session, containerId} = await inject('nofwd', noForward, widePort)
    try {
      await activateOnKernelPath(session)
      expect(await namespaceState(noForward)).toContain('ip_forward=1')
      expect(await get(noForward.replicas[0].address)).toBe(`wide sees ${noForward.replicas[0].address}`)
    } finally {
      await cluster.removeAgent(containerId, {graceSeconds: 5})
    }
    expect(await get(noForward.replicas[0].address)).toBe('app')
  })

  it('when it cannot be set up (forwarding off, /proc/sys read-only), the agent carries the connections and says why', async () => {
    const {session, containerId} = await inject('read-only-sys', noForward, widePort, {}, true)
    try {
      session.activate()
      await eventually(
        'the reason in the log',
        () => agentLog(containerId),
        (l) => /connections to the handler go through this agent: cannot turn forwarding on in this network namespace \(.*EROFS\)/.test(l),
      )
      for (let i = 0; i < 5; i++) expect(await get(noForward.replicas[0].address)).toBe(`wide sees ${noForward.replicas[0].address}`)
      const counters = await countersNow(session)
      expect(counters.kernelPath).toBe(false)
      expect(counters.toHandler).toBeGreaterThanOrEqual(5)
      // only the agent's REDIRECT rule: no DNAT or MASQUERADE rule of its own was left from the attempt
      expect(await namespaceState(noForward)).not.toMatch(/tp-agent:\S+ -j (DNAT|MASQUERADE)/)
      expect(await namespaceState(noForward)).toMatch(/tp-agent:\S+ -j REDIRECT/)
    } finally {
      await cluster.removeAgent(containerId, {graceSeconds: 5})
    }
  })

  it('after kill -9 of the agent, the clean-up removes its rules and turns forwarding off again', async () => {
    const {session, containerId, interceptId} = await inject('nofwd-killed', noForward, widePort)
    await activateOnKernelPath(session)
    await fx.docker.getContainer(containerId).kill()
    await session.gone
    expect(await namespaceState(noForward)).toContain('DNAT')
    await cluster.restoreTraffic({namespace: NET, replica: noForward.replicas[0], image: runtime, interceptId, labels: {'tp.fixture': 'true'}})
    expect(await get(noForward.replicas[0].address)).toBe('app')
  })

  it('TP_AGENT_KERNEL_PATH=0: the agent carries the connections itself, straight to the handler', async () => {
    const {session, containerId} = await inject('no-kernel', web, widePort, {TP_AGENT_KERNEL_PATH: '0'})
    try {
      session.activate()
      await eventually(
        'a direct answer',
        () => get(web.replicas[0].address),
        (b) => b === `wide sees ${web.replicas[0].address}`,
      )
      const counters = await countersNow(session)
      expect(counters.kernelPath).toBe(false)
      expect(counters.toHandler).toBeGreaterThan(0)
      expect(session.stats().connections).toBe(0)
    } finally {
      await cluster.removeAgent(containerId, {graceSeconds: 5})
    }
  })
})
