#!/usr/bin/env node
/**
 * tp's benchmarks: `npm run bench` (all) or `node bench/run.mjs startup relay` (only those named).
 *
 * Adding a benchmark: create `bench/<name>.bench.mjs`. Files run one at a time, in name order.
 * Each is an ES module exporting
 *
 *   export const name = 'startup'                  // short, used to pick it on the command line
 *   export const description = '...'               // optional, one line
 *   export async function run({log, root}) {       // log(msg) prints a progress line (stderr);
 *     return [                                     // root is the repository's directory
 *       {metric: 'tp version', tp: 0.31, baseline: 0.05, unit: 's', ratio: 6.2, note: 'median of 9'},
 *     ]
 *   }
 *
 * A row: `metric` (what was measured), `tp` (tp's figure), `baseline` (what it is compared with,
 * or null), `unit`, `ratio` (tp / baseline, or null: computed here when both are numbers and the
 * row leaves it out), `note` (how it was measured: runs, sizes, what the baseline is).
 * A benchmark cleans up everything it creates (Docker objects included) even when it fails.
 *
 * This prints one table and updates bench/results.json: {node, host, results: {<name>: {date, rows} |
 * {date, error}}} — benchmarks that were not run this time keep their previous entry.
 * A benchmark that throws is reported and makes the run exit 1; the others still run.
 */
import {spawn} from 'node:child_process'
import {mkdtempSync, rmSync} from 'node:fs'
import {readdir, readFile, writeFile} from 'node:fs/promises'
import {request} from 'node:http'
import {cpus, hostname, tmpdir} from 'node:os'
import {dirname, join} from 'node:path'
import {fileURLToPath, pathToFileURL} from 'node:url'

const benchDir = dirname(fileURLToPath(import.meta.url))
const root = dirname(benchDir)

/** The body of `GET http://host:port/` (helper for benchmark files); a new connection unless `agent` is given. */
export function httpBody(host, port, {agent = false, timeoutMs = 5000} = {}) {
  return new Promise((resolve, reject) => {
    const req = request({host, port, path: '/', agent, timeout: timeoutMs}, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (c) => (body += c))
      res.on('end', () => resolve(body))
    })
    req.on('timeout', () => req.destroy(new Error('timeout')))
    req.on('error', reject)
    req.end()
  })
}

/** Seconds from `started` until GET http://host:port/ answers with a body containing `marker` (polled every 10 ms). */
export async function firstReply(host, port, marker, started, timeoutMs = 30_000) {
  for (;;) {
    const body = await httpBody(host, port, {timeoutMs: 2000}).catch(() => '')
    if (body.includes(marker)) return (performance.now() - started) / 1000
    if (performance.now() - started > timeoutMs) throw new Error(`no reply with "${marker}" from ${host}:${port}`)
    await new Promise((r) => setTimeout(r, 10))
  }
}

/**
 * Waits until every agent of a connection's intercepts has its guard running (the daemon starts a
 * guard 1.5 s after its agent is ready): a load measured through an intercept is then the data
 * path's, not the intercept's start-up still under way beside it. Gives up after `timeoutMs`.
 */
export async function interceptSettled(docker, connection, timeoutMs = 10_000) {
  const started = performance.now()
  const running = (role) =>
    docker.listContainers({filters: {label: [`tp.connection=${connection}`, `tp.role=${role}`], status: ['running']}}).then((list) => list.length)
  for (;;) {
    const agents = await running('agent')
    if (agents > 0 && (await running('agent-guard')) >= agents) return
    if (performance.now() - started > timeoutMs) return
    await new Promise((r) => setTimeout(r, 100))
  }
}

/**
 * `concurrency` clients GET http://host:port/ for `seconds`, a new connection per request: requests
 * per second, p50/p99 latency in ms, and how many failed (with `marker`: a reply without it failed too).
 */
export async function load(host, port, {seconds = 4, concurrency = 8, marker = undefined} = {}) {
  const latencies = []
  let failed = 0
  const deadline = performance.now() + seconds * 1000
  await Promise.all(
    Array.from({length: concurrency}, async () => {
      while (performance.now() < deadline) {
        const t = performance.now()
        try {
          const body = await httpBody(host, port, {timeoutMs: 2000})
          if (marker !== undefined && !body.includes(marker)) throw new Error(`a reply without "${marker}"`)
          latencies.push(performance.now() - t)
        } catch {
          failed++
        }
      }
    }),
  )
  latencies.sort((a, b) => a - b)
  return {
    rps: latencies.length / seconds,
    p50: latencies[Math.floor(latencies.length * 0.5)],
    p99: latencies[Math.floor(latencies.length * 0.99)],
    failed,
  }
}

/** A busybox container command serving `marker` on `port` (the same static server for every path measured). */
export const staticServerCmd = (port, marker) => ['sh', '-c', `mkdir -p /www && echo ${marker} > /www/index.html && exec httpd -f -p ${port} -h /www`]

/**
 * Starts a busybox container serving `marker` on `port` (the same static server for every path
 * measured): a workload on `network` (its port exposed), or a handler in another container's
 * network namespace (`network: 'container:<name>'`). `labels` are added to `tp.fixture=true`.
 * Resolves with the container and its IP on the network (undefined in another's namespace).
 */
