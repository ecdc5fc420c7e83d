import {randomBytes} from 'node:crypto'
import {mkdtempSync, rmSync} from 'node:fs'
import {writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {setTimeout as sleep} from 'node:timers/promises'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {connectOwnDemo, docker, httpGet, leftovers, nothingLeft, startTp, tpCli} from '../../../test/helpers/index.js'
import {BASE_IMAGE, containersMentioning, ensureBase, removeBaseAndDescendants, removeImages, writeHandlerContext} from './fixture.js'

/**
 * Issue 5's acceptance, as a user runs it: `tp intercept --docker frontend-v1 --port 8000
 * --docker-build <dir> --docker-build-opt tag=mytag -- IMAGE` against a demo cluster on its own
 * network, through a container daemon of its own connection.
 */

const suffix = randomBytes(3).toString('hex')
const NET = `tpt-build-${suffix}`
const CONN = `tpt-build-${suffix}`
const TAG = `tpt-build-mytag-${suffix}:latest`
const cacheDir = mkdtempSync(join(tmpdir(), 'tpt-build-e2e-'))
const contextDir = join(cacheDir, 'images', 'frontend-v3')
const env = {...process.env, TP_CACHE_DIR: cacheDir}

function intercept(buildArgs: string[], handlerArgs: string[]): string[] {
  return ['intercept', '--docker', '--use', CONN, 'frontend-v1', '--port', '8000', ...buildArgs, '--', ...handlerArgs]
}

const start = (args: string[]) => startTp(args, {env, cwd: cacheDir})

async function get(path = '/'): Promise<string> {
  return (await httpGet(`http://frontend-v1${path}`, {network: NET})).body
}

let demo: {disconnect: () => Promise<void>} | undefined

beforeAll(async () => {
  await ensureBase()
  await writeHandlerContext(contextDir)
  demo = await connectOwnDemo(NET, CONN, env)
})

afterAll(async () => {
  await demo?.disconnect()
  const built = await docker
    .getImage(TAG)
    .inspect()
    .catch(() => undefined)
  if (built) await removeImages([built.Id])
  await removeBaseAndDescendants()
  rmSync(cacheDir, {recursive: true, force: true})
})

describe('tp intercept --docker-build (issue 5 acceptance)', () => {
  it("builds the context, tags it, and clients get the built handler's answer; Ctrl-C restores frontend-v1, nothing left", async () => {
    expect(await get()).toMatch(/^frontend-v1\n/)
    const run = start(
      intercept(
        ['--docker-build', 'images/frontend-v3', '--docker-build-opt', `tag=${TAG}`, '--docker-build-opt', 'build-arg=GREETING_SUFFIX=, built by tp'],
        ['IMAGE'],
      ),
    )
    await run.active
    // the build's own output and the summary were shown before the intercept existed
    expect(run.output()).toMatch(/^Step 1\/\d+ : FROM tpt-build-busybox:latest AS base$/m)
    expect(run.output()).toMatch(new RegExp(`built image [0-9a-f]{12}, tagged ${TAG} in `))
    expect(run.output().indexOf('built image')).toBeLessThan(run.output().indexOf('now goes to your handler'))
    expect((await get()).trim()).toBe('hello from the built handler, built by tp stage=base dockerfile=main')
    // the handler runs with the intercepted workload's environment
    expect(await get('/cgi-bin/env.cgi')).toMatch(/^GREETING=hello from frontend-v1$/m)
    const image = await docker.getImage(TAG).inspect()
    expect(image.Config.Labels).toMatchObject({'tp.built-by': 'tp'})

    run.child.kill('SIGINT')
    const result = await run.child
    expect(result.exitCode, run.output()).toBe(0)
    expect(await get()).toMatch(/^frontend-v1\n/)
    expect(await nothingLeft(CONN)).toEqual([])
    // the built image is the user's: it stays, like one `docker build` made
    expect((await docker.getImage(TAG).inspect()).Id).toBe(image.Id)
  })

  it('target and file= reach the build', async () => {
    const run = start(intercept(['--docker-build', 'images/frontend-v3', '--docker-build-opt', 'target=debug'], ['--name', `tpt-build-h-${suffix}`, 'IMAGE']))
    try {
      await run.active
      expect((await get()).trim()).toBe('hello from the built handler stage=debug dockerfile=main')
    } finally {
      run.child.kill('SIGINT')
      await run.child
    }
    const other = start(intercept(['--docker-build', 'images/frontend-v3', '--docker-build-opt', 'file=Other.Dockerfile'], ['IMAGE']))
    try {
      await other.active
      expect((await get()).trim()).toBe('hello from the built handler stage=base dockerfile=other')
    } finally {
      other.child.kill('SIGINT')
      await other.child
    }
    expect(await nothingLeft(CONN)).toEqual([])
  })

  it.each([
    ['a missing IMAGE placeholder', ['--docker-build', 'images/frontend-v3'], ['frontend-v2'], /must be the word IMAGE/],
    ['nothing after --', ['--docker-build', 'images/frontend-v3'], [], /needs the docker run arguments after --/],
    ['a context that does not exist', ['--docker-build', 'images/nowhere'], ['IMAGE'], /build context images\/nowhere was not found/],
    ['an unknown option key', ['--docker-build', 'images/frontend-v3', '--docker-build-opt', 'squash'], ['IMAGE'], /squash is not a build option/],
  ])('refuses %s: clear message, non-zero exit, no intercept', async (_what, buildArgs, handlerArgs, message) => {
    const result = await tpCli(intercept(buildArgs, handlerArgs), {env, cwd: cacheDir})
    expect(result.exitCode).not.toBe(0)
    expect(result.stderr).toMatch(message)
    expect(await leftovers(CONN)).toEqual([])
    expect(await get()).toMatch(/^frontend-v1\n/)
  })

  it('Ctrl-C during the build ends tp at once: the build is cancelled, no intercept, no container', async () => {
    const marker = `tpt-build-slow-${suffix}`
    await writeFile(join(contextDir, 'Slow.Dockerfile'), `FROM ${BASE_IMAGE}\nRUN echo ${marker} && sleep 60\n`)
    const run = start(intercept(['--docker-build', 'images/frontend-v3', '--docker-build-opt', 'file=Slow.Dockerfile'], ['IMAGE']))
    const deadline = Date.now() + 30_000
    while (!run.output().includes(`\n${marker}\n`) && Date.now() < deadline) await sleep(100)
    expect(run.output()).toContain(`\n${marker}\n`)
    const interrupted = Date.now()
    run.child.kill('SIGINT')
    const result = await run.child
    expect(Date.now() - interrupted).toBeLessThan(5_000)
    expect(result.exitCode).not.toBe(0)
    expect(await leftovers(CONN)).toEqual([])
    const gone = Date.now() + 10_000
    while ((await containersMentioning(marker)).length > 0 && Date.now() < gone) await sleep(250)
    expect(await containersMentioning(marker)).toEqual([])
    expect(await get()).toMatch(/^frontend-v1\n/)
  })

  it("refuses a Dockerfile that fails at step N: names the step and Docker's error, no intercept, no container", async () => {
    await writeFile(join(contextDir, 'Failing.Dockerfile'), `FROM ${BASE_IMAGE}\nRUN echo fine\nRUN echo tpt-build-e2e-${suffix} && exit 7\n`)
    const result = await tpCli(intercept(['--docker-build', 'images/frontend-v3', '--docker-build-opt', 'file=Failing.Dockerfile'], ['IMAGE']), {
      env,
      cwd: cacheDir,
    })
    expect(result.exitCode).not.toBe(0)
    expect(result.stderr).toContain(
      `failed at Step 3/4 : RUN echo tpt-build-e2e-${suffix} && exit 7: The command '/bin/sh -c echo tpt-build-e2e-${suffix} && exit 7' returned a non-zero code: 7`,
    )
    expect(await leftovers(CONN)).toEqual([])
    expect(await containersMentioning(`tpt-build-e2e-${suffix}`)).toEqual([])
    expect(await get()).toMatch(/^frontend-v1\n/)
  })
})
