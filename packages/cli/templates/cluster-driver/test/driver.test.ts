import assert from 'node:assert/strict'
import {mkdtemp, readFile, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {after, before, describe, it} from 'node:test'
import {isUserError} from '@tp/sdk'
import {checkClusterDriver, checkDriverModule, fakeDriverContext} from '@tp/sdk/testing'
import {InventoryDriver} from '../src/driver.js'
import hook from '../src/hooks/cluster-drivers.js'

let dir: string
/** A driver on an inventory with namespace `shop` (web, and a stopped worker) whose agents run `command`. */
async function driverWith(command: string): Promise<InventoryDriver> {
  const inventory = join(dir, `inventory-${Math.random().toString(36).slice(2)}.json`)
  const web = {
    name: 'web',
    aliases: ['www'],
    ports: [8080, {port: 80, name: 'http'}],
    environment: {GREETING: 'hello'},
    mounts: [{path: '/data'}],
    replicas: [{id: 'web-1', name: 'web-1', address: '127.0.0.1', startedAt: '2024-05-01T10:00:00Z'}],
  }
  await writeFile(inventory, JSON.stringify({namespaces: {shop: {workloads: [web, {name: 'worker'}]}}, agent: {command}}))
  return new InventoryDriver(inventory, dir)
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), '__NAME__-test-'))
})
after(() => rm(dir, {recursive: true, force: true}))

describe('the __NAME__ cluster driver', () => {
  it("keeps tp's cluster driver contract (@tp/sdk/testing's kit)", async () => {
    const result = await checkClusterDriver(await driverWith('sleep 30'), {namespace: 'shop', workload: 'www'})
    assert.equal(result.workload.name, 'web')
    assert.deepEqual(
      result.workload.ports.map((p) => p.port),
      [80, 8080],
    )
    assert.equal(result.exitCode, 143) // SIGTERM: 128 + 15
  })

  it("runs the agent command with the request's environment, TP_ROLE, TP_NAMESPACE and TP_REPLICA; exited gives its exit code", async () => {
    const out = join(dir, 'agent-env.txt')
    const driver = await driverWith(`printf '%s|%s|%s|%s' "$TP_ROLE" "$TP_NAMESPACE" "$TP_REPLICA" "$TP_AGENT_INTERCEPT_ID" > '${out}'; exit 3`)
    const workload = await driver.workload('shop', 'web')
    const agent = await driver.injectAgent({
      role: 'guard',
      namespace: 'shop',
      workload,
      replica: workload.replicas[0],
      name: 'tp-test-guard-web-1',
      image: (await driver.ensureImages()).runtime,
      labels: {'tp.connection': 'test'},
      env: {TP_AGENT_INTERCEPT_ID: 'ab12'},
    })
    assert.equal(await agent.exited, 3)
    assert.equal(await readFile(out, 'utf8'), 'guard|shop|web-1|ab12')
    // an agent that ended by itself is still on record, for the connection's sweep
    const swept = await driver.sweep('test')
    assert.equal(swept.length, 1)
    assert.match(swept[0], /^removed agent tp-test-guard-web-1 \(process \d+\)$/)
    assert.deepEqual(await driver.sweep('test'), [])
  })

  it('says what to do about a stopped workload, a missing inventory and a missing agent command', async () => {
    const stopped = await (await driverWith('true')).workload('shop', 'worker').catch((e: unknown) => e)
    assert.ok(isUserError(stopped))
    assert.match((stopped as Error).message, /worker is stopped in namespace shop/)
    const missing = await new InventoryDriver(join(dir, 'nothing.json'), dir).namespaces().catch((e: unknown) => e)
    assert.ok(isUserError(missing))
    assert.match((missing as Error).message, /there is no inventory file at/)
    await writeFile(join(dir, 'no-agent.json'), JSON.stringify({namespaces: {}}))
    const noAgent = await new InventoryDriver(join(dir, 'no-agent.json'), dir).ensureImages().catch((e: unknown) => e)
    assert.ok(isUserError(noAgent))
    assert.match((noAgent as Error).message, /does not say what an agent runs/)
  })

  it("its descriptor names a self-contained module, the daemon's way in", async () => {
    const [descriptor] = await hook.call(undefined, {})
    assert.equal(descriptor.name, '__NAME__')
    const factory = await checkDriverModule(descriptor.module)
    assert.equal(typeof (await factory(fakeDriverContext())).workloads, 'function')
    assert.equal((await descriptor.load()).default, (await import('../src/driver.js')).default)
  })
})
