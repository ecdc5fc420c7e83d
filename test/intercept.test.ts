/**
 * Issue 3 end to end, as a user runs it: `tp connect --docker` → `tp list` → `tp intercept` with a
 * test server in the daemon's namespace → clients on tp-demo get the test server → `tp leave` → the
 * workload again. Real engine, real demo cluster, nothing left behind.
 */
import {mkdtemp, readFile, rm, stat} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {execa, type ResultPromise} from 'execa'
import {afterAll, afterEach, beforeAll, describe, expect, it} from 'vitest'
import {DEMO_GREETING} from '@tp/images'
import {
  busyboxImage,
  docker,
  ensureDemo,
  httpGet,
  namespaceState,
  repoRoot,
  startClientLoop,
  tpBin,
  tpCli,
  waitFor,
  withoutImageProgress,
} from './helpers/index.js'

const CONNECTION = 'e2e-intercept'
const DAEMON = `tp-${CONNECTION}-cn`
let cacheDir: string
let env: Record<string, string>

const tp = (args: string[], extra: Record<string, string | undefined> = {}) => tpCli(args, {env: {...env, ...extra}})

/** Starts `tp intercept …` in the background, like a user in a second terminal. */
function startIntercept(args: string[]): ResultPromise {
  return execa('node', [tpBin, 'intercept', ...args], {env, cwd: repoRoot, reject: false, stdin: 'ignore'})
}

/** A test server answering `body` on `port` inside the daemon's network namespace. */
async function startTestServer(name: string, port: number, body: string): Promise<() => Promise<void>> {
  const image = await busyboxImage()
  const container = await docker.createContainer({
    name,
    Image: image,
    Cmd: ['sh', '-c', `mkdir -p /www && printf '%s' "$BODY" > /www/index.html && exec httpd -f -p ${port} -h /www`],
    Env: [`BODY=${body}`],
    Labels: {'tp.fixture': 'true'},
    HostConfig: {NetworkMode: `container:${DAEMON}`},
  })
  await container.start()
  return async () => {
    await container.remove({force: true}).catch(() => undefined)
  }
}

async function connectionObjects(): Promise<string[]> {
  const filters = JSON.stringify({label: ['tp.managed=true', `tp.connection=${CONNECTION}`]})
  const containers = await docker.listContainers({all: true, filters})
  const volumes = (await docker.listVolumes({filters})).Volumes ?? []
  return [...containers.map((c) => c.Names[0]), ...volumes.map((v) => v.Name)]
}

const agentsOf = async (intercept: string) =>
  docker.listContainers({all: true, filters: JSON.stringify({label: [`tp.connection=${CONNECTION}`, `tp.intercept=${intercept}`, 'tp.role=agent']})})

beforeAll(async () => {
  await ensureDemo()
  cacheDir = await mkdtemp(join(tmpdir(), 'tp-e2e-intercept-'))
  env = {TP_CACHE_DIR: cacheDir}
  const connected = await tp(['connect', '--docker', '--namespace', 'tp-demo', '--name', CONNECTION])
  expect(withoutImageProgress(connected.stderr)).toBe('')
  expect(connected.exitCode).toBe(0)
  for (const workload of INTERCEPTED) namespacesBefore.set(workload, await namespaceState(workload))
})

// the workloads these tests intercept: their NAT rules and forwarding as before, after every test
const INTERCEPTED = ['frontend-v1', 'catalog']
const namespacesBefore = new Map<string, string>()

afterEach(async () => {
  for (const workload of INTERCEPTED) expect(await namespaceState(workload), workload).toBe(namespacesBefore.get(workload))
})

afterAll(async () => {
  await tp(['quit'])
  await rm(cacheDir, {recursive: true, force: true})
})

