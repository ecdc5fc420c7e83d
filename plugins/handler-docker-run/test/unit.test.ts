import {spawnSync} from 'node:child_process'
import {chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {PassThrough, Readable} from 'node:stream'
import Dockerode from 'dockerode'
import {describe, expect, it} from 'vitest'
import {type InterceptSession, isUserError} from '@tp/sdk'
import {fakePlacement} from '@tp/sdk/testing'
import {
  DOCKER_RUN_SYNTAX,
  type DockerRunPlan,
  composeDockerRun,
  handlerEnvironment,
  planDockerRun,
  prepareDockerRun,
  removeEnvDir,
  splitEnvironment,
  writeEnvFile,
} from '@tp/plugin-handler-docker-run'
import handlersHook from '../dist/hooks/handlers.js'

/** Pure argument logic: what tp makes of the arguments after `--`, without Docker. */

function session(kind: 'container' | 'host' = 'container', over: Partial<InterceptSession> = {}): InterceptSession {
  return {
    id: 'ic-123',
    name: 'frontend-v1',
    workload: 'frontend-v1',
    namespace: 'tp-demo',
    ports: {local: 8000, container: kind === 'host' ? 80 : 8000, service: 80, protocol: 'tcp'},
    environment: {GREETING: 'hello', NOTES: 'line 1\nline 2'},
    mounts: [{path: '/data', readOnly: false, sftp: {host: '10.0.0.2', port: 2222, dir: '/data'}}],
    placement: placement(kind),
    daemon: {connection: 'default', id: 'ab12cd34', backend: kind, where: 'tp-ab12cd34-cn'},
    ...over,
  }
}

/** The bundled backends' placements: a container daemon (shared namespace), a host daemon (published ports). */
function placement(kind: 'container' | 'host') {
  return kind === 'container' ? fakePlacement('shared', 'ab12cd34') : fakePlacement('host', 'ab12cd34', {containerArgs: ['--dns-search', 'tel2-search']})
}

function plan(args: string[], daemonKind: 'container' | 'host' = 'container', image?: string): DockerRunPlan {
  return planDockerRun(args, {capabilities: placement(daemonKind).capabilities, localPort: 8000, image})
}

function compose(args: string[], kind: 'container' | 'host' = 'container', clientEnvKeys: string[] = []) {
  return composeDockerRun({
    plan: plan(args, kind),
    session: session(kind),
    extras: {dockerRunArgs: ['-v', 'tp-vol-1:/data']},
    envFile: '/cache/run/env-x/handler.env',
    clientEnvKeys,
    image: 'sha256:0123',
    cidFile: '/cache/run/env-x/container.id',
  })
}

function refusal(args: string[], daemonKind: 'container' | 'host' = 'container'): {message: string; next?: string} {
  try {
    plan(args, daemonKind)
  } catch (error) {
    expect(isUserError(error)).toBe(true)
    return error as {message: string; next?: string}
  }
  throw new Error(`accepted: ${args.join(' ')}`)
}

describe('the descriptor', () => {
  it('registers docker-run with its flag, selected by --docker-run, loading a handler factory', async () => {
    const [descriptor] = await handlersHook.call(undefined, {})
    expect(descriptor).toMatchObject({name: 'docker-run', selectedBy: 'docker-run', precedence: 100, apiVersion: 1})
    expect(descriptor.flags['docker-run'].type).toBe('boolean')
    const module = await descriptor.load()
    const handler = await module.default({tpVersion: '0', cacheDir: '/tmp', log: {info() {}, warn() {}, debug() {}}})
    expect(typeof handler.prepare).toBe('function')
  })
})

describe('planDockerRun', () => {
  it('finds the image after options with values, and keeps the container arguments untouched', () => {
    const p = plan(['-e', 'A=1', '-v', '/x:/y', '--init', '-it', 'img:1', '--name', 'x', '-d', '--rm=false'])
    expect(p.image).toBe('img:1')
    expect(p.optionArgs).toEqual(['-e', 'A=1', '-v', '/x:/y', '--init', '-it'])
    expect(p.containerArgs).toEqual(['--name', 'x', '-d', '--rm=false'])
    expect(p.name).toBeUndefined()
    expect(p.rm).toBeUndefined()
    expect(p.tty).toBe(true)
    expect(p.interactive).toBe(true)
  })

  it('detects --name and --rm only before the image, in every spelling', () => {
    expect(plan(['--name', 'custom', 'img']).name).toBe('custom')
    expect(plan(['--name=custom', 'img']).name).toBe('custom')
    expect(plan(['--rm', 'img']).rm).toBe(true)
    expect(plan(['--rm=true', 'img']).rm).toBe(true)
    expect(plan(['--rm=false', 'img'], 'host').rm).toBe(false)
    expect(plan(['img', '--rm']).rm).toBeUndefined()
  })

  it('replaces the image argument when told to (docker-build IMAGE)', () => {
    const p = plan(['-e', 'A=1', 'IMAGE', 'arg'], 'container', 'sha256:built')
    expect(p.image).toBe('sha256:built')
    expect(p.containerArgs).toEqual(['arg'])
  })

  it.each([
    [[], /needs the image/],
    [['-e', 'A=1', '--init'], /no image found/],
    [['-e'], /needs a value/],
  ])('refuses %j with the expected syntax', (args, message) => {
    const error = refusal(args)
    expect(error.message).toMatch(message)
    expect(error.next).toContain(DOCKER_RUN_SYNTAX)
  })

  it.each([[['-d', 'img']], [['--detach', 'img']], [['-itd', 'img']], [['--detach=true', 'img']]])('refuses %j: the handler runs in the foreground', (args) => {
    expect(refusal(args).message).toMatch(/detach.*foreground/)
  })

  it("accepts -d after the image (the container's own argument) and --detach=false", () => {
    expect(plan(['img', '-d']).containerArgs).toEqual(['-d'])
    expect(plan(['--detach=false', 'img']).image).toBe('img')
  })

  it.each([
    [['--name', '', 'img'], /needs a container name/],
    [['--name=', 'img'], /needs a container name/],
    [['--name', '-bad', 'img'], /not a valid container name/],
    [['--name', 'a b', 'img'], /not a valid container name/],
  ])('refuses the name in %j', (args, message) => {
    expect(refusal(args).message).toMatch(message)
  })

  it.each([
    [['-p', '8080:80', 'img'], '-p 8080:80', /port 8000 without publishing/],
    [['--publish=8080:80', 'img'], '--publish=8080:80', /without publishing/],
    [['-P', 'img'], '-P', /without publishing/],
    [['-itP', 'img'], '-itP', /without publishing/],
    [['--expose', '80', 'img'], '--expose 80', /port 8000/],
    [['--network', 'bridge', 'img'], '--network bridge', /reachable by name/],
    [['--net=host', 'img'], '--net=host', /reachable by name/],
    [['--dns', '1.1.1.1', 'img'], '--dns 1.1.1.1', /remove --dns 1.1.1.1/],
    [['--dns-search', 'x', 'img'], '--dns-search x', /remove/],
    [['--dns-option', 'ndots:1', 'img'], '--dns-option ndots:1', /remove/],
    [['-h', 'me', 'img'], '-h me', /remove -h me/],
    [['--hostname=me', 'img'], '--hostname=me', /remove/],
    [['--add-host', 'a:1.2.3.4', 'img'], '--add-host a:1.2.3.4', /remove/],
    [['--mac-address', '02:42:ac:11:00:02', 'img'], '--mac-address 02:42:ac:11:00:02', /remove/],
    [['--link', 'x:y', 'img'], '--link x:y', /remove/],
    [['--network-alias', 'x', 'img'], '--network-alias x', /remove/],
    [['--ip', '10.1.2.3', 'img'], '--ip 10.1.2.3', /remove/],
  ])('with a container daemon, refuses %j saying why and what to do', (args, shown, next) => {
    const error = refusal(args, 'container')
    expect(error.message).toContain(shown)
    expect(error.message).toMatch(/shares the daemon's network namespace/)
    expect(error.next).toMatch(next)
    // the same options are fine with a host daemon
    expect(plan(args, 'host').image).toBe('img')
  })

  it('with a container daemon, refuses --rm=false (volumes), and options after the image are not checked', () => {
    expect(refusal(['--rm=false', 'img']).message).toMatch(/volumes/)
    expect(plan(['img', '-p', '80:80', '--network', 'x']).containerArgs).toEqual(['-p', '80:80', '--network', 'x'])
    expect(plan(['-P=false', 'img']).image).toBe('img')
  })
})

describe('composeDockerRun', () => {
  it("container daemon: env file, name, --rm, labels, network, volumes, then the user's options, image, container args", () => {
    const {args, name, tpRemoves} = compose(['-e', 'GREETING=override', '--init', 'frontend-v2', '--name', 'x', '-d'], 'container', ['NOTES'])
    expect(name).toBe('intercept-frontend-v1-8000')
    expect(tpRemoves).toBe(true)
    expect(args).toEqual([
      'run',
      '--env-file',
      '/cache/run/env-x/handler.env',
      '-e',
      'NOTES',
      '--name',
      'intercept-frontend-v1-8000',
      '--rm',
      '--cidfile',
      '/cache/run/env-x/container.id',
      '--label',
      'tp.managed=true',
      '--label',
      'tp.role=handler',
      '--label',
      'tp.connection=default',
      '--label',
      'tp.intercept=frontend-v1',
      '--network',
      'container:tp-ab12cd34-cn',
      '-v',
      'tp-vol-1:/data',
      '-e',
      'GREETING=override',
      '--init',
      'sha256:0123',
      '--name',
      'x',
      '-d',
    ])
    expect(args).not.toContain('-p')
    expect(args).not.toContain('--dns-search')
  })

  it("host daemon: adds the placement's arguments and publishes local:container", () => {
    const {args} = compose(['img'], 'host')
    const image = args.indexOf('sha256:0123')
    expect(args.slice(0, image).join(' ')).toContain('--dns-search tel2-search -v tp-vol-1:/data -p 8000:80')
  })

  it("the user's options come after every option tp adds, so the user's -e and --env-file win", () => {
    const {args} = compose(['--env-file', 'mine.env', '-e', 'A=1', 'img'])
    const tpLast = args.lastIndexOf('-v')
    expect(args.indexOf('--env-file', 2)).toBeGreaterThan(tpLast)
    expect(args.indexOf('-e', args.indexOf('NOTES') + 1)).toBeGreaterThan(tpLast)
  })

  it("uses the user's --name and --rm when given before the image, and adds its own when given after", () => {
    const given = compose(['--name', 'custom', '--rm', 'img'])
    expect(given.name).toBe('custom')
    expect(given.tpRemoves).toBe(false)
    expect(given.args.filter((a) => a === '--name')).toHaveLength(1)
    expect(given.args.filter((a) => a === '--rm')).toHaveLength(1)
    const after = compose(['img', '--name', 'custom', '--rm'])
    expect(after.name).toBe('intercept-frontend-v1-8000')
    expect(after.args.slice(-3)).toEqual(['--name', 'custom', '--rm'])
    expect(after.args.filter((a) => a === '--rm')).toHaveLength(2)
  })

  it("keeps the user's --cidfile instead of adding its own", () => {
    const {args} = compose(['--cidfile', '/tmp/mine', 'img'])
    expect(args.filter((a) => a === '--cidfile')).toHaveLength(1)
  })

  it('makes a valid default name from any intercept name', () => {
    const {name} = composeDockerRun({
      plan: plan(['img']),
      session: session('container', {name: 'web/app:80'}),
      extras: {dockerRunArgs: []},
      envFile: 'f',
      clientEnvKeys: [],
      image: 'img',
    })
    expect(name).toBe('intercept-web-app-80-8000')
  })
})

describe('the environment', () => {
  it('adds TP_INTERCEPT_ID, TP_WORKLOAD and TP_MOUNTS where the daemon did not, sorted', () => {
    const env = handlerEnvironment(session('container', {environment: {Z: '1', TP_INTERCEPT_ID: 'from-daemon'}}))
    expect(env).toEqual({TP_INTERCEPT_ID: 'from-daemon', TP_MOUNTS: '/data', TP_WORKLOAD: 'frontend-v1', Z: '1'})
    expect(Object.keys(env)).toEqual(['TP_INTERCEPT_ID', 'TP_MOUNTS', 'TP_WORKLOAD', 'Z'])
  })

  it("sends multi-line values through the docker client's environment, never the env file", () => {
    const split = splitEnvironment({A: 'x', NOTES: 'a\nb', CR: 'a\r', BIG: 'y'.repeat(70_000), DOCKER_CERT: 'a\nb', 'BAD KEY': 'ok'})
    expect(split.file).toEqual({A: 'x'})
    expect(Object.keys(split.client).sort()).toEqual(['BAD KEY', 'BIG', 'CR', 'NOTES'])
    expect(split.dropped.map((d) => d.key)).toEqual(['DOCKER_CERT'])
  })
})

describe('prepareDockerRun before Docker is asked anything', () => {
  const request = (args: string[]) => ({
    workload: 'w',
    flags: {},
    args,
    capabilities: placement('container').capabilities,
    localPort: 8000,
    containerPort: 8000,
    cwd: '/',
  })

  it('refuses -it when its input is not a terminal, saying what to do', async () => {
    const error = await prepareDockerRun(request(['-it', 'img', 'sh']), {stdinIsTTY: false}).catch((e: unknown) => e)
    expect(isUserError(error)).toBe(true)
    expect((error as Error).message).toMatch(/needs a terminal/)
    expect((error as {next: string}).next).toMatch(/drop -t/)
  })

  it('says the engine is unreachable when Docker does not answer', async () => {
    const docker = new Dockerode({socketPath: '/nonexistent/docker.sock'})
    const error = await prepareDockerRun(request(['img']), {docker, stdinIsTTY: false}).catch((e: unknown) => e)
    expect(isUserError(error)).toBe(true)
    expect((error as Error).message).toMatch(/Docker engine is unreachable/)
  })

  it('refuses bad arguments before looking up the image', async () => {
    const error = await prepareDockerRun(request(['-d', 'no-such-image-anywhere']), {stdinIsTTY: false}).catch((e: unknown) => e)
    expect(isUserError(error)).toBe(true)
    expect((error as Error).message).toMatch(/detach/)
  })
})

describe('run() with a fake docker CLI (what docker is really given)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tpt-dr-fake-'))
  // records its argv (NUL-separated), the NOTES variable it was given and the env file's content;
  // "creates" the container by writing the cid file; exits with $FAKE_EXIT
  const fake = join(dir, 'docker')
  writeFileSync(
    fake,
    `#!/bin/sh
printf '%s\\0' "$@" > "${dir}/argv"
printf '%s' "$NOTES" > "${dir}/notes"
while [ $# -gt 0 ]; do
  case "$1" in
    --env-file) cp "$2" "${dir}/envfile"; shift ;;
    --cidfile) echo fakecid > "$2"; shift ;;
  esac
  shift
done
exit \${FAKE_EXIT:-0}
`,
  )
  chmodSync(fake, 0o755)
  const fakeDocker = {
    getImage: () => ({inspect: async () => ({Id: 'sha256:fakeimage'})}),
    getContainer: () => ({inspect: async () => Promise.reject(Object.assign(new Error('no such container'), {statusCode: 404}))}),
  } as unknown as Dockerode
  const request = (args: string[]) => ({
    workload: 'frontend-v1',
    flags: {},
    args,
    capabilities: placement('container').capabilities,
    localPort: 8000,
    containerPort: 8000,
    cwd: dir,
  })
  const streams = () => ({stdin: Readable.from(['']), stdout: new PassThrough(), stderr: new PassThrough()})

  it('passes multi-line values only through its environment, and returns its exit code', async () => {
    const cacheDir = join(dir, 'cache')
    const prepared = await prepareDockerRun(request(['-e', 'GREETING=override', 'frontend-v2', '--name', 'x']), {
      docker: fakeDocker,
      dockerCommand: fake,
      stdinIsTTY: false,
      context: {cacheDir, log: {info() {}, warn() {}, debug() {}}},
    })
    process.env.FAKE_EXIT = '42'
    try {
      expect(await prepared.run(session(), streams(), {dockerRunArgs: ['-v', 'vol:/data']})).toBe(42)
    } finally {
      delete process.env.FAKE_EXIT
    }
    const argv = readFileSync(join(dir, 'argv'), 'utf8').split('\0').slice(0, -1)
    expect(argv.join('\n')).not.toContain('line 1')
    expect(argv.slice(argv.indexOf('-e'), argv.indexOf('-e') + 2)).toEqual(['-e', 'NOTES'])
    expect(argv.slice(argv.indexOf('sha256:fakeimage'))).toEqual(['sha256:fakeimage', '--name', 'x'])
    expect(argv.indexOf('GREETING=override')).toBeGreaterThan(argv.indexOf('vol:/data'))
    expect(readFileSync(join(dir, 'notes'), 'utf8')).toBe('line 1\nline 2')
    const envFile = readFileSync(join(dir, 'envfile'), 'utf8')
    expect(envFile).toContain('GREETING=hello\n')
    expect(envFile).toContain('TP_WORKLOAD=frontend-v1\n')
    expect(envFile).not.toContain('NOTES')
  })

  it('a docker CLI that cannot be run at all: says so, and leaves no env file behind', async () => {
    const cacheDir = join(dir, 'cache-missing-cli')
    const prepared = await prepareDockerRun(request(['frontend-v2']), {
      docker: fakeDocker,
      dockerCommand: join(dir, 'no-such-docker'),
      stdinIsTTY: false,
      context: {cacheDir, log: {info() {}, warn() {}, debug() {}}},
    })
    const error = await prepared.run(session(), streams(), {dockerRunArgs: []}).catch((e: unknown) => e)
    expect(error).toMatchObject({kind: 'subprocess'})
    expect((error as Error).message).toMatch(/could not run the docker CLI: .*ENOENT/)
    expect(readdirSync(join(cacheDir, 'run'))).toEqual([])
  })

  it("rejects with docker's words when nothing was created", async () => {
    const failing = join(dir, 'docker-fails')
    writeFileSync(failing, '#!/bin/sh\necho "docker: invalid reference format." >&2\nexit 125\n')
    chmodSync(failing, 0o755)
    const prepared = await prepareDockerRun(request(['frontend-v2']), {
      docker: fakeDocker,
      dockerCommand: failing,
      stdinIsTTY: false,
      context: {cacheDir: join(dir, 'cache'), log: {info() {}, warn() {}, debug() {}}},
    })
    const io = streams()
    let seen = ''
    io.stderr.on('data', (c: Buffer) => (seen += c.toString()))
    const error = await prepared.run(session(), io, {dockerRunArgs: []}).catch((e: unknown) => e)
    expect(error).toMatchObject({kind: 'subprocess', exitCode: 125, stderrTail: 'docker: invalid reference format.'})
    expect(seen).toContain('invalid reference format') // passed through as it happened
  })

  it('afterwards: no env file is left in the cache directory', () => {
    expect(readdirSafe(join(dir, 'cache', 'run'))).toEqual([])
    rmSync(dir, {recursive: true, force: true})
  })
})

