import {chmod, mkdir, rm, symlink, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {execa} from 'execa'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {isUserError} from '@tp/sdk'
import {buildImage, parseBuildOptions, resolveBuildContext} from '@tp/plugin-handler-docker-build'
import {
  BASE_IMAGE,
  containersMentioning,
  docker,
  ensureBase,
  greeting,
  removeBaseAndDescendants,
  removeImages,
  runInImage,
  tempDir,
  unique,
  writeHandlerContext,
} from './fixture.js'

const created = new Set<string>()
const dirs: string[] = []

async function build(contextArg: string, opts: string[], cwd = '/') {
  const options = parseBuildOptions(opts)
  const context = await resolveBuildContext(contextArg, cwd, options.file)
  const lines: string[] = []
  const built = await buildImage(docker, {context, options, onProgress: (line) => lines.push(line)})
  created.add(built.imageId)
  return {built, lines}
}

beforeAll(async () => {
  await ensureBase()
})

afterAll(async () => {
  await removeImages(created)
  await removeBaseAndDescendants()
  for (const dir of dirs) await rm(dir, {recursive: true, force: true})
})

describe('building through the Engine API (real engine)', () => {
  let ctx: string
  beforeAll(async () => {
    ctx = await tempDir('tpt-build-ctx')
    dirs.push(ctx)
    await writeHandlerContext(ctx)
  })

  it('applies tags, build args and the tp.built-by label, and streams the step output', async () => {
    const tag = `${unique('tpt-build-tag')}:v1`
    const {built, lines} = await build(ctx, [`tag=${tag}`, 'build-arg=GREETING_SUFFIX=, from a build arg', 'label=team=web'])
    expect(built.imageId).toMatch(/^sha256:[0-9a-f]{64}$/)
    expect(built.tags).toEqual([tag])
    const inspected = await docker.getImage(tag).inspect()
    expect(inspected.Id).toBe(built.imageId)
    expect(inspected.Config.Labels).toMatchObject({'tp.built-by': 'tp', team: 'web'})
    expect(lines.some((l) => /^Step 1\/\d+ : FROM tpt-build-busybox:latest AS base$/.test(l))).toBe(true)
    expect(await greeting(built.imageId)).toBe('hello from the built handler, from a build arg stage=base dockerfile=main')
    expect(built.contextBytes).toBeGreaterThan(0)
  })

  it('target selects a stage, file= selects another Dockerfile', async () => {
    const debug = await build(ctx, ['target=debug'])
    expect(await greeting(debug.built.imageId)).toBe('hello from the built handler stage=debug dockerfile=main')
    const other = await build(ctx, ['file=Other.Dockerfile', 'build-arg=GREETING_SUFFIX=!'])
    expect(await greeting(other.built.imageId)).toBe('hello from the built handler! stage=base dockerfile=other')
  })

  it('no-cache runs every step again, platform is passed on, pull asks the engine to pull the base', async () => {
    const cached = await build(ctx, ['target=debug'])
    expect(cached.lines).toContain(' ---> Using cache')
    const fresh = await build(ctx, ['target=debug', 'no-cache'])
    expect(fresh.lines).not.toContain(' ---> Using cache')
    expect(fresh.built.imageId).not.toBe(cached.built.imageId)
    const arch = process.arch === 'x64' ? 'amd64' : process.arch
    const platformed = await build(ctx, [`platform=linux/${arch}`])
    expect((await docker.getImage(platformed.built.imageId).inspect()).Architecture).toBe(arch)
    // no registry here: pulling the base fails, at the FROM step, with Docker's reason
    const pulled = await build(ctx, ['pull']).catch((e: unknown) => e)
    expect(isUserError(pulled)).toBe(true)
    expect((pulled as Error).message).toMatch(/failed at Step 1\/\d+ : FROM tpt-build-busybox:latest AS base: .+/)
  })

  it('a Dockerfile as context means its folder as context', async () => {
    const {built} = await build('Other.Dockerfile', [], ctx)
    expect(await greeting(built.imageId)).toBe('hello from the built handler stage=base dockerfile=other')
  })

  it('rejects a missing context, a Dockerfile outside the context, and a missing Dockerfile', async () => {
    await expect(resolveBuildContext('no-such-dir', ctx)).rejects.toSatisfy((e) => isUserError(e) && /no-such-dir was not found/.test((e as Error).message))
    await expect(resolveBuildContext(ctx, '/', '../Dockerfile')).rejects.toSatisfy(
      (e) => isUserError(e) && /outside the build context/.test((e as Error).message),
    )
    await expect(resolveBuildContext(ctx, '/', 'Nope.Dockerfile')).rejects.toSatisfy((e) => isUserError(e) && /no Dockerfile at/.test((e as Error).message))
  })

  it("fails at step N with Docker's message and leaves no container behind", async () => {
    const bad = await tempDir('tpt-build-bad')
    dirs.push(bad)
    const marker = unique('tpt-build-marker')
    const tag = `${unique('tpt-build-fail')}:v1`
    await writeFile(join(bad, 'Dockerfile'), `FROM ${BASE_IMAGE}\nRUN echo first\nRUN echo ${marker} && false\nRUN echo never\n`)
    const lines: string[] = []
    const options = parseBuildOptions([`tag=${tag}`])
    const error = await buildImage(docker, {context: await resolveBuildContext(bad, '/'), options, onProgress: (l) => lines.push(l)}).catch((e: unknown) => e)
    expect(isUserError(error)).toBe(true)
    const message = (error as Error).message
    // the legacy builder counts the LABEL step it appends for tp.built-by, hence "/5"
    expect(message).toContain(`at Step 3/5 : RUN echo ${marker} && false`)
    expect(message).toContain('returned a non-zero code: 1')
    expect(lines).toContain(marker) // the step's own output was streamed
    expect(await containersMentioning(marker)).toEqual([])
    expect(
      await docker
        .getImage(tag)
        .inspect()
        .catch(() => undefined),
    ).toBeUndefined()
  })

  it('reports a Dockerfile error that happens before any step', async () => {
    const bad = await tempDir('tpt-build-syntax')
    dirs.push(bad)
    await writeFile(join(bad, 'Dockerfile'), `FROM ${BASE_IMAGE}\nNOTANINSTRUCTION x\n`)
    const error = await buildImage(docker, {context: await resolveBuildContext(bad, '/'), options: parseBuildOptions([])}).catch((e: unknown) => e)
    expect(isUserError(error)).toBe(true)
    expect((error as Error).message).toMatch(/unknown instruction: NOTANINSTRUCTION/i)
  })
})

describe('.dockerignore (real engine)', () => {
  let ctx: string
  const ignoredFiles = 20_000

  beforeAll(async () => {
    ctx = await tempDir('tpt-build-ignore')
    dirs.push(ctx)
    // 20,000 small files under node_modules, ignored except one re-included file
    for (let d = 0; d < 200; d++) {
      const pkg = join(ctx, 'node_modules', `pkg${d}`)
      await mkdir(pkg, {recursive: true})
      await Promise.all(Array.from({length: 100}, (_, f) => writeFile(join(pkg, `file${f}.js`), `module.exports = ${d * 100 + f}\n`)))
    }
    await mkdir(join(ctx, 'node_modules', 'keep'), {recursive: true})
    await writeFile(join(ctx, 'node_modules', 'keep', 'kept.txt'), 'kept\n')
    await mkdir(join(ctx, 'src', 'logs'), {recursive: true})
    await writeFile(join(ctx, 'src', 'app.js'), 'app\n')
    await writeFile(join(ctx, 'src', 'logs', 'debug.log'), 'log\n')
    await writeFile(join(ctx, 'src', 'important.log'), 'important\n')
    await mkdir(join(ctx, 'docs', 'keep'), {recursive: true})
    await writeFile(join(ctx, 'docs', 'a.md'), 'a\n')
    await writeFile(join(ctx, 'docs', 'keep', 'b.md'), 'b\n')
    await writeFile(join(ctx, 'README.md'), 'readme\n')
    await writeFile(join(ctx, 'NOTES.md'), 'notes\n')
    await writeFile(join(ctx, 'secret.txt'), 'secret\n')
    await writeFile(join(ctx, 'run.sh'), '#!/bin/sh\necho run\n', {mode: 0o755})
    await symlink('src/app.js', join(ctx, 'app-link.js'))
    await mkdir(join(ctx, 'empty'))
    await chmod(join(ctx, 'empty'), 0o700)
    await writeFile(
      join(ctx, '.dockerignore'),
      [
        '# dependencies are installed in the image, never sent',
        'node_modules',
        '!node_modules/keep/kept.txt',
        'secret.txt',
        '*.md',
        '!README.md',
        '**/*.log',
        '!src/important.log',
        'docs/',
        '!docs/keep/**',
        'Dockerfile',
        '.dockerignore',
        '',
      ].join('\n'),
    )
    await writeFile(join(ctx, 'Dockerfile'), `FROM ${BASE_IMAGE}\nCOPY . /ctx\nCMD ["find", "/ctx"]\n`)
  })

  it('sends only what is not ignored: bytes sent, ignored files absent, re-included ones present', async () => {
    const {built} = await build(ctx, [])
    // everything sent is a handful of tiny files: a few kB of tar, against ~10 MB for the ignored files
    expect(built.contextBytes).toBeLessThan(40 * 1024)
    expect(built.contextEntries).toBeLessThan(20)
    const listing = (await runInImage(built.imageId, ['find', '/ctx'])).split('\n').filter(Boolean).sort()
    expect(listing).toContain('/ctx/node_modules/keep/kept.txt')
    expect(listing).toContain('/ctx/README.md')
    expect(listing).toContain('/ctx/src/important.log')
    expect(listing).toContain('/ctx/docs/keep/b.md')
    expect(listing).not.toContain('/ctx/secret.txt')
    expect(listing).not.toContain('/ctx/NOTES.md')
    expect(listing).not.toContain('/ctx/src/logs/debug.log')
    expect(listing).not.toContain('/ctx/node_modules/pkg0/file0.js')
    expect(listing.filter((p) => p.startsWith('/ctx/node_modules/pkg')).length).toBe(0)
    expect(ignoredFiles).toBe(20_000)
  })

  it('sends exactly what the docker CLI sends for the same context', async () => {
    const {built} = await build(ctx, [])
    const cli = await execa('docker', ['build', '-q', '--rm', '--force-rm', ctx], {env: {DOCKER_BUILDKIT: '0'}})
    const cliImage = cli.stdout.trim().split('\n').pop()!
    created.add(cliImage)
    const listing = ['sh', '-c', 'cd /ctx && find . -exec stat -c "%n %F %a %s %N" {} + | sort']
    const ours = (await runInImage(built.imageId, listing)).trim()
    const theirs = (await runInImage(cliImage, listing)).trim()
    expect(ours).toContain("./app-link.js symbolic link 777 10 './app-link.js' -> 'src/app.js'")
    expect(ours).toMatch(/^\.\/empty directory 700 /m)
    expect(ours.split('\n').length).toBeGreaterThan(8)
    expect(ours).toBe(theirs)
  })
})
