/**
 * Scale figures (issue 15), one run each, on a network and a connection of this benchmark's own:
 *
 * - 20 intercepts of 20 workloads held at once on one connection: the time from `tp intercept` to
 *   the first intercepted reply of the 20th against the first's;
 * - 1,000 idle connections opened through an intercept, held, then one request on each: failed
 *   requests (against the same on the un-intercepted workload) and the agent's RSS (against the same
 *   agent before the connections);
 * - 64 concurrent clients through an intercept: requests/s against the same load direct;
 * - `tp list` with 200 workloads in the namespace against 2.
 *
 * The namespace holds 200 workloads when the intercepts run (20 static servers, 180 idle
 * containers with an exposed port), so whatever an intercept does per workload shows in its time.
 * Everything is removed on every path: the containers by this run's label, the connection by
 * `tp quit`, then the network.
 */
import {execFile} from 'node:child_process'
import {readFile} from 'node:fs/promises'
import {connect} from 'node:net'
import {join} from 'node:path'
import {promisify} from 'node:util'
import Docker from 'dockerode'
import {ensureFixtureImages, ensureRuntimeImage} from '@tp/images'
import {benchTp, firstReply, load, median} from './run.mjs'

export const name = 'scale'
export const description = '20 intercepts on one connection, 1,000 idle connections, 64 clients, tp list of 200 workloads'

const NETWORK = 'tpb-scale'
const CONNECTION = 'bench-scale'
const INTERCEPTS = 20
const WORKLOADS = 200
const IDLE_CONNECTIONS = Number(process.env.TP_BENCH_IDLE_CONNECTIONS ?? 1000)
const CLIENTS = 64
const LOAD_SECONDS = Number(process.env.TP_BENCH_LOAD_SECONDS ?? 4)
const LIST_RUNS = 3
const HANDLER_PORT = 8000
const LABELS = {'tp.fixture': 'true', 'tpb.area': 'scale'}
const docker = new Docker()
const execFileAsync = promisify(execFile)

/** Runs `work` on each item, at most `limit` at a time (Docker on 2 cores: a few creates at once). */
async function eachLimited(items, limit, work) {
  const queue = [...items]
  await Promise.all(
    Array.from({length: limit}, async () => {
      while (queue.length > 0) await work(queue.shift())
    }),
  )
}

/**
 * A node HTTP server answering `marker` (from tp's runtime image, which has node): a workload on
 * the namespace, or the handler in the daemon's namespace. Not busybox httpd, whose listen backlog
 * of 9 drops connections under 64 clients or 1,000 at once, on either path.
 */
async function startServer(image, {name, port, marker, network}) {
  const workload = !network.startsWith('container:')
  const server = `require('node:http').createServer((q, s) => s.end(${JSON.stringify(marker)})).listen(${port}, '0.0.0.0', 4096)`
  const container = await docker.createContainer({
    name,
    Image: image,
    Cmd: ['node', '-e', server],
    ...(workload ? {ExposedPorts: {[`${port}/tcp`]: {}}} : {}),
    Labels: LABELS,
    HostConfig: {NetworkMode: network},
  })
  await container.start()
  return workload ? (await container.inspect()).NetworkSettings.Networks[network].IPAddress : undefined
}

/** An idle workload: a container on the namespace with an exposed port, serving nothing (what `tp list` counts). */
async function startIdle(image, name) {
  const container = await docker.createContainer({
    name,
    Image: image,
    Cmd: ['sleep', '86400'],
    ExposedPorts: {'80/tcp': {}},
    Labels: LABELS,
    HostConfig: {NetworkMode: NETWORK},
  })
  await container.start()
}

/** Resident memory of a container's main process, in MB (read from /proc on this machine, the engine's host). */
async function rssMb(container) {
  const pid = (await docker.getContainer(container).inspect()).State.Pid
  const status = await readFile(`/proc/${pid}/status`, 'utf8')
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)[1]) / 1024
}

/**
 * Opens `count` connections to host:port, holds them idle for `holdMs`, then sends one GET on each
 * and reads its reply: how many failed (could not connect, or no 200 reply with `marker`).
 * `whileHeld` runs while they are all open and idle; its result is returned as `during`.
 */
