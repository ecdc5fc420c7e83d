/**
 * A cluster on another machine (issue 22): a second machine made once for the whole run (a network
 * namespace with its own dockerd, TLS Engine API and sshd: test/helpers/remote-machine.ts, built here
 * with esbuild), reached as a Docker context over TLS (and over ssh), each figure against a baseline
 * measured in the same run:
 *  - `tp connect` the first time (tp's runtime image made on the remote) against shipping the same
 *    image with `docker save | docker --context … load` and running it; warm, against
 *    `docker --context … run --rm` of that image (and `docker version`) through the same transport;
 *  - `tp intercept` → first reply seen by a client in the remote namespace, against the same on the
 *    local engine (a host daemon, the same handler);
 *  - requests/s and p50/p99 from a client in the remote namespace through a remote intercept to a
 *    handler on this host, against the same client through an `ssh -R` forward to the same handler
 *    over the same veth (one encrypted connection carrying every request, opened from this side:
 *    what a user without tp would set up when the remote may not connect back).
 * Every client is bench/remote-client.mjs, run in the namespace (`nsenter --net`) or here.
 */
import {spawn} from 'node:child_process'
import {randomBytes} from 'node:crypto'
import {mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync} from 'node:fs'
import {loadavg, tmpdir} from 'node:os'
import {join} from 'node:path'
import {createInterface} from 'node:readline'
import Docker from 'dockerode'
import {ensureFixtureImages, ensureImportedImage, ensureRuntimeImage, STATIC_BUSYBOX} from '@tp/images'
import {benchTp, median, startStaticServer, staticServerCmd} from './run.mjs'
import {loadTestFixture} from './test-fixture.mjs'

export const name = 'remote'
export const description = 'a cluster on another machine (TLS context, ssh): connect, intercept → first reply, requests/s vs ssh -R'

const RUNS = Number(process.env.TP_BENCH_RUNS ?? 5)
const FIRST_RUNS = Number(process.env.TP_BENCH_REMOTE_FIRST_RUNS ?? 3)
const LOAD_SECONDS = Number(process.env.TP_BENCH_LOAD_SECONDS ?? 4)
const LOAD_ROUNDS = Number(process.env.TP_BENCH_REMOTE_ROUNDS ?? 3)
const SSH = process.env.TP_BENCH_REMOTE_SSH !== '0'
const CONCURRENCY = Number(process.env.TP_BENCH_REMOTE_CONCURRENCY ?? 8)
/** Which parts run (profiling one of them): connect, intercept, load; default all. */
const PARTS = (process.env.TP_BENCH_REMOTE_PARTS ?? 'connect,intercept,load').split(',')
/** The whole benchmark's bound (machine included); a step that starts after it fails the run. */
const BUDGET_MS = Number(process.env.TP_BENCH_REMOTE_BUDGET_S ?? 900) * 1000
/** Machine names (and the namespace) start with this; the tests use other prefixes. */
const PREFIX = 'tpbr-'
const NS = 'tpbr-ns'
const LOCAL_NS = 'tpbr-local'
const CONTEXT = 'tpbr-tls'
const HANDLER_PORT = 28_000 + (process.pid % 1000)
const FORWARD_PORT = 29_000 + (process.pid % 1000)
/** The remote engine's busybox (there is no registry): made from this host's busybox. */
const REMOTE_BUSYBOX = {
  repo: 'tpbr-busybox',
  tag: '1',
  spec: {busybox: STATIC_BUSYBOX, dirs: ['/www']},
  changes: ['ENV PATH=/bin'],
  what: 'bench fixture',
}

