/**
 * Issue 24's modes in a spec file, against the real engine: one `tp spec run` makes two personal
 * intercepts of one workload port (`X-Dev: alice`, `X-Dev: bob`, each to its own docker handler)
 * and a wiretap of the same port; a request with each header reaches its handler, one without
 * reaches the workload, the wiretap's handler gets a copy of each; Ctrl-C ends them all and
 * nothing of them is left. A demo cluster and a connection of its own.
 */
import {mkdtemp, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {setTimeout as sleep} from 'node:timers/promises'
import {execa} from 'execa'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {ensureRuntimeImage} from '@tp/images'
import {connectOwnDemo, docker, nothingLeft, repoRoot, startTp, tpCli} from './helpers/index.js'

const NETWORK = 'modes-spec-demo'
const CONNECTION = 'modes-spec'
const WEB = `${NETWORK}-frontend-v1`
let dir: string
let env: Record<string, string | undefined>
let disconnect: (() => Promise<void>) | undefined
let runtime: string

const fixtures = join(repoRoot, 'test', 'fixtures')

/** Runs modes-peers.cjs's HTTP client on the namespace's network: one request per argument, each reply as JSON. */
async function client(headers: string[]): Promise<Array<Record<string, unknown>>> {
  const result = await execa(
    'docker',
    [
      'run',
      '--rm',
      '--label',
      'tp.fixture=true',
      '--network',
      NETWORK,
      '-v',
      `${fixtures}:/f:ro`,
      runtime,
      'node',
      '/f/modes-peers.cjs',
      'http-client',
      'http://frontend-v1/',
      ...headers,
    ],
    {reject: false, timeout: 60_000},
  )
  expect(result.stderr).toBe('')
  return result.stdout
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as Record<string, unknown>)
}

/** A docker handler of the spec: modes-peers.cjs in the runtime image. */
const peer = (name: string, args: string[], port: number) => `  - name: ${name}
    docker:
      image: ${runtime}
      options: ["-v", "${fixtures}:/f:ro"]
      command: node
      args: [/f/modes-peers.cjs, ${args.map((a) => JSON.stringify(a)).join(', ')}]
      ports: [${port}]
`

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'modes-spec-'))
  env = {...process.env, TP_CACHE_DIR: join(dir, 'cache'), TP_IMAGE_TAG: process.env.TP_IMAGE_TAG ?? 'modesspec'}
  ;({disconnect} = await connectOwnDemo(NETWORK, CONNECTION, env))
  runtime = (await ensureRuntimeImage(docker, {require: ['agent']})).ref
}, 300_000)

afterAll(async () => {
  await disconnect?.()
  if (dir) await rm(dir, {recursive: true, force: true})
}, 120_000)

describe('tp spec run: personal intercepts and a wiretap', () => {
  it('each header reaches its handler, the rest the workload, the wiretap gets copies; Ctrl-C leaves nothing', async () => {
    const file = join(dir, 'personal.yaml')
    await writeFile(
      file,
      `name: two-developers
connection: {name: ${CONNECTION}}
handlers:
${peer('alice', ['http-server', 'alice', '8001'], 8001)}${peer('bob', ['http-server', 'bob', '8002'], 8002)}${peer('tap', ['http-recorder', '8003', '0'], 8003)}workloads:
  - name: frontend-v1
    intercepts:
      - handler: alice
        port: 80
        headers: [{name: X-Dev, value: alice}]
      - handler: bob
        port: 80
        global: false
        headers: [{name: X-Dev, value: bob}]
      - handler: tap
        port: 80
        mode: wiretap
`,
    )
    const valid = await tpCli(['spec', 'validate', file], {env})
    expect(valid.stderr).toBe('')
    expect(valid.stdout).toMatch(/valid spec two-developers: 3 handlers, 1 workload \(3 intercepts\)/)
    const dry = await tpCli(['spec', 'run', file, '--dry-run'], {env})
    expect(dry.exitCode).toBe(0)
    expect(dry.stdout).toContain('intercept frontend-v1-alice: frontend-v1:80 for x-dev=alice → port 8001, handler alice')
    expect(dry.stdout).toContain('intercept frontend-v1-bob: frontend-v1:80 for x-dev=bob → port 8002, handler bob')
    expect(dry.stdout).toContain('wiretap: frontend-v1:80 (a copy; the workload answers) → port 8003, handler tap')

    const run = startTp(['spec', 'run', file], {env, cwd: dir})
    const waitFor = async (pattern: RegExp) => {
      const deadline = Date.now() + 120_000
      while (!pattern.test(run.output())) {
        if (run.child.exitCode !== null || Date.now() > deadline) throw new Error(`tp spec run did not get to ${pattern}:\n${run.output()}`)
        await sleep(100)
      }
    }
    try {
      await waitFor(/HTTP traffic to \S+ with x-dev=alice now goes to your handler \(alice\)/)
      await waitFor(/HTTP traffic to \S+ with x-dev=bob now goes to your handler \(bob\)/)
      await waitFor(/A copy of the traffic to \S+ \(the workload still answers\) now goes to your handler \(tap\)/)
      expect(run.output()).toContain(`${WEB}:80 → port 8001: intercept frontend-v1-alice for x-dev=alice, handler alice`)
      expect(run.output()).toContain(`${WEB}:80 → port 8003: wiretap ${WEB}-wiretap, handler tap`)
      const listed = await tpCli(['list', '--use', CONNECTION], {env})
      expect(listed.stdout).toContain('frontend-v1-alice on 80 for x-dev=alice')
      expect(listed.stdout).toContain('frontend-v1-bob on 80 for x-dev=bob')

      const replies = await client(['X-Dev=alice', 'X-Dev=bob', '-', 'X-Dev=carol'])
      expect(replies.map((r) => String(r.body).split('\n')[0])).toEqual([
        'alice /',
        'bob /',
        expect.stringContaining('frontend-v1'),
        expect.stringContaining('frontend-v1'),
      ])
      // the wiretap's handler printed a copy of each (it sits before the personal intercepts' rules)
      const copies = () =>
        run
          .output()
          .split('\n')
          .filter((l) => l.startsWith('{"method"'))
          .map((l) => (JSON.parse(l) as {dev?: string}).dev ?? '-')
      const deadline = Date.now() + 20_000
      while (copies().length < 4 && Date.now() < deadline) await sleep(200)
      expect(copies()).toEqual(['alice', 'bob', '-', 'carol'])
    } finally {
      run.child.kill('SIGINT')
    }
    const result = await run.child
    expect({code: result.exitCode, output: run.output()}).toMatchObject({code: 0})
    const after = await client(['X-Dev=alice', '-'])
    expect(after.map((r) => String(r.body))).toEqual([expect.stringContaining('frontend-v1'), expect.stringContaining('frontend-v1')])
    expect(await nothingLeft(CONNECTION)).toEqual([])
    expect((await tpCli(['list', '--use', CONNECTION], {env})).stdout).not.toMatch(/frontend-v1-alice|wiretap/)
  }, 300_000)
})
