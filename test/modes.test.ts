/**
 * Issue 24, the modes that are not an intercept of one port, as a user runs them against the real
 * engine: `tp ingest` (environment and volumes, read-only, no traffic; several at once) and `tp
 * replace` (every port to the handler, the workload paused meanwhile and resumed on every end: a
 * kill -9 of tp, and a daemon that died, repaired by the next tp command). A demo cluster of its own.
 */
import {mkdtemp, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {DEMO_CONFIG_TXT, DEMO_GREETING, FRONTEND_V2_IMAGE} from '@tp/images'
import {connectOwnDemo, docker, httpGet, nothingLeft, startTp, tpCli, waitFor} from './helpers/index.js'

const NETWORK = 'modes-e2e-demo'
const CONNECTION = 'modes-e2e'
const WORKLOAD = `${NETWORK}-frontend-v1`
const W = WORKLOAD
let cacheDir: string
let env: Record<string, string | undefined>
let disconnect: (() => Promise<void>) | undefined

const tp = (args: string[]) => tpCli(args, {env})

const paused = async () => (await docker.getContainer(WORKLOAD).inspect()).State.Paused

beforeAll(async () => {
  cacheDir = await mkdtemp(join(tmpdir(), 'modes-e2e-'))
  env = {...process.env, TP_CACHE_DIR: cacheDir}
  ;({disconnect} = await connectOwnDemo(NETWORK, CONNECTION, env))
}, 300_000)

afterAll(async () => {
  if (
    (
      await docker
        .getContainer(WORKLOAD)
        .inspect()
        .catch(() => undefined)
    )?.State.Paused
  )
    await docker.getContainer(WORKLOAD).unpause()
  await disconnect?.()
  await rm(cacheDir, {recursive: true, force: true})
}, 120_000)

describe('tp ingest', () => {
  it("gives the handler the workload's environment and read-only volume, takes no traffic, and several run at once", async () => {
    // one ingest held open (no handler) while another runs a container that reads the volume
    const held = startTp(['ingest', 'frontend-v1', '--use', CONNECTION], {env})
    await waitFor('the first ingest', async () => /No traffic is taken/.test(held.output()))
    const listed = await tp(['list', '--use', CONNECTION])
    expect(listed.stdout).toMatch(new RegExp(`${W}\\s+ports 80\\s+intercepted \\(${W}-ingest \\(ingest, no traffic\\)\\)`))

    const script = 'echo "greeting=$GREETING"; cat /data/config.txt; if touch /data/ingest-wrote 2>/dev/null; then echo wrote; else echo read-only; fi'
    const run = await tp(['ingest', 'frontend-v1', '--use', CONNECTION, '--docker-run', '--', FRONTEND_V2_IMAGE, 'sh', '-c', script])
    expect(run.stderr).toContain(`Intercept ${W}-ingest-2 `)
    expect(run.stderr).toMatch(/volumes: .*\/data \(read-only\)/)
    expect(run.stdout).toContain(`greeting=${DEMO_GREETING}`)
    expect(run.stdout).toContain(DEMO_CONFIG_TXT.trim())
    expect(run.stdout).toContain('read-only')
    expect(run.exitCode).toBe(0)
    // the workload kept its traffic all along
    expect((await httpGet('http://frontend-v1/', {network: NETWORK})).body).toContain('frontend-v1')

    held.child.kill('SIGTERM')
    const ended = await held.child
    expect(ended.exitCode).toBe(0)
    expect(await nothingLeft(CONNECTION)).toEqual([])
  }, 180_000)

  it('--writable lets the handler write into the volume', async () => {
    const run = await tp([
      'ingest',
      'frontend-v1',
      '--use',
      CONNECTION,
      '--writable',
      '--docker-run',
      '--',
      FRONTEND_V2_IMAGE,
      'sh',
      '-c',
      'echo hi > /data/ingest-wrote && cat /data/ingest-wrote && rm /data/ingest-wrote',
    ])
    expect(run.stdout.trim()).toBe('hi')
    expect(run.exitCode).toBe(0)
    expect(await nothingLeft(CONNECTION)).toEqual([])
  }, 120_000)
})

describe('tp replace', () => {
  it('sends every port to the handler with the workload paused; after kill -9 of tp the workload answers again', async () => {
    const replace = startTp(['replace', 'frontend-v1', '--use', CONNECTION, '--docker-run', '--', '-e', 'PORT=80', FRONTEND_V2_IMAGE], {env})
    await replace.active
    expect(replace.output()).toContain(`Traffic to ${W} (80) now goes to your handler; ${W} is paused`)
    expect((await httpGet('http://frontend-v1/', {network: NETWORK})).body).toContain('frontend-v2')
    await waitFor('the workload paused', paused)
    const listed = await tp(['list', '--use', CONNECTION])
    expect(listed.stdout).toContain(`intercepted (${W} (replace: 80))`)
    // a second replace (or an intercept) of the same port is refused, naming the first
    const second = await tp(['intercept', 'frontend-v1', '--use', CONNECTION, '--name', 'other', '--port', '8001'])
    expect(second.stderr).toContain(`port 80 of ${W} is already intercepted by "${W}"`)
    expect(second.exitCode).not.toBe(0)

    replace.child.kill('SIGKILL')
    await replace.child
    await waitFor('the workload resumed', async () => !(await paused()), 30_000)
    await waitFor('the workload answering', async () => (await httpGet('http://frontend-v1/', {network: NETWORK})).body.includes(DEMO_GREETING), 30_000)
    expect(await nothingLeft(CONNECTION)).toEqual([])
  }, 180_000)

  it('a daemon that died while it replaced: the next tp command resumes the workload', async () => {
    const replace = startTp(['replace', 'frontend-v1', '--use', CONNECTION, '--docker-run', '--', '-e', 'PORT=80', FRONTEND_V2_IMAGE], {env})
    await replace.active
    await waitFor('the workload paused', paused)
    await docker.getContainer(`tp-${CONNECTION}-cn`).kill()
    await replace.child
    expect(await paused()).toBe(true)
    const status = await tp(['status'])
    expect(status.stderr + status.stdout).toMatch(/resumed|paused-workload/)
    expect(await paused()).toBe(false)
    await waitFor('the workload answering', async () => (await httpGet('http://frontend-v1/', {network: NETWORK})).body.includes(DEMO_GREETING), 30_000)
    expect(await nothingLeft(CONNECTION)).toEqual([])
    // connect again for what follows
    const connected = await tp(['connect', '--docker', '--name', CONNECTION, '--namespace', NETWORK])
    expect(connected.exitCode).toBe(0)
  }, 180_000)

  it('bad --port: a clear error, nothing made', async () => {
    const bad = await tp(['replace', 'frontend-v1', '--use', CONNECTION, '--port', '8000'])
    expect(bad.stderr).toMatch(/--port "8000" is not <local>:<service port>/)
    expect(bad.exitCode).not.toBe(0)
    const unknown = await tp(['replace', 'frontend-v1', '--use', CONNECTION, '--port', '8000:81'])
    expect(unknown.stderr).toMatch(/has no service port "81"/)
    expect(unknown.exitCode).not.toBe(0)
    expect(await nothingLeft(CONNECTION)).toEqual([])
    expect(await paused()).toBe(false)
  }, 60_000)
})
