import {spawn} from 'node:child_process'
import {mkdtempSync, readFileSync, readdirSync, rmSync, statSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {PassThrough, Readable} from 'node:stream'
import {setTimeout as sleep} from 'node:timers/promises'
import {fileURLToPath} from 'node:url'
import Docker from 'dockerode'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {type HandlerIO, type InterceptSession, type PreparedHandler, isTpError, isUserError} from '@tp/sdk'
import {fakePlacement} from '@tp/sdk/testing'
import {ensureImportedImage} from '@tp/images'
import {defaultContainerName, prepareDockerRun} from '@tp/plugin-handler-docker-run'

/**
 * The handler alone against the real engine: a busybox container plays the daemon's network
 * namespace (`tpt-dr-ns`), a session object is built by hand, and prepare+run run fixture
 * containers in it.
 */

const docker = new Docker()
const IMAGE_REPO = 'tpt-dr-busybox'
const NS = 'tpt-dr-ns'
const cacheDir = mkdtempSync(join(tmpdir(), 'tpt-dr-cache-'))
let image = ''
let counter = 0

const log = {info: () => {}, warn: () => {}, debug: () => {}}

function session(over: Partial<InterceptSession> = {}): InterceptSession {
  const name = `tpt-dr-${process.pid}-${++counter}`
  return {
    id: `id-${name}`,
    name,
    workload: 'frontend-v1',
    namespace: 'tpt-dr',
    ports: {local: 8000, container: 8000, service: 80, protocol: 'tcp'},
    environment: {GREETING: 'hello from the workload', MULTI: 'line one\nline "two" $x\n\ttabbed\n', SPACED: ' a b '},
    mounts: [],
    placement: fakePlacement('shared', 'tpt-dr', {containerArgs: ['--network', `container:${NS}`], where: NS}),
    daemon: {connection: 'tpt-dr', id: 'tptdr', backend: 'container', where: NS},
    ...over,
  }
}

function io(input = ''): HandlerIO & {out: () => string; err: () => string} {
  const stdout = new PassThrough()
  const stderr = new PassThrough()
  let out = ''
  let err = ''
  stdout.on('data', (c: Buffer) => (out += c.toString()))
  stderr.on('data', (c: Buffer) => (err += c.toString()))
  return {stdin: Readable.from([input]), stdout, stderr, out: () => out, err: () => err}
}

async function prepare(args: string[], kind: 'shared' | 'host' = 'shared'): Promise<PreparedHandler> {
  return prepareDockerRun(
    {
      workload: 'frontend-v1',
      flags: {'docker-run': true},
      args,
      capabilities: fakePlacement(kind).capabilities,
      localPort: 8000,
      containerPort: 8000,
      cwd: process.cwd(),
    },
    {docker, context: {cacheDir, log}},
  )
}

function envDirs(): string[] {
  try {
    return readdirSync(join(cacheDir, 'run'))
  } catch {
    return []
  }
}

async function containersOf(s: InterceptSession): Promise<string[]> {
  const list = await docker.listContainers({all: true, filters: {label: [`tp.intercept=${s.name}`]}})
  return list.map((c) => c.Names[0])
}

async function waitForContainer(name: string, timeoutMs = 15_000): Promise<Docker.ContainerInspectInfo> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const info = await docker
      .getContainer(name)
      .inspect()
      .catch(() => undefined)
    if (info?.State.Running) return info
    if (Date.now() > deadline) throw new Error(`container ${name} did not start`)
    await sleep(100)
  }
}

function parseEnv0(text: string): Record<string, string> {
  return Object.fromEntries(
    text
      .split('\0')
      .filter((e) => e.includes('='))
      .map((e) => [e.slice(0, e.indexOf('=')), e.slice(e.indexOf('=') + 1)]),
  )
}

beforeAll(async () => {
  image = (
    await ensureImportedImage(docker, {
      repo: IMAGE_REPO,
      tag: '1',
      spec: {busybox: '/bin/busybox'},
      changes: ['ENV PATH=/bin', 'CMD ["/bin/sh"]'],
      labels: {'tp.fixture': 'true'},
    })
  ).ref
  await docker
    .getContainer(NS)
    .remove({force: true})
    .catch(() => undefined)
  const ns = await docker.createContainer({name: NS, Image: image, Cmd: ['sleep', '3600'], Labels: {'tp.fixture': 'true'}, HostConfig: {AutoRemove: true}})
  await ns.start()
})

afterAll(async () => {
  await docker
    .getContainer(NS)
    .remove({force: true})
    .catch(() => undefined)
  for (const c of await docker.listContainers({all: true, filters: {label: ['tp.connection=tpt-dr']}})) {
    await docker
      .getContainer(c.Id)
      .remove({force: true})
      .catch(() => undefined)
  }
  await docker
    .getImage(`${IMAGE_REPO}:1`)
    .remove({force: true})
    .catch(() => undefined)
  rmSync(cacheDir, {recursive: true, force: true})
})

