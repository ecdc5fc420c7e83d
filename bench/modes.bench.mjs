/**
 * Issue 24's figures: a personal intercept's data path against a plain intercept's (requests that
 * match its header, and requests that do not, over HTTP/1.1 keep-alive and h2c), and what a
 * wiretap adds to a client's latency against no wiretap. The workloads and the handlers are the
 * same small Node servers (tp's runtime image), so every path measured serves alike.
 */
import http from 'node:http'
import http2 from 'node:http2'
import Docker from 'dockerode'
import {demoUp, ensureRuntimeImage} from '@tp/images'
import {benchTp, interceptSettled, load as loadPerConnection} from './run.mjs'

export const name = 'modes'
export const description = 'personal intercepts vs a plain intercept (HTTP/1.1 keep-alive, h2c); a wiretap vs none'

const SECONDS = Number(process.env.TP_BENCH_LOAD_SECONDS ?? 4)
const CONCURRENCY = 8
const NETWORK = 'tp-demo'
const CONNECTION = 'benchmodes'
const DAEMON = `tp-${CONNECTION}-cn`
const docker = new Docker()

/** One server of either protocol answering its name; the recorder also prints each request. */
const SERVER = `const [kind, name, port] = process.argv.slice(1)
const answer = (q, s) => { if (name === 'recorder') console.log(q.url); q.resume(); q.on('end', () => s.end(name + '\\n')) }
;(kind === 'h2' ? require('node:http2').createServer(answer) : require('node:http').createServer({keepAliveTimeout: 60000}, answer)).listen(Number(port))`

async function startServer(image, containerName, network, kind, label, port) {
  const workload = !network.startsWith('container:')
  const container = await docker.createContainer({
    name: containerName,
    Image: image,
    Cmd: ['node', '-e', SERVER, kind, label, String(port)],
    Labels: {'tp.fixture': 'true'},
    ...(workload ? {ExposedPorts: {[`${port}/tcp`]: {}}} : {}),
    HostConfig: {NetworkMode: network},
  })
  await container.start()
  const ip = workload ? (await container.inspect()).NetworkSettings.Networks[network].IPAddress : undefined
  return {container, ip}
}

function percentiles(latencies, seconds, failed) {
  latencies.sort((a, b) => a - b)
  return {rps: latencies.length / seconds, p99: latencies[Math.floor(latencies.length * 0.99)], failed}
}

/** `concurrency` clients, each on one keep-alive HTTP/1.1 connection, GET / with `headers`; every reply must hold `marker`. */
async function loadKeepAlive(host, port, headers, marker) {
  const agent = new http.Agent({keepAlive: true, maxSockets: CONCURRENCY})
  const latencies = []
  let failed = 0
  const deadline = performance.now() + SECONDS * 1000
  const once = () =>
    new Promise((resolve, reject) => {
      const req = http.request({host, port, path: '/', agent, headers, timeout: 2000}, (res) => {
        let body = ''
        res.setEncoding('utf8')
        res.on('data', (c) => (body += c))
        res.on('end', () => (body.includes(marker) ? resolve() : reject(new Error(`reply ${body}`))))
      })
      req.on('timeout', () => req.destroy(new Error('timeout')))
      req.on('error', reject)
      req.end()
    })
  await Promise.all(
    Array.from({length: CONCURRENCY}, async () => {
      while (performance.now() < deadline) {
        const t = performance.now()
        try {
          await once()
          latencies.push(performance.now() - t)
        } catch {
          failed++
        }
      }
    }),
  )
  agent.destroy()
  return percentiles(latencies, SECONDS, failed)
}

/** `concurrency` h2c sessions, each sending one request after another with `headers`. */
async function loadH2(host, port, headers, marker) {
  const latencies = []
  let failed = 0
  const deadline = performance.now() + SECONDS * 1000
  await Promise.all(
    Array.from({length: CONCURRENCY}, async () => {
      const session = http2.connect(`http://${host}:${port}`)
      session.on('error', () => undefined)
      try {
        while (performance.now() < deadline) {
          const t = performance.now()
          try {
            await new Promise((resolve, reject) => {
              const stream = session.request({':path': '/', ...headers})
              let body = ''
              stream.setEncoding('utf8')
              stream.setTimeout(2000, () => stream.close(http2.constants.NGHTTP2_CANCEL))
              stream.on('data', (c) => (body += c))
              stream.on('end', () => (body.includes(marker) ? resolve() : reject(new Error(`reply ${body}`))))
              stream.on('error', reject)
              // a stream cancelled by its timeout, or the session gone, closes without an end
              stream.on('close', () => reject(new Error(`stream closed (${stream.rstCode})`)))
              stream.end()
            })
            latencies.push(performance.now() - t)
          } catch {
            failed++
          }
        }
      } finally {
        session.close()
      }
    }),
  )
  return percentiles(latencies, SECONDS, failed)
}

