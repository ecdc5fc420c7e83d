import {dirname, join} from 'node:path'
import {fileURLToPath} from 'node:url'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {isUserError} from '@tp/sdk'
import {DockerDriver} from '@tp/plugin-cluster-docker'
import type {Workload} from '@tp/sdk'
import {Fixtures, httpdCmd} from '../../../packages/agent/test/fixture.js'

// Real engine. The engine is shared, so the driver is told to see only this test's networks.
const PREFIX = 'tpt-driver-'
const NET_A = `${PREFIX}a`
const NET_B = `${PREFIX}b`
const NET_EMPTY = `${PREFIX}empty`
const fx = new Fixtures()
const cluster = new DockerDriver(fx.docker, {networkFilter: (name) => name.startsWith(PREFIX) && name !== NET_B})
const withB = new DockerDriver(fx.docker, {networkFilter: (name) => name.startsWith(PREFIX)})
const onlyEmpty = new DockerDriver(fx.docker, {networkFilter: (name) => name === NET_EMPTY})

async function userError(promise: Promise<unknown> | (() => unknown)): Promise<{message: string; next?: string}> {
  try {
    await (typeof promise === 'function' ? promise() : promise)
  } catch (error) {
    expect(isUserError(error), String(error)).toBe(true)
    return error as {message: string; next?: string}
  }
  throw new Error('expected a UserError')
}

let web: Workload
let image: string

beforeAll(async () => {
  image = await fx.busybox()
  await fx.network(NET_A)
  await fx.network(NET_EMPTY)
  const volume = await fx.volume(`${PREFIX}data`)
  const onA = (aliases: string[] = []) => ({NetworkingConfig: {EndpointsConfig: {[NET_A]: {Aliases: aliases}}}})
  await fx.container({
    name: `${PREFIX}web`,
    Image: image,
    Cmd: httpdCmd('web'),
    Env: ['GREETING=hello', 'EQUATION=a=b', 'EMPTY='],
    ExposedPorts: {'80/tcp': {}, '8080/tcp': {}, '53/udp': {}},
    Labels: {'tp.port-names': 'http:80,admin:8080'},
    HostConfig: {NetworkMode: NET_A, Binds: [`${volume}:/data:ro`]},
    ...onA(['web', 'www']),
  })
  // what docker-compose creates: service label and the service name as alias
  await fx.container({
    name: `${PREFIX}proj_api_1`,
    Image: image,
    Cmd: httpdCmd('api', 9000),
    ExposedPorts: {'9000/tcp': {}},
    Labels: {'com.docker.compose.service': 'api', 'com.docker.compose.project': 'proj'},
    HostConfig: {NetworkMode: NET_A},
    ...onA(['api']),
  })
  for (const n of [1, 2]) {
    await fx.container({name: `${PREFIX}twin${n}`, Image: image, Cmd: httpdCmd(`twin${n}`), HostConfig: {NetworkMode: NET_A}, ...onA(['twin'])})
  }
  // tp's own containers and stopped containers are not workloads
  await fx.container({name: `${PREFIX}agent`, Image: image, Cmd: httpdCmd('agent'), Labels: {'tp.managed': 'true'}, HostConfig: {NetworkMode: NET_A}})
  await fx.container({name: `${PREFIX}stopped`, Image: image, Cmd: httpdCmd('stopped'), HostConfig: {NetworkMode: NET_A}}, false)
  web = await cluster.workload(NET_A, 'web')
})

afterAll(async () => {
  await fx.cleanup()
})

