/**
 * A personal intercept's HTTP/1.1 path in the agent, its own cost without Docker or a loaded
 * machine in the figure: the agent's router (packages/agent's HttpRouter) in a process of its own
 * between 8 keep-alive Node clients and two Node servers (the handler, the workload), all on
 * loopback. The router's CPU time per request (process.cpuUsage) against the servers' own: what
 * the agent adds on a path, in the unit the servers spend.
 */
import {fork} from 'node:child_process'
import http from 'node:http'
import net from 'node:net'
import {fileURLToPath} from 'node:url'

export const name = 'agent-http1'
export const description = "a personal intercept's HTTP/1.1 router: its CPU per request against the servers' (loopback)"

const SECONDS = Number(process.env.TP_BENCH_LOAD_SECONDS ?? 4)
const CONCURRENCY = 8
const self = fileURLToPath(import.meta.url)

/** In a child: the router (argv: handler port, workload port) or the two servers; answers 'cpu' with its usage. */
async function child(role, args) {
  let port
  if (role === 'router') {
    const {HttpRouter, parseFilter} = await import('../packages/agent/dist/http-filter.js')
    const open = (p) =>
      new Promise((resolve, reject) => {
        const s = net.connect({host: '127.0.0.1', port: Number(p), allowHalfOpen: true, noDelay: true})
        s.once('connect', () => resolve(s))
        s.once('error', reject)
      })
    const router = new HttpRouter({
      filter: parseFilter('{"headers":{"X-Dev":"alice"}}'),
      openHandler: () => open(args[0]),
      openNext: () => open(args[1]),
      active: () => true,
      handlerRequest: () => () => undefined,
      closing: () => false,
      log: () => undefined,
    })
    const front = net.createServer({pauseOnConnect: true, allowHalfOpen: true}, (s) => router.take(s))
    await new Promise((resolve) => front.listen(0, '127.0.0.1', () => resolve(undefined)))
    port = [/** @type {net.AddressInfo} */ (front.address()).port]
  } else {
    const serve = (label) =>
      new Promise((resolve) => {
        const s = http.createServer({keepAliveTimeout: 60_000}, (q, res) => {
          q.resume()
          q.on('end', () => res.end(`${label}\n`))
        })
        s.listen(0, '127.0.0.1', () => resolve(/** @type {net.AddressInfo} */ (s.address()).port))
      })
    port = [await serve('handler'), await serve('workload')]
  }
  process.on('message', (m) => {
    if (m === 'cpu') process.send({cpu: process.cpuUsage()})
    else process.exit(0)
  })
  process.send({port})
}

function start(role, args = []) {
  const c = fork(self, ['--child', role, ...args.map(String)])
  const next = () => new Promise((resolve) => c.once('message', resolve))
  const cpu = async () => {
    const answer = next()
    c.send('cpu')
    return (await answer).cpu
  }
  return {c, next, cpu}
}

const micros = (a, b) => b.user - a.user + b.system - a.system

async function load(port, headers) {
  const agent = new http.Agent({keepAlive: true, maxSockets: CONCURRENCY})
  let n = 0
  const deadline = performance.now() + SECONDS * 1000
  await Promise.all(
    Array.from({length: CONCURRENCY}, async () => {
      while (performance.now() < deadline) {
        await new Promise((resolve, reject) => {
          http
            .request({host: '127.0.0.1', port, path: '/', agent, headers}, (r) => {
              r.resume()
              r.on('end', resolve)
            })
            .on('error', reject)
            .end()
        })
        n++
      }
    }),
  )
  agent.destroy()
  return n
}

export async function run({log}) {
  const servers = start('servers')
  const [handlerPort, workloadPort] = (await servers.next()).port
  const router = start('router', [handlerPort, workloadPort])
  const [port] = (await router.next()).port
  const rows = []
  try {
    for (const [label, headers] of [
      ['matching', {'x-dev': 'alice'}],
      ['not matching', {'x-dev': 'bob'}],
    ]) {
      log(`personal intercept, ${label}: ${SECONDS}s`)
      const r0 = await router.cpu()
      const s0 = await servers.cpu()
      const n = await load(port, headers)
      const r1 = await router.cpu()
      const s1 = await servers.cpu()
      rows.push({
        metric: `agent CPU per request, personal intercept, ${label} (HTTP/1.1 keep-alive)`,
        tp: Math.round(micros(r0, r1) / n),
        baseline: Math.round(micros(s0, s1) / n),
        unit: 'µs',
        note: `${CONCURRENCY} keep-alive clients on loopback, ${Math.round(n / SECONDS)} req/s; baseline: the Node server's own CPU per request`,
      })
    }
    return rows
  } finally {
    router.c.send('exit')
    servers.c.send('exit')
  }
}

if (process.argv[2] === '--child') await child(process.argv[3], process.argv.slice(4))