async function idleConnections(host, port, {count, holdMs, marker, whileHeld = async () => undefined}) {
  const sockets = []
  let failed = 0
  const opened = await Promise.all(
    Array.from(
      {length: count},
      () =>
        new Promise((resolve) => {
          const socket = connect({host, port})
          const chunks = []
          socket.on('data', (c) => chunks.push(c))
          const reply = new Promise((done) => {
            socket.on('close', () => done(Buffer.concat(chunks).toString()))
            socket.on('error', () => undefined)
          })
          socket.once('connect', () => resolve({socket, reply}))
          socket.once('error', () => resolve(undefined))
        }),
    ),
  )
  for (const o of opened) if (o) sockets.push(o)
  failed += count - sockets.length
  await new Promise((r) => setTimeout(r, holdMs))
  const during = await whileHeld()
  const replies = await Promise.all(
    sockets.map(({socket, reply}) => {
      socket.write(`GET / HTTP/1.0\r\nHost: ${host}\r\n\r\n`)
      const timer = setTimeout(() => socket.destroy(), 10_000)
      return reply.finally(() => clearTimeout(timer))
    }),
  )
  failed += replies.filter((r) => !/^HTTP\/1\.[01] 200/.test(r) || !r.endsWith(marker)).length
  return {failed, during}
}

