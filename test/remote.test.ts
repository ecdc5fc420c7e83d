/**
 * A cluster on another machine: a second engine in a network namespace of its own, reached only
 * through its TLS Engine API (as a Docker context) or ssh, with containers on the same subnets as
 * this machine's own (a twin of its `catalog` answers here at the same address). A user connects
 * with `--cluster`, lists the remote workloads, intercepts one with a process on this machine, and
 * the process reads the workload's volume and calls the cluster's names; nothing is opened on the
 * remote machine, and after the end, or a kill -9 of the local daemon, nothing of tp's is left on
 * either engine and the workload has its traffic back.
 */
import {randomBytes} from 'node:crypto'
import {mkdtemp, readFile, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {setTimeout as sleep} from 'node:timers/promises'
import Dockerode from 'dockerode'
import {execa} from 'execa'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {ensureImportedImage, STATIC_BUSYBOX} from '@tp/images'
import {docker, eventually, repoRoot, startTp, tpCli} from './helpers/index.js'
import {type RemoteMachine, startRemoteMachine, sweepStaleRemoteMachines} from './helpers/remote-machine.js'

const PREFIX = 'tpt-rc-'
const NS = 'tpt-remote-ns'
/** The remote namespace's subnet: this machine has a network of its own on the very same one. */
const SUBNET = '172.31.250.0/24'
const CATALOG_IP = '172.31.250.20'
const LOCAL_TWIN_NET = 'tpt-remote-twin'
/** A busybox image, made on each engine from this machine's busybox (there is no registry). */
const BUSYBOX = {
  repo: 'tpt-remote-busybox',
  tag: '1',
  spec: {busybox: STATIC_BUSYBOX, dirs: ['/www', '/data']},
  changes: ['ENV PATH=/bin'],
  what: 'test fixture',
}

let machine: RemoteMachine
let remote: Dockerode
let remoteBusybox: string
let localBusybox: string
let cacheDir: string
let dockerConfig: string
let env: Record<string, string>
let listeningBefore: string[]
const tp = (args: string[], extra: Record<string, string> = {}) => tpCli(args, {env: {...env, ...extra}})

/** Runs `wget` from a container on the remote namespace: what a client of the workload there gets. */
async function fromRemoteClient(url: string): Promise<string> {
  const run = await machine.docker(['run', '--rm', '--network', NS, remoteBusybox, 'sh', '-c', `timeout 5 wget -qO- ${url} 2>&1; true`], {
    reject: false,
    timeoutMs: 30_000,
  })
  return run.stdout.trim()
}

/** tp-labelled objects on an engine. */
async function tpObjectsOn(engine: Dockerode): Promise<string[]> {
  const filters = {label: ['tp.managed=true']}
  const containers = await engine.listContainers({all: true, filters})
  const volumes = (await engine.listVolumes({filters})).Volumes ?? []
  return [...containers.map((c) => `container ${c.Names[0]}`), ...volumes.map((v) => `volume ${v.Name}`)]
}

/** Until the client there gets the local-server handler's JSON from web. */
const handlerAnswers = () =>
  eventually(
    'the handler answers',
    () => fromRemoteClient('http://web/'),
    (r) => r.startsWith('{'),
    20_000,
  )

/** Until web answers the client there by itself (its traffic given back). */
const webAnswersItself = (timeoutMs: number) =>
  eventually(
    'web answers for itself',
    () => fromRemoteClient('http://web/'),
    (r) => r === 'the remote web',
    timeoutMs,
  )

/** Until nothing tp-labelled is left on the remote engine (the 60 s the issue allows). */
const nothingOfTpThere = () =>
  eventually(
    'nothing of tp on the remote engine',
    () => tpObjectsOn(remote),
    (left) => left.length === 0,
    60_000,
  )

/** `tp intercept web` on a connection, with this repository's local-server fixture as the handler on `port`. */
function interceptWeb(connection: string, port: number, options: {mount?: boolean; env?: Record<string, string>; extra?: string[]} = {}) {
  const handler = ['--', 'node', join(repoRoot, 'test/fixtures/local-server.mjs'), String(port)]
  const mount = options.mount === false ? ['--mount=false'] : []
  return startTp(['intercept', 'web', '--use', connection, '--port', String(port), ...mount, ...(options.extra ?? []), ...handler], {
    env: {...env, ...options.env},
  })
}

const listening = async () => (await machine.listeningSockets()).map((s) => `${s.protocol} ${s.address}:${s.port}`).sort()

beforeAll(async () => {
  await sweepStaleRemoteMachines(PREFIX)
  machine = await startRemoteMachine(`${PREFIX}${randomBytes(3).toString('hex')}`)
  remote = new Dockerode({socketPath: machine.socket})
  remoteBusybox = (await ensureImportedImage(remote, BUSYBOX)).ref
  // the remote namespace: web (with a volume and an environment) and catalog
  await machine.docker(['network', 'create', '--subnet', SUBNET, NS])
  await machine.docker(['volume', 'create', 'tpt-remote-data'])
  await machine.docker(['run', '--rm', '-v', 'tpt-remote-data:/data', remoteBusybox, 'sh', '-c', 'echo config of the remote web > /data/config.txt'])
  const httpd = (answer: string) => ['sh', '-c', `echo '${answer}' > /www/index.html && exec httpd -f -p 80 -h /www`]
  await machine.docker([
    'run',
    '-d',
    '--name',
    'web',
    // the workloads come back with their engine (the engine-restart case)
    '--restart',
    'always',
    '--network',
    NS,
    '--expose',
    '80',
    '-e',
    'GREETING=hello from the remote web',
    '-v',
    'tpt-remote-data:/data',
    remoteBusybox,
    ...httpd('the remote web'),
  ])
  await machine.docker([
    'run',
    '-d',
    '--name',
    'catalog',
    '--restart',
    'always',
    '--network',
    NS,
    '--ip',
    CATALOG_IP,
    '--expose',
    '80',
    remoteBusybox,
    // and on 8081, which its image does not declare: tp's names carry it all the same
    'sh',
    '-c',
    "echo 'the remote catalog' > /www/index.html && httpd -p 8081 -h /www && exec httpd -f -p 80 -h /www",
  ])
  localBusybox = (await ensureImportedImage(docker, BUSYBOX)).ref
  // this machine's own network on the same subnet, with a twin of catalog at the same address
  await docker
    .getNetwork(LOCAL_TWIN_NET)
    .remove()
    .catch(() => undefined)
  await docker.createNetwork({Name: LOCAL_TWIN_NET, IPAM: {Config: [{Subnet: SUBNET}]}, Labels: {'tp.fixture': 'true'}})
  const twin = await docker.createContainer({
    name: 'tpt-remote-twin-catalog',
    Image: localBusybox,
    Cmd: httpd('the local twin'),
    Labels: {'tp.fixture': 'true'},
    HostConfig: {NetworkMode: LOCAL_TWIN_NET},
    NetworkingConfig: {EndpointsConfig: {[LOCAL_TWIN_NET]: {IPAMConfig: {IPv4Address: CATALOG_IP}}}},
  })
  await twin.start()
  // a Docker context for the remote engine's TLS API, in a docker CLI configuration of the test's own
  dockerConfig = await mkdtemp(join(tmpdir(), 'tpt-remote-docker-config-'))
  await execa(
    'docker',
    ['context', 'create', 'tpt-remote', '--docker', `host=${machine.tls.host},ca=${machine.tls.ca},cert=${machine.tls.cert},key=${machine.tls.key}`],
    {env: {DOCKER_CONFIG: dockerConfig}},
  )
  cacheDir = await mkdtemp(join(tmpdir(), 'tpt-remote-cache-'))
  env = {TP_CACHE_DIR: cacheDir, DOCKER_CONFIG: dockerConfig}
  listeningBefore = await listening()
}, 240_000)

afterAll(async () => {
  for (const name of ['rtls', 'rssh', 'rctls', 'rcssh'])
    await tp(['quit', '--name', name], machine ? {PATH: machine.ssh.env.PATH, HOME: machine.ssh.home} : {}).catch(() => undefined)
  await docker
    .getContainer('tpt-remote-twin-catalog')
    .remove({force: true})
    .catch(() => undefined)
  await docker
    .getNetwork(LOCAL_TWIN_NET)
    .remove()
    .catch(() => undefined)
  await machine?.stop()
  await rm(cacheDir, {recursive: true, force: true}).catch(() => undefined)
  await rm(dockerConfig, {recursive: true, force: true}).catch(() => undefined)
})

describe('a cluster on another machine', () => {
  it('refuses what it cannot do yet, or what is wrong, saying what to do, and makes nothing', async () => {
    const unknown = await tp(['connect', '--cluster', 'no-such-context', '--name', 'rbad'])
    expect(unknown.exitCode).toBe(1)
    expect(unknown.stderr).toContain('"no-such-context" is neither an engine URL (unix://, tcp://, ssh://) nor a Docker context')
    expect(unknown.stderr).toContain('tpt-remote')
    // a daemon in a container borrows ~/.ssh or the ssh agent for an ssh:// cluster: with neither, it says so
    const noKeys = await tp(['connect', '--docker', '--cluster', machine.ssh.url, '--namespace', NS, '--name', 'rbad'], {
      PATH: machine.ssh.env.PATH,
      HOME: join(cacheDir, 'no-home'),
      SSH_AUTH_SOCK: '',
    })
    expect(noKeys.exitCode).toBe(1)
    expect(noKeys.stderr).toContain('there is no')
    expect(noKeys.stderr).toContain('`tp connect` without --docker')
    expect(await tpObjectsOn(remote)).toEqual([])
    expect((await tpObjectsOn(docker)).filter((o) => o.includes('rbad'))).toEqual([])
  })

  it('tp gc --cluster cleans up an engine no live connection is on; an unknown one is refused', async () => {
    await machine.docker([
      'run',
      '-d',
      '--name',
      'tp-ghost2-relay',
      '--label',
      'tp.managed=true',
      '--label',
      'tp.connection=ghost2',
      '--label',
      'tp.role=relay',
      remoteBusybox,
      'sleep',
      '600',
    ])
    // without --cluster tp does not know of that engine
    expect((await tp(['gc', '--dry-run'])).stdout).not.toContain('tp-ghost2-relay')
    const gc = await tp(['gc', '--cluster', 'tpt-remote'])
    expect(gc.exitCode, gc.stderr).toBe(0)
    expect(gc.stdout).toContain('removed container tp-ghost2-relay')
    expect(await tpObjectsOn(remote)).toEqual([])
    const unknown = await tp(['gc', '--cluster', 'no-such-context'])
    expect(unknown.exitCode).not.toBe(0)
    expect(unknown.stderr).toMatch(/no-such-context/)
  })

  it('behind its TLS API as a Docker context: connect, status names both engines, list shows its workloads', async () => {
    const connected = await tp(['connect', '--cluster', 'tpt-remote', '--namespace', NS, '--name', 'rtls'])
    expect(connected.exitCode, connected.stderr).toBe(0)
    expect(connected.stdout).toContain(`of the docker cluster at ${machine.tls.host} (context tpt-remote)`)
    const status = JSON.parse((await tp(['status', '--json'])).stdout) as {
      connections: Array<{name: string; cluster: {engine: string; context?: string}; handlerEngine: string}>
    }
    expect(status.connections).toEqual([
      expect.objectContaining({
        name: 'rtls',
        cluster: expect.objectContaining({engine: machine.tls.host, context: 'tpt-remote'}),
        handlerEngine: 'unix:///var/run/docker.sock',
      }),
    ])
    expect((await tp(['status'])).stdout).toContain('handlers on the engine at unix:///var/run/docker.sock')
    const list = await tp(['list', '--use', 'rtls'])
    expect(list.stdout).toMatch(/^catalog\s+ports 80/m)
    expect(list.stdout).toMatch(/^web\s+ports 80/m)
    // the relay is on the remote engine only, and nothing listens on the remote machine that did not before
    expect((await tpObjectsOn(remote)).join('\n')).toMatch(/tp-rtls-relay/)
    expect(await listening()).toEqual(listeningBefore)
  })

  it("tp gc cleans up a live connection's remote engine, keeping what live connections own", async () => {
    // what a connection that is gone left there (a relay that never removed itself, say)
    await machine.docker([
      'run',
      '-d',
      '--name',
      'tp-ghost-relay',
      '--label',
      'tp.managed=true',
      '--label',
      'tp.connection=ghost',
      '--label',
      'tp.role=relay',
      remoteBusybox,
      'sleep',
      '600',
    ])
    const dry = await tp(['gc', '--dry-run'])
    expect(dry.exitCode, dry.stderr).toBe(0)
    expect(dry.stdout).toContain('would remove container tp-ghost-relay')
    expect(dry.stdout).not.toContain('tp-rtls-relay')
    expect((await tpObjectsOn(remote)).join('\n')).toMatch(/tp-ghost-relay/)
    const gc = await tp(['gc'])
    expect(gc.exitCode, gc.stderr).toBe(0)
    expect(gc.stdout).toContain('removed container tp-ghost-relay')
    const left = (await tpObjectsOn(remote)).join('\n')
    expect(left).not.toMatch(/ghost/)
    expect(left).toMatch(/tp-rtls-relay/)
  })

  it("intercepts web with a process here, which sees web's environment and volume and reaches the remote catalog by name, not the local twin", async () => {
    const port = 20_000 + (process.pid % 5000)
    const run = interceptWeb('rtls', port)
    await run.active
    const reply = JSON.parse(
      await eventually(
        'the client in the remote namespace reaches the handler',
        () => fromRemoteClient('http://web/'),
        (r) => r.startsWith('{'),
        20_000,
      ),
    ) as Record<string, string>
    expect(reply).toMatchObject({
      handler: 'local-process',
      GREETING: 'hello from the remote web',
      config: 'config of the remote web',
      catalog: 'the remote catalog',
    })
    // this machine reaches the remote catalog by name, on the port it declares and on one it does not
    for (const url of ['http://catalog/', 'http://catalog:8081/']) expect((await (await fetch(url)).text()).trim()).toBe('the remote catalog')
    // this machine's twin at the same address is untouched by it all
    expect(await listening()).toEqual(listeningBefore)
    run.child.kill('SIGINT')
    const ended = await run.child
    expect(ended.exitCode, run.output()).toBe(0)
    expect(await fromRemoteClient('http://web/')).toBe('the remote web')
  })

  it('issue 24 modes on the remote machine: a personal intercept takes only its header’s requests, a wiretap copies each request while web answers, tp ingest reads the volume', async () => {
    const port = 22_000 + (process.pid % 5000)
    const personal = interceptWeb('rtls', port, {extra: ['--http-header', 'X-Dev=alice']})
    try {
      await personal.active
      const withHeader = (value: string) => fromRemoteClient(`--header 'X-Dev: ${value}' http://web/`)
      const mine = await eventually(
        'the header’s request reaches the handler',
        () => withHeader('alice'),
        (r) => r.startsWith('{'),
        20_000,
      )
      expect(JSON.parse(mine)).toMatchObject({handler: 'local-process', GREETING: 'hello from the remote web'})
      // everyone else (no header, another value) is answered by web itself, meanwhile
      expect(await fromRemoteClient('http://web/')).toBe('the remote web')
      expect(await withHeader('bob')).toBe('the remote web')
      expect((await tp(['list', '--use', 'rtls'])).stdout).toMatch(/^web\s+ports 80\s+intercepted .*x-dev=alice/m)
    } finally {
      personal.child.kill('SIGINT')
      expect((await personal.child).exitCode, personal.output()).toBe(0)
    }
    expect(await fromRemoteClient('http://web/')).toBe('the remote web')

    // a wiretap: a process here records a copy of each request; web answers every client
    const dir = await mkdtemp(join(tmpdir(), 'tpt-remote-tap-'))
    const seen = join(dir, 'seen.txt')
    const recorder = `require('http').createServer((q, s) => { require('fs').appendFileSync(${JSON.stringify(seen)}, (q.headers['x-seq'] ?? '-') + '\\n'); s.end('from the recorder') }).listen(${port + 1})`
    const tap = startTp(['wiretap', 'web', '--use', 'rtls', '--port', String(port + 1), '--', 'node', '-e', recorder], {env})
    try {
      await tap.active
      const answers: string[] = []
      for (let k = 0; k < 5; k++) answers.push(await fromRemoteClient(`--header 'X-Seq: ${k}' http://web/`))
      expect(answers).toEqual(Array(5).fill('the remote web'))
      const copies = await eventually(
        'the recorder has a copy of each request',
        () => readFile(seen, 'utf8').catch(() => ''),
        (text) => text.split('\n').filter((l) => /^\d$/.test(l)).length >= 5,
        20_000,
      )
      expect(copies.split('\n').filter((l) => /^\d$/.test(l))).toEqual(['0', '1', '2', '3', '4'])
    } finally {
      tap.child.kill('SIGINT')
      expect((await tap.child).exitCode, tap.output()).toBe(0)
      await rm(dir, {recursive: true, force: true})
    }

    // tp ingest: the workload's environment and volume for a process here, no traffic taken
    const ingest = await tp(['ingest', 'web', '--use', 'rtls', '--', 'sh', '-c', 'echo "greeting=$GREETING"; cat "$TP_ROOT/data/config.txt"'])
    expect(ingest.exitCode, ingest.stderr).toBe(0)
    expect(ingest.stdout).toContain('greeting=hello from the remote web')
    expect(ingest.stdout).toContain('config of the remote web')
    expect(await fromRemoteClient('http://web/')).toBe('the remote web')
    expect(await listening()).toEqual(listeningBefore)
  })

  it('--docker-run: a handler container here gets the environment and volume, reaches the remote catalog by name, and answers the remote client', async () => {
    const port = 21_000 + (process.pid % 5000)
    const script = [
      'mkdir -p /www',
      `echo "docker-run handler; $GREETING; $(cat /data/config.txt); catalog says $(timeout 5 wget -qO- http://catalog/)" > /www/index.html`,
      `exec httpd -f -p ${port} -h /www`,
    ].join(' && ')
    const run = startTp(['intercept', 'web', '--use', 'rtls', '--port', String(port), '--docker-run', '--', '--rm', localBusybox, 'sh', '-c', script], {env})
    await run.active
    const reply = await eventually(
      'the client in the remote namespace reaches the handler container',
      () => fromRemoteClient('http://web/'),
      (r) => r.startsWith('docker-run'),
      20_000,
    )
    expect(reply).toBe('docker-run handler; hello from the remote web; config of the remote web; catalog says the remote catalog')
    run.child.kill('SIGINT')
    expect((await run.child).exitCode, run.output()).toBe(0)
    expect(await fromRemoteClient('http://web/')).toBe('the remote web')
    expect((await tpObjectsOn(docker)).filter((o) => o.includes('rtls'))).toEqual([])
  })

  it('a planned end loses no request: a client there looping through Ctrl-C gets every answer, first from the handler, then from web', async () => {
    const port = 24_000 + (process.pid % 1000)
    const run = interceptWeb('rtls', port, {mount: false})
    await run.active
    await handlerAnswers()
    // one line per request: H (the handler), W (web itself) or F (failed), for 12 s
    const script = [
      'end=$(( $(date +%s) + 12 ))',
      'while [ $(date +%s) -lt $end ]; do',
      '  r=$(timeout 5 wget -qO- http://web/ 2>/dev/null) || r=',
      '  case "$r" in "{"*) echo H ;; "the remote web") echo W ;; *) echo "F $r" ;; esac',
      'done',
    ].join('\n')
    const client = machine.docker(['run', '--rm', '--network', NS, remoteBusybox, 'sh', '-c', script], {timeoutMs: 60_000})
    await sleep(4_000)
    run.child.kill('SIGINT')
    expect((await run.child).exitCode, run.output()).toBe(0)
    const lines = (await client).stdout.trim().split('\n')
    const failed = lines.filter((l) => l.startsWith('F'))
    expect(failed, `${failed.length} of ${lines.length} requests failed`).toEqual([])
    // the hand-back happened while the client looped: it saw both sides, the handler first
    expect(lines[0]).toBe('H')
    expect(lines.at(-1)).toBe('W')
  })

  it('after kill -9 of the daemon here, the remote workload has its traffic back within 10 s and nothing of tp is left there within 60 s', async () => {
    const port = 25_000 + (process.pid % 5000)
    const run = interceptWeb('rtls', port, {mount: false})
    await run.active
    await handlerAnswers()
    const record = JSON.parse(await readFile(join(cacheDir, 'connections', 'rtls.json'), 'utf8')) as {pid: number}
    process.kill(record.pid, 'SIGKILL')
    const killed = Date.now()
    await webAnswersItself(10_000)
    expect(Date.now() - killed).toBeLessThan(10_000 + 5_000) // one client run takes a moment of its own
    await nothingOfTpThere()
    await run.child
    // the next tp command cleans up what the daemon left here
    const status = await tp(['status'])
    expect(status.stdout).toMatch(/DAEMON DIED/)
    expect(await listening()).toEqual(listeningBefore)
  })

  it('a 12-second link cut: the workload there has its traffic back within 10 s, tp intercept says the link broke and exits 1, nothing of tp is left there', async () => {
    const connected = await tp(['connect', '--cluster', 'tpt-remote', '--namespace', NS, '--name', 'rtls'])
    expect(connected.exitCode, connected.stderr).toBe(0)
    const port = 26_000 + (process.pid % 5000)
    const run = interceptWeb('rtls', port, {mount: false})
    await run.active
    await handlerAnswers()
    // the cable is out: nothing passes between this machine and the other one
    await execa('ip', ['link', 'set', machine.hostInterface, 'down'])
    const cut = Date.now()
    try {
      // the client there talks to the workload there: the cut does not stand between them
      await webAnswersItself(15_000)
      expect(Date.now() - cut).toBeLessThan(10_000 + 3_000) // one client run takes a moment of its own
      const ended = await run.child
      expect(ended.exitCode).toBe(1)
      expect(run.output()).toMatch(/link to the cluster's engine .* broke/)
      await sleep(Math.max(0, 12_000 - (Date.now() - cut)))
    } finally {
      await execa('ip', ['link', 'set', machine.hostInterface, 'up'])
    }
    await nothingOfTpThere()
    // the daemon ended with the link; the next command says so and cleans up here
    await eventually(
      'the daemon here has ended',
      async () => (await tp(['status'])).stdout,
      (out) => /DAEMON DIED|Not connected/.test(out),
      30_000,
    )
    expect(await listening()).toEqual(listeningBefore)
  })

  it('behind ssh (the system ssh, docker system dial-stdio): connect, list, intercept, quit leaves nothing on either engine', async () => {
    // the system ssh with the machine's config first on PATH (the handlers' engine stays this machine's)
    const ssh = {PATH: machine.ssh.env.PATH}
    const connected = await tp(['connect', '--cluster', machine.ssh.url, '--namespace', NS, '--name', 'rssh'], ssh)
    expect(connected.exitCode, connected.stderr).toBe(0)
    expect((await tp(['list', '--use', 'rssh'], ssh)).stdout).toMatch(/^web\s+ports 80/m)
    const port = 30_000 + (process.pid % 5000)
    const run = interceptWeb('rssh', port, {mount: false, env: ssh})
    await run.active
    const reply = JSON.parse(
      await eventually(
        'the handler answers through ssh',
        () => fromRemoteClient('http://web/'),
        (r) => r.startsWith('{'),
        20_000,
      ),
    ) as Record<string, string>
    expect(reply).toMatchObject({GREETING: 'hello from the remote web', catalog: 'the remote catalog'})
    run.child.kill('SIGINT')
    expect((await run.child).exitCode, run.output()).toBe(0)
    expect((await tp(['quit', '--name', 'rssh'], ssh)).exitCode).toBe(0)
    expect(await tpObjectsOn(remote)).toEqual([])
    expect((await tpObjectsOn(docker)).filter((o) => /rssh|rtls/.test(o))).toEqual([])
    expect(await fromRemoteClient('http://web/')).toBe('the remote web')
  })
  it("--docker behind TLS: a daemon in a container here, the seed's flow with --docker-run: env, volume, the remote names (not the local twin), Ctrl-C gives the traffic back", async () => {
    const connected = await tp(['connect', '--docker', '--cluster', 'tpt-remote', '--namespace', NS, '--name', 'rctls'])
    expect(connected.exitCode, connected.stderr).toBe(0)
    const status = JSON.parse((await tp(['status', '--json'])).stdout) as {connections: Array<{name: string; backend: string}>}
    expect(status.connections).toEqual(expect.arrayContaining([expect.objectContaining({name: 'rctls', backend: 'container'})]))
    const port = 31_000 + (process.pid % 5000)
    const script = [
      'mkdir -p /www',
      `echo "container daemon; $GREETING; $(cat /data/config.txt); catalog says $(timeout 5 wget -qO- http://catalog/); by its namespaced name: $(timeout 5 wget -qO- http://catalog.${NS}/); on a port it does not declare: $(timeout 5 wget -qO- http://catalog:8081/)" > /www/index.html`,
      'echo written by the handler > /data/from-handler.txt',
      `exec httpd -f -p ${port} -h /www`,
    ].join(' && ')
    const run = startTp(['intercept', 'web', '--use', 'rctls', '--port', String(port), '--docker-run', '--', '--rm', localBusybox, 'sh', '-c', script], {env})
    await run.active
    const reply = await eventually(
      'the client in the remote namespace reaches the handler container',
      () => fromRemoteClient('http://web/'),
      (r) => r.startsWith('container daemon'),
      20_000,
    )
    expect(reply).toBe(
      'container daemon; hello from the remote web; config of the remote web; catalog says the remote catalog; by its namespaced name: the remote catalog; on a port it does not declare: the remote catalog',
    )
    // the handler's write is in the remote volume
    expect((await machine.docker(['run', '--rm', '-v', 'tpt-remote-data:/data', remoteBusybox, 'cat', '/data/from-handler.txt'])).stdout.trim()).toBe(
      'written by the handler',
    )
    expect(await listening()).toEqual(listeningBefore)
    run.child.kill('SIGINT')
    expect((await run.child).exitCode, run.output()).toBe(0)
    expect(await fromRemoteClient('http://web/')).toBe('the remote web')
    expect((await tp(['quit', '--name', 'rctls'])).exitCode).toBe(0)
    expect(await tpObjectsOn(remote)).toEqual([])
    expect((await tpObjectsOn(docker)).filter((o) => o.includes('rctls'))).toEqual([])
  })

  it("--docker behind ssh: the daemon in a container uses the user's ~/.ssh; --docker-build builds the handler here and it answers the remote client", async () => {
    const ssh = {PATH: machine.ssh.env.PATH, HOME: machine.ssh.home}
    const connected = await tp(['connect', '--docker', '--cluster', machine.ssh.url, '--namespace', NS, '--name', 'rcssh'], ssh)
    expect(connected.exitCode, connected.stderr).toBe(0)
    const context = await mkdtemp(join(tmpdir(), 'tpt-remote-build-'))
    try {
      const port = 32_000 + (process.pid % 5000)
      await writeFile(
        join(context, 'Dockerfile'),
        [`FROM ${localBusybox}`, 'RUN mkdir -p /www && echo built here > /www/index.html', `CMD ["httpd", "-f", "-p", "${port}", "-h", "/www"]`, ''].join('\n'),
      )
      const run = startTp(['intercept', 'web', '--use', 'rcssh', '--port', String(port), '--mount=false', '--docker-build', context, '--', '--rm', 'IMAGE'], {
        env: {...env, ...ssh},
      })
      await run.active
      await eventually(
        'the client in the remote namespace reaches the built handler through ssh',
        () => fromRemoteClient('http://web/'),
        (r) => r === 'built here',
        20_000,
      )
      run.child.kill('SIGINT')
      expect((await run.child).exitCode, run.output()).toBe(0)
    } finally {
      await rm(context, {recursive: true, force: true})
    }
    expect(await fromRemoteClient('http://web/')).toBe('the remote web')
    expect((await tp(['quit', '--name', 'rcssh'], ssh)).exitCode).toBe(0)
    expect(await tpObjectsOn(remote)).toEqual([])
    expect((await tpObjectsOn(docker)).filter((o) => o.includes('rcssh'))).toEqual([])
  })
  it('a restart of the remote engine: tp intercept says the link broke and exits 1, web serves itself once its engine is back, nothing of tp is left there', async () => {
    const connected = await tp(['connect', '--cluster', 'tpt-remote', '--namespace', NS, '--name', 'rtls'])
    expect(connected.exitCode, connected.stderr).toBe(0)
    const port = 33_000 + (process.pid % 5000)
    const run = interceptWeb('rtls', port, {mount: false})
    await run.active
    await handlerAnswers()
    await machine.restartEngine({
      // while the engine is down, the link is gone: the intercept ends and says so
      whileDown: async () => {
        const ended = await run.child
        expect(ended.exitCode).toBe(1)
        expect(run.output()).toMatch(/link to the cluster's engine .* broke/)
      },
    })
    const back = Date.now()
    await webAnswersItself(15_000)
    expect(Date.now() - back).toBeLessThan(10_000 + 3_000) // one client run takes a moment of its own
    await nothingOfTpThere()
    await eventually(
      'the daemon here has ended',
      async () => (await tp(['status'])).stdout,
      (out) => /DAEMON DIED|Not connected/.test(out),
      30_000,
    )
    expect((await tpObjectsOn(docker)).filter((o) => o.includes('rtls'))).toEqual([])
    expect(await listening()).toEqual(listeningBefore)
  })
})