describe('namespaces', () => {
  it('lists user-defined networks with their running, non-tp workloads', async () => {
    expect(await cluster.namespaces()).toEqual([
      {name: NET_A, workloads: 4},
      {name: NET_EMPTY, workloads: 0},
    ])
  })

  it('resolves a requested namespace that exists', async () => {
    expect(await cluster.resolveNamespace(NET_EMPTY)).toBe(NET_EMPTY)
  })

  it('picks the only network that has workloads', async () => {
    expect(await cluster.resolveNamespace()).toBe(NET_A)
  })

  it('refuses an unknown namespace, listing the networks', async () => {
    const e = await userError(cluster.resolveNamespace('nope'))
    expect(e.message).toContain('"nope" does not exist')
    expect(e.next).toContain(NET_A)
    expect(e.next).toContain(NET_EMPTY)
  })

  it("refuses Docker's built-in networks", async () => {
    const e = await userError(cluster.resolveNamespace('bridge'))
    expect(e.message).toContain('built-in')
  })

  it('says what to do when no network has workloads', async () => {
    const e = await userError(onlyEmpty.resolveNamespace())
    expect(e.message).toContain('no user-defined Docker network has running containers')
    expect(e.next).toContain(NET_EMPTY)
  })

  it('lists the candidates and asks for --namespace when several have workloads', async () => {
    await fx.network(NET_B)
    await fx.container({name: `${PREFIX}other`, Image: image, Cmd: httpdCmd('other'), HostConfig: {NetworkMode: NET_B}})
    const e = await userError(withB.resolveNamespace())
    expect(e.message).toContain(NET_A)
    expect(e.message).toContain(NET_B)
    expect(e.next).toContain('--namespace')
  })
})

describe('workloads', () => {
  it('lists running workloads, not tp-managed or stopped containers', async () => {
    const names = (await cluster.workloads(NET_A)).map((w) => `${w.name}/${w.replicas[0].name}`)
    expect(names).toEqual([`api/${PREFIX}proj_api_1`, `${PREFIX}twin1/${PREFIX}twin1`, `${PREFIX}twin2/${PREFIX}twin2`, `${PREFIX}web/${PREFIX}web`])
  })

  it('reads ports, names, environment, mounts, address and aliases', async () => {
    const info = await fx.docker.getContainer(`${PREFIX}web`).inspect()
    expect(web.replicas).toEqual([
      {id: info.Id, name: `${PREFIX}web`, address: info.NetworkSettings.Networks[NET_A].IPAddress, startedAt: info.State.StartedAt},
    ])
    expect(web.namespace).toBe(NET_A)
    expect(web.aliases).toEqual(['web', 'www'])
    expect(web.ports).toEqual([
      {port: 53, protocol: 'udp'},
      {port: 80, name: 'http', protocol: 'tcp'},
      {port: 8080, name: 'admin', protocol: 'tcp'},
    ])
    expect(web.environment).toMatchObject({GREETING: 'hello', EQUATION: 'a=b', EMPTY: ''})
    // a named volume, which a handler on this same engine (the engine's id) may mount directly
    const engine = ((await fx.docker.info()) as {ID: string}).ID
    expect(web.mounts).toEqual([{path: '/data', readOnly: true, engine: {engine, type: 'volume', source: `${PREFIX}data`}}])
    expect(web.replicas[0].address).toMatch(/^\d+\.\d+\.\d+\.\d+$/)
  })

  it('finds a workload by Compose service name, alias or container name', async () => {
    expect((await cluster.workload(NET_A, 'api')).replicas[0].name).toBe(`${PREFIX}proj_api_1`)
    expect((await cluster.workload(NET_A, `${PREFIX}proj_api_1`)).name).toBe('api')
    expect((await cluster.workload(NET_A, 'www')).replicas[0].name).toBe(`${PREFIX}web`)
  })

  it('refuses an unknown workload, listing those that exist', async () => {
    const e = await userError(cluster.workload(NET_A, 'nothing'))
    expect(e.message).toContain('no workload named "nothing"')
    expect(e.next).toContain('api')
    expect(e.next).toContain(`${PREFIX}web`)
  })

  it('refuses a name shared by several containers, naming them', async () => {
    const e = await userError(cluster.workload(NET_A, 'twin'))
    expect(e.message).toContain(`${PREFIX}twin1`)
    expect(e.message).toContain(`${PREFIX}twin2`)
  })

  it('refuses a namespace that does not exist', async () => {
    const e = await userError(cluster.workloads('tpt-driver-missing'))
    expect(e.message).toContain('does not exist')
  })
})