describe('tp connect, list, status', () => {
  it('lists the demo workloads with their ports', async () => {
    const listed = await tp(['list', '--json'])
    expect(listed.exitCode).toBe(0)
    const workloads = JSON.parse(listed.stdout) as Array<{name: string; ports: Array<{port: number}>}>
    expect(workloads.find((w) => w.name === 'frontend-v1')?.ports.map((p) => p.port)).toEqual([80])
    expect(workloads.find((w) => w.name === 'catalog')?.ports.map((p) => p.port)).toEqual([80])
    const text = await tp(['list'])
    expect(text.stdout).toMatch(/frontend-v1\s+ports 80\s+ready to intercept/)
  })

  it('connect again reuses the running daemon', async () => {
    const before = await docker.getContainer(DAEMON).inspect()
    const again = await tp(['connect', '--docker', '--name', CONNECTION])
    expect(again.exitCode).toBe(0)
    expect((await docker.getContainer(DAEMON).inspect()).Id).toBe(before.Id)
    const status = JSON.parse((await tp(['status', '--json'])).stdout)
    expect(status.connections).toEqual([
      expect.objectContaining({
        name: CONNECTION,
        namespace: 'tp-demo',
        backend: 'container',
        cluster: {driver: 'docker', engine: 'unix:///var/run/docker.sock'},
      }),
    ])
    expect((await tp(['status'])).stdout).toMatch(
      new RegExp(
        `^Connection ${CONNECTION}: namespace tp-demo of the docker cluster at unix:///var/run/docker.sock, container daemon, container ${DAEMON}$`,
        'm',
      ),
    )
    // the record holds the daemon's token: only its owner may read it
    const record = join(cacheDir, 'connections', `${CONNECTION}.json`)
    expect((await stat(record)).mode & 0o777).toBe(0o600)
    const {api, cluster} = JSON.parse(await readFile(record, 'utf8')) as {api: {url: string; token: string}; cluster: unknown}
    expect(cluster).toEqual({driver: 'docker', engine: 'unix:///var/run/docker.sock'})
    expect(api.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/)
    expect((await fetch(`${api.url}/v1/status`)).status).toBe(401)
    expect((await fetch(`${api.url}/v1/status`, {headers: {authorization: `Bearer ${api.token}`}})).status).toBe(200)
  })

  it('Ctrl-C while connect starts a new daemon: the daemon is removed again, exit 130', async () => {
    const name = `${CONNECTION}-int`
    const labels = JSON.stringify({label: [`tp.connection=${name}`]})
    // interrupt the moment the daemon container exists, while its API is still starting
    const events = await docker.getEvents({filters: JSON.stringify({type: ['container'], event: ['create'], label: [`tp.connection=${name}`]})})
    const created = new Promise<void>((resolve) => events.once('data', () => resolve()))
    const child = execa('node', [tpBin, 'connect', '--docker', '--namespace', 'tp-demo', '--name', name], {env, cwd: repoRoot, reject: false})
    try {
      await Promise.race([created, child])
    } finally {
      ;(events as unknown as {destroy: () => void}).destroy()
    }
    child.kill('SIGINT')
    const result = await child
    expect(result.exitCode, result.stderr).toBe(130)
    expect(result.stderr).toContain(`Not connected: the daemon of "${name}" was removed again.`)
    expect(await docker.listContainers({all: true, filters: labels})).toEqual([])
    const status = JSON.parse((await tp(['status', '--json'])).stdout) as {connections: Array<{name: string}>}
    expect(status.connections.map((c) => c.name)).toEqual([CONNECTION])
  })
})

