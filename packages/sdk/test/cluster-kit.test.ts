import {mkdtemp, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {type AgentRequest, type ClusterDriver, type InjectedAgent, type Replica, UserError, type Workload} from '@tp/sdk'
import {checkClusterDriver, checkDriverModule, fakeDriverContext} from '@tp/sdk/testing'

const replica = (name: string): Replica => ({id: `id-${name}`, name, address: `10.0.0.${name.length}`, startedAt: '2024-01-01T00:00:00.000Z'})

function workload(name: string, over: Partial<Workload> = {}): Workload {
  return {
    name,
    namespace: 'shop',
    aliases: [`${name}-alias`],
    ports: [
      {port: 80, protocol: 'tcp'},
      {port: 8080, name: 'admin', protocol: 'tcp'},
    ],
    environment: {NAME: name},
    mounts: [],
    replicas: [replica(`${name}-1`)],
    ...over,
  }
}

/** A cluster in memory: namespace `shop` (api, web) and an empty `staging`; agents are promises. */
class MemoryDriver implements ClusterDriver {
  readonly items = {shop: [workload('api'), workload('web')], staging: [] as Workload[]}
  readonly agents = new Map<string, {request: AgentRequest; end: (code: number) => void}>()

  async namespaces() {
    return Object.entries(this.items).map(([name, ws]) => ({name, workloads: ws.length}))
  }
  async resolveNamespace(requested?: string) {
    if (requested !== undefined && requested in this.items) return requested
    throw new UserError(`no namespace ${requested}`, 'use shop or staging')
  }
  async workloads(namespace: string) {
    await this.resolveNamespace(namespace)
    return this.items[namespace as keyof MemoryDriver['items']]
  }
  async workload(namespace: string, name: string) {
    const found = (await this.workloads(namespace)).find((w) => w.name === name || w.aliases.includes(name))
    if (!found) throw new UserError(`no workload ${name}`, '`tp list` shows them')
    return found
  }
  async whyNotRunning(): Promise<string | undefined> {
    return undefined
  }
  async injectAgent(request: AgentRequest): Promise<InjectedAgent> {
    const id = `agent-${this.agents.size + 1}`
    let end: (code: number) => void = () => {}
    const exited = new Promise<number | undefined>((resolve) => (end = resolve))
    this.agents.set(id, {request, end})
    return {id, name: request.name, exited}
  }
  async removeAgent(agent: string) {
    this.agents.get(agent)?.end(0)
    this.agents.delete(agent)
  }
  async restoreTraffic() {}
  async reach(namespace: string) {
    return {containerNetwork: namespace}
  }
  async ensureImages() {
    return {runtime: 'memory:runtime'}
  }
  async sweep(connection: string) {
    return [...this.agents.entries()].filter(([, a]) => a.request.labels['tp.connection'] === connection).map(([id]) => `removed agent ${id}`)
  }
}

const CHECK = {namespace: 'shop', workload: 'web', settleMs: 20, exitTimeoutMs: 200}

describe('checkClusterDriver', () => {
  it('passes a driver that keeps the contract, and says what it did', async () => {
    const driver = new MemoryDriver()
    const result = await checkClusterDriver(driver, {...CHECK, workload: 'web-alias', env: {EXTRA: '1'}})
    expect(result.workload.name).toBe('web')
    expect(result.exitCode).toBe(0)
    expect(result.swept).toEqual([])
    expect(result.request).toMatchObject({role: 'agent', namespace: 'shop', image: 'memory:runtime', replica: {name: 'web-1'}})
    expect(result.request.env).toEqual({TP_AGENT_INTERCEPT_ID: 'kit0001', EXTRA: '1'})
    expect(result.request.labels).toMatchObject({'tp.managed': 'true', 'tp.connection': 'tp-kit', 'tp.role': 'agent'})
    expect(driver.agents.size).toBe(0)
  })

  it.each<[string, (d: MemoryDriver) => void, string]>([
    [
      'a namespace it does not list',
      (d) => (d.namespaces = async () => [{name: 'staging', workloads: 0}]),
      'namespaces() does not list namespace "shop" (it lists: staging)',
    ],
    [
      'an unknown namespace that resolves',
      (d) => (d.resolveNamespace = async (requested?: string) => requested ?? 'shop'),
      'resolveNamespace("tp-kit-no-such-namespace") must reject with a user error, but resolved with "tp-kit-no-such-namespace"',
    ],
    [
      'a plain Error for an unknown workload',
      (d) => {
        const workload = d.workload.bind(d)
        d.workload = (ns, name) => (name === 'tp-kit-no-such-workload' ? Promise.reject(new Error('nope')) : workload(ns, name))
      },
      `workload("shop", "tp-kit-no-such-workload") must reject with a user error (an Error with kind 'user' and a next step), not Error: nope`,
    ],
    [
      'a user error without a next step',
      (d) => (d.resolveNamespace = async (r) => (r === 'shop' ? r : Promise.reject(new UserError('no such namespace')))),
      'resolveNamespace("tp-kit-no-such-namespace") rejects with a user error without a next step ("no such namespace")',
    ],
    ['unsorted workloads', (d) => d.items.shop.reverse(), 'workloads("shop") is not sorted by name: web, api'],
    [
      'unsorted ports',
      (d) =>
        (d.items.shop[1].ports = [
          {port: 8080, protocol: 'tcp'},
          {port: 80, protocol: 'tcp'},
        ]),
      `workloads("shop"): workload web's ports are not sorted by number: 8080, 80`,
    ],
    ['a workload without replicas', (d) => (d.items.shop[0].replicas = []), 'workloads("shop"): workload api has no replicas'],
    [
      'a running replica it calls stopped',
      (d) => (d.whyNotRunning = async () => 'exited'),
      'whyNotRunning("shop", web-1) of a running replica must be undefined, not "exited"',
    ],
    ['no container network', (d) => (d.reach = async () => ({containerNetwork: ''})), 'reach("shop") gives no containerNetwork'],
    [
      'an agent that ends by itself',
      (d) => {
        const inject = d.injectAgent.bind(d)
        d.injectAgent = async (r) => ({...(await inject(r)), exited: Promise.resolve(127)})
      },
      "injectAgent({role: 'agent', replica: web-1}): the agent ended by itself within 20 ms (exit code 127); it must run until removeAgent stops it",
    ],
    [
      'a removeAgent that leaves the agent running',
      (d) => (d.removeAgent = async () => {}),
      'removeAgent("agent-1") resolved, but the agent\'s exited did not resolve within 200 ms',
    ],
    [
      'a sweep that does not give lines',
      (d) => (d.sweep = async () => undefined as unknown as string[]),
      'sweep("tp-kit") must resolve with an array of lines',
    ],
  ])('names what is wrong with a driver with %s', async (title, breakIt, message) => {
    const driver = new MemoryDriver()
    breakIt(driver)
    const error = await checkClusterDriver(driver, CHECK).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(Error)
    expect((error as Error).message).toContain(`checkClusterDriver: ${message}`)
    // whatever failed, the kit's agent is not left behind (unless removeAgent is what is broken)
    if (!title.includes('removeAgent')) expect(driver.agents.size).toBe(0)
  })
})

describe('checkDriverModule', () => {
  let dir: string
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tp-kit-module-'))
  })
  afterAll(() => rm(dir, {recursive: true, force: true}))

  it("gives the factory of a module that imports only Node's modules", async () => {
    const file = join(dir, 'good.js')
    await writeFile(file, "import {hostname} from 'node:os'\nexport default (context) => ({host: hostname(), cluster: context.cluster})\n")
    const factory = await checkDriverModule(file)
    expect(await factory(fakeDriverContext())).toMatchObject({cluster: {driver: 'test'}})
  })

  it('names a module that imports a file beside it, or has no factory', async () => {
    const sibling = join(dir, 'sibling.js')
    await writeFile(join(dir, 'helper.js'), 'export const x = 1\n')
    await writeFile(sibling, "import {x} from './helper.js'\nexport default () => x\n")
    await expect(checkDriverModule(sibling)).rejects.toThrow(`the driver module ${sibling} is not self-contained: imported alone`)
    const none = join(dir, 'none.js')
    await writeFile(none, 'export const driver = {}\n')
    await expect(checkDriverModule(none)).rejects.toThrow(`the driver module ${none} has no default export factory`)
  })
})
