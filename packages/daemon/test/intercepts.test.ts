import {type Server, createServer} from 'node:net'
import {setTimeout as sleep} from 'node:timers/promises'
import {afterEach, describe, expect, it, vi} from 'vitest'
import type {AgentReady, AgentSession, ExpectOptions} from '@tp/agent'
import {type AgentRequest, type ClusterDriver, type DaemonSession, type InterceptEvent, type Replica, UserError, type Workload, isUserError} from '@tp/sdk'
import {fakePlacement} from '@tp/sdk/testing'
import {InterceptManager, type LeaseSink} from '@tp/daemon'

/**
 * The daemon's intercept logic with a fake cluster driver and fake agents: claims, naming, the
 * order of removal, the lease holder's time limit, readiness gating, replicas that come and go.
 * No Docker.
 */

function replica(id: string, address = '10.1.0.5'): Replica {
  return {id, name: `${id}-1`, address, startedAt: ''}
}

function workload(name: string, ports: number[] = [80], replicas: Replica[] = [replica(`id-${name}`)]): Workload {
  return {
    name,
    namespace: 'ns',
    aliases: [name],
    ports: ports.map((port) => ({port, protocol: 'tcp' as const, name: port === 80 ? 'http' : undefined})),
    environment: {GREETING: 'hi', HOME: '/root', PATH: '/bin', HOSTNAME: 'x'},
    mounts: [{path: '/data', readOnly: false}],
    replicas,
  }
}

/** Everything the fake cluster and agents were asked, in order. */
type Call = string

class FakeDriver implements ClusterDriver {
  /** The environment of the last agent injected (not of a guard). */
  agentEnv: Record<string, string> = {}
  /** Why a replica is gone, by id (a replica not here runs as it did). */
  readonly goneReplicas = new Map<string, string>()
  constructor(
    readonly calls: Call[],
    readonly all: Workload[],
    private readonly gone?: string,
    /** The agent container's exit code, once it ends. */
    readonly agentExitCode?: number,
  ) {}
  async namespaces() {
    return [{name: 'ns', workloads: this.all.length}]
  }
  async resolveNamespace() {
    return 'ns'
  }
  async workloads(): Promise<Workload[]> {
    return this.all
  }
  async workload(_namespace: string, name: string): Promise<Workload> {
    const found = this.all.find((w) => w.name === name)
    if (!found) throw new UserError(`no workload named "${name}"`)
    return structuredClone(found)
  }
  async injectAgent(spec: AgentRequest) {
    this.calls.push(spec.role === 'guard' ? `guard ${spec.name} ${spec.env.TP_AGENT_GUARD_PORT}` : `inject ${spec.name} ${spec.env.TP_AGENT_DAEMON}`)
    if (spec.role === 'agent') this.agentEnv = spec.env
    return {id: `c-${spec.name}`, name: spec.name, exited: Promise.resolve(this.agentExitCode)}
  }
  async removeAgent(agent: string) {
    this.calls.push(`remove-agent ${agent}`)
  }
  async whyNotRunning(_namespace: string, r: Replica) {
    if (this.goneReplicas.has(r.id)) return this.goneReplicas.get(r.id)
    if (this.gone === 'restarted') return `restarted (at ${r.startedAt}+1)`
    return this.gone
  }
  async restoreTraffic(o: {replica: Replica}) {
    this.calls.push(`restore-traffic ${o.replica.id}`)
  }
  async reach(namespace: string) {
    return {containerNetwork: namespace}
  }
  async ensureImages() {
    return {runtime: 'tp-runtime:test'}
  }
  async sweep() {
    return []
  }
}