/** bench/remote-client.mjs started with `prefix` (e.g. nsenter into the namespace): `ask(request)` resolves with its answer. */
function startClient(root, prefix = []) {
  const argv = [...prefix, process.execPath, join(root, 'bench', 'remote-client.mjs')]
  const child = spawn(argv[0], argv.slice(1), {stdio: ['pipe', 'pipe', 'inherit']})
  const waiting = new Map()
  let next = 0
  createInterface({input: child.stdout}).on('line', (line) => {
    const answer = JSON.parse(line)
    const waiter = waiting.get(answer.id)
    waiting.delete(answer.id)
    if (answer.error) waiter?.reject(new Error(answer.error))
    else waiter?.resolve(answer.result)
  })
  child.on('exit', (code, signal) => {
    for (const waiter of waiting.values()) waiter.reject(new Error(`the client ${argv.join(' ')} ended (${signal ?? code})`))
    waiting.clear()
  })
  return {
    ask(request) {
      const id = ++next
      return new Promise((resolve, reject) => {
        waiting.set(id, {resolve, reject})
        child.stdin.write(`${JSON.stringify({id, ...request})}\n`)
      })
    },
    stop() {
      child.stdin.end()
      child.kill()
    },
  }
}

/** Runs a command to its end within `timeoutMs` (killed after it); resolves with its exit code and stderr. */
function runCommand(argv, {env = process.env, timeoutMs = 120_000} = {}) {
  return new Promise((resolve) => {
    const child = spawn(argv[0], argv.slice(1), {env, stdio: ['ignore', 'ignore', 'pipe']})
    let stderr = ''
    child.stderr.on('data', (chunk) => (stderr += chunk))
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
    child.on('error', (error) => {
      clearTimeout(timer)
      resolve({code: -1, stderr: error.message})
    })
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      resolve({code: code ?? -1, stderr: signal ? `${stderr}\n(killed by ${signal})` : stderr})
    })
  })
}

async function mustRun(argv, options) {
  const {code, stderr} = await runCommand(argv, options)
  if (code !== 0) throw new Error(`${argv.join(' ')} exited ${code}: ${stderr.trim().split('\n').slice(-3).join(' / ')}`)
}

/** Seconds taken by `action`. */
async function timed(action) {
  const started = performance.now()
  await action()
  return (performance.now() - started) / 1000
}

/**
 * CPU ticks (user + system) of this benchmark's processes, by pid, with a name (the script a node
 * runs, else the command): those whose command line or environment holds one of `markers` (the
 * machine's name, the tp cache directory, the client), those in the network namespace `netns`
 * (`net:[inode]`: its sshd's sessions), and those in one of the remote engine's containers
 * (`containerIds`, from their cgroup). Other engineers' processes on the machine are left out.
 */
function cpuSnapshot(markers, netns, containerIds) {
  const snapshot = new Map()
  const read = (pid, file) => readFileSync(`/proc/${pid}/${file}`, 'utf8')
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue
    try {
      const cmdline = read(pid, 'cmdline').split('\0').filter(Boolean)
      const text = cmdline.join(' ')
      const mine =
        markers.some((marker) => text.includes(marker)) ||
        readlinkSync(`/proc/${pid}/ns/net`) === netns ||
        markers.some((marker) => read(pid, 'environ').includes(marker)) ||
        containerIds.some((id) => read(pid, 'cgroup').includes(id))
      if (!mine) continue
      const stat = read(pid, 'stat')
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      const what =
        cmdline
          .find((arg) => /\.(c?js|mjs)$/.test(arg))
          ?.split('/')
          .pop() ?? stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'))
      snapshot.set(pid, {what, ticks: Number(fields[11]) + Number(fields[12])})
    } catch {
      // gone meanwhile
    }
  }
  return snapshot
}

/** The CPU each process (summed by name) used between two snapshots, in ms per request, most first. */
function cpuBetween(before, after, requests) {
  const byName = new Map()
  for (const [pid, {what, ticks}] of after) {
    const used = ticks - (before.get(pid)?.ticks ?? 0)
    if (used > 0) byName.set(what, (byName.get(what) ?? 0) + used)
  }
  const ms = (ticks) => ((ticks * 10) / requests).toFixed(2)
  const total = [...byName.values()].reduce((sum, ticks) => sum + ticks, 0)
  return `${ms(total)} in all: ${[...byName]
    .sort((a, b) => b[1] - a[1])
    .map(([what, ticks]) => `${what} ${ms(ticks)}`)
    .join(', ')}`
}