describe('users', () => {
  // its own network: the namespace counts above stay as they are
  const NET_USERS = 'tpt-driverusers'
  const usersOnly = new DockerDriver(fx.docker, {networkFilter: (name) => name === NET_USERS})

  it("turns a user given by name into the numbers of the workload's own /etc/passwd and /etc/group, and never mounts its volumes directly", async () => {
    const {ensureImportedImage, STATIC_BUSYBOX} = await import('@tp/images')
    const named = await ensureImportedImage(fx.docker, {
      repo: 'tpt-driver-users',
      tag: '1',
      spec: {
        busybox: STATIC_BUSYBOX,
        dirs: ['/www', '/data'],
        files: {
          '/etc/passwd': {content: 'root:x:0:0:root:/root:/bin/sh\napp:x:1000:1001:app:/home/app:/bin/sh\n'},
          '/etc/group': {content: 'root:x:0:\napp:x:1001:\nstaff:x:1002:app\n'},
        },
      },
      labels: {'tp.fixture': 'true'},
      what: 'test fixture',
    })
    await fx.network(NET_USERS)
    const volume = await fx.volume('tpt-driverusers-data')
    const run = (name: string, user: string) =>
      fx.container({name, Image: named.ref, User: user, Cmd: ['sleep', '3600'], HostConfig: {NetworkMode: NET_USERS, Binds: [`${volume}:/data`]}})
    await run('tpt-driverusers-app', 'app')
    await run('tpt-driverusers-staff', 'app:staff')
    await run('tpt-driverusers-root', 'root')
    expect((await usersOnly.workload(NET_USERS, 'tpt-driverusers-app')).user).toEqual({uid: 1000, gid: 1001})
    const staff = await usersOnly.workload(NET_USERS, 'tpt-driverusers-staff')
    expect(staff.user).toEqual({uid: 1000, gid: 1002})
    expect(staff.mounts).toEqual([{path: '/data', readOnly: false}])
    const root = await usersOnly.workload(NET_USERS, 'tpt-driverusers-root')
    expect(root.user).toBeUndefined()
    expect(root.mounts[0].engine).toBeDefined()
    // tp list reads them the same way
    expect((await usersOnly.workloads(NET_USERS)).map((w) => w.user)).toEqual([{uid: 1000, gid: 1001}, undefined, {uid: 1000, gid: 1002}])
  })
})

describe('reach', () => {
  it("gives a container the namespace's own network, and this machine's address on it", async () => {
    const network = await fx.docker.getNetwork(NET_A).inspect()
    expect(await cluster.reach(NET_A)).toEqual({containerNetwork: NET_A, hostAddress: network.IPAM?.Config?.[0]?.Gateway})
  })
})

describe('whyNotRunning', () => {
  it('is silent while the replica runs as it did, and says so when it restarted or went', async () => {
    const [replica] = web.replicas
    expect(await cluster.whyNotRunning(NET_A, replica)).toBeUndefined()
    expect(await cluster.whyNotRunning(NET_A, {...replica, startedAt: '2001-01-01T00:00:00Z'})).toMatch(/^restarted/)
    expect(await cluster.whyNotRunning(NET_A, {...replica, id: 'f'.repeat(64)})).toBe('was removed')
  })
})

describe('the module the daemon imports', () => {
  it('is self-contained (only Node’s own modules), and its factory gives the driver', async () => {
    const {checkDriverModule, fakeDriverContext} = await import('@tp/sdk/testing')
    const module = join(dirname(fileURLToPath(import.meta.resolve('@tp/plugin-cluster-docker/package.json'))), 'dist/module/driver.mjs')
    const factory = await checkDriverModule(module)
    const driver = await factory(fakeDriverContext({driver: 'docker', engine: 'unix:///var/run/docker.sock'}))
    expect((await driver.namespaces()).map((n) => n.name)).toContain(NET_A)
  })
})