describe('intercept and leave', () => {
  it('moves the traffic to the test server and back, without a failed request or a restart', async () => {
    const workloadBefore = await docker.getContainer('frontend-v1').inspect()
    const stopServer = await startTestServer('tpt-e2e-server-8000', 8000, 'answered by the test server')
    const loop = await startClientLoop('http://frontend-v1/', {intervalMs: 50})
    try {
      const intercept = startIntercept(['frontend-v1', '--port', '8000'])
      await waitFor('the intercepted answer', async () => (await httpGet('http://frontend-v1/')).body === 'answered by the test server')
      const status = JSON.parse((await tp(['status', '--json'])).stdout)
      expect(status.connections[0].intercepts).toEqual([
        expect.objectContaining({name: 'frontend-v1', workload: 'frontend-v1', servicePort: 80, localPort: 8000, state: 'active'}),
      ])

      const left = await tp(['leave', 'frontend-v1'])
      expect(left.exitCode).toBe(0)
      const ended = await intercept
      expect(ended.exitCode).toBe(0)
      expect(ended.stderr).toContain('ended by tp leave')
      expect((await httpGet('http://frontend-v1/')).body).toContain(DEMO_GREETING)
      expect(await agentsOf('frontend-v1')).toEqual([])

      await new Promise((r) => setTimeout(r, 500))
      const seen = await loop.stop()
      expect(seen.failures).toEqual([])
      expect(seen.bodies.some((b) => b === 'answered by the test server')).toBe(true)
      expect(seen.bodies.some((b) => b.includes(DEMO_GREETING))).toBe(true)
      const workloadAfter = await docker.getContainer('frontend-v1').inspect()
      expect(workloadAfter.Id).toBe(workloadBefore.Id)
      expect(workloadAfter.State.StartedAt).toBe(workloadBefore.State.StartedAt)
      expect(workloadAfter.RestartCount).toBe(workloadBefore.RestartCount)
    } finally {
      await loop.stop().catch(() => undefined)
      await stopServer()
    }
  })

  it('prints the session as JSON with --output json, and Ctrl-C ends it with exit code 0', async () => {
    const intercept = startIntercept(['frontend-v1', '--port', '8001', '--output', 'json'])
    let stdout = ''
    intercept.stdout!.on('data', (chunk: Buffer) => (stdout += chunk))
    const session = await waitFor('the session', async () => {
      try {
        return JSON.parse(stdout) as {
          name: string
          ports: {local: number; service: number}
          environment: Record<string, string>
          mounts: Array<{path: string; readOnly: boolean}>
        }
      } catch {
        return undefined
      }
    })
    expect(session.name).toBe('frontend-v1')
    expect(session.ports).toMatchObject({local: 8001, service: 80})
    expect(session.environment.GREETING).toBe(DEMO_GREETING)
    expect(session.environment.DEMO_NOTES).toBe('first line\nsecond line')
    expect(session.environment.HOME).toBeUndefined()
    expect(session.environment.PATH).toBeUndefined()
    expect(session.mounts.map((m) => [m.path, m.readOnly])).toEqual(
      expect.arrayContaining([
        ['/data', false],
        ['/etc/frontend', true],
      ]),
    )
    intercept.kill('SIGINT')
    expect((await intercept).exitCode).toBe(0)
    expect(await agentsOf('frontend-v1')).toEqual([])
  })

  it('intercepts two workloads at once, and refuses a second intercept of the same port', async () => {
    const stopA = await startTestServer('tpt-e2e-server-8010', 8010, 'frontend handled locally')
    const stopB = await startTestServer('tpt-e2e-server-8011', 8011, 'catalog handled locally')
    const a = startIntercept(['frontend-v1', '--port', '8010'])
    const b = startIntercept(['catalog', '--port', '8011'])
    try {
      await waitFor('frontend-v1 intercepted', async () => (await httpGet('http://frontend-v1/')).body === 'frontend handled locally')
      await waitFor('catalog intercepted', async () => (await httpGet('http://catalog/')).body === 'catalog handled locally')
      const second = await tp(['intercept', 'frontend-v1', '--port', '8012', '--name', 'another'])
      expect(second.exitCode).not.toBe(0)
      expect(second.stderr).toContain('port 80 of frontend-v1 is already intercepted by "frontend-v1"')
      expect(second.stderr).toContain('tp leave frontend-v1')
      expect(await agentsOf('another')).toEqual([])
      // ending one leaves the other alone
      a.kill('SIGINT')
      await a
      expect((await httpGet('http://frontend-v1/')).body).toContain(DEMO_GREETING)
      expect((await httpGet('http://catalog/')).body).toBe('catalog handled locally')
    } finally {
      a.kill('SIGINT')
      b.kill('SIGINT')
      await Promise.all([a, b])
      await stopA()
      await stopB()
    }
    expect((await httpGet('http://catalog/')).body).toContain('catalog')
  })

  it('restores the workload within 10 s when the CLI is killed with SIGKILL', async () => {
    const stop = await startTestServer('tpt-e2e-server-8020', 8020, 'before the kill')
    const intercept = startIntercept(['frontend-v1', '--port', '8020'])
    try {
      await waitFor('intercepted', async () => (await httpGet('http://frontend-v1/')).body === 'before the kill')
      intercept.kill('SIGKILL')
      await intercept
      const started = Date.now()
      await waitFor('the workload answering again', async () => (await httpGet('http://frontend-v1/')).body.includes(DEMO_GREETING), 10_000)
      await waitFor('the agent gone', async () => (await agentsOf('frontend-v1')).length === 0, 10_000 - (Date.now() - started))
    } finally {
      await stop()
    }
  })

  it('says so when nothing answers on the local port, and leaves the traffic with the workload', async () => {
    const intercept = execa('node', ['--', tpBin, 'intercept', 'frontend-v1', '--port', '8050'], {
      env: {...env, TP_HINT_AFTER_MS: '1000'},
      cwd: repoRoot,
      reject: false,
      stdin: 'ignore',
    })
    let stderr = ''
    intercept.stderr!.on('data', (c: Buffer) => (stderr += c))
    await waitFor('the hint', async () => stderr.includes('Still waiting for something to answer on port 8050'))
    expect(stderr).toContain('--port <that port>')
    expect((await httpGet('http://frontend-v1/')).body).toContain(DEMO_GREETING)
    intercept.kill('SIGINT')
    expect((await intercept).exitCode).toBe(0)
  })
})

