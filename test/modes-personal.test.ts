/**
 * Issue 24's personal intercepts, against the real engine: two developers (`X-Dev: alice`, `X-Dev:
 * bob`) intercept one workload at once; a keep-alive connection alternating headers gets each
 * request to the right side; requests without the header (or with another value), and bytes that
 * are not HTTP, reach the workload; an overlapping filter and a plain intercept are refused naming
 * the other; a gRPC client (unary, server streaming, an error status) with the header reaches the
 * handler and without it the workload, status and trailers intact; no non-matching request fails
 * while personal intercepts start and end. A demo cluster of its own.
 */
import {mkdtemp, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {execa} from 'execa'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {ensureRuntimeImage} from '@tp/images'
import {connectOwnDemo, docker, nothingLeft, repoRoot, startClientLoop, startTp, tpCli, type RunningTp} from './helpers/index.js'

const NETWORK = 'modes-personal-demo'
const CONNECTION = 'modes-personal'
const DAEMON = `tp-${CONNECTION}-cn`
const WEB = `${NETWORK}-frontend-v1`
const GRPC = `${NETWORK}-grpc`
const H2 = `${NETWORK}-h2`
let cacheDir: string
let env: Record<string, string | undefined>
let disconnect: (() => Promise<void>) | undefined
let runtime: string
const containers: string[] = []
const running: RunningTp[] = []

const tp = (args: string[]) => tpCli(args, {env})
const peerMounts = () => [`${join(repoRoot, 'test', 'fixtures')}:/f:ro`, `${join(repoRoot, 'node_modules')}:/nm:ro`]

/** A long-running peer (server) from modes-peers.cjs, on a network or in the daemon's namespace. */
async function startPeer(name: string, network: string, args: string[], exposed?: number, alias?: string): Promise<void> {
  const container = await docker.createContainer({
    name,
    Image: runtime,
    Cmd: ['node', '/f/modes-peers.cjs', ...args],
    Env: ['NODE_PATH=/nm'],
    Labels: {'tp.fixture': 'true'},
    ...(exposed ? {ExposedPorts: {[`${exposed}/tcp`]: {}}} : {}),
    HostConfig: {NetworkMode: network, Binds: peerMounts()},
    ...(alias ? {NetworkingConfig: {EndpointsConfig: {[network]: {Aliases: [alias]}}}} : {}),
  })
  containers.push(name)
  await container.start()
}

/** Runs a client from modes-peers.cjs on the namespace's network; its JSON lines. */
async function client(args: string[]): Promise<Array<Record<string, unknown>>> {
  const binds = peerMounts().flatMap((b) => ['-v', b])
  const result = await execa(
    'docker',
    ['run', '--rm', '--label', 'tp.fixture=true', '--network', NETWORK, ...binds, '-e', 'NODE_PATH=/nm', runtime, 'node', '/f/modes-peers.cjs', ...args],
    {reject: false, timeout: 60_000},
  )
  expect(result.stderr).toBe('')
  return result.stdout
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as Record<string, unknown>)
}

function hold(name: string, workload: string, port: number, header: string): RunningTp {
  const held = startTp(['intercept', workload, '--use', CONNECTION, '--name', name, '--port', String(port), '--http-header', header], {env})
  running.push(held)
  return held
}

/** Ends held intercepts as Ctrl-C would, one after the other: each must exit 0 (its output says why not). */
async function endHeld(...helds: RunningTp[]): Promise<void> {
  for (const held of helds) {
    held.child.kill('SIGTERM')
    const ended = await held.child
    expect({code: ended.exitCode, signal: ended.signal, output: held.output()}).toMatchObject({code: 0})
    running.splice(running.indexOf(held), 1)
  }
}

beforeAll(async () => {
  cacheDir = await mkdtemp(join(tmpdir(), 'modes-personal-'))
  env = {...process.env, TP_CACHE_DIR: cacheDir}
  ;({disconnect} = await connectOwnDemo(NETWORK, CONNECTION, env))
  runtime = (await ensureRuntimeImage(docker, {require: ['agent']})).ref
  await startPeer(GRPC, NETWORK, ['grpc-server', 'workload', '50051'], 50051, 'grpc')
  // the handlers, in the daemon's network namespace (where a container daemon's handlers listen)
  await startPeer(`${CONNECTION}-alice`, `container:${DAEMON}`, ['http-server', 'alice', '8001'])
  await startPeer(`${CONNECTION}-bob`, `container:${DAEMON}`, ['http-server', 'bob', '8002'])
  await startPeer(`${CONNECTION}-alice-grpc`, `container:${DAEMON}`, ['grpc-server', 'alice', '8011'])
  await startPeer(H2, NETWORK, ['h2-server', 'workload', '80'], 80, 'h2web')
  await startPeer(`${CONNECTION}-alice-h2`, `container:${DAEMON}`, ['h2-server', 'alice', '8012'])
}, 300_000)

