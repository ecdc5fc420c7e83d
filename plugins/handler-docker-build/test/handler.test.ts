import {writeFile, rm} from 'node:fs/promises'
import {join} from 'node:path'
import {Writable} from 'node:stream'
import Dockerode from 'dockerode'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {type HandlerRequest, isUserError} from '@tp/sdk'
import {fakePlacement} from '@tp/sdk/testing'
import {createDockerBuildHandler} from '../dist/handler.js'
import handlersHook from '../dist/hooks/handlers.js'
import {BASE_IMAGE, containersMentioning, docker, ensureBase, removeBaseAndDescendants, tempDir, unique, writeHandlerContext} from './fixture.js'

const pluginContext = {tpVersion: '0.1.0', cacheDir: '/tmp', log: {info() {}, warn() {}, debug() {}}}
const dirs: string[] = []
let ctx: string

function collector(): {stream: Writable; text: () => string} {
  let text = ''
  const stream = new Writable({
    write(chunk, _encoding, done) {
      text += String(chunk)
      done()
    },
  })
  return {stream, text: () => text}
}

function request(flags: Record<string, unknown>, args: string[]): HandlerRequest {
  return {workload: 'frontend-v1', flags, args, capabilities: fakePlacement('shared').capabilities, localPort: 8000, containerPort: 8000, cwd: ctx}
}

/** Images tp built (by its label): none may appear when prepare fails before building. */
async function builtByTp(): Promise<string[]> {
  return (await docker.listImages({filters: {label: ['tp.built-by=tp']}})).map((i) => i.Id).sort()
}

async function prepareFails(flags: Record<string, unknown>, args: string[]) {
  const progress = collector()
  const before = await builtByTp()
  const handler = createDockerBuildHandler(pluginContext, {docker, progress: progress.stream})
  const error = await handler.prepare(request(flags, args)).then(
    () => undefined,
    (e: unknown) => e,
  )
  expect(isUserError(error)).toBe(true)
  return {error: error as Error & {next?: string}, output: progress.text(), newImages: (await builtByTp()).filter((id) => !before.includes(id))}
}

beforeAll(async () => {
  await ensureBase()
  ctx = await tempDir('tpt-build-handler')
  dirs.push(ctx)
  await writeHandlerContext(ctx)
})

afterAll(async () => {
  await removeBaseAndDescendants()
  for (const dir of dirs) await rm(dir, {recursive: true, force: true})
})

describe('descriptor', () => {
  it('registers docker-build with its flags, beating docker-run', async () => {
    const [descriptor] = await handlersHook.call(undefined, {})
    expect(descriptor).toMatchObject({name: 'docker-build', selectedBy: 'docker-build', precedence: 10, apiVersion: 1})
    expect(descriptor.flags['docker-build']).toMatchObject({type: 'string', implies: 'docker-run', helpValue: '<context>'})
    expect(descriptor.flags['docker-build-opt']).toMatchObject({type: 'string', multiple: true})
    const module = await descriptor.load()
    expect(typeof (await module.default(pluginContext)).prepare).toBe('function')
  })
})

describe('bad input: a clear message, nothing built, nothing created (real engine)', () => {
  it('missing IMAGE placeholder', async () => {
    const {error, output, newImages} = await prepareFails({'docker-build': '.'}, ['--rm', 'busybox', 'sh'])
    expect(error.message).toMatch(/must be the word IMAGE/)
    expect(error.message).toMatch(/replaces it with the built image's ID/)
    expect(output).toBe('')
    expect(newImages).toEqual([])
  })

  it('nothing after --', async () => {
    const {error, output} = await prepareFails({'docker-build': '.'}, [])
    expect(error.message).toMatch(/needs the docker run arguments after --/)
    expect(error.next).toMatch(/IMAGE/)
    expect(output).toBe('')
  })

  it('context not found', async () => {
    const {error, output, newImages} = await prepareFails({'docker-build': 'images/nowhere'}, ['IMAGE'])
    expect(error.message).toMatch(/build context images\/nowhere was not found/)
    expect(output).toBe('')
    expect(newImages).toEqual([])
  })

  it('unknown option key', async () => {
    const {error, output} = await prepareFails({'docker-build': '.', 'docker-build-opt': ['tag=x', 'compress=true']}, ['IMAGE'])
    expect(error.message).toMatch(/compress is not a build option/)
    expect(error.next).toMatch(/tag, file, dockerfile, build-arg, target, label, platform, no-cache, pull/)
    expect(output).toBe('')
  })

  it('an unreachable engine is named as such', async () => {
    const progress = collector()
    const unreachable = new Dockerode({socketPath: '/tmp/tpt-build-no-engine.sock'})
    const handler = createDockerBuildHandler(pluginContext, {docker: unreachable, progress: progress.stream})
    const error = await handler.prepare(request({'docker-build': '.'}, ['IMAGE'])).catch((e: unknown) => e)
    expect(isUserError(error)).toBe(true)
    expect((error as Error).message).toMatch(/the Docker engine is unreachable/)
  })

  it('a Dockerfile failing at step N', async () => {
    const marker = unique('tpt-build-marker')
    await writeFile(join(ctx, 'Failing.Dockerfile'), `FROM ${BASE_IMAGE}\nRUN echo ${marker}-a\nRUN echo ${marker}-b && exit 3\nCMD ["true"]\n`)
    const {error, output, newImages} = await prepareFails({'docker-build': '.', 'docker-build-opt': ['file=Failing.Dockerfile']}, ['IMAGE'])
    expect(error.message).toMatch(new RegExp(`failed at Step 3/\\d+ : RUN echo ${marker}-b && exit 3: .*returned a non-zero code: 3`))
    expect(output).toContain(`Step 2/`) // the build's own output was streamed live
    expect(output).toContain(`${marker}-b\n`)
    expect(newImages).toEqual([])
    expect(await containersMentioning(marker)).toEqual([])
  })
})
