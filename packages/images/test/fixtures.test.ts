import {randomBytes} from 'node:crypto'
import Docker from 'dockerode'
import {execa} from 'execa'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {FRONTEND_V2_BARE_IMAGE, LABEL_FIXTURE, ensureFixtureImages} from '@tp/images'

const docker = new Docker()
const suffix = randomBytes(3).toString('hex')
const network = `tpt-images-${suffix}`
const created: string[] = []

async function run(args: string[]) {
  return execa('docker', args, {reject: false})
}

describe('fixture images', () => {
  beforeAll(async () => {
    await docker.createNetwork({Name: network, Labels: {[LABEL_FIXTURE]: 'true'}})
  })
  afterAll(async () => {
    for (const name of created) await docker.getContainer(name).remove({force: true}).catch(() => undefined)
    await docker.getNetwork(network).remove().catch(() => undefined)
  })

  it('builds every image, labelled as a fixture, and reuses them on the second call', async () => {
    const images = await ensureFixtureImages(docker)
    for (const ref of [images.busybox, images.workload, images.frontendV2]) {
      const info = await docker.getImage(ref).inspect()
      expect(info.Config.Labels?.[LABEL_FIXTURE]).toBe('true')
      expect(info.Config.Labels?.['tp.managed']).toBeUndefined()
    }
    expect(images.busybox).toMatch(/^tp-fixture-busybox:[0-9a-f]{16}$/)
    const bare = await docker.getImage(FRONTEND_V2_BARE_IMAGE).inspect()
    expect(bare.Id).toBe((await docker.getImage(images.frontendV2).inspect()).Id)

    const ids = await Promise.all(Object.values(images).map(async (ref) => (await docker.getImage(ref).inspect()).Id))
    const started = performance.now()
    const again = await ensureFixtureImages(docker)
    expect(performance.now() - started).toBeLessThan(1000)
    expect(again).toEqual(images)
    const idsAgain = await Promise.all(Object.values(again).map(async (ref) => (await docker.getImage(ref).inspect()).Id))
    expect(idsAgain).toEqual(ids)
  })

  it('frontend-v2 answers with its env, the catalog body, and serves/writes /data', async () => {
    const images = await ensureFixtureImages(docker)
    const catalog = `tpt-images-catalog-${suffix}`
    const v2 = `tpt-images-v2-${suffix}`
    created.push(catalog, v2)
    expect((await run(['run', '-d', '--name', catalog, '--network', network, '--network-alias', 'catalog', '-e', 'RESPONSE_JSON={"catalog":["x"]}', images.workload])).exitCode).toBe(0)
    const notes = 'line one\nline two'
    const started = await execa('docker', ['run', '-d', '--name', v2, '--network', network, '--network-alias', 'v2', '-e', 'GREETING=hi there', '-e', 'DEMO_NOTES', '-e', 'TP_INTERCEPT_ID=abc', '--tmpfs', '/data', '--tmpfs', '/ro:ro', FRONTEND_V2_BARE_IMAGE], {env: {DEMO_NOTES: notes}})
    expect(started.exitCode).toBe(0)

    const client = (url: string) =>
      run(['run', '--rm', '--network', network, images.busybox, 'sh', '-c', `for i in $(seq 50); do timeout 5 wget -q -O - "${url}" && exit 0; sleep 0.2; done; exit 1`])
    const root = await client('http://v2:8000/')
    expect(root.exitCode).toBe(0)
    expect(root.stdout).toContain('frontend-v2')
    expect(root.stdout).toContain('GREETING=hi there')
    expect(root.stdout).toContain('DEMO_NOTES=line one\nline two')
    expect(root.stdout).toContain('TP_INTERCEPT_ID=abc')
    expect(root.stdout).toContain('catalog={"catalog":["x"]}')

    const write = await client('http://v2:8000/write?name=hello.txt')
    expect(write.stdout.trim()).toBe('ok /data/hello.txt')
    const read = await run(['exec', v2, 'cat', '/data/hello.txt'])
    expect(read.stdout.trim()).toBe('written by frontend-v2')

    await run(['exec', v2, 'sh', '-c', 'echo from-volume > /data/config.txt'])
    expect((await client('http://v2:8000/config')).stdout.trim()).toBe('from-volume')

    // a read-only mount reports the failure instead of pretending
    const refused = await run(['run', '--rm', '--network', network, images.busybox, 'timeout', '5', 'wget', '-q', '-S', '-O', '-', 'http://v2:8000/cgi-bin/write?path=/ro/x'])
    expect(refused.exitCode).not.toBe(0)
    expect(refused.stderr).toMatch(/HTTP\/1\.1 500/)
  })

  it('PORT overrides the port frontend-v2 listens on', async () => {
    const images = await ensureFixtureImages(docker)
    const v2 = `tpt-images-port-${suffix}`
    created.push(v2)
    expect((await run(['run', '-d', '--name', v2, '--network', network, '--network-alias', 'v2port', '-e', 'PORT=9123', images.frontendV2])).exitCode).toBe(0)
    const reply = await run(['run', '--rm', '--network', network, images.busybox, 'sh', '-c', 'for i in $(seq 50); do timeout 5 wget -q -O - http://v2port:9123/ && exit 0; sleep 0.2; done; exit 1'])
    expect(reply.stdout).toMatch(/^frontend-v2\n/)
  })
})
