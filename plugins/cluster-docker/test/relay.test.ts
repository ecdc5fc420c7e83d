import {spawn} from 'node:child_process'
import {fileURLToPath} from 'node:url'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {ensureRuntimeImage} from '@tp/images'
import {type Relay, startRelay} from '@tp/plugin-cluster-docker'
import {Fixtures, httpdCmd} from '../../../packages/agent/test/fixture.js'

/**
 * tp's relay on a real engine: a container on the namespace's network, reached only through its
 * attach stream of the Engine API. It publishes no port; it ends (and its container goes) when
 * the tunnel does.
 */
const NET = 'tpt-relay'
const ROOT = fileURLToPath(new URL('../../..', import.meta.url))
const fx = new Fixtures()
let runtime: string
let busybox: string
let webAddress: string

const relays: Relay[] = []
async function relay(name: string): Promise<Relay> {
  const r = await startRelay(fx.docker, {namespace: NET, image: runtime, name: `tpt-relay-${name}`, labels: {'tp.fixture': 'true'}})
  relays.push(r)
  return r
}

async function gone(id: string, withinMs: number): Promise<boolean> {
  const deadline = Date.now() + withinMs
  while (Date.now() < deadline) {
    const exists = await fx.docker
      .getContainer(id)
      .inspect()
      .then(
        () => true,
        () => false,
      )
    if (!exists) return true
    await new Promise((r) => setTimeout(r, 100))
  }
  return false
}

function httpGet(stream: NodeJS.ReadWriteStream, host: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = ''
    stream.on('data', (c: Buffer) => (text += c.toString()))
    stream.on('end', () => resolve(text))
    stream.on('error', reject)
    stream.write(`GET / HTTP/1.0\r\nHost: ${host}\r\n\r\n`)
  })
}

beforeAll(async () => {
  runtime = (await ensureRuntimeImage(fx.docker, {require: ['relay']})).ref
  busybox = await fx.busybox()
  await fx.network(NET)
  const web = await fx.container({name: 'tpt-relay-web', Image: busybox, Cmd: httpdCmd('web through the relay'), HostConfig: {NetworkMode: NET}})
  webAddress = web.NetworkSettings.Networks[NET].IPAddress
})

afterAll(async () => {
  for (const r of relays) r.tunnel.close()
  await fx.cleanup()
})

describe('the relay', () => {
  it('reaches a workload by address and by name, with no port published', async () => {
    const r = await relay('reach')
    expect(await httpGet(await r.tunnel.connect(webAddress, 80), webAddress)).toContain('web through the relay')
    expect(await httpGet(await r.tunnel.connect('tpt-relay-web', 80), 'tpt-relay-web')).toContain('web through the relay')
    const info = await fx.docker.getContainer(r.id).inspect()
    expect(info.HostConfig.PortBindings ?? {}).toEqual({})
    expect(Object.keys(info.NetworkSettings.Ports ?? {})).toEqual([])
  })

  it('brings a connection made to it on the namespace to this side, with the dialler’s address', async () => {
    const r = await relay('accept')
    const peers: string[] = []
    r.tunnel.listen(4701, ({stream, peer}) => {
      peers.push(peer.address)
      stream.end('hello from this side\n')
    })
    // a workload on the namespace dials the relay by its name
    const {output, code} = await fx.run(
      busybox,
      NET,
      ['sh', '-c', 'for i in 1 2 3 4 5 6 7 8 9 10; do nc tpt-relay-accept 4701 </dev/null && exit 0; sleep 0.3; done; exit 1'],
      'tpt-relay-dialler',
    )
    expect(code, output).toBe(0)
    expect(output).toContain('hello from this side')
    expect(peers).toHaveLength(1)
    expect(peers[0]).toMatch(/^\d+\.\d+\.\d+\.\d+$/)
  })

  it('ends, and its container goes, when this side closes the tunnel', async () => {
    const r = await relay('close')
    r.tunnel.close('test over')
    expect(await gone(r.id, 10_000)).toBe(true)
  })

  it('ends, and its container goes, when the process on this side is killed (kill -9)', async () => {
    const script = `
      import Docker from 'dockerode'
      import {startRelay} from '@tp/plugin-cluster-docker'
      const r = await startRelay(new Docker(), {namespace: '${NET}', image: '${runtime}', name: 'tpt-relay-killed', labels: {'tp.fixture': 'true'}})
      console.log(r.id)
      setInterval(() => undefined, 1000)
    `
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], {cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit']})
    const id = await new Promise<string>((resolve, reject) => {
      child.stdout.once('data', (c: Buffer) => resolve(c.toString().trim()))
      child.once('exit', (code) => reject(new Error(`the child exited with ${code}`)))
    })
    expect((await fx.docker.getContainer(id).inspect()).State.Running).toBe(true)
    child.kill('SIGKILL')
    expect(await gone(id, 10_000)).toBe(true)
  })
})
