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
    for (const name of created)
      await docker
        .getContainer(name)
        .remove({force: true})
        .catch(() => undefined)
    await docker
      .getNetwork(network)
      .remove()
      .catch(() => undefined)
  })

  it('builds every image from nothing, labelled as a fixture, and reuses them on the second call', async () => {
    // images of its own (prefixed), so the build really happens and the shared ones are untouched
    const prefix = `tpt-images-${suffix}-`
    const refs: string[] = []
    try {
      const started = performance.now()
      const images = await ensureFixtureImages(docker, {prefix})
      const buildMs = performance.now() - started
      refs.push(images.busybox, images.workload, images.frontendV2, images.frontendV2Bare)
      expect(images.built.sort()).toEqual([images.busybox, images.workload, images.frontendV2].sort())
      expect(buildMs).toBeLessThan(30_000)
      expect(images.busybox).toMatch(new RegExp(`^${prefix}tp-fixture-busybox:[0-9a-f]{16}$`))
      for (const ref of [images.busybox, images.workload, images.frontendV2]) {
        const info = await docker.getImage(ref).inspect()
        expect(info.Config.Labels?.[LABEL_FIXTURE]).toBe('true')
        expect(info.Config.Labels?.['tp.managed']).toBeUndefined()
      }
      const bare = await docker.getImage(images.frontendV2Bare).inspect()
      expect(bare.Id).toBe((await docker.getImage(images.frontendV2).inspect()).Id)

      const ids = await Promise.all(refs.map(async (ref) => (await docker.getImage(ref).inspect()).Id))
      const againStarted = performance.now()
      const again = await ensureFixtureImages(docker, {prefix})
      expect(performance.now() - againStarted).toBeLessThan(1000)
      expect(again.built).toEqual([])
      const idsAgain = await Promise.all(
        [again.busybox, again.workload, again.frontendV2, again.frontendV2Bare].map(async (ref) => (await docker.getImage(ref).inspect()).Id),
      )
      expect(idsAgain).toEqual(ids)
    } finally {
      for (const ref of refs)
        await docker
          .getImage(ref)
          .remove()
          .catch(() => undefined)
    }
  })

  it('the shared images exist under their fixed names, frontend-v2 also as the bare name', async () => {
    const images = await ensureFixtureImages(docker)
    expect(images.frontendV2Bare).toBe(FRONTEND_V2_BARE_IMAGE)
    expect((await docker.getImage(FRONTEND_V2_BARE_IMAGE).inspect()).Id).toBe((await docker.getImage(images.frontendV2).inspect()).Id)
  })

  it('frontend-v2 answers with its env, the catalog body, and serves/writes /data', async () => {
    const images = await ensureFixtureImages(docker)
    const catalog = `tpt-images-catalog-${suffix}`
    const v2 = `tpt-images-v2-${suffix}`
    created.push(catalog, v2)
    expect(
      (
        await run([
          'run',
          '-d',
          '--name',
          catalog,
          '--network',
          network,
          '--network-alias',
          'catalog',
          '-e',
          'RESPONSE_JSON={"catalog":["x"]}',
          images.workload,
        ])
      ).exitCode,
    ).toBe(0)
    const notes = 'line one\nline two'
    const started = await execa(
      'docker',
      [
        'run',
        '-d',
        '--name',
        v2,
        '--network',
        network,
        '--network-alias',
        'v2',
        '-e',
        'GREETING=hi there',
        '-e',
        'DEMO_NOTES',
        '-e',
        'TP_INTERCEPT_ID=abc',
        '--tmpfs',
        '/data',
        '--tmpfs',
        '/ro:ro',
        FRONTEND_V2_BARE_IMAGE,
      ],
      {env: {DEMO_NOTES: notes}},
    )
    expect(started.exitCode).toBe(0)

    const client = (url: string) =>
      run([
        'run',
        '--rm',
        '--network',
        network,
        images.busybox,
        'sh',
        '-c',
        `for i in $(seq 50); do timeout 5 wget -q -O - "${url}" && exit 0; sleep 0.2; done; exit 1`,
      ])
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
    const refused = await run([
      'run',
      '--rm',
      '--network',
      network,
      images.busybox,
      'timeout',
      '5',
      'wget',
      '-q',
      '-S',
      '-O',
      '-',
      'http://v2:8000/cgi-bin/write?path=/ro/x',
    ])
    expect(refused.exitCode).not.toBe(0)
    expect(refused.stderr).toMatch(/HTTP\/1\.1 500/)
  })

  it('PORT overrides the port frontend-v2 listens on', async () => {
    const images = await ensureFixtureImages(docker)
    const v2 = `tpt-images-port-${suffix}`
    created.push(v2)
    expect((await run(['run', '-d', '--name', v2, '--network', network, '--network-alias', 'v2port', '-e', 'PORT=9123', images.frontendV2])).exitCode).toBe(0)
    const reply = await run([
      'run',
      '--rm',
      '--network',
      network,
      images.busybox,
      'sh',
      '-c',
      'for i in $(seq 50); do timeout 5 wget -q -O - http://v2port:9123/ && exit 0; sleep 0.2; done; exit 1',
    ])
    expect(reply.stdout).toMatch(/^frontend-v2\n/)
  })
})
