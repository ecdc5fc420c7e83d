import assert from 'node:assert/strict'
import {mkdtemp, rm, stat} from 'node:fs/promises'
import {type Server, createServer} from 'node:http'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {after, before, describe, it} from 'node:test'
import {type ConnectOptions, ConnectionStore, isUserError, placementProblems} from '@tp/sdk'
import {fakeContext} from '@tp/sdk/testing'
import {AttachedBackend, ENV} from '../src/backend.js'
import hook from '../src/hooks/daemon-backends.js'

const TOKEN = 'secret-token'
let cacheDir: string
let daemon: Server
let url: string

/** A daemon's status endpoint, as a tp daemon answers it (with the token). */
before(async () => {
  cacheDir = await mkdtemp(join(tmpdir(), '__NAME__-test-'))
  daemon = createServer((req, res) => {
    if (req.headers.authorization !== `Bearer ${TOKEN}`) return void res.writeHead(401).end('{"error":"unauthorized"}')
    res.setHeader('content-type', 'application/json')
    res.end(JSON.stringify({daemonId: 'd-1', connection: 'shared', namespace: 'tp-demo', version: '0.1.0', intercepts: []}))
  })
  await new Promise<void>((resolve) => daemon.listen(0, '127.0.0.1', resolve))
  url = `http://127.0.0.1:${(daemon.address() as {port: number}).port}`
})
after(async () => {
  daemon.closeAllConnections()
  await new Promise((resolve) => daemon.close(resolve))
  await rm(cacheDir, {recursive: true, force: true})
})

const backend = (env: Record<string, string>) => new AttachedBackend(fakeContext(cacheDir), env)

/** What tp connect gives a backend, once the cluster driver has resolved the namespace. */
const connect = (name: string, namespace = 'tp-demo'): ConnectOptions => ({
  name,
  namespace,
  cluster: {driver: 'docker', engine: 'unix:///var/run/docker.sock', module: '/nonexistent/driver.mjs', env: {}},
  reach: {containerNetwork: namespace},
  runtimeImage: 'tp-runtime:test',
})

describe('the __NAME__ daemon backend', () => {
  it('connects to the daemon that answers, keeps a 0600 record, finds it again and gives a placement tp accepts', async () => {
    const b = backend({[ENV.url]: url, [ENV.token]: TOKEN, [ENV.handlerHost]: '10.0.0.5'})
    const record = await b.ensure(connect('one'))
    assert.deepEqual([record.backend, record.daemonId, record.namespace], ['__NAME__', 'd-1', 'tp-demo'])
    assert.equal((await stat(join(cacheDir, 'connections', 'one.json'))).mode & 0o777, 0o600)
    assert.deepEqual(await b.find('one'), record)
    const placement = b.placement(record)
    assert.deepEqual(placementProblems(placement), [])
    assert.equal(placement.handler.daemonConnectsTo, '10.0.0.5')
    await b.quit(record)
    assert.equal(await b.find('one'), undefined)
  })

  it('refuses what cannot work: no address, a wrong token, another namespace', async () => {
    for (const [env, namespace, message] of [
      [{}, 'tp-demo', /needs TP___ENV___URL and TP___ENV___TOKEN/],
      [{[ENV.url]: url, [ENV.token]: 'wrong'}, 'tp-demo', /no tp daemon answers at/],
      [{[ENV.url]: url, [ENV.token]: TOKEN}, 'elsewhere', /serves namespace tp-demo, not elsewhere/],
    ] as const) {
      const error = await backend(env)
        .ensure(connect('two', namespace))
        .catch((e: unknown) => e)
      assert.ok(isUserError(error), String(error))
      assert.match((error as Error).message, message)
    }
    assert.equal(await backend({}).find('two'), undefined) // nothing was kept
  })

  it('a record whose daemon stopped answering is removed, and the caller is told', async () => {
    const b = backend({[ENV.url]: url, [ENV.token]: TOKEN})
    const record = await b.ensure(connect('three'))
    // the daemon moved away: nothing listens on port 9
    await new ConnectionStore(join(cacheDir, 'connections')).save({...record, api: {url: 'http://127.0.0.1:9', token: TOKEN}})
    const stale: string[] = []
    assert.equal(await b.find('three', {onStale: (s) => stale.push(s.record.name)}), undefined)
    assert.deepEqual(stale, ['three'])
    assert.deepEqual(await new ConnectionStore(join(cacheDir, 'connections')).list(), [])
  })

  it('its descriptor is what tp checks: a name, its capabilities, and a loader', async () => {
    const [descriptor] = await hook.call(undefined, {})
    assert.equal(descriptor.name, '__NAME__')
    assert.equal(descriptor.capabilities.canPublishPorts, true)
    assert.equal(typeof (await descriptor.load()).default, 'function')
  })
})
