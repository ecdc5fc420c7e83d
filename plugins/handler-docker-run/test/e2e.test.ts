import {randomBytes} from 'node:crypto'
import {mkdtempSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {setTimeout as sleep} from 'node:timers/promises'
import {execa} from 'execa'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {connectOwnDemo, docker, httpGet, inTerminal, leftovers, nothingLeft, startTp, tpBin, tpCli} from '../../../test/helpers/index.js'

/**
 * Issue 4's acceptance, as a user runs it: `tp intercept … --docker-run -- …` against a demo
 * cluster on its own network (so tests of other areas on `tp-demo` are not disturbed), through a
 * container daemon of its own connection.
 */

const suffix = randomBytes(3).toString('hex')
const NET = `tpt-dr-${suffix}`
const CONN = `tpt-dr-${suffix}`
const cacheDir = mkdtempSync(join(tmpdir(), 'tpt-dr-e2e-'))
const env = {...process.env, TP_CACHE_DIR: cacheDir}
/** The workload is found by its network alias; the intercept is named after its container. */
const INTERCEPT = `${NET}-frontend-v1`

function intercept(handlerArgs: string[], extra: string[] = []): string[] {
  return ['intercept', '--docker', '--use', CONN, 'frontend-v1', '--port', '8000', ...extra, '--docker-run', '--', ...handlerArgs]
}

const start = (args: string[]) => startTp(args, {env})

async function get(path = '/'): Promise<string> {
  return (await httpGet(`http://frontend-v1${path}`, {network: NET})).body
}

let demo: {disconnect: () => Promise<void>} | undefined

beforeAll(async () => {
  demo = await connectOwnDemo(NET, CONN, env)
})

afterAll(async () => {
  await demo?.disconnect()
  rmSync(cacheDir, {recursive: true, force: true})
})

describe('tp intercept --docker-run (issue 4 acceptance)', () => {
  it("the seed example: clients get frontend-v2 with the workload's env and cluster access; Ctrl-C restores frontend-v1, exit 0, nothing left", async () => {
    expect(await get()).toMatch(/^frontend-v1\n/)
    const run = start(intercept(['frontend-v2']))
    await run.active
    const body = await get()
    expect(body).toMatch(/^frontend-v2\n/)
    expect(body).toContain('GREETING=hello from frontend-v1\n')
    expect(body).toContain('DEMO_NOTES=first line\nsecond line\n')
    expect(body).toContain('catalog={"catalog":["apple","pear"]}')

    run.child.kill('SIGINT')
    const result = await run.child
    expect(result.exitCode, run.output()).toBe(0)
    // said once (it was reported twice; one place prints it, when the lease turns active)
    expect(run.output().match(/now goes to your handler/g), run.output()).toHaveLength(1)
    expect(await get()).toMatch(/^frontend-v1\n/)
    expect(await nothingLeft(CONN)).toEqual([])
  })

  it('a container that exits with 3 makes tp exit 3 and clean up; --env-file/--env-json hold the same environment', async () => {
    const shFile = join(cacheDir, 'intercepted.sh')
    const jsonFile = join(cacheDir, 'intercepted.json')
    // Node 20 looks for a file named by `--env-file` anywhere in its argv, even after the script,
    // and exits 9 when it does not exist: create it first (it does not load it)
    writeFileSync(shFile, '')
    const result = await tpCli(
      intercept(['frontend-v2', 'sh', '-c', 'env > /dev/null; exit 3'], ['--env-file', shFile, '--env-syntax', 'sh', '--env-json', jsonFile]),
      {env},
    )
    expect(result.exitCode, result.stderr).toBe(3)
    const json = JSON.parse(readFileSync(jsonFile, 'utf8')) as Record<string, string>
    expect(json.DEMO_NOTES).toBe('first line\nsecond line')
    const sourced = await execa('sh', ['-c', '. "$1" && printf %s "$DEMO_NOTES|$GREETING|$TP_WORKLOAD"', 'sh', shFile], {env: {}, extendEnv: false})
    expect(sourced.stdout).toBe(`${json.DEMO_NOTES}|${json.GREETING}|${json.TP_WORKLOAD}`)
    expect(await get()).toMatch(/^frontend-v1\n/)
    expect(await nothingLeft(CONN)).toEqual([])
  })

  it('tp leave from another process stops the container and tp exits', async () => {
    const run = start(intercept(['frontend-v2']))
    await run.active
    const left = await tpCli(['leave', INTERCEPT, '--use', CONN], {env})
    expect(left.exitCode, left.stderr).toBe(0)
    const result = await Promise.race([run.child, sleep(20_000).then(() => undefined)])
    expect(result, run.output()).toBeDefined()
    expect(result!.exitCode).toBe(0)
    expect(await get()).toMatch(/^frontend-v1\n/)
    expect(await nothingLeft(CONN)).toEqual([])
  })

  it('--name is used as given, -e GREETING=override wins, arguments after the image reach the container untouched; SIGTERM ends it', async () => {
    const name = `tpt-dr-custom-${suffix}`
    const serve = 'echo "$*" > /www/args.txt; trap "exit 0" TERM INT; httpd -f -p 8000 -h /www & wait'
    const run = start(intercept(['--name', name, '-e', 'GREETING=override', 'frontend-v2', 'sh', '-c', serve, 'sh', '--name', 'x', '-d']))
    await run.active
    expect(await get()).toContain('GREETING=override\n')
    expect(await get('/args.txt')).toBe('--name x -d\n')
    const info = await docker.getContainer(name).inspect()
    expect(info.Config.Labels['tp.intercept']).toBe(INTERCEPT)
    run.child.kill('SIGTERM') // SIGTERM ends it like Ctrl-C
    expect((await run.child).exitCode, run.output()).toBe(0)
    expect(await nothingLeft(CONN)).toEqual([])
  })

  it('-it with a shell works under a real terminal (script)', async () => {
    const terminal = inTerminal(['node', tpBin, ...intercept(['-it', 'frontend-v2', 'sh'])], {env})
    await terminal.waitFor(/now goes to your handler|# /)
    await sleep(500)
    terminal.type('tty; echo "answer-$((6*7))"; exit 5\r')
    const result = await Promise.race([terminal.child, sleep(30_000).then(() => undefined)])
    expect(result, terminal.output()).toBeDefined()
    expect(result!.exitCode, terminal.output()).toBe(5)
    expect(terminal.output()).toMatch(/\/dev\/pts\/\d+/)
    expect(terminal.output()).toContain('answer-42')
    expect(await nothingLeft(CONN)).toEqual([])
  })

  it('Ctrl-C typed in a real terminal (tp and docker both get SIGINT) ends everything with exit 0', async () => {
    const terminal = inTerminal(['node', tpBin, ...intercept(['frontend-v2'])], {env})
    await terminal.waitFor('now goes to your handler')
    expect(await get()).toMatch(/^frontend-v2\n/)
    terminal.type('\x03')
    const result = await Promise.race([terminal.child, sleep(30_000).then(() => undefined)])
    expect(result, terminal.output()).toBeDefined()
    expect(result!.exitCode, terminal.output()).toBe(0)
    expect(await get()).toMatch(/^frontend-v1\n/)
    expect(await nothingLeft(CONN)).toEqual([])
  })

  it('Ctrl-C twice in a real terminal: the second one does not cut the teardown short', async () => {
    const terminal = inTerminal(['node', tpBin, ...intercept(['frontend-v2'])], {env})
    await terminal.waitFor('now goes to your handler')
    terminal.type('\x03')
    await terminal.waitFor('giving the traffic back, then stopping the handler')
    terminal.type('\x03')
    const result = await Promise.race([terminal.child, sleep(30_000).then(() => undefined)])
    expect(result, terminal.output()).toBeDefined()
    expect(result!.exitCode, terminal.output()).toBe(0)
    expect(terminal.output()).toMatch(/SIGINT: still (giving the traffic back, then stopping the handler|ending the intercept)/)
    expect(await get()).toMatch(/^frontend-v1\n/)
    expect(await nothingLeft(CONN)).toEqual([])
  })

  it('the terminal going away (SIGHUP) ends the intercept like Ctrl-C', async () => {
    const run = start(intercept(['frontend-v2']))
    await run.active
    run.child.kill('SIGHUP')
    const result = await run.child
    expect(result.exitCode, run.output()).toBe(0)
    expect(await get()).toMatch(/^frontend-v1\n/)
    expect(await nothingLeft(CONN)).toEqual([])
  })

  it('Ctrl-C right after the intercept is created, before the handler runs: exit 0, nothing left', async () => {
    const run = startTp(intercept(['frontend-v2']), {env: {...env, TP_DEBUG: '1'}})
    const deadline = Date.now() + 60_000
    while (!/intercept \S+ created/.test(run.output())) {
      if (run.child.exitCode !== null || Date.now() > deadline) throw new Error(`no intercept:\n${run.output()}`)
      await sleep(10)
    }
    run.child.kill('SIGINT')
    const result = await run.child
    expect(result.exitCode, run.output()).toBe(0)
    expect(await get()).toMatch(/^frontend-v1\n/)
    expect(await nothingLeft(CONN)).toEqual([])
  })

  it.each([
    [[], /needs the image/],
    [['-d', 'frontend-v2'], /detach/],
    [[`tpt-dr-missing-${suffix}`], /not found locally and could not be pulled/],
    [['-p', '8000:8000', 'frontend-v2'], /publish/],
  ])('bad input %j: a clear message, no intercept and no container', async (handlerArgs, message) => {
    const result = await tpCli(intercept(handlerArgs), {env})
    expect(result.exitCode).not.toBe(0)
    expect(result.stderr).toMatch(message)
    expect(await leftovers(CONN)).toEqual([])
    expect(await get()).toMatch(/^frontend-v1\n/)
  })

  it('--docker-mount is refused with a container daemon, before anything exists', async () => {
    const result = await tpCli(intercept(['frontend-v2'], ['--docker-mount', '/tmp']), {env})
    expect(result.exitCode).not.toBe(0)
    expect(result.stderr).toMatch(/--docker-mount is for a daemon on this host/)
    expect(result.stderr).toMatch(/--mount=false/)
    expect(await leftovers(CONN)).toEqual([])
  })

  it('--docker-run together with --docker-build is refused before anything exists', async () => {
    const result = await tpCli(intercept(['IMAGE'], ['--docker-build', '.']), {env})
    expect(result.exitCode).not.toBe(0)
    expect(result.stderr).toMatch(/--docker-run|--docker-build/)
    expect(await leftovers(CONN)).toEqual([])
  })
})