/** The body of one GET / with `headers` on a new connection (HTTP/1.1 or h2c); '' when it fails. */
function oneRequest(host, port, headers, h2) {
  return new Promise((resolve) => {
    const collect = (res, done) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (c) => (body += c))
      res.on('end', () => done(body))
      res.on('error', () => done(''))
    }
    if (!h2) {
      const req = http.get({host, port, path: '/', headers, agent: false, timeout: 2000}, (res) => collect(res, resolve))
      req.on('error', () => resolve(''))
      req.on('timeout', () => req.destroy())
      return
    }
    const session = http2.connect(`http://${host}:${port}`)
    session.on('error', () => resolve(''))
    const timer = setTimeout(() => {
      session.destroy()
      resolve('')
    }, 2000)
    session.on('close', () => clearTimeout(timer))
    const stream = session.request({':path': '/', ...headers})
    stream.on('error', () => resolve(''))
    collect(stream, (body) => {
      session.close()
      resolve(body)
    })
    stream.end()
  })
}

/** Polls until a request with `headers` is answered by `marker` (an intercept or its filter in place, or gone). */
async function answeredBy(host, port, headers, marker, h2 = false, timeoutMs = 60_000) {
  const started = performance.now()
  while (!(await oneRequest(host, port, headers, h2)).includes(marker)) {
    if (performance.now() - started > timeoutMs) throw new Error(`no reply from ${marker} at ${host}:${port}`)
    await new Promise((r) => setTimeout(r, 100))
  }
}