afterAll(async () => {
  for (const held of running) if (held.child.exitCode === null) held.child.kill('SIGTERM')
  await Promise.all(running.map((held) => held.child))
  await Promise.all(
    containers.map((name) =>
      docker
        .getContainer(name)
        .remove({force: true})
        .catch(() => undefined),
    ),
  )
  await disconnect?.()
  await rm(cacheDir, {recursive: true, force: true})
}, 120_000)

describe('personal intercepts', () => {
  it('two developers at once: each gets requests with their header, one keep-alive connection alternates, the rest reach the workload', async () => {
    const loop = await startClientLoop('http://frontend-v1/', {network: NETWORK, intervalMs: 50})
    try {
      const alice = hold('alice', 'frontend-v1', 8001, 'X-Dev=alice')
      const bob = hold('bob', 'frontend-v1', 8002, 'X-Dev=bob')
      await Promise.all([alice.active, bob.active])
      expect(alice.output()).toContain(`HTTP traffic to ${WEB}:80 with x-dev=alice now goes to port 8001`)

      const replies = await client(['http-client', 'http://frontend-v1/', 'X-Dev=alice', '-', 'X-Dev=bob', 'X-Dev=carol', 'X-Dev=alice', '-'])
      expect(replies.map((r) => String(r.body).split('\n')[0])).toEqual([
        'alice /',
        expect.stringContaining('frontend-v1'),
        'bob /',
        expect.stringContaining('frontend-v1'),
        'alice /',
        expect.stringContaining('frontend-v1'),
      ])
      // one client connection carried all of them
      expect(replies.slice(1).every((r) => r.reused === true)).toBe(true)

      const listed = await tp(['list', '--use', CONNECTION])
      expect(listed.stdout).toContain('alice on 80 for x-dev=alice')
      expect(listed.stdout).toContain('bob on 80 for x-dev=bob')

      // overlapping filters, and a plain intercept beside personal ones, are refused naming the other
      const carol = await tp(['intercept', 'frontend-v1', '--use', CONNECTION, '--name', 'carol', '--port', '8003', '--http-header', 'x-dev=alice'])
      expect(carol.stderr).toContain('overlaps that of the personal intercept "alice"')
      expect(carol.exitCode).not.toBe(0)
      const plain = await tp(['intercept', 'frontend-v1', '--use', CONNECTION, '--name', 'plain', '--port', '8004'])
      expect(plain.stderr).toMatch(/has the personal intercept "(alice|bob)"/)
      expect(plain.exitCode).not.toBe(0)

      // bytes that are not HTTP reach the workload (busybox httpd answers them with an error)
      const [raw] = await client(['raw-client', 'frontend-v1', '80'])
      expect(String(raw.got)).toMatch(/^HTTP\/1\.[01] 4\d\d/)

      // ending one leaves the other
      await endHeld(bob)
      const after = await client(['http-client', 'http://frontend-v1/', 'X-Dev=bob', 'X-Dev=alice'])
      expect(after).toEqual([expect.objectContaining({body: expect.stringContaining('frontend-v1')}), expect.objectContaining({body: 'alice /'})])
      await endHeld(alice)
    } finally {
      const seen = await loop.stop()
      // requests without the header never failed while the intercepts started and ended
      expect(seen.failures).toEqual([])
      expect(seen.ok).toBeGreaterThan(10)
      expect(seen.bodies.every((b) => b.includes('frontend-v1'))).toBe(true)
    }
    expect(await nothingLeft(CONNECTION)).toEqual([])
  }, 240_000)

  it('gRPC through a personal intercept: unary, server streaming and an error status, trailers intact, each to its side', async () => {
    const held = hold('alice-grpc', 'grpc', 8011, 'X-Dev=alice')
    await held.active
    const mine = (await client(['grpc-client', 'grpc:50051', 'X-Dev=alice']))[0]
    expect(mine).toEqual({
      unary: 'alice:hi',
      unaryStatus: {code: 0, servedBy: 'alice'},
      stream: ['alice#0', 'alice#1', 'alice#2'],
      streamStatus: {code: 0, servedBy: 'alice'},
      fail: {code: 5, details: 'alice has nothing', servedBy: 'alice'},
    })
    const theirs = (await client(['grpc-client', 'grpc:50051']))[0]
    expect(theirs).toEqual({
      unary: 'workload:hi',
      unaryStatus: {code: 0, servedBy: 'workload'},
      stream: ['workload#0', 'workload#1', 'workload#2'],
      streamStatus: {code: 0, servedBy: 'workload'},
      fail: {code: 5, details: 'workload has nothing', servedBy: 'workload'},
    })
    await endHeld(held)
    expect(await nothingLeft(CONNECTION)).toEqual([])
  }, 180_000)

  it('plain h2c (answers without trailers) through a personal intercept: every stream ends, on its side', async () => {
    const held = hold('alice-h2', 'h2web', 8012, 'X-Dev=alice')
    await held.active
    const asked = Array.from({length: 12}, (_, k) => ['X-Dev=alice', 'X-Dev=bob', '-'][k % 3])
    const got = await client(['h2-client', 'h2web:80', ...asked])
    expect(got).toEqual(asked.map((header) => ({header, body: header === 'X-Dev=alice' ? 'alice /\n' : 'workload /\n'})))
    await endHeld(held)
    expect(await nothingLeft(CONNECTION)).toEqual([])
  }, 120_000)

  it('bad filters: a clear error, nothing made', async () => {
    const bad = await tp(['intercept', 'frontend-v1', '--use', CONNECTION, '--port', '8001', '--http-header', 'X-Dev'])
    expect(bad.stderr).toContain('--http-header "X-Dev" is not NAME=VALUE')
    expect(bad.exitCode).not.toBe(0)
    const path = await tp(['intercept', 'frontend-v1', '--use', CONNECTION, '--port', '8001', '--http-path-prefix', 'api'])
    expect(path.stderr).toContain('write --http-path-prefix /api')
    expect(path.exitCode).not.toBe(0)
    expect(await nothingLeft(CONNECTION)).toEqual([])
  }, 60_000)
})

