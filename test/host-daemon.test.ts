/**
 * The host daemon (`tp connect` without --docker), as a user runs it: this machine reaches the
 * namespace's workloads by name while connected, status/list/intercept/leave work on it beside a
 * container connection, and whatever it changed on the machine (hosts file, routes, iptables
 * rules, mounts, processes) is as before after `tp quit`, after Ctrl-C while it starts, and after
 * kill -9 of the daemon followed by any tp command. Runs on a demo cluster of its own.
 */
import {execFile} from 'node:child_process'
import {mkdtemp, readFile, rm} from 'node:fs/promises'
import {get} from 'node:http'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {setTimeout as sleep} from 'node:timers/promises'
import {promisify} from 'node:util'
import {chown} from 'node:fs/promises'
import {execa} from 'execa'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {demoDown} from '@tp/images'
import {docker, ensureDemo, httpGet, repoRoot, startTp, tpBin, tpCli, tpObjects, withoutImageProgress} from './helpers/index.js'

const execFileAsync = promisify(execFile)
const NETWORK = `tpt-hostd-${process.pid}`
const HOST = 'e2e-hostd'
const CONTAINER = 'e2e-hostd-docker'
let cacheDir: string
let env: Record<string, string>
const tp = (args: string[]) => tpCli(args, {env})

/** What tp may change on this machine, in a form that compares equal when nothing changed. */
async function machine(): Promise<Record<string, string>> {
  const [routes, rules, processes] = await Promise.all([
    execFileAsync('ip', ['route']).then((r) => r.stdout),
    // counters change with traffic: only the rules count
    execFileAsync('iptables-save').then((r) =>
      r.stdout
        .replace(/\[\d+:\d+\]/g, '')
        .split('\n')
        .filter((l) => !l.startsWith('#'))
        .join('\n'),
    ),
    execa('pgrep', ['-af', 'packages/daemon/dist/main.js'], {reject: false}).then((r) =>
      r.stdout
        .split('\n')
        .filter((l) => !l.includes('pgrep') && l.trim())
        .join('\n'),
    ),
  ])
  const mounts = (await readFile('/proc/mounts', 'utf8'))
    .split('\n')
    // containers starting and stopping add and remove their own mounts under Docker's directories
    .filter((l) => l && !/\/var\/lib\/docker|\/run\/docker|nsfs|\/run\/netns/.test(l))
    .join('\n')
  return {hosts: await readFile('/etc/hosts', 'utf8'), routes, rules, mounts, processes}
}

/** GET http://<name>/ from this machine, resolving the name as any program here does. */
function hostGet(name: string, timeoutMs = 3000): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = get({host: name, path: '/', timeout: timeoutMs}, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (c: string) => (body += c))
      res.on('end', () => resolve(body))
    })
    req.on('timeout', () => req.destroy(new Error(`no answer from ${name}`)))
    req.on('error', reject)
  })
}

let before: Record<string, string>

beforeAll(async () => {
  await ensureDemo({network: NETWORK})
  cacheDir = await mkdtemp(join(tmpdir(), 'tp-e2e-hostd-'))
  env = {TP_CACHE_DIR: cacheDir, TP_NAMESPACE: NETWORK}
  before = await machine()
})

afterAll(async () => {
  await tp(['quit', '--name', HOST])
  await tp(['quit', '--name', CONTAINER])
  await docker
    .getContainer(`tpt-hostd-handler-${process.pid}`)
    .remove({force: true})
    .catch(() => undefined)
  await demoDown(docker, {network: NETWORK}).catch(() => undefined)
  await rm(cacheDir, {recursive: true, force: true})
})