describe('docker-run handler on the real engine', () => {
  it("the container's exit code becomes run()'s result, and nothing is left", async () => {
    const s = session()
    const prepared = await prepare([image, 'sh', '-c', 'echo ran; exit 3'])
    const streams = io()
    expect(await prepared.run(s, streams, {dockerRunArgs: []})).toBe(3)
    expect(streams.out()).toBe('ran\n')
    expect(envDirs()).toEqual([])
    expect(await containersOf(s)).toEqual([])
  })

  it('gives the container the workload environment: multi-line values intact, TP_* added, a user -e wins', async () => {
    const s = session()
    const prepared = await prepare(['-e', 'GREETING=override', image, 'env', '-0'])
    const streams = io()
    expect(await prepared.run(s, streams, {dockerRunArgs: []})).toBe(0)
    const env = parseEnv0(streams.out())
    expect(env.GREETING).toBe('override')
    expect(env.MULTI).toBe(s.environment.MULTI)
    expect(env.SPACED).toBe(' a b ')
    expect(env.TP_INTERCEPT_ID).toBe(s.id)
    expect(env.TP_WORKLOAD).toBe('frontend-v1')
    expect(env).not.toHaveProperty('HOME', expect.stringContaining('workload'))
  })

  it("joins the daemon's network namespace, carries tp labels and its default name, keeps the env file private; stop() ends it within seconds", async () => {
    const s = session()
    // PID 1 `sleep` ignores SIGTERM: docker stop has to kill it after the grace period
    const prepared = await prepare([image, 'sleep', '300'])
    const running = prepared.run(s, io(), {dockerRunArgs: []})
    const name = defaultContainerName(s)
    const info = await waitForContainer(name)
    const ns = await docker.getContainer(NS).inspect()
    expect(info.HostConfig.NetworkMode).toBe(`container:${ns.Id}`)
    expect(info.HostConfig.AutoRemove).toBe(true)
    expect(info.Config.Labels).toMatchObject({'tp.managed': 'true', 'tp.role': 'handler', 'tp.intercept': s.name, 'tp.connection': 'tpt-dr'})
    const [dir] = envDirs()
    expect(statSync(join(cacheDir, 'run', dir)).mode & 0o777).toBe(0o700)
    expect(statSync(join(cacheDir, 'run', dir, 'handler.env')).mode & 0o777).toBe(0o600)
    const envFile = readFileSync(join(cacheDir, 'run', dir, 'handler.env'), 'utf8')
    expect(envFile).toContain('GREETING=hello from the workload\n')
    expect(envFile).not.toContain('line one') // multi-line values never go into the env file
    expect(info.Config.Env).toContain(`MULTI=${s.environment.MULTI}`)

    const started = Date.now()
    await prepared.stop('test is done')
    const code = await running
    expect(Date.now() - started).toBeLessThan(8_000)
    expect(code).toBe(137)
    expect(await containersOf(s)).toEqual([])
    expect(envDirs()).toEqual([])
    await prepared.stop('again') // idempotent
  })

  it('stop() right after run() starts still ends the container (it may not exist yet)', async () => {
    const s = session()
    const prepared = await prepare([image, 'sleep', '300'])
    const running = prepared.run(s, io(), {dockerRunArgs: []})
    await sleep(50)
    const started = Date.now()
    await prepared.stop('early')
    await running
    expect(Date.now() - started).toBeLessThan(10_000)
    expect(await containersOf(s)).toEqual([])
  })

  it('stop() before run() means run() starts nothing', async () => {
    const s = session()
    const prepared = await prepare([image, 'sleep', '300'])
    await prepared.stop('never mind')
    expect(await prepared.run(s, io(), {dockerRunArgs: []})).toBe(0)
    expect(await containersOf(s)).toEqual([])
  })

  it('uses --name as given, and passes arguments after the image that look like options to the container', async () => {
    const s = session()
    const custom = `tpt-dr-custom-${process.pid}`
    const prepared = await prepare(['--name', custom, image, 'sh', '-c', 'sleep 1; echo "$@"', 'sh', '--name', 'x', '-d'])
    const streams = io()
    const running = prepared.run(s, streams, {dockerRunArgs: []})
    const info = await waitForContainer(custom)
    expect(info.Config.Labels['tp.intercept']).toBe(s.name)
    expect(await running).toBe(0)
    expect(streams.out()).toBe('--name x -d\n')
    expect(await containersOf(s)).toEqual([])
  })

  it('passes stdin through to an interactive container', async () => {
    const prepared = await prepare(['-i', image, 'sh', '-c', 'read a; read b; echo "got $a+$b"'])
    const streams = io('first\nsecond\n')
    expect(await prepared.run(session(), streams, {dockerRunArgs: []})).toBe(0)
    expect(streams.out()).toBe('got first+second\n')
  })

  it("a container that cannot start: docker's code and words, nothing left", async () => {
    const s = session()
    const prepared = await prepare([image, '/no/such/program'])
    const error = await prepared.run(s, io(), {dockerRunArgs: []}).catch((e: unknown) => e)
    expect(isTpError(error) && error.kind).toBe('subprocess')
    const e = error as {message: string; stderrTail: string; exitCode: number}
    expect(e.exitCode).toBe(127)
    expect(e.message).toMatch(/could not start/)
    expect(e.stderrTail).toMatch(/no such file or directory/i)
    expect(await containersOf(s)).toEqual([])
    expect(envDirs()).toEqual([])
  })

  it("docker run failing before the container exists is reported with docker's stderr", async () => {
    const prepared = await prepare(['--memory', 'lots', image, 'true'])
    const streams = io()
    const error = await prepared.run(session(), streams, {dockerRunArgs: []}).catch((e: unknown) => e)
    const e = error as {kind: string; message: string; stderrTail: string; exitCode: number}
    expect(e.kind).toBe('subprocess')
    expect(e.exitCode).toBe(125)
    expect(e.message).toMatch(/before the handler container was created/)
    expect(e.stderrTail).toMatch(/lots/)
    expect(streams.err()).toMatch(/lots/) // the user saw it as it happened
  })

  it('a container of the same name that appeared after prepare is reported and left alone', async () => {
    const s = session()
    const prepared = await prepare([image, 'true'])
    const other = await docker.createContainer({name: defaultContainerName(s), Image: image, Cmd: ['sleep', '60'], Labels: {'tp.fixture': 'true'}})
    try {
      const error = await prepared.run(s, io(), {dockerRunArgs: []}).catch((e: unknown) => e)
      expect((error as {kind: string}).kind).toBe('subprocess')
      expect((error as {exitCode: number}).exitCode).toBe(125)
      expect((error as {stderrTail: string}).stderrTail).toMatch(/already in use/)
      expect((await other.inspect()).Id).toBe(other.id)
    } finally {
      await other.remove({force: true})
    }
  })

  it('prepare refuses a missing image (no registry) and creates nothing', async () => {
    const before = (await docker.listContainers({all: true})).length
    const error = await prepare([`tpt-dr-missing-${process.pid}:none`]).catch((e: unknown) => e)
    expect(isUserError(error)).toBe(true)
    expect((error as Error).message).toMatch(/not found locally and could not be pulled/)
    expect((error as {next: string}).next).toMatch(/build it/)
    expect((await docker.listContainers({all: true})).length).toBe(before)
  })

  it('prepare refuses a --name that is taken', async () => {
    const error = await prepare(['--name', NS, image]).catch((e: unknown) => e)
    expect(isUserError(error)).toBe(true)
    expect((error as Error).message).toContain(`a container named ${NS} already exists`)
  })

  it('-it works under a real terminal (script)', async () => {
    const helper = fileURLToPath(new URL('./fixtures/run-tty.mjs', import.meta.url))
    const s = session()
    const child = spawn('script', ['-qec', `exec node ${helper}`, '/dev/null'], {
      env: {...process.env, SHELL: '/bin/sh', TPT_SESSION: JSON.stringify(s), TPT_IMAGE: image, TPT_CACHE: cacheDir},
      stdio: ['pipe', 'pipe', 'pipe'],
    })
    let out = ''
    child.stdout.on('data', (c: Buffer) => (out += c.toString()))
    child.stderr.on('data', (c: Buffer) => (out += c.toString()))
    const exited = new Promise<number | null>((resolve) => child.on('exit', resolve))
    // wait for the container's shell before typing
    const deadline = Date.now() + 20_000
    while (
      !(
        await docker
          .getContainer(defaultContainerName(s))
          .inspect()
          .catch(() => undefined)
      )?.State.Running
    ) {
      if (Date.now() > deadline) throw new Error(`the tty container did not start:\n${out}`)
      await sleep(100)
    }
    await sleep(300)
    child.stdin.write('tty; echo "answer-$((6*7))"; exit 7\r')
    const code = await Promise.race([exited, sleep(20_000).then(() => 'timeout')])
    expect(code, out).toBe(7)
    expect(out).toMatch(/\/dev\/pts\/\d+/)
    expect(out).toContain('answer-42')
    expect(out).not.toMatch(/not a TTY/)
    expect(await containersOf(s)).toEqual([])
  })
})