/** The nat table's PREROUTING rules in a workload's network namespace (`iptables -S`). */
async function natRules(container: string): Promise<string> {
  const result = await execa('docker', [
    'run',
    '--rm',
    '--label',
    'tp.fixture=true',
    '--network',
    `container:${container}`,
    '--cap-add',
    'NET_ADMIN',
    runtime,
    'iptables',
    '-w',
    '-t',
    'nat',
    '-S',
    'PREROUTING',
  ])
  return result.stdout
}

describe('tp wiretap', () => {
  it('the handler sees a copy of each request while every answer comes from the workload, beside a personal intercept, slow or gone', async () => {
    const RECORDER = `${CONNECTION}-recorder`
    // a slow handler: it answers each copy after a second (answers nobody waits for)
    await startPeer(RECORDER, `container:${DAEMON}`, ['http-recorder', '8021', '1000'])
    const recorded = async () =>
      (await execa('docker', ['logs', RECORDER])).stdout
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as {url: string; seq?: string; dev?: string})
    const loop = await startClientLoop('http://frontend-v1/', {network: NETWORK, intervalMs: 50})
    try {
      const tap = startTp(['wiretap', 'frontend-v1', '--use', CONNECTION, '--port', '8021'], {env})
      running.push(tap)
      await tap.active
      expect(tap.output()).toContain(`A copy of the traffic to ${WEB}:80 (the workload still answers) now goes to port 8021`)
      // only a wiretap: its agent captures the packets, no rule redirects clients (they take the kernel path)
      expect(await natRules(WEB)).not.toMatch(/--dport 80 .*REDIRECT/)
      const first = await client(['http-client', 'http://frontend-v1/', 'X-Seq=0'])
      expect(String(first[0]?.body)).toContain('frontend-v1')
      let copies: Awaited<ReturnType<typeof recorded>> = []
      for (let i = 0; i < 100 && !copies.some((c) => c.seq === '0'); i++) {
        await new Promise((r) => setTimeout(r, 200))
        copies = await recorded()
      }
      expect(copies.filter((c) => c.seq || c.dev).map((c) => c.seq ?? c.dev)).toEqual(['0'])
      // a personal intercept started after the wiretap: the wiretap still sees its requests
      const alice = hold('alice-t', 'frontend-v1', 8001, 'X-Dev=alice')
      await alice.active
      const listed = await tp(['list', '--use', CONNECTION])
      expect(listed.stdout).toContain(`${WEB}-wiretap (wiretap on 80)`)
      expect(listed.stdout).toContain('alice-t on 80 for x-dev=alice')

      const replies = await client(['http-client', 'http://frontend-v1/', 'X-Seq=1', 'X-Seq=2', 'X-Seq=3', 'X-Seq=4', 'X-Seq=5', 'X-Dev=alice'])
      expect(replies.map((r) => String(r.body).split('\n')[0])).toEqual([...Array(5).fill(expect.stringContaining('frontend-v1')), 'alice /'])
      for (let i = 0; i < 100 && copies.filter((c) => c.seq || c.dev).length < 7; i++) {
        await new Promise((r) => setTimeout(r, 200))
        copies = await recorded()
      }
      expect(copies.filter((c) => c.seq || c.dev).map((c) => c.seq ?? c.dev)).toEqual(['0', '1', '2', '3', '4', '5', 'alice'])

      // the handler dies: clients go on being answered by the workload
      await docker.getContainer(RECORDER).kill()
      const after = await client(['http-client', 'http://frontend-v1/', 'X-Seq=6', 'X-Seq=7'])
      expect(after.map((r) => String(r.body))).toEqual([expect.stringContaining('frontend-v1'), expect.stringContaining('frontend-v1')])

      await endHeld(alice, tap)
    } finally {
      const seen = await loop.stop()
      // no client request failed while the wiretap started, copied, lost its handler and ended
      expect(seen.failures).toEqual([])
      expect(seen.ok).toBeGreaterThan(10)
      expect(seen.bodies.every((b) => b.includes('frontend-v1'))).toBe(true)
    }
    expect(await nothingLeft(CONNECTION)).toEqual([])
  }, 180_000)
})