export async function run({log, root}) {
  const image = (await ensureRuntimeImage(docker, {require: ['agent']})).ref
  await demoUp(docker)
  const {tp, exited, remove} = benchTp(root, 'modes')
  const created = []
  const rows = []
  const measure = async (label, h2, headers, marker) => {
    log(`${label}: ${h2 ? 'h2c' : 'HTTP/1.1 keep-alive'}`)
    return h2 ? loadH2(workloads.h2, 80, headers, marker) : loadKeepAlive(workloads.h1, 80, headers, marker)
  }
  const workloads = {}
  try {
    log('connecting (container daemon)')
    if ((await exited(tp(['connect', '--docker', '--namespace', NETWORK, '--name', CONNECTION]))) !== 0) throw new Error('tp connect failed')
    for (const kind of ['h1', 'h2']) {
      const {container, ip} = await startServer(image, `tpb-modes-${kind}`, NETWORK, kind, 'workload', 80)
      created.push(container)
      workloads[kind] = ip
    }
    // handlers in the daemon's namespace: a plain intercept's and a personal one's (the same server), a wiretap's recorder
    for (const [label, kind, port] of [
      ['handler', 'h1', 8000],
      ['handler', 'h2', 8001],
      ['recorder', 'h1', 8002],
    ])
      created.push((await startServer(image, `tpb-modes-${label}-${port}`, `container:${DAEMON}`, kind, label, port)).container)
    for (const kind of ['h1', 'h2']) await answeredBy(workloads[kind], 80, {}, 'workload', kind === 'h2')

    const through = async (args, kind, probe) => {
      const child = tp(args)
      await answeredBy(workloads[kind], 80, probe.headers, probe.marker, kind === 'h2')
      await interceptSettled(docker, CONNECTION)
      return child
    }
    const end = async (child) => {
      child.kill('SIGINT')
      await exited(child)
    }
    const alice = {'x-dev': 'alice'}
    const bob = {'x-dev': 'bob'}
    for (const kind of ['h1', 'h2']) {
      const h2 = kind === 'h2'
      const port = h2 ? '8001' : '8000'
      const protocol = h2 ? 'h2c' : 'HTTP/1.1 keep-alive'
      const plain = await through(['intercept', `tpb-modes-${kind}`, '--port', port], kind, {headers: {}, marker: 'handler'})
      const plainLoad = await measure('plain intercept', h2, alice, 'handler')
      await end(plain)
      await answeredBy(workloads[kind], 80, {}, 'workload', h2)
      const personal = await through(['intercept', `tpb-modes-${kind}`, '--port', port, '--http-header', 'X-Dev=alice'], kind, {
        headers: alice,
        marker: 'handler',
      })
      const matching = await measure('personal intercept, matching', h2, alice, 'handler')
      const other = await measure('personal intercept, not matching', h2, bob, 'workload')
      await end(personal)
      const note = (x) =>
        `${CONCURRENCY} ${h2 ? 'h2c sessions' : 'keep-alive connections'}, ${SECONDS}s; baseline: the same requests through a plain intercept of the port (to a handler like the workload); failed ${x.failed} vs ${plainLoad.failed}`
      rows.push({
        metric: `req/s, personal intercept, matching (${protocol})`,
        tp: Math.round(matching.rps),
        baseline: Math.round(plainLoad.rps),
        unit: 'req/s',
        note: note(matching),
      })
      rows.push({metric: `p99, personal intercept, matching (${protocol})`, tp: matching.p99, baseline: plainLoad.p99, unit: 'ms', note: note(matching)})
      rows.push({
        metric: `req/s, personal intercept, not matching (${protocol})`,
        tp: Math.round(other.rps),
        baseline: Math.round(plainLoad.rps),
        unit: 'req/s',
        note: note(other),
      })
      rows.push({metric: `p99, personal intercept, not matching (${protocol})`, tp: other.p99, baseline: plainLoad.p99, unit: 'ms', note: note(other)})
    }

    // a wiretap: the client's latency with a recorder getting copies, against the workload without one
    const noTap = await measure('no wiretap', false, {}, 'workload')
    const noTapFresh = await loadPerConnection(workloads.h1, 80, {seconds: SECONDS, concurrency: CONCURRENCY, marker: 'workload'})
    const recorder = docker.getContainer('tpb-modes-recorder-8002')
    const recorded = async () => (await recorder.logs({stdout: true})).length
    const tap = tp(['wiretap', 'tpb-modes-h1', '--port', '8002'])
    // in place once the recorder gets a copy
    const before = await recorded()
    for (let i = 0; ; i++) {
      await answeredBy(workloads.h1, 80, {}, 'workload')
      if ((await recorded()) > before) break
      if (i > 600) throw new Error('the wiretap never sent the recorder a copy')
      await new Promise((r) => setTimeout(r, 100))
    }
    await interceptSettled(docker, CONNECTION)
    const tapped = await measure('wiretap', false, {}, 'workload')
    const tappedFresh = await loadPerConnection(workloads.h1, 80, {seconds: SECONDS, concurrency: CONCURRENCY, marker: 'workload'})
    // the recorder at the lowest CPU share: it takes only the cycles the workload leaves, as a
    // handler on the developer's own machine takes none of the cluster's (here they share 2 cores)
    await recorder.update({CpuShares: 2})
    const yielding = await measure('wiretap, its recorder at the lowest CPU share', false, {}, 'workload')
    const yieldingFresh = await loadPerConnection(workloads.h1, 80, {seconds: SECONDS, concurrency: CONCURRENCY, marker: 'workload'})
    // the wiretap's own cost: its recorder gone (each copy is dropped as its connection to it fails),
    // so what is left is the capture; the recorder's work (as much as the workload's) no longer shares the cores
    await recorder.kill()
    const alone = await measure('wiretap, its recorder gone', false, {}, 'workload')
    const aloneFresh = await loadPerConnection(workloads.h1, 80, {seconds: SECONDS, concurrency: CONCURRENCY, marker: 'workload'})
    await end(tap)
    const tapNote = (x, y, how) => `${CONCURRENCY} clients, ${how}, ${SECONDS}s; baseline: the same without a wiretap; failed ${x.failed} vs ${y.failed}`
    rows.push({metric: 'p99, wiretap (keep-alive)', tp: tapped.p99, baseline: noTap.p99, unit: 'ms', note: tapNote(tapped, noTap, 'keep-alive')})
    rows.push({
      metric: 'req/s, wiretap (keep-alive)',
      tp: Math.round(tapped.rps),
      baseline: Math.round(noTap.rps),
      unit: 'req/s',
      note: tapNote(tapped, noTap, 'keep-alive'),
    })
    rows.push({
      metric: 'p99, wiretap (a connection per request)',
      tp: tappedFresh.p99,
      baseline: noTapFresh.p99,
      unit: 'ms',
      note: tapNote(tappedFresh, noTapFresh, 'a new connection per request'),
    })
    rows.push({
      metric: 'p99, wiretap, its recorder at the lowest CPU share (keep-alive)',
      tp: yielding.p99,
      baseline: noTap.p99,
      unit: 'ms',
      note: tapNote(yielding, noTap, 'keep-alive; docker update --cpu-shares 2 on the recorder'),
    })
    rows.push({
      metric: 'p99, wiretap, its recorder at the lowest CPU share (a connection per request)',
      tp: yieldingFresh.p99,
      baseline: noTapFresh.p99,
      unit: 'ms',
      note: tapNote(yieldingFresh, noTapFresh, 'a new connection per request; docker update --cpu-shares 2 on the recorder'),
    })
    rows.push({
      metric: 'p99, wiretap, its recorder gone (keep-alive)',
      tp: alone.p99,
      baseline: noTap.p99,
      unit: 'ms',
      note: tapNote(alone, noTap, 'keep-alive; the capture only'),
    })
    rows.push({
      metric: 'req/s, wiretap, its recorder gone (keep-alive)',
      tp: Math.round(alone.rps),
      baseline: Math.round(noTap.rps),
      unit: 'req/s',
      note: tapNote(alone, noTap, 'keep-alive; the capture only'),
    })
    rows.push({
      metric: 'p99, wiretap, its recorder gone (a connection per request)',
      tp: aloneFresh.p99,
      baseline: noTapFresh.p99,
      unit: 'ms',
      note: tapNote(aloneFresh, noTapFresh, 'a new connection per request; the capture only'),
    })
    return rows
  } finally {
    for (const c of created) await c.remove({force: true}).catch(() => undefined)
    await exited(tp(['quit']))
    remove()
  }
}