export async function startStaticServer(docker, {name, image, port, marker, network, labels = {}}) {
  const workload = !network.startsWith('container:')
  const container = await docker.createContainer({
    name,
    Image: image,
    Cmd: staticServerCmd(port, marker),
    ...(workload ? {ExposedPorts: {[`${port}/tcp`]: {}}} : {}),
    Labels: {'tp.fixture': 'true', ...labels},
    HostConfig: {NetworkMode: network},
  })
  await container.start()
  const ip = workload ? (await container.inspect()).NetworkSettings.Networks[network].IPAddress : undefined
  return {container, ip}
}

/**
 * The repository's tp with a cache directory of its own (its connections, apart from the user's):
 * `tp(args, extraEnv?)` starts it, `exited(child)` resolves with its exit code, `remove()` deletes
 * the cache. `options.env` is added to this process's environment for every tp it starts.
 */
export function benchTp(root, label, options = {}) {
  const cacheDir = mkdtempSync(join(tmpdir(), `tp-bench-${label}-`))
  const env = {...process.env, ...options.env, TP_CACHE_DIR: cacheDir}
  return {
    cacheDir,
    tp: (args, extraEnv = {}) =>
      spawn(process.execPath, [join(root, 'packages/cli/bin/run.js'), ...args], {env: {...env, ...extraEnv}, stdio: ['ignore', 'ignore', 'pipe']}),
    exited: (child) =>
      new Promise((resolve) => (child.exitCode !== null || child.signalCode !== null ? resolve(child.exitCode) : child.on('exit', (code) => resolve(code)))),
    remove: () => rmSync(cacheDir, {recursive: true, force: true}),
  }
}

/** Median of a list of numbers (helper for benchmark files: `import {median} from './run.mjs'`). */
export function median(values) {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
}

function format(value) {
  if (value === null || value === undefined) return '–'
  if (typeof value !== 'number') return String(value)
  if (Number.isInteger(value)) return String(value)
  return Math.abs(value) >= 100 ? value.toFixed(0) : Math.abs(value) >= 1 ? value.toFixed(2) : value.toPrecision(3)
}

function printTable(rows) {
  const header = ['bench', 'metric', 'tp', 'baseline', 'unit', 'ratio', 'note']
  const cells = rows.map((r) => [
    r.bench,
    r.metric,
    format(r.tp),
    format(r.baseline),
    r.unit ?? '',
    r.ratio == null ? '–' : `${format(r.ratio)}×`,
    r.note ?? '',
  ])
  const widths = header.map((h, k) => Math.max(h.length, ...cells.map((c) => String(c[k]).length)))
  const line = (c) =>
    c
      .map((v, k) => String(v).padEnd(widths[k]))
      .join('  ')
      .trimEnd()
  console.log(line(header))
  console.log(line(widths.map((w) => '-'.repeat(w))))
  for (const c of cells) console.log(line(c))
}

async function main() {
  const wanted = process.argv.slice(2)
  const files = (await readdir(benchDir)).filter((f) => f.endsWith('.bench.mjs')).sort()
  const selected = wanted.length === 0 ? files : files.filter((f) => wanted.includes(f.replace(/\.bench\.mjs$/, '')))
  const unknown = wanted.filter((w) => !files.includes(`${w}.bench.mjs`))
  if (unknown.length > 0) {
    console.error(`unknown benchmark(s): ${unknown.join(', ')}; available: ${files.map((f) => f.replace(/\.bench\.mjs$/, '')).join(', ')}`)
    process.exit(2)
  }

  const results = {}
  const table = []
  let failed = false
  for (const file of selected) {
    let name = file.replace(/\.bench\.mjs$/, '')
    const log = (message) => process.stderr.write(`[${name}] ${message}\n`)
    try {
      const module = await import(pathToFileURL(join(benchDir, file)).href)
      name = module.name ?? name
      log(module.description ?? 'running')
      const rows = await module.run({log, root})
      if (!Array.isArray(rows)) throw new Error(`${file}: run() must return an array of rows`)
      for (const row of rows) {
        if (row.ratio === undefined)
          row.ratio = typeof row.tp === 'number' && typeof row.baseline === 'number' && row.baseline !== 0 ? row.tp / row.baseline : null
        table.push({bench: name, ...row})
      }
      results[name] = {date: new Date().toISOString(), rows}
    } catch (error) {
      failed = true
      log(`failed: ${error?.stack ?? error}`)
      results[name] = {date: new Date().toISOString(), error: String(error?.message ?? error)}
      table.push({bench: name, metric: 'FAILED', tp: null, baseline: null, unit: '', ratio: null, note: String(error?.message ?? error).split('\n')[0]})
    }
  }

  console.log()
  printTable(table)
  const out = join(benchDir, 'results.json')
  let previous = {}
  try {
    previous = JSON.parse(await readFile(out, 'utf8')).results ?? {}
  } catch {
    // first run, or an unreadable file: start afresh
  }
  const report = {node: process.version, host: {name: hostname(), cpus: cpus().length}, results: {...previous, ...results}}
  await writeFile(out, `${JSON.stringify(report, null, 2)}\n`)
  console.log(`\nwritten to ${out}`)
  if (failed) process.exitCode = 1
}

// run only when executed, so that benchmark files can import helpers from here; no top-level
// await: a benchmark importing this module would wait for main() to finish, which waits for it
if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((error) => {
    console.error(error)
    process.exit(1)
  })
}
