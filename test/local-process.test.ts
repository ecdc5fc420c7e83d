/**
 * Handlers on this machine, as a user runs them: `tp intercept <workload> --port P -- <command>`
 * (Telepresence's default mode) on a host daemon and on a container daemon, and the hybrid
 * `--docker-run` on a host daemon (the seed's "Using docker-run flag without docker"). Bad input
 * gets a clear message and leaves nothing. Runs on a demo cluster of its own.
 */
import {mkdtemp, mkdir, readFile, rm, writeFile, chmod} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {setTimeout as sleep} from 'node:timers/promises'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {DEMO_CONFIG_TXT, demoDown} from '@tp/images'
import {execa} from 'execa'
import {makeSandbox, writePlugin} from '../packages/cli/test/helpers.js'
import {docker, ensureDemo, httpGet, repoRoot, startTp, tpCli, tpObjects} from './helpers/index.js'

const NETWORK = `tpt-lp-${process.pid}`
const HOST = 'e2e-lp-host'
const CONTAINER = 'e2e-lp-docker'
const SERVER = join(repoRoot, 'test', 'fixtures', 'local-server.mjs')
let cacheDir: string
let env: Record<string, string>
const tp = (args: string[]) => tpCli(args, {env})

async function sshfsMounts(): Promise<string[]> {
  return (await readFile('/proc/mounts', 'utf8')).split('\n').filter((l) => l.includes('fuse.sshfs'))
}

/** The JSON the local server answers with, through the workload's address. */
async function intercepted(): Promise<Record<string, string | null>> {
  const reply = await httpGet('http://frontend-v1/', {network: NETWORK})
  try {
    return JSON.parse(reply.body) as Record<string, string | null>
  } catch {
    throw new Error(`not the local server's reply: ${reply.status} ${reply.body} ${reply.stderr}`)
  }
}

async function workloadAnswers(): Promise<void> {
  const deadline = Date.now() + 15_000
  while (!(await httpGet('http://frontend-v1/', {network: NETWORK})).body.includes('hello from frontend-v1')) {
    if (Date.now() > deadline) throw new Error('frontend-v1 did not get its traffic back')
    await sleep(250)
  }
}

let mountsBefore: string[]

beforeAll(async () => {
  await ensureDemo({network: NETWORK})
  cacheDir = await mkdtemp(join(tmpdir(), 'tp-e2e-lp-'))
  env = {TP_CACHE_DIR: cacheDir, TP_NAMESPACE: NETWORK}
  mountsBefore = await sshfsMounts()
  for (const [name, extra] of [
    [HOST, []],
    [CONTAINER, ['--docker']],
  ] as const) {
    const connected = await tp(['connect', ...extra, '--name', name, '--namespace', NETWORK])
    if (connected.exitCode !== 0) throw new Error(connected.stderr)
  }
})

afterAll(async () => {
  await tp(['quit', '--name', HOST])
  await tp(['quit', '--name', CONTAINER])
  await demoDown(docker, {network: NETWORK}).catch(() => undefined)
  await rm(cacheDir, {recursive: true, force: true})
})