const round = (value, digits = 2) => Number(value.toFixed(digits))
const spread = (values, digits = 2) => `${Math.min(...values).toFixed(digits)}–${Math.max(...values).toFixed(digits)}`
const loadAverage = () =>
  loadavg()
    .map((l) => l.toFixed(1))
    .join(' ')

export async function run({log, root}) {
  const deadline = Date.now() + BUDGET_MS
  const step = (what) => {
    if (Date.now() > deadline) throw new Error(`the benchmark's ${BUDGET_MS / 1000} s ran out before: ${what}`)
    log(what)
  }
  const {startRemoteMachine, sweepStaleRemoteMachines} = await loadTestFixture(root, 'remote-machine')
  const swept = await sweepStaleRemoteMachines(PREFIX)
  if (swept.length > 0) log(`removed what an earlier run left: ${swept.join(', ')}`)
  const docker = new Docker()
  const runtime = (await ensureRuntimeImage(docker)).ref
  const {busybox: localBusybox} = await ensureFixtureImages(docker)

  const dockerConfig = mkdtempSync(join(tmpdir(), 'tpbr-docker-config-'))
  const cliEnv = {...process.env, DOCKER_CONFIG: dockerConfig}
  const {cacheDir, tp, exited, remove} = benchTp(root, 'remote', {env: {DOCKER_CONFIG: dockerConfig}})
  const connections = new Set()
  const intercepts = new Set()
  const processes = []
  const clients = []
  const localContainers = []
  let localNetwork
  let machine
  /** `tp …` to its end; throws with its stderr on a non-zero exit. */
  const must = async (args, extraEnv = {}) => {
    const child = tp(args, extraEnv)
    let stderr = ''
    child.stderr.on('data', (chunk) => (stderr += chunk))
    const timer = setTimeout(() => child.kill('SIGKILL'), 180_000)
    const code = await exited(child)
    clearTimeout(timer)
    if (code !== 0) throw new Error(`tp ${args.join(' ')} exited ${code}: ${stderr.trim().split('\n').slice(-3).join(' / ')}`)
  }
  const connect = async (connection, args, extraEnv = {}) => {
    connections.add(connection)
    await must(['connect', ...args, '--name', connection], extraEnv)
  }
  const quit = (connection, extraEnv = {}) => must(['quit', '--name', connection], extraEnv)
  /** `tp intercept` with the handler already listening on HANDLER_PORT here; `stop()` ends it (SIGINT). */
  const intercept = (connection, workload, extraEnv = {}) => {
    const child = tp(['intercept', '--use', connection, workload, '--port', String(HANDLER_PORT), '--mount=false'], extraEnv)
    let stderr = ''
    child.stderr.on('data', (chunk) => (stderr += chunk))
    const handle = {
      child,
      output: () => stderr,
      async stop() {
        intercepts.delete(handle)
        child.kill('SIGINT')
        const timer = setTimeout(() => child.kill('SIGKILL'), 30_000)
        await exited(child)
        clearTimeout(timer)
      },
    }
    intercepts.add(handle)
    return handle
  }

  try {
    step('starting the second machine (network namespace, dockerd, TLS API, sshd)')
    machine = await startRemoteMachine(`${PREFIX}${randomBytes(3).toString('hex')}`, {timeoutMs: 90_000})
    const sshEnv = {PATH: machine.ssh.env.PATH}
    const remote = new Docker({socketPath: machine.socket})
    const remoteBusybox = (await ensureImportedImage(remote, REMOTE_BUSYBOX)).ref
    await machine.docker(['network', 'create', NS])
    await machine.docker(['run', '-d', '--name', 'web', '--network', NS, '--expose', '80', remoteBusybox, ...staticServerCmd(80, 'workload')])
    const webIp = (await remote.getContainer('web').inspect()).NetworkSettings.Networks[NS].IPAddress
    await mustRun(
      ['docker', 'context', 'create', CONTEXT, '--docker', `host=${machine.tls.host},ca=${machine.tls.ca},cert=${machine.tls.cert},key=${machine.tls.key}`],
      {env: cliEnv},
    )

    // the local engine's twin of the set-up, for the intercept → first reply baseline
    await docker
      .getNetwork(LOCAL_NS)
      .remove()
      .catch(() => undefined)
    localNetwork = await docker.createNetwork({Name: LOCAL_NS, Labels: {'tp.fixture': 'true'}})
    const {container: localWeb, ip: localWebIp} = await startStaticServer(docker, {
      name: 'tpbr-local-web',
      image: localBusybox,
      port: 80,
      marker: 'workload',
      network: LOCAL_NS,
    })
    localContainers.push(localWeb)

    // the handler: busybox httpd on this host, for every path measured
    const www = join(cacheDir, 'www')
    mkdirSync(www)
    writeFileSync(join(www, 'index.html'), 'handler\n')
    const handler = spawn('busybox', ['httpd', '-f', '-p', String(HANDLER_PORT), '-h', www], {stdio: 'ignore'})
    processes.push(handler)

    const there = startClient(root, ['nsenter', `--net=/var/run/netns/${machine.name}`])
    const here = startClient(root)
    clients.push(there, here)
    await there.ask({op: 'first', host: webIp, port: 80, marker: 'workload'})
    await here.ask({op: 'first', host: localWebIp, port: 80, marker: 'workload'})
    await here.ask({op: 'first', host: '127.0.0.1', port: HANDLER_PORT, marker: 'handler'})

    // -- tp connect: first (the runtime image made on the remote) and warm ------------------------
    const first = {tp: [], baseline: []}
    for (let i = 0; PARTS.includes('connect') && i < FIRST_RUNS; i++) {
      step(`first tp connect over TLS ${i + 1}/${FIRST_RUNS}`)
      await machine.docker(['rmi', '-f', runtime], {reject: false})
      first.tp.push(await timed(() => connect('rb-tls', ['--cluster', CONTEXT, '--namespace', NS])))
      await quit('rb-tls')
      await machine.docker(['rmi', '-f', runtime], {reject: false})
      first.baseline.push(
        await timed(async () => {
          await mustRun(['sh', '-c', `docker save ${runtime} | docker --context ${CONTEXT} load -q`], {env: cliEnv})
          await mustRun(['docker', '--context', CONTEXT, 'run', '--rm', '--network', NS, runtime, 'true'], {env: cliEnv})
        }),
      )
    }
    // the image is there now (loaded by the baseline, its inputs label with it): one connect unmeasured
    await connect('rb-tls', ['--cluster', CONTEXT, '--namespace', NS])
    await quit('rb-tls')
    const warm = {tp: [], run: [], version: [], sshTp: [], sshRun: []}
    for (let i = 0; PARTS.includes('connect') && i < RUNS; i++) {
      step(`warm tp connect ${i + 1}/${RUNS}`)
      warm.tp.push(await timed(() => connect('rb-tls', ['--cluster', CONTEXT, '--namespace', NS])))
      await quit('rb-tls')
      warm.run.push(await timed(() => mustRun(['docker', '--context', CONTEXT, 'run', '--rm', '--network', NS, runtime, 'true'], {env: cliEnv})))
      warm.version.push(await timed(() => mustRun(['docker', '--context', CONTEXT, 'version'], {env: cliEnv})))
      if (SSH) {
        warm.sshTp.push(await timed(() => connect('rb-ssh', ['--cluster', machine.ssh.url, '--namespace', NS], sshEnv)))
        await quit('rb-ssh', sshEnv)
        warm.sshRun.push(
          await timed(() => mustRun(['docker', '-H', machine.ssh.url, 'run', '--rm', '--network', NS, runtime, 'true'], {env: {...cliEnv, ...sshEnv}})),
        )
      }
    }

    // -- tp intercept → first reply: remote vs local engine ------------------------------------
    await connect('rb-tls', ['--cluster', CONTEXT, '--namespace', NS])
    await connect('rb-local', ['--namespace', LOCAL_NS])
    const firstReply = {remote: [], local: []}
    for (let i = 0; PARTS.includes('intercept') && i < RUNS; i++) {
      step(`tp intercept → first reply ${i + 1}/${RUNS}`)
      for (const [kind, connection, workload, client, ip] of [
        ['remote', 'rb-tls', 'web', there, webIp],
        ['local', 'rb-local', 'tpbr-local-web', here, localWebIp],
      ]) {
        const session = intercept(connection, workload)
        const answered = client.ask({op: 'first', host: ip, port: 80, marker: 'handler'})
        firstReply[kind].push((await answered.catch((error) => Promise.reject(new Error(`${error.message}; tp intercept: ${session.output()}`)))).seconds)
        await session.stop()
        await client.ask({op: 'first', host: ip, port: 80, marker: 'workload'})
      }
    }

    // -- requests/s: through the remote intercept vs an ssh -R forward to the same handler ------
    step('ssh -R forward from the namespace to the handler here')
    const forward = spawn(
      '/usr/bin/ssh',
      ['-F', machine.ssh.config, '-N', '-o', 'ExitOnForwardFailure=yes', '-R', `127.0.0.1:${FORWARD_PORT}:127.0.0.1:${HANDLER_PORT}`, machine.name],
      {stdio: 'ignore'},
    )
    processes.push(forward)
    await there.ask({op: 'first', host: '127.0.0.1', port: FORWARD_PORT, marker: 'handler'})
    const loadOf = async (client, host, port, marker) => {
      const profile = process.env.TP_BENCH_REMOTE_CPU === '1'
      const markers = [machine.name, cacheDir, 'remote-client.mjs']
      const containerIds = profile ? (await remote.listContainers()).map((c) => c.Id) : []
      const netns = `net:[${statSync(`/var/run/netns/${machine.name}`).ino}]`
      const before = profile ? cpuSnapshot(markers, netns, containerIds) : undefined
      const result = await client.ask({op: 'load', host, port, seconds: LOAD_SECONDS, concurrency: CONCURRENCY, marker})
      if (before)
        log(
          `${host}:${port}: ${Math.round(result.rps)} req/s; CPU ms per request: ${cpuBetween(before, cpuSnapshot(markers, netns, containerIds), result.rps * LOAD_SECONDS)}`,
        )
      return result
    }
    const loads = {tls: [], ssh: [], forward: [], direct: []}
    const loadThrough = async (kind, connection, extraEnv = {}) => {
      const session = intercept(connection, 'web', extraEnv)
      await there.ask({op: 'first', host: webIp, port: 80, marker: 'handler'})
      try {
        for (let r = 0; r < LOAD_ROUNDS; r++) {
          step(`load through the ${kind} intercept and through ssh -R, round ${r + 1}/${LOAD_ROUNDS}`)
          loads[kind].push(await loadOf(there, webIp, 80, 'handler'))
          loads.forward.push(await loadOf(there, '127.0.0.1', FORWARD_PORT, 'handler'))
        }
      } finally {
        await session.stop()
      }
    }
    const loadBefore = loadAverage()
    if (PARTS.includes('load')) await loadThrough('tls', 'rb-tls')
    await there.ask({op: 'first', host: webIp, port: 80, marker: 'workload'})
    loads.direct.push(await loadOf(there, webIp, 80, 'workload'))
    if (SSH && PARTS.includes('load')) {
      await connect('rb-ssh', ['--cluster', machine.ssh.url, '--namespace', NS], sshEnv)
      await loadThrough('ssh', 'rb-ssh', sshEnv)
    }
    const loadAfter = loadAverage()

    // -- rows -------------------------------------------------------------------------------------
    const rps = (list) => list.map((l) => l.rps)
    const p = (list, key) => list.map((l) => l[key])
    const failed = (list) => list.reduce((sum, l) => sum + l.failed, 0)
    const forwardRps = median(rps(loads.forward))
    const loadNote = `${CONCURRENCY} clients in the remote namespace (node, a new connection per request), ${LOAD_SECONDS} s × ${LOAD_ROUNDS} rounds alternating with the baseline; median (min–max)`
    const baselineNote = `baseline: the same client through an ssh -R forward (opened from this host over the same veth, one ssh connection carrying every request) to the same handler, busybox httpd here, ${Math.round(forwardRps)} req/s (${spread(rps(loads.forward), 0)})`
    const rows = []
    const loadRows = (kind, label) => {
      const list = loads[kind]
      if (list.length === 0) return
      rows.push({
        metric: `remote (${label}): requests/s through an intercept, client there → handler here`,
        tp: Math.round(median(rps(list))),
        baseline: Math.round(forwardRps),
        unit: 'req/s',
        note: `${loadNote}: ${spread(rps(list), 0)}; ${baselineNote}; failed ${failed(list)} vs ${failed(loads.forward)}; the workload answering itself: ${Math.round(loads.direct[0].rps)} req/s; load average ${loadBefore} → ${loadAfter}`,
      })
      for (const key of ['p50', 'p99'])
        rows.push({
          metric: `remote (${label}): ${key} latency through an intercept`,
          tp: round(median(p(list, key))),
          baseline: round(median(p(loads.forward, key))),
          unit: 'ms',
          note: `same load; median of the rounds' ${key} (${spread(p(list, key))} ms), baseline through ssh -R (${spread(p(loads.forward, key))} ms); the workload itself: ${loads.direct[0][key].toFixed(2)} ms`,
        })
    }
    loadRows('tls', 'TLS context')
    loadRows('ssh', 'ssh')
    if (PARTS.includes('intercept'))
      rows.push({
        metric: 'remote (TLS context): tp intercept → first reply (handler already listening here)',
        tp: round(median(firstReply.remote)),
        baseline: round(median(firstReply.local)),
        unit: 's',
        note: `median of ${RUNS} (${spread(firstReply.remote)} s), seen by a client in the remote namespace polling every 10 ms; baseline: the same on the local engine (host daemon, same handler, client here: ${spread(firstReply.local)} s)`,
      })
    if (PARTS.includes('connect'))
      rows.push({
        metric: 'remote (TLS context): first tp connect (runtime image made on the remote)',
        tp: round(median(first.tp)),
        baseline: round(median(first.baseline)),
        unit: 's',
        note: `median of ${FIRST_RUNS} (${spread(first.tp)} s), the image removed there before each; baseline: docker save of the same image here | docker --context load there, then docker --context run --rm of it (${spread(first.baseline)} s)`,
      })
    if (PARTS.includes('connect'))
      rows.push({
        metric: 'remote (TLS context): warm tp connect (image already there)',
        tp: round(median(warm.tp)),
        baseline: round(median(warm.run)),
        unit: 's',
        note: `median of ${RUNS} (${spread(warm.tp)} s), a new daemon and relay each time; baseline: docker --context run --rm of the runtime image on the same network (${spread(warm.run)} s); docker --context version: ${median(warm.version).toFixed(2)} s`,
      })
    if (SSH && PARTS.includes('connect'))
      rows.push({
        metric: 'remote (ssh): warm tp connect (image already there)',
        tp: round(median(warm.sshTp)),
        baseline: round(median(warm.sshRun)),
        unit: 's',
        note: `median of ${RUNS} (${spread(warm.sshTp)} s); baseline: docker -H ssh://… run --rm of the runtime image (${spread(warm.sshRun)} s)`,
      })
    return rows
  } finally {
    for (const session of [...intercepts]) await session.stop().catch(() => undefined)
    for (const client of clients) client.stop()
    for (const child of processes) child.kill()
    for (const connection of connections)
      await runCommand([process.execPath, join(root, 'packages/cli/bin/run.js'), 'quit', '--name', connection], {
        env: {...process.env, DOCKER_CONFIG: dockerConfig, TP_CACHE_DIR: cacheDir, ...(machine ? {PATH: machine.ssh.env.PATH} : {})},
        timeoutMs: 60_000,
      })
    for (const container of localContainers) await container.remove({force: true}).catch(() => undefined)
    await localNetwork?.remove().catch(() => undefined)
    await machine?.stop().catch((error) => log(`removing the second machine: ${error.message}`))
    rmSync(dockerConfig, {recursive: true, force: true})
    remove()
  }
}