class FakeAgent implements AgentSession {
  ready: Promise<AgentReady>
  gone: Promise<string>
  goAway!: (reason: string) => void
  constructor(
    private readonly calls: Call[],
    readonly options: ExpectOptions,
    fail?: Error,
    /** Until it resolves, the agent is still coming up. */
    comingUp: Promise<void> = Promise.resolve(),
    /** The id the daemon expects it by (its TP_AGENT_INTERCEPT_ID). */
    readonly id = '',
  ) {
    // the agent serves the volumes where the daemon told it to
    const hello = {address: '10.1.0.5', redirectPort: 1, dialPort: 2, sftpPort: options.sftpPort ?? null, guardPort: 3}
    this.ready = comingUp.then(() => (fail ? Promise.reject(fail) : hello))
    this.ready.catch(() => undefined)
    this.gone = new Promise((resolve) => (this.goAway = resolve))
  }
  activate() {
    this.calls.push('activate')
  }
  /** Resolves the hand-back's wait: the agent says the connections in flight have ended. */
  drained: () => void = () => undefined
  deactivate(drainMs = 0) {
    this.calls.push(drainMs > 0 ? 'deactivate (drain)' : 'deactivate')
    if (drainMs <= 0) return Promise.resolve()
    return new Promise<void>((resolve) => {
      this.drained = resolve
      setTimeout(resolve, drainMs)
    })
  }
  async release() {
    this.calls.push('release')
  }
  stats() {
    return {connections: 0, active: 0, spares: 0}
  }
}

function lease(calls: Call[]): LeaseSink & {events: InterceptEvent[]; close: () => void} {
  let close!: () => void
  const closed = new Promise<void>((resolve) => (close = resolve))
  const events: InterceptEvent[] = []
  return {
    events,
    closed,
    close,
    send: (event) => {
      events.push(event)
      if (event.type !== 'heartbeat') calls.push(`lease ${event.type}`)
    },
    fail: (error) => {
      events.push({type: 'error', error: {kind: 'user', message: (error as Error).message}})
      calls.push('lease error')
    },
    end: () => calls.push('lease end'),
  }
}

const servers: Server[] = []
const managers: InterceptManager[] = []
afterEach(async () => {
  for (const m of managers.splice(0)) await m.removeAll('test over')
  for (const s of servers.splice(0)) await new Promise((r) => s.close(r))
})

function setup(
  options: {
    workloads?: Workload[]
    holderTeardownMs?: number
    drainMs?: number
    agentFails?: Error
    gone?: string
    agentExitCode?: number
    agentComingUp?: Promise<void>
    reconcileMs?: number
    guardDelayMs?: number
    /** The cluster replaces a replica that goes (as a swarm does), within this wait. */
    replaces?: number
  } = {},
) {
  const calls: Call[] = []
  const agents: FakeAgent[] = []
  const cluster = new FakeDriver(calls, options.workloads ?? [workload('frontend-v1'), workload('multi', [80, 8080])], options.gone, options.agentExitCode)
  if (options.replaces !== undefined) Object.assign(cluster, {replacesReplicas: true})
  const manager = new InterceptManager(
    {
      connection: 'unit',
      namespace: 'ns',
      id: 'unit',
      runtimeImage: 'tp-runtime:test',
      placement: fakePlacement('shared', 'unit'),
      holderTeardownMs: options.holderTeardownMs ?? 200,
      drainMs: options.drainMs ?? 50,
      reconcileMs: options.reconcileMs ?? 60_000,
      ...(options.replaces !== undefined ? {replacementWaitMs: options.replaces} : {}),
      guardDelayMs: options.guardDelayMs ?? 0,
      cluster: {driver: 'fake', engine: 'fake://', module: '/fake/driver.mjs', linked: false},
    },
    cluster,
    {
      expect: (id: string, _token: string, expectOptions: ExpectOptions) => {
        const agent = new FakeAgent(calls, expectOptions, options.agentFails, options.agentComingUp, id)
        agents.push(agent)
        return agent
      },
    },
    {agentsDial: '10.1.0.2:4701', container: {handlerHost: '127.0.0.1', directHost: '10.1.0.2'}},
    () => undefined,
    async (name) => {
      calls.push(`remove-orphans ${name}`)
    },
  )
  managers.push(manager)
  return {calls, agents, manager, cluster}
}

async function userError(promise: Promise<unknown>): Promise<{message: string; next?: string}> {
  try {
    await promise
  } catch (error) {
    if (isUserError(error)) return error
    throw error
  }
  throw new Error('expected a UserError')
}

