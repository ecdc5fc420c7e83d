/**
 * A Docker Swarm (issue 23): the three-node swarm of the tests (test/helpers/swarm-machine.ts,
 * bundled with esbuild), a stack whose `web` runs two replicas, one on each worker; tp connected
 * to the manager's socket as a cluster on another engine (everything through its relay). Each figure
 * against a baseline measured in the same run:
 *  - requests/s and p50/p99 from a client on the stack's network (a container on the manager)
 *    through the intercepted service to a handler on this host, against the same client straight
 *    to the two tasks (busybox httpd there, one connection per request in both);
 *  - `tp intercept` → every replica answered by the handler, against what a change costs without
 *    tp: `docker service update --force` of web until both new tasks answer;
 *  - a rescheduled task (`docker service update --force` during the intercept) → both new tasks
 *    answered by the handler, against the same update without an intercept (until they answer).
 */
import {mkdtempSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import Docker from 'dockerode'
import {ensureImportedImage, STATIC_BUSYBOX} from '@tp/images'
import {benchTp} from './run.mjs'
import {loadTestFixture} from './test-fixture.mjs'

export const name = 'swarm'
export const description = 'a swarm (3 nodes, a 2-replica service): requests/s and p99 through an intercept vs the tasks, intercept and re-intercept times'

const SWARM = 'tpbs'
const STACK = 'bench'
const LOAD_SECONDS = Number(process.env.TP_BENCH_LOAD_SECONDS ?? 4)
const CONCURRENCY = Number(process.env.TP_BENCH_SWARM_CONCURRENCY ?? 8)
const HANDLER_PORT = 27_000 + (process.pid % 1000)

/** The client, run by node in a container on the stack's network: `ask` (each target once) or `load`. */
const CLIENT = `
const http = require('node:http')
const dns = require('node:dns')
const [mode, seconds, concurrency] = process.argv.slice(1)
const get = (host) => new Promise((resolve) => {
  const started = process.hrtime.bigint()
  const req = http.get({host, port: 80, path: '/', agent: false, timeout: 3000}, (res) => {
    let body = ''
    res.on('data', (c) => (body += c))
    res.on('end', () => resolve({body: body.trim(), ms: Number(process.hrtime.bigint() - started) / 1e6}))
  })
  req.on('timeout', () => req.destroy(new Error('timeout')))
  req.on('error', (e) => resolve({error: e.code || e.message}))
})
dns.lookup('tasks.web', {all: true, family: 4}, async (error, found) => {
  const targets = error ? [] : found.map((a) => a.address).sort()
  if (mode === 'ask') {
    const answers = await Promise.all(targets.map(get))
    console.log(JSON.stringify({targets, bodies: answers.map((a) => a.body ?? a.error)}))
    return
  }
  const until = Date.now() + Number(seconds) * 1000
  const times = []
  let errors = 0
  let n = 0
  await Promise.all(Array.from({length: Number(concurrency)}, async () => {
    while (Date.now() < until) {
      const answer = await get(targets[n++ % targets.length])
      if (answer.error) errors++
      else times.push(answer.ms)
    }
  }))
  times.sort((a, b) => a - b)
  const at = (q) => times[Math.min(times.length - 1, Math.floor(q * times.length))]
  console.log(JSON.stringify({requests: times.length, errors, rps: times.length / Number(seconds), p50: at(0.5), p99: at(0.99)}))
})
`

const COMPOSE = (image) => `
version: "3.8"
services:
  web:
    image: ${image}
    command: ["sh", "-c", "echo web > /www/index.html && exec httpd -f -p 80 -h /www"]
    deploy:
      replicas: 2
      endpoint_mode: dnsrr
      placement:
        max_replicas_per_node: 1
        constraints: [node.role == worker]
networks:
  default:
    attachable: true
`

const round = (value, digits = 2) => Number(value.toFixed(digits))

export async function run({log, root}) {
  const {startSwarm, sweepStaleSwarms} = await loadTestFixture(root, 'swarm-machine')
  await sweepStaleSwarms(SWARM)
  log('starting a three-node swarm')
  const swarm = await startSwarm(SWARM)
  const dockerConfig = mkdtempSync(join(tmpdir(), 'tp-bench-swarm-docker-'))
  const bench = benchTp(root, 'swarm', {env: {DOCKER_CONFIG: dockerConfig, TP_REGISTRY: swarm.registry}})
  const cluster = `unix://${swarm.manager.socket}`
  const tp = (args) => bench.tp(args)
  const tpDone = async (args) => {
    const child = tp(args)
    let stderr = ''
    child.stderr.on('data', (c) => (stderr += c))
    const code = await bench.exited(child)
    if (code !== 0) throw new Error(`tp ${args.join(' ')} exited ${code}: ${stderr.trim().split('\n').slice(-3).join(' / ')}`)
  }
  let intercept
  try {
    // the nodes' engines listen on sockets of their own: tp's launchers find them by this node label
    for (const node of swarm.nodes) await swarm.manager.docker(['node', 'update', '--label-add', `tp.docker-socket=${node.machine.socket}`, node.id])
    const manager = new Docker({socketPath: swarm.manager.socket})
    const busybox = await ensureImportedImage(manager, {
      repo: 'tpbs-busybox',
      tag: '1',
      spec: {busybox: STATIC_BUSYBOX, dirs: ['/www']},
      changes: ['ENV PATH=/bin', 'EXPOSE 80'],
      what: 'bench fixture',
    })
    await swarm.deployStack(STACK, COMPOSE(await swarm.push(busybox.ref, 'tpbs-busybox:1')))
    await swarm.waitForStack(STACK, 90_000)
    log('tp connect (the manager as a cluster on another engine)')
    await tpDone(['connect', '--cluster', cluster, '--name', 'bs'])
    // the client: node (tp's runtime image, on the manager now) in a container on the stack's network
    const image = (await swarm.manager.docker(['inspect', '--format', '{{.Config.Image}}', 'tp-bs-relay'])).stdout.trim()
    await swarm.manager.docker([
      'run',
      '-d',
      '--name',
      'tpbs-client',
      '--label',
      'tp.fixture=true',
      '--network',
      `${STACK}_default`,
      image,
      'node',
      '-e',
      'setInterval(() => {}, 1e9)',
    ])
    const client = async (...args) =>
      JSON.parse((await swarm.manager.docker(['exec', 'tpbs-client', 'node', '-e', CLIENT, ...args], {timeoutMs: 60_000})).stdout.trim())
    const ask = () => client('ask')
    const until = async (what, ok, timeoutMs = 120_000) => {
      const started = performance.now()
      for (;;) {
        const answer = await ask().catch(() => undefined)
        if (answer && ok(answer)) return (performance.now() - started) / 1000
        if (performance.now() - started > timeoutMs) throw new Error(`${what}: not after ${timeoutMs / 1000} s (${JSON.stringify(answer)})`)
        await new Promise((r) => setTimeout(r, 100))
      }
    }
    const all = (body) => (a) => a.targets.length === 2 && a.bodies.every((b) => b === body)

    log('without tp: requests to the tasks, and a redeploy of web')
    const direct = await client('load', String(LOAD_SECONDS), String(CONCURRENCY))
    const redeploy = async (body) => {
      const before = (await ask()).targets
      const started = performance.now()
      await swarm.manager.docker(['service', 'update', '--force', '--detach', `${STACK}_web`])
      await until('new tasks of web', (a) => a.targets.length === 2 && a.targets.every((t) => !before.includes(t)))
      const replaced = performance.now()
      await until(`the new tasks answer ${body}`, all(body))
      return {total: (performance.now() - started) / 1000, afterNew: (performance.now() - replaced) / 1000}
    }
    const plain = await redeploy('web')

    log('tp intercept web: every replica to a handler here')
    const started = performance.now()
    intercept = tp([
      'intercept',
      'web',
      '--use',
      'bs',
      '--port',
      String(HANDLER_PORT),
      '--mount=false',
      '--',
      process.execPath,
      '-e',
      `require('node:http').createServer((q, s) => s.end('handler\\n')).listen(${HANDLER_PORT})`,
    ])
    let said = ''
    intercept.stderr.on('data', (c) => (said = (said + c).slice(-2000)))
    intercept.on('exit', (code) => code && log(`tp intercept exited ${code}: ${said.trim()}`))
    await until('both replicas answered by the handler', all('handler'))
    const intercepted = (performance.now() - started) / 1000
    const through = await client('load', String(LOAD_SECONDS), String(CONCURRENCY))
    log('a redeploy during the intercept')
    const again = await redeploy('handler')
    const note = `${CONCURRENCY} at once for ${LOAD_SECONDS} s from a container on the stack's network (manager), a new connection each; tasks on 2 workers`
    return [
      {
        metric: 'requests/s through the intercepted service (2 replicas)',
        tp: round(through.rps, 0),
        baseline: round(direct.rps, 0),
        unit: 'req/s',
        note: `${note}; baseline: straight to the tasks (busybox httpd); errors ${through.errors} vs ${direct.errors}`,
      },
      {metric: 'p50 latency through the intercept', tp: round(through.p50), baseline: round(direct.p50), unit: 'ms', note: 'same runs'},
      {metric: 'p99 latency through the intercept', tp: round(through.p99), baseline: round(direct.p99), unit: 'ms', note: 'same runs'},
      {
        metric: 'tp intercept → every replica answered by the handler',
        tp: round(intercepted),
        baseline: round(plain.total),
        unit: 's',
        note: 'baseline: docker service update --force of web until both new tasks answer (a redeploy)',
      },
      {
        metric: 'a redeploy during the intercept → new tasks answered by the handler',
        tp: round(again.total),
        baseline: round(plain.total),
        unit: 's',
        note: `docker service update --force; after both new tasks ran: ${round(again.afterNew)} s with tp, ${round(plain.afterNew)} s without (daemon looks every 5 s)`,
      },
    ]
  } finally {
    if (intercept && intercept.exitCode === null) {
      intercept.kill('SIGINT')
      await bench.exited(intercept)
    }
    await bench.exited(tp(['quit', '--name', 'bs'])).catch(() => undefined)
    await swarm.manager.docker(['rm', '-f', 'tpbs-client'], {reject: false}).catch(() => undefined)
    await swarm.stop()
    bench.remove()
    rmSync(dockerConfig, {recursive: true, force: true})
  }
}