describe('host daemon', () => {
  it('resolves the namespace on this machine, intercepts beside a container connection, and tp quit puts everything back', async () => {
    await expect(hostGet('catalog')).rejects.toThrow() // not before connecting
    const connected = await tp(['connect', '--name', HOST, '--namespace', NETWORK])
    expect(withoutImageProgress(connected.stderr)).toBe('')
    expect(connected.stdout).toMatch(
      /^Connected "e2e-hostd" to namespace tpt-hostd-\d+ of the docker cluster at unix:\/\/\/var\/run\/docker\.sock \(host daemon, process \d+ on this host\)\.$/,
    )
    // from a shell on this machine: the workloads by name, and by the namespace-qualified name
    expect((await hostGet('catalog')).trim()).toBe('{"catalog":["apple","pear"]}')
    expect(await hostGet(`frontend-v1.${NETWORK}`)).toContain('hello from frontend-v1')
    const hosts = await readFile('/etc/hosts', 'utf8')
    expect(hosts.startsWith(before.hosts.trimEnd())).toBe(true)

    // a container connection beside it
    expect((await tp(['connect', '--docker', '--name', CONTAINER, '--namespace', NETWORK])).exitCode).toBe(0)
    const status = JSON.parse((await tp(['status', '--json'])).stdout) as {
      connections: Array<{name: string; backend: string; daemon: string; cluster: {driver: string; engine: string}}>
    }
    expect(status.connections.map((c) => [c.name, c.backend]).sort()).toEqual([
      [HOST, 'host'],
      [CONTAINER, 'container'],
    ])
    // both name their cluster: the docker driver on this machine's engine
    for (const c of status.connections) expect(c.cluster).toEqual({driver: 'docker', engine: 'unix:///var/run/docker.sock'})
    expect(status.connections.find((c) => c.name === HOST)?.daemon).toMatch(/^process \d+ on this host$/)
    const list = await tp(['list', '--use', HOST])
    expect(list.exitCode).toBe(0)
    expect(list.stdout).toMatch(/frontend-v1/)
    expect(list.stdout).toMatch(/catalog/)

    // an intercept held by tp, with a handler container started by hand the way tp prints it
    const port = 18_000 + (process.pid % 1000)
    const held = startTp(['intercept', '--use', HOST, 'frontend-v1', '--name', 'fe', '--port', String(port)], {env})
    const deadline = Date.now() + 30_000
    while (!held.output().includes('Waiting for something to answer')) {
      if (held.child.exitCode !== null || Date.now() > deadline) throw new Error(`the intercept did not start:\n${held.output()}`)
      await sleep(100)
    }
    expect(held.output()).toContain(`docker run --network ${NETWORK} -p ${port}:${port} …`)
    const handler = await docker.createContainer({
      name: `tpt-hostd-handler-${process.pid}`,
      Image: 'frontend-v2',
      Env: [`PORT=${port}`],
      Labels: {'tp.fixture': 'true'},
      ExposedPorts: {[`${port}/tcp`]: {}},
      HostConfig: {NetworkMode: NETWORK, PortBindings: {[`${port}/tcp`]: [{HostPort: String(port)}]}, AutoRemove: true},
    })
    await handler.start()
    await held.active
    const intercepted = await httpGet('http://frontend-v1/', {network: NETWORK})
    expect(intercepted.body).toMatch(/^frontend-v2$/m)
    // the handler container reaches the cluster by name from its placement's network
    expect(intercepted.body).toContain('catalog={"catalog":["apple","pear"]}')

    const left = await tp(['leave', '--use', HOST, 'fe'])
    expect(left.exitCode).toBe(0)
    expect((await held.child).exitCode).toBe(0)
    expect((await httpGet('http://frontend-v1/', {network: NETWORK})).body).toContain('hello from frontend-v1')
    await handler.remove({force: true}).catch(() => undefined)

    expect((await tp(['quit', '--name', HOST])).exitCode).toBe(0)
    expect((await tp(['quit', '--name', CONTAINER])).exitCode).toBe(0)
    await expect(hostGet('catalog', 1000)).rejects.toThrow()
    expect(await machine()).toEqual(before)
    expect(await tpObjects()).toEqual({containers: [], volumes: [], networks: []})
  })

  it('after kill -9 of the daemon, the agent gives the traffic back and the next tp command puts the machine back', async () => {
    expect((await tp(['connect', '--name', HOST, '--namespace', NETWORK])).exitCode).toBe(0)
    const held = startTp(['intercept', '--use', HOST, 'frontend-v1', '--port', '18999'], {env})
    while (!held.output().includes('Waiting for something')) {
      if (held.child.exitCode !== null) throw new Error(held.output())
      await sleep(100)
    }
    const record = JSON.parse(await readFile(join(cacheDir, 'connections', `${HOST}.json`), 'utf8')) as {pid: number}
    process.kill(record.pid, 'SIGKILL')
    expect((await held.child).exitCode).toBe(1)
    expect(held.output()).toMatch(/the intercept ended unexpectedly/)
    expect((await readFile('/etc/hosts', 'utf8')).includes('# tp begin')).toBe(true) // nobody could remove it yet
    // any tp command repairs it
    expect((await tpCli(['version'], {env})).exitCode).toBe(0)
    // the agents saw the daemon go and removed their rules: the workload answers again
    const deadline = Date.now() + 15_000
    while (!(await httpGet('http://frontend-v1/', {network: NETWORK})).body.includes('hello from frontend-v1')) {
      if (Date.now() > deadline) throw new Error('frontend-v1 did not get its traffic back')
      await sleep(250)
    }
    expect((await tp(['status'])).stdout).toMatch(/Not connected/)
    const deadline2 = Date.now() + 15_000
    while ((await tpObjects()).containers.length > 0 && Date.now() < deadline2) await sleep(250)
    expect(await tpObjects()).toEqual({containers: [], volumes: [], networks: []})
    expect(await machine()).toEqual(before)
  })

  it('Ctrl-C while tp connect starts the daemon removes it again and changes nothing', async () => {
    const child = execa('node', ['--', tpBin, 'connect', '--name', HOST, '--namespace', NETWORK], {env, cwd: repoRoot, reject: false})
    // the daemon's process appears, then the signal, as a user's Ctrl-C in the middle of it
    const deadline = Date.now() + 20_000
    while ((await machine()).processes === '' && Date.now() < deadline) await sleep(20)
    child.kill('SIGINT')
    const result = await child
    expect(result.exitCode).toBe(130)
    expect(result.stderr).toMatch(/was removed again/)
    expect(await machine()).toEqual(before)
    expect((await tp(['status', '--json'])).stdout).toContain('"connections": []')
  })

  it('without the privileges it needs, tp connect says which and what to do, and changes nothing', async () => {
    const nobodyCache = await mkdtemp(join(tmpdir(), 'tp-e2e-hostd-nobody-'))
    await chown(nobodyCache, 65_534, 65_534)
    try {
      const result = await execa(
        'setpriv',
        ['--reuid=65534', '--regid=65534', '--clear-groups', 'node', '--', tpBin, 'connect', '--name', HOST, '--namespace', NETWORK],
        {
          env: {TP_CACHE_DIR: nobodyCache, HOME: nobodyCache},
          cwd: repoRoot,
          reject: false,
        },
      )
      expect(result.exitCode).toBe(1)
      expect(result.stderr).toContain('a daemon on this host needs to write /etc/hosts')
      expect(result.stderr).toContain('sudo tp connect')
      expect(result.stderr).toContain('tp connect --docker')
      expect(await machine()).toEqual(before)
    } finally {
      await rm(nobodyCache, {recursive: true, force: true})
    }
  })
})
