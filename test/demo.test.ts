import {randomBytes} from 'node:crypto'
import {execa} from 'execa'
import {afterAll, describe, expect, it} from 'vitest'
import {CATALOG_JSON, LABEL_DEMO, demoDown, demoUp} from '@tp/images'
import {busyboxImage, docker, httpGet, startClientLoop, tpCli} from './helpers/index.js'

// The shared demo (`tp-demo`) is brought up and left up: other tests use it. `down` is tested on
// a second demo on its own network, so the shared one is never pulled out from under anybody.
describe('tp demo up (shared tp-demo)', () => {
  it('creates frontend-v1 and catalog that answer clients on tp-demo', async () => {
    const up = await tpCli(['demo', 'up'])
    expect(up.exitCode, up.stderr).toBe(0)
    expect(up.stdout).toContain('frontend-v1')
    expect(up.stdout).toContain('tp demo down')

    const frontend = await httpGet('http://frontend-v1/')
    expect(frontend.status).toBe(200)
    expect(frontend.body).toMatch(/^frontend-v1\n/)
    expect(frontend.body).toContain('GREETING=hello from frontend-v1')
    expect(frontend.body).toContain('DEMO_NOTES=first line\nsecond line\n')

    const catalog = await httpGet('http://catalog/')
    expect(catalog.status).toBe(200)
    expect(JSON.parse(catalog.body)).toEqual(JSON.parse(CATALOG_JSON))

    const config = await execa('docker', ['exec', 'frontend-v1', 'cat', '/data/config.txt'])
    expect(config.stdout).toContain('greeting-source=')
    const settings = await execa('docker', ['exec', 'frontend-v1', 'cat', '/etc/frontend/settings.txt'])
    expect(settings.stdout.length).toBeGreaterThan(0)
    const write = await execa('docker', ['exec', 'frontend-v1', 'sh', '-c', 'echo x > /etc/frontend/new.txt'], {reject: false})
    expect(write.exitCode).not.toBe(0)
    expect(write.stderr).toMatch(/Read-only file system/)

    const inspect = await docker.getContainer('frontend-v1').inspect()
    expect(inspect.Config.Labels?.[LABEL_DEMO]).toBe('true')
    expect(inspect.Config.Labels?.['tp.managed']).toBeUndefined()
    expect(Object.keys(inspect.Config.ExposedPorts ?? {})).toEqual(['80/tcp'])
    expect(inspect.NetworkSettings.Networks['tp-demo']?.Aliases).toContain('frontend-v1')
  })

  it('is idempotent: up again keeps the running workloads and they keep answering', async () => {
    const before = await docker.getContainer('frontend-v1').inspect()
    const loop = await startClientLoop('http://frontend-v1/', {intervalMs: 50})
    const again = await tpCli(['demo', 'up'])
    expect(again.exitCode, again.stderr).toBe(0)
    expect(again.stdout).toMatch(/reused\s+container frontend-v1/)
    const seen = await loop.stop()
    const after = await docker.getContainer('frontend-v1').inspect()
    expect(after.Id).toBe(before.Id)
    expect(after.State.StartedAt).toBe(before.State.StartedAt)
    expect(seen.failed).toBe(0)
    expect(seen.ok).toBeGreaterThan(0)
    expect(seen.bodies.every((b) => b.startsWith('frontend-v1\n'))).toBe(true)
  })
})

describe('demo up/down on a separate network', () => {
  const network = `tpt-demo-${randomBytes(3).toString('hex')}`
  afterAll(async () => {
    await demoDown(docker, {network}).catch(() => undefined)
  })

  it('recreates a stopped workload, then down removes everything it made', async () => {
    const first = await demoUp(docker, {network})
    expect(first.frontend).toBe(`${network}-frontend-v1`)
    await docker.getContainer(first.frontend).stop({t: 0})
    const second = await demoUp(docker, {network})
    expect(second.actions[`container ${first.frontend}`]).toBe('recreated')
    expect(second.actions[`container ${first.catalog}`]).toBe('reused')
    expect((await httpGet('http://frontend-v1/', {network})).body).toContain('GREETING=hello from frontend-v1')

    // a container in frontend-v1's network namespace (as a tp agent would be) blocks `down`
    const busybox = await busyboxImage()
    const user = `${network}-user`
    await execa('docker', ['run', '-d', '--name', user, '--label', 'tp.fixture=true', '--network', `container:${first.frontend}`, busybox, 'sleep', '300'])
    try {
      const refused = await tpCli(['demo', 'down', '--network', network])
      expect(refused.exitCode).not.toBe(0)
      expect(refused.stderr).toContain(user)
      expect(refused.stderr).toContain('nothing was removed')
      expect((await docker.getContainer(first.frontend).inspect()).State.Running).toBe(true)
    } finally {
      await execa('docker', ['rm', '-f', user])
    }

    const down = await tpCli(['demo', 'down', '--network', network])
    expect(down.exitCode, down.stderr).toBe(0)
    const filters = JSON.stringify({label: [`${LABEL_DEMO}=true`, `tp.demo.network=${network}`]})
    expect(await docker.listContainers({all: true, filters})).toEqual([])
    expect((await docker.listVolumes({filters})).Volumes ?? []).toEqual([])
    expect(await docker.listNetworks({filters: JSON.stringify({name: [network]})})).toEqual([])
    // the shared demo is untouched
    expect((await docker.getContainer('frontend-v1').inspect()).State.Running).toBe(true)

    const downAgain = await tpCli(['demo', 'down', '--network', network])
    expect(downAgain.exitCode).toBe(0)
    expect(downAgain.stdout).toContain('nothing to remove')
  })
})