function readdirSafe(path: string): string[] {
  try {
    return readdirSync(path)
  } catch {
    return []
  }
}

describe('env file directories', () => {
  it('are private, named after the tp process, and those of dead tp processes are swept', async () => {
    const cache = mkdtempSync(join(tmpdir(), 'tpt-dr-envdir-'))
    try {
      // a tp command killed with -9 left its env file behind; its pid is gone
      const dead = spawnSync(process.execPath, ['-e', 'process.exit(0)']).pid
      const orphan = join(cache, 'run', `env-${dead}-abc123`)
      const alive = join(cache, 'run', `env-${process.ppid}-def456`)
      for (const dir of [orphan, alive]) {
        mkdirSync(dir, {recursive: true})
        writeFileSync(join(dir, 'handler.env'), 'SECRET=1\n')
      }
      const {dir, file} = await writeEnvFile(cache, {A: 'b'})
      expect(dir).toMatch(new RegExp(`/run/env-${process.pid}-`))
      expect(statSync(dir).mode & 0o777).toBe(0o700)
      expect(statSync(file).mode & 0o777).toBe(0o600)
      expect(readFileSync(file, 'utf8')).toBe('A=b\n')
      expect(existsSync(orphan)).toBe(false)
      expect(existsSync(alive)).toBe(true)
      await removeEnvDir(dir)
      expect(existsSync(dir)).toBe(false)
    } finally {
      rmSync(cache, {recursive: true, force: true})
    }
  })
})