export async function run({log, root}) {
  const {busybox} = await ensureFixtureImages(docker)
  const runtime = (await ensureRuntimeImage(docker)).ref
  const {tp, exited, cacheDir, remove} = benchTp(root, 'scale')
  const env = {...process.env, TP_CACHE_DIR: cacheDir}
  const tpList = async () => {
    const started = performance.now()
    const {stdout} = await execFileAsync(process.execPath, [join(root, 'packages/cli/bin/run.js'), 'list', '--use', CONNECTION, '--json'], {
      env,
      maxBuffer: 16 * 1024 * 1024,
    })
    return {seconds: (performance.now() - started) / 1000, workloads: JSON.parse(stdout).length}
  }
  const held = []
  const rows = []
  try {
    await docker.createNetwork({Name: NETWORK, Driver: 'bridge', Labels: LABELS})
    const servers = []
    const startWorkload = async (i) => {
      const ip = await startServer(runtime, {name: `tpb-scale-w${i}`, port: 80, marker: `workload-${i}`, network: NETWORK})
      servers[i] = {name: `tpb-scale-w${i}`, ip}
    }
    await Promise.all([0, 1].map(startWorkload))
    log('connecting (container daemon)')
    if ((await exited(tp(['connect', '--docker', '--namespace', NETWORK, '--name', CONNECTION]))) !== 0) throw new Error('tp connect failed')

    // tp list: 2 workloads, then 200
    const listTimes = async (expected) => {
      const times = []
      for (let k = 0; k < LIST_RUNS; k++) {
        const {seconds, workloads} = await tpList()
        if (workloads !== expected) throw new Error(`tp list showed ${workloads} workloads, not ${expected}`)
        times.push(seconds)
      }
      return median(times)
    }
    log('tp list with 2 workloads')
    const listSmall = await listTimes(2)
    log(`starting ${WORKLOADS - 2} more workloads`)
    await eachLimited(
      Array.from({length: WORKLOADS - 2}, (_, k) => k + 2),
      4,
      (i) => (i < INTERCEPTS ? startWorkload(i) : startIdle(busybox, `tpb-scale-idle-${i}`)),
    )
    log(`tp list with ${WORKLOADS} workloads`)
    const listLarge = await listTimes(WORKLOADS)
    rows.push({
      metric: `tp list with ${WORKLOADS} workloads`,
      tp: listLarge,
      baseline: listSmall,
      unit: 's',
      note: `median of ${LIST_RUNS} wall times of \`tp list --json\` (CLI start included); baseline: the same with 2 workloads`,
    })

    // the handler of every intercept: one static server in the daemon's network namespace
    await startServer(runtime, {name: 'tpb-scale-handler', port: HANDLER_PORT, marker: 'handler', network: `container:tp-${CONNECTION}-cn`})

    // 20 intercepts held at once
    const times = []
    for (let i = 0; i < INTERCEPTS; i++) {
      await firstReply(servers[i].ip, 80, `workload-${i}`, performance.now())
      const started = performance.now()
      const child = tp(['intercept', '--use', CONNECTION, servers[i].name, '--port', String(HANDLER_PORT)])
      held.push(child)
      times.push(await firstReply(servers[i].ip, 80, 'handler', started))
      log(`intercept ${i + 1}/${INTERCEPTS}: ${times[i].toFixed(2)} s`)
    }
    rows.push({
      metric: `tp intercept → first reply, the ${INTERCEPTS}th held on one connection`,
      tp: times[INTERCEPTS - 1],
      baseline: times[0],
      unit: 's',
      note: `one run; baseline: the first intercept; ${WORKLOADS} workloads in the namespace; all ${INTERCEPTS} held; median of all ${median(times).toFixed(2)} s`,
    })

    // 64 clients, and 1,000 idle connections, through the first intercept (the others ended)
    log(`ending ${INTERCEPTS - 1} intercepts`)
    const ending = held.splice(1)
    for (const child of ending) child.kill('SIGINT')
    await Promise.all(ending.map(exited))
    const agent = `tp-${CONNECTION}-agent-${servers[0].name}`
    log(`${CLIENTS} clients through the intercept`)
    const through = await load(servers[0].ip, 80, {seconds: LOAD_SECONDS, concurrency: CLIENTS, marker: 'handler'})
    log(`${IDLE_CONNECTIONS} idle connections through the intercept`)
    const idleRss = await rssMb(agent)
    const idleThrough = await idleConnections(servers[0].ip, 80, {
      count: IDLE_CONNECTIONS,
      holdMs: 2000,
      marker: 'handler',
      whileHeld: () => rssMb(agent),
    })
    held[0].kill('SIGINT')
    await exited(held.splice(0)[0])
    await firstReply(servers[0].ip, 80, 'workload-0', performance.now())
    log(`${CLIENTS} clients and ${IDLE_CONNECTIONS} idle connections direct`)
    const direct = await load(servers[0].ip, 80, {seconds: LOAD_SECONDS, concurrency: CLIENTS, marker: 'workload-0'})
    const idleDirect = await idleConnections(servers[0].ip, 80, {count: IDLE_CONNECTIONS, holdMs: 2000, marker: 'workload-0'})
    rows.push({
      metric: `requests/s through the agent, ${CLIENTS} clients`,
      tp: Math.round(through.rps),
      baseline: Math.round(direct.rps),
      unit: 'req/s',
      note: `${LOAD_SECONDS}s each, a new connection per request; baseline: the un-intercepted workload; failed ${through.failed} through, ${direct.failed} direct; p99 ${through.p99?.toFixed(1)} vs ${direct.p99?.toFixed(1)} ms`,
    })
    rows.push({
      metric: `failed requests, ${IDLE_CONNECTIONS} idle connections through an intercept`,
      tp: idleThrough.failed,
      baseline: idleDirect.failed,
      unit: 'requests',
      ratio: null,
      note: `all opened, held 2 s, then one GET each; baseline: the same to the un-intercepted workload`,
    })
    rows.push({
      metric: `agent RSS holding ${IDLE_CONNECTIONS} idle connections`,
      tp: idleThrough.during,
      baseline: idleRss,
      unit: 'MB',
      note: 'VmRSS of the agent process; baseline: the same agent, intercept active, before the connections',
    })
    return rows
  } finally {
    for (const child of held) child.kill('SIGINT')
    await Promise.all(held.map(exited))
    await exited(tp(['quit', '--name', CONNECTION]))
    const leftovers = await docker.listContainers({all: true, filters: {label: ['tpb.area=scale']}})
    await eachLimited(leftovers, 4, (c) =>
      docker
        .getContainer(c.Id)
        .remove({force: true})
        .catch(() => undefined),
    )
    await docker
      .getNetwork(NETWORK)
      .remove()
      .catch((e) => log(`removing network ${NETWORK}: ${e.message}`))
    remove()
  }
}