describe('bad input: a clear message, a non-zero exit, nothing left behind', () => {
  it('names the workloads that exist when the workload is unknown', async () => {
    const result = await tp(['intercept', 'nope', '--port', '8000'])
    expect(result.exitCode).not.toBe(0)
    expect(result.stderr).toMatch(/nope/)
    expect(result.stderr).toMatch(/frontend-v1/)
    expect(result.stderr).toMatch(/catalog/)
    expect(await connectionObjects()).toEqual([`/${DAEMON}`])
  })

  it('says what is missing when no workload is given', async () => {
    const result = await tp(['intercept', '--port', '8000', '--docker-run', '--', 'frontend-v2'])
    expect(result.exitCode).toBe(1)
    expect(result.stderr).toBe(
      'tp: the workload to intercept is missing\n  → `tp list` shows the workloads; e.g. `tp intercept frontend-v1 --port 8000 --docker-run -- <image>`',
    )
    expect(await connectionObjects()).toEqual([`/${DAEMON}`])
  })

  it('lists the ports when the service port is unknown', async () => {
    const result = await tp(['intercept', 'frontend-v1', '--port', '8000:81'])
    expect(result.exitCode).not.toBe(0)
    expect(result.stderr).toMatch(/81/)
    expect(result.stderr).toMatch(/80/)
    expect(await connectionObjects()).toEqual([`/${DAEMON}`])
  })

  it('lists the ports when the service port is ambiguous', async () => {
    const image = await busyboxImage()
    const two = await docker.createContainer({
      name: 'tpt-e2e-two-ports',
      Image: image,
      Cmd: ['sh', '-c', 'mkdir -p /www && echo two > /www/index.html && httpd -p 81 -h /www && exec httpd -f -p 80 -h /www'],
      Labels: {'tp.fixture': 'true'},
      ExposedPorts: {'80/tcp': {}, '81/tcp': {}},
      HostConfig: {NetworkMode: 'tp-demo'},
    })
    await two.start()
    try {
      const result = await tp(['intercept', 'tpt-e2e-two-ports', '--port', '8000'])
      expect(result.exitCode).not.toBe(0)
      expect(result.stderr).toMatch(/80/)
      expect(result.stderr).toMatch(/81/)
      expect(await connectionObjects()).toEqual([`/${DAEMON}`])
    } finally {
      await two.remove({force: true})
    }
  })

  it.each([
    ['abc', /not a port number/],
    ['0', /not a port number/],
    ['70000', /not a port number/],
    ['8000:80:http', /three parts/],
    ['8000:', /empty part/],
  ])('refuses --port %s', async (port, message) => {
    const result = await tp(['intercept', 'frontend-v1', '--port', port])
    expect(result.exitCode).not.toBe(0)
    expect(result.stderr).toMatch(message)
    expect(result.stderr).toMatch(/--port <local>/)
    expect(await connectionObjects()).toEqual([`/${DAEMON}`])
  })

  it('names the networks when the namespace is unknown or ambiguous', async () => {
    const fresh = await mkdtemp(join(tmpdir(), 'tp-e2e-ns-'))
    try {
      const unknown = await tpCli(['connect', '--docker', '--namespace', 'no-such-net', '--name', 'e2e-ns'], {env: {TP_CACHE_DIR: fresh}})
      expect(unknown.exitCode).not.toBe(0)
      expect(unknown.stderr).toMatch(/no-such-net/)
      expect(unknown.stderr).toMatch(/tp-demo/)
      // a second network with a workload makes the choice ambiguous
      const network = await docker.createNetwork({Name: 'tpt-e2e-other-ns', Labels: {'tp.fixture': 'true'}})
      const image = await busyboxImage()
      const other = await docker.createContainer({
        name: 'tpt-e2e-other-workload',
        Image: image,
        Cmd: ['sleep', '60'],
        Labels: {'tp.fixture': 'true'},
        HostConfig: {NetworkMode: 'tpt-e2e-other-ns'},
      })
      await other.start()
      try {
        const ambiguous = await tpCli(['connect', '--docker', '--name', 'e2e-ns'], {env: {TP_CACHE_DIR: fresh, TP_NAMESPACE: undefined}})
        expect(ambiguous.exitCode).not.toBe(0)
        expect(ambiguous.stderr).toMatch(/tp-demo/)
        expect(ambiguous.stderr).toMatch(/tpt-e2e-other-ns/)
        expect(ambiguous.stderr).toMatch(/--namespace/)
      } finally {
        await other.remove({force: true})
        await network.remove()
      }
      const leftovers = await docker.listContainers({all: true, filters: JSON.stringify({label: ['tp.connection=e2e-ns']})})
      expect(leftovers).toEqual([])
    } finally {
      await rm(fresh, {recursive: true, force: true})
    }
  })

  it('says where it looked when the Docker engine is unreachable', async () => {
    const fresh = await mkdtemp(join(tmpdir(), 'tp-e2e-nodocker-'))
    try {
      const result = await tpCli(['intercept', 'frontend-v1', '--port', '8000', '--docker'], {
        env: {TP_CACHE_DIR: fresh, DOCKER_HOST: 'unix:///tmp/tp-no-such-docker.sock'},
      })
      expect(result.exitCode).not.toBe(0)
      expect(result.stderr).toContain('DOCKER_HOST=unix:///tmp/tp-no-such-docker.sock')
      expect(result.stderr).toMatch(/start Docker|DOCKER_HOST/)
    } finally {
      await rm(fresh, {recursive: true, force: true})
    }
  })

  it('says there is no connection when leaving without one', async () => {
    const fresh = await mkdtemp(join(tmpdir(), 'tp-e2e-noconn-'))
    try {
      const result = await tpCli(['leave', 'frontend-v1'], {env: {TP_CACHE_DIR: fresh}})
      expect(result.exitCode).not.toBe(0)
      expect(result.stderr).toMatch(/not connected/)
    } finally {
      await rm(fresh, {recursive: true, force: true})
    }
  })

  it('names the intercepts that exist when leaving an unknown one', async () => {
    const result = await tp(['leave', 'nope'])
    expect(result.exitCode).not.toBe(0)
    expect(result.stderr).toMatch(/no intercept named "nope"/)
  })
})