describe('InterceptManager', () => {
  it('names an intercept after its workload, plus the port when the workload has several', async () => {
    const {manager, calls} = setup()
    const one = await manager.create({workload: 'frontend-v1', localPort: 8000, mounts: true}, lease(calls))
    const two = await manager.create({workload: 'multi', localPort: 8001, servicePort: '8080', mounts: true}, lease(calls))
    expect([one.name, two.name]).toEqual(['frontend-v1', 'multi-8080'])
    expect(one.environment).toMatchObject({GREETING: 'hi', TP_INTERCEPT_NAME: 'frontend-v1', TP_WORKLOAD: 'frontend-v1', TP_MOUNTS: '/data'})
    expect(Object.keys(one.environment)).not.toContain('HOME')
    expect(one.mounts).toEqual([{path: '/data', readOnly: false, sftp: {host: '10.1.0.5', port: expect.any(Number), dir: '/data'}}])
    // the placement decides the daemon's identity in the session and where agents dial
    expect(one.daemon).toEqual({
      connection: 'unit',
      id: 'unit',
      backend: 'container',
      where: 'container tp-unit-cn',
      cluster: {driver: 'fake', engine: 'fake://'},
    })
    expect(calls).toContain('inject tp-unit-agent-frontend-v1 10.1.0.2:4701')
    expect(await userError(manager.create({workload: 'frontend-v1', localPort: 8000, name: 'bad name!', mounts: false}, lease(calls)))).toMatchObject({
      message: expect.stringContaining('not a usable intercept name'),
    })
  })

  it('claims a workload port: a second intercept of it is refused until the first ends', async () => {
    const {manager, calls} = setup()
    const first = lease(calls)
    await manager.create({workload: 'frontend-v1', localPort: 8000, mounts: false}, first)
    const refused = await userError(manager.create({workload: 'frontend-v1', localPort: 8001, name: 'other', mounts: false}, lease(calls)))
    expect(refused.message).toBe('port 80 of frontend-v1 is already intercepted by "frontend-v1"')
    expect(refused.next).toContain('tp leave frontend-v1')
    expect(
      await userError(manager.create({workload: 'multi', localPort: 8002, servicePort: '80', name: 'frontend-v1', mounts: false}, lease(calls))),
    ).toMatchObject({
      message: 'an intercept named "frontend-v1" already exists',
    })
    await manager.remove('frontend-v1', 'done', 'owner')
    const again = await manager.create({workload: 'frontend-v1', localPort: 8001, name: 'other', mounts: false}, lease(calls))
    expect(again.name).toBe('other')
  })

  it('releases the claim when the agent never becomes ready', async () => {
    const {manager, calls} = setup({agentFails: new Error('agent did not start')})
    await expect(manager.create({workload: 'frontend-v1', localPort: 8000, mounts: false}, lease(calls))).rejects.toThrow('agent did not start')
    expect(calls).toEqual([
      'remove-agent tp-unit-agent-frontend-v1',
      'remove-agent tp-unit-agent-frontend-v1-guard',
      'inject tp-unit-agent-frontend-v1 10.1.0.2:4701',
      'remove-agent c-tp-unit-agent-frontend-v1',
    ])
    expect(manager.list()).toEqual([])
  })

  it('gives the session before the agent is up, with the SFTP port it then tells the agent', async () => {
    let agentUp!: () => void
    const {manager, calls, cluster} = setup({agentComingUp: new Promise((resolve) => (agentUp = resolve))})
    let early: DaemonSession | undefined
    const creating = manager.create({workload: 'frontend-v1', localPort: 8000, mounts: true}, lease(calls), undefined, (session) => {
      early = session
      calls.push('session')
    })
    await vi.waitFor(() => expect(calls).toContain('inject tp-unit-agent-frontend-v1 10.1.0.2:4701'))
    // the CLI has the session (and starts its handler and volumes) while the agent comes up
    expect(calls.indexOf('session')).toBeLessThan(calls.indexOf('inject tp-unit-agent-frontend-v1 10.1.0.2:4701'))
    expect(manager.list()).toEqual([])
    const port = early!.mounts[0].sftp.port
    expect(port).toBeGreaterThanOrEqual(20_000)
    expect(port).toBeLessThan(30_000)
    expect(cluster.agentEnv.TP_AGENT_SFTP_PORT).toBe(String(port))
    expect(early!.mounts[0].sftp.host).toBe('10.1.0.5') // the workload's address: the agent shares it
    agentUp()
    expect(await creating).toEqual(early)
    expect(manager.list().map((i) => i.name)).toEqual(['frontend-v1'])
  })

  it("passes on where the cluster's engine keeps each mount, as the driver says", async () => {
    const w = workload('stateful')
    w.mounts = [
      {path: '/data', readOnly: false},
      {path: '/etc/app', readOnly: true, engine: {engine: 'ENGINE-ID', type: 'volume', source: 'stateful-config'}},
    ]
    const {manager, calls} = setup({workloads: [w]})
    const s = await manager.create({workload: 'stateful', localPort: 8000, mounts: true}, lease(calls))
    expect(s.mounts.map((m) => [m.path, m.engine])).toEqual([
      ['/data', undefined],
      ['/etc/app', {engine: 'ENGINE-ID', type: 'volume', source: 'stateful-config'}],
    ])
  })

  it('an agent that fails after the session went out: the lease hears why; what the CLI started goes once it closes the lease', async () => {
    let agentUp!: () => void
    const {manager, calls} = setup({agentFails: new UserError('the traffic agent failed: no iptables'), agentComingUp: new Promise((r) => (agentUp = r))})
    const sink = lease(calls)
    const creating = manager.create({workload: 'frontend-v1', localPort: 8000, mounts: true}, sink, undefined, () => calls.push('session'))
    creating.catch(() => undefined)
    await vi.waitFor(() => expect(calls).toContain('session'))
    agentUp()
    await vi.waitFor(() => expect(calls).toContain('lease error'))
    expect(sink.events.at(-1)).toMatchObject({type: 'error', error: {message: 'the traffic agent failed: no iptables'}})
    // the CLI stops its handler and volumes, then closes its lease; only then does the daemon look
    await sleep(50)
    expect(calls).not.toContain('remove-orphans frontend-v1')
    sink.close()
    await expect(creating).rejects.toThrow('no iptables')
    expect(calls.slice(-3)).toEqual(['remove-agent c-tp-unit-agent-frontend-v1', 'lease error', 'remove-orphans frontend-v1'])
    expect(manager.list()).toEqual([])
  })

  it('an agent that fails after the session went out, and a CLI that never closes its lease: removed after the holder time', async () => {
    const {manager, calls} = setup({agentFails: new UserError('the traffic agent failed'), holderTeardownMs: 100})
    const started = Date.now()
    await expect(manager.create({workload: 'frontend-v1', localPort: 8000, mounts: false}, lease(calls), undefined, () => undefined)).rejects.toThrow(
      'the traffic agent failed',
    )
    expect(Date.now() - started).toBeGreaterThanOrEqual(90)
    expect(calls.at(-1)).toBe('remove-orphans frontend-v1')
  })

  it('starts a guard beside the agent, at the port the agent gave', async () => {
    const {manager, calls} = setup()
    await manager.create({workload: 'frontend-v1', localPort: 8000, mounts: false}, lease(calls))
    await sleep(10)
    expect(calls).toContain('guard tp-unit-agent-frontend-v1-guard 3')
  })

  it('starts the guard a while after the agent is ready, off the way to the first reply', async () => {
    const {manager, calls} = setup({guardDelayMs: 150})
    await manager.create({workload: 'frontend-v1', localPort: 8000, mounts: false}, lease(calls))
    await sleep(50)
    expect(calls.some((c) => c.startsWith('guard '))).toBe(false)
    await vi.waitFor(() => expect(calls).toContain('guard tp-unit-agent-frontend-v1-guard 3'))
  })

  it('an intercept that ends before its guard started: the guard never starts, and nothing waits for it', async () => {
    const {manager, calls} = setup({guardDelayMs: 5000})
    await manager.create({workload: 'frontend-v1', localPort: 8000, mounts: false}, lease(calls))
    const started = Date.now()
    await manager.remove('frontend-v1', 'ended by its tp command', 'owner')
    expect(Date.now() - started).toBeLessThan(2000)
    await sleep(50)
    // (the names removed before the agent started are those an earlier daemon may have left)
    expect(calls.filter((c) => c.startsWith('guard ') || c === 'remove-agent c-tp-unit-agent-frontend-v1-guard')).toEqual([])
    expect(calls).toContain('remove-agent c-tp-unit-agent-frontend-v1')
    expect(manager.list()).toEqual([])
  })

  it('ends in reverse order: traffic back and drained, holder told and waited for, then the agent and its guard', async () => {
    const {manager, calls, agents} = setup({holderTeardownMs: 5000, drainMs: 5000})
    const holder = lease(calls)
    await manager.create({workload: 'frontend-v1', localPort: 8000, mounts: false}, holder)
    await sleep(10)
    calls.length = 0
    const removing = manager.remove('frontend-v1', 'ended by tp leave', 'other')
    await sleep(50)
    // what is in flight to the handler has not ended: the holder is not told yet
    expect(calls).toEqual(['deactivate (drain)'])
    agents[0].drained()
    await sleep(20)
    // the holder has not finished its teardown yet: the agent stays
    expect(calls).toEqual(['deactivate (drain)', 'lease ended'])
    holder.close()
    await removing
    expect(calls).toEqual([
      'deactivate (drain)',
      'lease ended',
      'release',
      'remove-agent c-tp-unit-agent-frontend-v1',
      'remove-agent c-tp-unit-agent-frontend-v1-guard',
      'lease end',
    ])
    expect(holder.events.find((e) => e.type === 'ended')).toEqual({type: 'ended', reason: 'ended by tp leave', normal: true})
  })

  it('drain gives the traffic back and waits for what is in flight, at most drainMs; the intercept stays', async () => {
    const {manager, calls} = setup({drainMs: 150})
    await manager.create({workload: 'frontend-v1', localPort: 8000, mounts: false}, lease(calls))
    calls.length = 0
    const started = Date.now()
    await manager.drain('frontend-v1')
    expect(Date.now() - started).toBeGreaterThanOrEqual(140)
    expect(calls).toEqual(['deactivate (drain)'])
    expect(manager.list().map((i) => [i.name, i.state])).toEqual([['frontend-v1', 'waiting']])
  })

  it('removes what a silent holder left once its time is up', async () => {
    const {manager, calls} = setup({holderTeardownMs: 100})
    await manager.create({workload: 'frontend-v1', localPort: 8000, mounts: false}, lease(calls))
    calls.length = 0
    const started = Date.now()
    await manager.remove('frontend-v1', 'tp quit', 'quit')
    expect(Date.now() - started).toBeGreaterThanOrEqual(90)
    expect(calls).toEqual([
      'deactivate (drain)',
      'lease ended',
      'remove-orphans frontend-v1',
      'release',
      'remove-agent c-tp-unit-agent-frontend-v1',
      'remove-agent c-tp-unit-agent-frontend-v1-guard',
      'lease end',
    ])
  })

  it('a lost lease removes the handler at once; a gone agent restores the traffic and says why', async () => {
    const {manager, calls, agents} = setup({gone: 'exited with code 137'})
    const held = lease(calls)
    await manager.create({workload: 'frontend-v1', localPort: 8000, mounts: false}, held)
    await manager.create({workload: 'multi', localPort: 8001, servicePort: 'http', mounts: false}, lease(calls))
    calls.length = 0
    await manager.remove('frontend-v1', 'the tp command that created it has gone', 'lease-lost')
    expect(calls).toEqual([
      'deactivate',
      'lease ended',
      'remove-orphans frontend-v1',
      'release',
      'remove-agent c-tp-unit-agent-frontend-v1',
      'remove-agent c-tp-unit-agent-frontend-v1-guard',
      'lease end',
    ])
    calls.length = 0
    agents[1].goAway('the agent closed its control connection')
    await sleep(400)
    expect(calls).toContain('restore-traffic id-multi')
    expect(manager.list()).toEqual([])
  })

  it.each([
    ['a workload that restarted', {gone: 'restarted'}, /^the workload frontend-v1 restarted \(at /],
    ['a killed agent', {agentExitCode: 137}, /^the traffic agent of frontend-v1 was killed \(exit code 137/],
    ['an agent that exited', {agentExitCode: 3}, /^the traffic agent of frontend-v1 exited with code 3/],
  ] as const)('says what ended it: %s', async (_title, options, reason) => {
    const {manager, calls, agents} = setup({...options, holderTeardownMs: 50})
    const held = lease(calls)
    await manager.create({workload: 'frontend-v1', localPort: 8000, mounts: false}, held)
    agents[0].goAway('the agent closed its control connection')
    await sleep(300)
    const ended = held.events.find((e) => e.type === 'ended')
    expect(ended).toMatchObject({type: 'ended', normal: false, reason: expect.stringMatching(reason)})
  })

  it('switches traffic only once the handler answers, at the host the placement names', async () => {
    const {manager, calls, agents} = setup()
    const server = createServer((s) => s.destroy())
    servers.push(server)
    const port = await new Promise<number>((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as {port: number}).port)))
    const holder = lease(calls)
    // nothing listens on port+1: it stays waiting
    await manager.create({workload: 'multi', localPort: port + 1 === 65536 ? 1 : port + 1, servicePort: '8080', mounts: false}, lease(calls))
    await manager.create({workload: 'frontend-v1', localPort: port, mounts: false}, holder)
    await sleep(300)
    expect(holder.events.map((e) => e.type)).toEqual(['active'])
    expect(manager.list().map((i) => [i.name, i.state])).toEqual([
      ['multi-8080', 'waiting'],
      ['frontend-v1', 'active'],
    ])
    expect(agents[1].options.direct).toEqual({host: '10.1.0.2', port})
    expect(calls.filter((c) => c === 'activate')).toHaveLength(1)
  })

  describe('replicas', () => {
    const shop = () => workload('shop', [80], [replica('r1', '10.1.0.11'), replica('r2', '10.1.0.12')])

    /** A handler that answers, so that the intercept's traffic switches. */
    async function answering(): Promise<number> {
      const server = createServer((socket) => socket.destroy())
      servers.push(server)
      return new Promise<number>((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as {port: number}).port)))
    }

    it('puts an agent beside every replica, each with its own id and name; the volumes come from the first', async () => {
      const {manager, calls, agents, cluster} = setup({workloads: [shop()]})
      const s = await manager.create({workload: 'shop', localPort: 8000, mounts: true}, lease(calls))
      expect(calls.filter((c) => c.startsWith('inject'))).toEqual(['inject tp-unit-agent-shop 10.1.0.2:4701', 'inject tp-unit-agent-shop-1 10.1.0.2:4701'])
      expect(agents.map((a) => a.id)).toEqual([s.id, `${s.id}-1`])
      expect(cluster.agentEnv.TP_AGENT_INTERCEPT_ID).toBe(`${s.id}-1`)
      expect(s.mounts[0].sftp.host).toBe('10.1.0.11')
      expect(s.environment.TP_CONTAINER).toBe('r1-1')
      expect(manager.list()).toMatchObject([{name: 'shop', replicas: 2, agentContainer: 'tp-unit-agent-shop'}])
    })

    it('switches every replica at once, and gives every replica its traffic back on the way out, agents before their guards', async () => {
      const port = await answering()
      const {manager, calls} = setup({workloads: [shop()]})
      const holder = lease(calls)
      await manager.create({workload: 'shop', localPort: port, mounts: false}, holder)
      await vi.waitFor(() => expect(holder.events.map((e) => e.type)).toContain('active'))
      expect(calls.filter((c) => c === 'activate')).toHaveLength(2)
      calls.length = 0
      const removing = manager.remove('shop', 'ended by tp leave', 'other')
      await sleep(20)
      expect(calls.filter((c) => c === 'deactivate (drain)')).toHaveLength(2)
      holder.close()
      await removing
      const order = (c: string) => calls.indexOf(c)
      for (const agent of ['tp-unit-agent-shop', 'tp-unit-agent-shop-1']) {
        // traffic back, holder told, then this agent released and removed, then its guard
        expect(order('lease ended')).toBeLessThan(order(`remove-agent c-${agent}`))
        expect(order(`remove-agent c-${agent}`)).toBeLessThan(order(`remove-agent c-${agent}-guard`))
      }
      expect(calls.filter((c) => c === 'release')).toHaveLength(2)
      expect(calls.at(-1)).toBe('lease end')
    })

    it('a replica that appears during the intercept gets an agent, switched like the others', async () => {
      const port = await answering()
      const w = shop()
      const {manager, calls, agents, cluster} = setup({workloads: [w], reconcileMs: 30})
      const holder = lease(calls)
      await manager.create({workload: 'shop', localPort: port, mounts: false}, holder)
      await vi.waitFor(() => expect(holder.events.map((e) => e.type)).toContain('active'))
      cluster.all[0].replicas.push(replica('r3', '10.1.0.13'))
      await vi.waitFor(() => expect(manager.list()[0].replicas).toBe(3))
      expect(calls).toContain('inject tp-unit-agent-shop-2 10.1.0.2:4701')
      expect(calls.filter((c) => c === 'activate')).toHaveLength(3)
      expect(agents).toHaveLength(3)
    })

    it('a replica that goes: its agent goes, the others stay intercepted; the last one ends the intercept', async () => {
      const {manager, calls, agents, cluster} = setup({workloads: [shop()], reconcileMs: 30, holderTeardownMs: 50})
      const holder = lease(calls)
      await manager.create({workload: 'shop', localPort: 8000, mounts: false}, holder)
      calls.length = 0
      // r2 is rescheduled away: gone from the list, and its agent's control connection closes
      cluster.all[0].replicas.splice(1, 1)
      cluster.goneReplicas.set('r2', 'was removed')
      agents[1].goAway('the agent closed its control connection')
      await vi.waitFor(() => expect(manager.list()[0]?.replicas).toBe(1))
      expect(calls).toContain('remove-agent c-tp-unit-agent-shop-1')
      expect(holder.events.map((e) => e.type)).not.toContain('ended')
      // then r1 stops too: nothing is left to intercept
      cluster.goneReplicas.set('r1', 'exited with code 0')
      agents[0].goAway('the agent closed its control connection')
      await vi.waitFor(() => expect(manager.list()).toEqual([]))
      expect(holder.events.find((e) => e.type === 'ended')).toMatchObject({normal: false, reason: 'the workload shop exited with code 0'})
    })

    it('on a cluster that replaces replicas, the last one going leaves the intercept waiting; its replacement is intercepted', async () => {
      const port = await answering()
      const {manager, calls, agents, cluster} = setup({workloads: [shop()], reconcileMs: 30, replaces: 60_000})
      const holder = lease(calls)
      await manager.create({workload: 'shop', localPort: port, mounts: false}, holder)
      await vi.waitFor(() => expect(holder.events.map((e) => e.type)).toContain('active'))
      // both tasks go (their node drained), and none runs for a while
      cluster.all[0].replicas.splice(0, 2)
      for (const id of ['r1', 'r2']) cluster.goneReplicas.set(id, 'was replaced (task shutdown)')
      for (const agent of agents) agent.goAway('the agent closed its control connection')
      await vi.waitFor(() => expect(manager.list()[0]?.replicas).toBe(0))
      await sleep(100)
      expect(manager.list()).toMatchObject([{name: 'shop', replicas: 0}])
      expect(holder.events.map((e) => e.type)).not.toContain('ended')
      // the orchestrator's new task: intercepted, switched like the others were
      cluster.all[0].replicas.push(replica('r3', '10.1.0.13'))
      await vi.waitFor(() => expect(manager.list()[0]?.replicas).toBe(1))
      expect(calls).toContain('inject tp-unit-agent-shop-2 10.1.0.2:4701')
      expect(calls.filter((c) => c === 'activate')).toHaveLength(3)
    })

    it('on a cluster that replaces replicas, an intercept whose replica is not replaced within the wait ends and says why', async () => {
      const {manager, calls, agents, cluster} = setup({workloads: [shop()], reconcileMs: 30, replaces: 200, holderTeardownMs: 50})
      const holder = lease(calls)
      await manager.create({workload: 'shop', localPort: 8000, mounts: false}, holder)
      cluster.all[0].replicas.splice(0, 2)
      for (const id of ['r1', 'r2']) cluster.goneReplicas.set(id, 'was removed')
      for (const agent of agents) agent.goAway('the agent closed its control connection')
      await vi.waitFor(() => expect(manager.list()).toEqual([]), {timeout: 3000})
      expect(holder.events.find((e) => e.type === 'ended')).toMatchObject({
        normal: false,
        reason: expect.stringMatching(/^the workload shop has had no running replica for \d+ s$/),
      })
    })

    it('a replica that goes while its agent is still coming up leaves no agent behind', async () => {
      const {manager, calls, cluster} = setup({workloads: [shop()], reconcileMs: 30})
      await manager.create({workload: 'shop', localPort: 8000, mounts: false}, lease(calls))
      cluster.all[0].replicas.push(replica('r3', '10.1.0.13'))
      const removing = manager.remove('shop', 'tp quit', 'owner')
      await removing
      await sleep(100)
      const injected = calls.filter((c) => c.startsWith('inject')).map((c) => c.split(' ')[1])
      for (const agent of injected) expect(calls).toContain(`remove-agent c-${agent}`)
      expect(manager.list()).toEqual([])
    })
  })
})