describe('a command on this machine as the handler', () => {
  it('host daemon: gets the traffic, the environment, the volumes under TP_ROOT and the cluster by name; Ctrl-C gives it all back', async () => {
    const run = startTp(['intercept', '--use', HOST, 'frontend-v1', '--port', '18100', '--', process.execPath, SERVER, '18100'], {env})
    await run.active
    const reply = await intercepted()
    expect(reply.handler).toBe('local-process')
    expect(reply.GREETING).toBe('hello from frontend-v1')
    expect(reply.DEMO_NOTES).toBe('first line\nsecond line') // both lines, exactly
    expect(reply.config).toBe(DEMO_CONFIG_TXT.trim())
    expect(reply.catalog).toBe('{"catalog":["apple","pear"]}')
    expect(reply.TP_ROOT).toMatch(/^\//)
    expect(run.output()).toContain(`mounted under ${reply.TP_ROOT}`)
    expect((await sshfsMounts()).length).toBeGreaterThan(mountsBefore.length)

    run.child.kill('SIGINT')
    expect((await run.child).exitCode).toBe(0)
    await workloadAnswers()
    expect(await sshfsMounts()).toEqual(mountsBefore)
    expect((await tpObjects()).containers.filter((c) => c.includes('agent'))).toEqual([])
  })

  it("its exit code is tp's, and --mount=<dir> chooses TP_ROOT", async () => {
    const root = join(cacheDir, 'my-root')
    const script = join(cacheDir, 'check-root.sh')
    await writeFile(script, '#!/bin/sh\n[ "$TP_ROOT" = "$1" ] && [ -f "$TP_ROOT/data/config.txt" ] && exit 7\nexit 9\n')
    await chmod(script, 0o755)
    const result = await tpCli(['intercept', '--use', HOST, 'frontend-v1', '--port', '18101', `--mount=${root}`, '--', script, root], {env})
    expect(result.stderr).not.toMatch(/internal error/)
    expect(result.exitCode).toBe(7)
    expect(await sshfsMounts()).toEqual(mountsBefore)
  })

  it('container daemon: the process still gets the traffic and the environment, and tp says what it cannot give there', async () => {
    const run = startTp(['intercept', '--use', CONTAINER, 'frontend-v1', '--port', '18102', '--', process.execPath, SERVER, '18102'], {env})
    await run.active
    const reply = await intercepted()
    expect(reply.handler).toBe('local-process')
    expect(reply.DEMO_NOTES).toBe('first line\nsecond line')
    expect(reply.TP_ROOT).toBeNull()
    expect(run.output()).toContain("not the cluster's names")
    expect(run.output()).toContain('tp connect` (without --docker)')
    run.child.kill('SIGINT')
    expect((await run.child).exitCode).toBe(0)
    await workloadAnswers()
  })
})

describe('a third-party handler plugin', () => {
  it('packed and installed from its .tgz (it imports @tp/sdk, a peer), runs a local process as the handler from the session alone: no nsenter, no root, no docker arguments', async () => {
    const sandbox = await makeSandbox('lp-plugin')
    try {
      const impl = `import {spawn} from 'node:child_process'
import {UserError} from '@tp/sdk'
export default () => ({
  async prepare(request) {
    if (request.args.includes('refuse')) throw new UserError('tpt-local refuses ' + request.workload, 'ask it nicely')
    let child
    return {
      describe: 'tpt-local-server on port ' + request.localPort,
      wantsVolumes: false,
      runsAs: 'process',
      run: (session) => new Promise((resolve) => {
        // everything it needs is in the session: the port, the environment
        child = spawn(process.execPath, [${JSON.stringify(SERVER)}, String(session.ports.local)], {env: {...process.env, ...session.environment}, stdio: 'inherit'})
        child.on('exit', (code, signal) => resolve(code ?? 0))
      }),
      stop: async () => { child?.kill('SIGTERM') },
    }
  },
})
`
      const hook = `import {API_VERSION} from '@tp/sdk'
export default async function () {
  return [{name: 'tpt-local', apiVersion: API_VERSION, summary: 'a local server, by a third party', selectedBy: 'tpt-local',
    flags: {'tpt-local': {type: 'boolean', description: 'run the third party local server'}}, load: () => import('./impl.js')}]
}
`
      const dir = await writePlugin(sandbox, {name: 'tpt-local-handler', version: '0.1.0', hooks: {'tp:handlers': hook}, files: {'impl.js': impl}})
      // a peer dependency on the sdk, as the bundled plugins have it; packed the way a publisher packs it
      const pjson = JSON.parse(await readFile(join(dir, 'package.json'), 'utf8'))
      await writeFile(join(dir, 'package.json'), JSON.stringify({...pjson, peerDependencies: {'@tp/sdk': '^0.1.0'}}))
      const packed = await execa('npm', ['pack', '--silent', '--pack-destination', sandbox.dir], {cwd: dir})
      const tgz = join(sandbox.dir, packed.stdout.trim().split('\n').at(-1)!)
      // offline: nothing may come from a registry
      const installed = await sandbox.tp(['plugins', 'install', tgz], {npm_config_offline: 'true', npm_config_cache: join(sandbox.dir, 'npm-cache')})
      expect(installed.exitCode, installed.stderr).toBe(0)
      expect(`${installed.stdout}${installed.stderr}`).toContain('installed v0.1.0')
      const refused = await sandbox.tp(['intercept', '--use', HOST, 'frontend-v1', '--tpt-local', '--', 'refuse'], env)
      expect(refused.exitCode).toBe(1)
      expect(refused.stderr).toBe('tp: tpt-local refuses frontend-v1\n  → ask it nicely')
      const run = startTp(['intercept', '--use', HOST, 'frontend-v1', '--port', '18104', '--tpt-local'], {env: {...sandbox.env, ...env}})
      await run.active
      const reply = await intercepted()
      expect(reply.handler).toBe('local-process')
      expect(reply.DEMO_NOTES).toBe('first line\nsecond line')
      run.child.kill('SIGINT')
      expect((await run.child).exitCode).toBe(0)
      await workloadAnswers()
    } finally {
      await sandbox.remove()
    }
  })
})

describe('--docker-run with a host daemon (the hybrid mode)', () => {
  it("publishes --port <local>:<container>: the container answers, reads the workload's /data and reaches catalog by name", async () => {
    const run = startTp(['intercept', '--use', HOST, 'frontend-v1', '--port', '18103:80', '--docker-run', '--', '-e', 'PORT=80', 'frontend-v2'], {env})
    await run.active
    const reply = await httpGet('http://frontend-v1/', {network: NETWORK})
    expect(reply.body).toMatch(/^frontend-v2$/m)
    expect(reply.body).toContain('catalog={"catalog":["apple","pear"]}')
    const config = await httpGet('http://frontend-v1/config', {network: NETWORK})
    expect(config.body).toBe(DEMO_CONFIG_TXT)
    run.child.kill('SIGINT')
    expect((await run.child).exitCode).toBe(0)
    await workloadAnswers()
  })

  it('--docker-mount <dir> binds the volumes mounted on this machine at <dir> in the container', async () => {
    const run = startTp(
      ['intercept', '--use', HOST, 'frontend-v1', '--port', '18105:80', '--docker-run', '--docker-mount', '/tp', '--', '-e', 'PORT=80', 'frontend-v2'],
      {
        env,
      },
    )
    await run.active
    const reply = await httpGet('http://frontend-v1/cat?path=/tp/data/config.txt', {network: NETWORK})
    expect(reply.body).toBe(DEMO_CONFIG_TXT)
    expect((await sshfsMounts()).length).toBeGreaterThan(mountsBefore.length)
    run.child.kill('SIGINT')
    expect((await run.child).exitCode).toBe(0)
    await workloadAnswers()
    expect(await sshfsMounts()).toEqual(mountsBefore)
  })
})

describe('bad input: a clear message, exit 1, nothing left behind', () => {
  const notEmpty = () => join(cacheDir, 'not-empty')
  it.each([
    [
      '--docker-mount with a container daemon',
      () => ['--use', CONTAINER, '--port', '18110', '--docker-run', '--docker-mount', '/tp', '--', 'frontend-v2'],
      /--docker-mount is for a daemon on this host/,
    ],
    [
      '--port <local>:<name> with a host daemon and --docker-run',
      () => ['--use', HOST, '--port', '18111:http', '--docker-run', '--', 'frontend-v2'],
      /container port "http" is not a port number/,
    ],
    [
      'a command that does not exist',
      () => ['--use', HOST, '--port', '18112', '--', 'tp-no-such-command'],
      /the command "tp-no-such-command" was not found on PATH/,
    ],
    ['a --mount directory that is not empty', () => ['--use', HOST, '--port', '18113', `--mount=${notEmpty()}`, '--', 'true'], /is not empty/],
    [
      'a --mount directory that is not writable',
      () => ['--use', HOST, '--port', '18114', '--mount=/proc/tp-root', '--', 'true'],
      /is not writable|cannot be read|not a directory/,
    ],
    [
      'a --mount directory with a handler container',
      () => ['--use', HOST, '--port', '18115', `--mount=${join(cacheDir, 'fresh')}`, '--docker-run', '--', 'frontend-v2'],
      /takes the volumes as Docker volumes/,
    ],
  ])('%s', async (_title, args, message) => {
    await mkdir(notEmpty(), {recursive: true})
    await writeFile(join(notEmpty(), 'keep.txt'), 'mine\n')
    const before = await tpObjects()
    const result = await tp(['intercept', 'frontend-v1', ...args()])
    expect(result.exitCode).toBe(1)
    expect(result.stderr).toMatch(message)
    expect(result.stderr).toMatch(/→ /) // a next step
    expect(await tpObjects()).toEqual(before)
    expect(await readFile(join(notEmpty(), 'keep.txt'), 'utf8')).toBe('mine\n')
  })
})