describe('the workload going away', () => {
  it('ends the intercept when the workload stops, says so, and leaves nothing behind', async () => {
    const image = await busyboxImage()
    const workload = await docker.createContainer({
      name: 'tpt-e2e-stopping',
      Image: image,
      Cmd: ['sh', '-c', 'mkdir -p /www && echo stopping > /www/index.html && exec httpd -f -p 80 -h /www'],
      Labels: {'tp.fixture': 'true'},
      ExposedPorts: {'80/tcp': {}},
      HostConfig: {NetworkMode: 'tp-demo'},
    })
    await workload.start()
    try {
      const intercept = startIntercept(['tpt-e2e-stopping', '--port', '8050'])
      await waitFor('the agent', async () => (await agentsOf('tpt-e2e-stopping')).some((a) => a.State === 'running'))
      await workload.stop({t: 1})
      const ended = await intercept
      expect(ended.exitCode).toBe(1)
      expect(ended.stderr).toMatch(/the intercept ended unexpectedly: the workload tpt-e2e-stopping exited with code \d+/)
      expect(ended.stderr).toContain('run the intercept again once `tp list` shows the workload running')
      await waitFor('the agent gone', async () => (await agentsOf('tpt-e2e-stopping')).length === 0, 10_000)
      expect(await connectionObjects()).toEqual([`/${DAEMON}`])
    } finally {
      await workload.remove({force: true})
    }
  })
})

describe('the daemon going away', () => {
  it('restores the workload within 10 s when the daemon container is killed; connect replaces it', async () => {
    const stop = await startTestServer('tpt-e2e-server-8030', 8030, 'before the daemon died')
    const intercept = startIntercept(['frontend-v1', '--port', '8030'])
    try {
      await waitFor('intercepted', async () => (await httpGet('http://frontend-v1/')).body === 'before the daemon died')
      await docker.getContainer(DAEMON).kill()
      const started = Date.now()
      await waitFor('the workload answering again', async () => (await httpGet('http://frontend-v1/')).body.includes(DEMO_GREETING), 10_000)
      await waitFor('the agent gone', async () => (await agentsOf('frontend-v1')).length === 0, 10_000 - (Date.now() - started))
      const ended = await intercept
      expect(ended.exitCode).not.toBe(0)
      expect(ended.stderr).toMatch(/ended unexpectedly/)
    } finally {
      await stop()
    }
    const status = await tp(['status'])
    expect(status.stdout).toMatch(/Not connected/)
    const again = await tp(['connect', '--docker', '--namespace', 'tp-demo', '--name', CONNECTION])
    expect(again.exitCode).toBe(0)
    expect((await docker.getContainer(DAEMON).inspect()).State.Running).toBe(true)
  })

  it('tp quit leaves nothing tp-labelled of the connection', async () => {
    const stop = await startTestServer('tpt-e2e-server-8040', 8040, 'until quit')
    const intercept = startIntercept(['frontend-v1', '--port', '8040'])
    try {
      await waitFor('intercepted', async () => (await httpGet('http://frontend-v1/')).body === 'until quit')
      const quit = await tp(['quit'])
      expect(quit.exitCode).toBe(0)
      expect((await intercept).exitCode).toBe(0)
      expect(await connectionObjects()).toEqual([])
      expect((await httpGet('http://frontend-v1/')).body).toContain(DEMO_GREETING)
    } finally {
      await stop()
    }
  })
})
