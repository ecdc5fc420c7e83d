/**
 * Start-up cost of the tp binary: wall time of `tp version` (oclif host + manifest + every plugin
 * loaded + a round trip to the Docker engine), of `tp --help` (oclif host + every plugin, no Docker)
 * and of `tp --version` (answered by bin/run.js before oclif loads), each as a median of RUNS,
 * against `node -e 0` (the floor: starting node at all).
 */
import {execFile} from 'node:child_process'
import {existsSync, mkdtempSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {promisify} from 'node:util'
import {median} from './run.mjs'

export const name = 'startup'
export const description = 'start-up time of `tp version` against `node -e 0`'

const RUNS = Number(process.env.TP_BENCH_RUNS ?? 11)
const execFileAsync = promisify(execFile)

/**
 * Preloaded into every measured process: reports the CPU time the process used (user + system) on
 * stderr as it exits. On a busy machine wall time swings a lot; CPU time much less.
 */
const CPU_REPORT = `process.on('exit', () => { const u = process.cpuUsage(); require('node:fs').writeSync(2, '\\n@@tp-bench-cpu ' + (u.user + u.system) / 1e6 + '\\n') })\n`

/** Wall time and CPU time of one run, in seconds. */
async function timeOnce(args, env, preload) {
  const started = process.hrtime.bigint()
  const {stderr} = await execFileAsync(process.execPath, ['--require', preload, ...args], {env, maxBuffer: 16 * 1024 * 1024})
  const wall = Number(process.hrtime.bigint() - started) / 1e9
  const cpu = Number(/@@tp-bench-cpu ([\d.]+)/.exec(stderr)?.[1] ?? Number.NaN)
  return {wall, cpu}
}

export async function run({log, root}) {
  const bin = join(root, 'packages/cli/bin/run.js')
  if (!existsSync(join(root, 'packages/cli/oclif.manifest.json'))) {
    log('warning: packages/cli/oclif.manifest.json is missing (run `npm run build`): start-up will be slower than shipped')
  }
  // the user's linked/installed plugins must not change the figure
  const env = {...process.env, XDG_DATA_HOME: join(root, 'bench/.empty-data-home'), DEBUG: '', TP_DEBUG: ''}
  const commands = {
    baseline: ['-e', '0'],
    version: [bin, 'version'],
    help: [bin, '--help'],
    hostOnly: [bin, '--version'],
  }
  const dir = mkdtempSync(join(tmpdir(), 'tp-bench-startup-'))
  const preload = join(dir, 'cpu-report.cjs')
  writeFileSync(preload, CPU_REPORT)
  const samples = {baseline: [], version: [], help: [], hostOnly: []}
  try {
    // one warm-up of each (file cache), then round-robin, so a busy machine slows them all alike
    for (const args of Object.values(commands)) await timeOnce(args, env, preload)
    for (let k = 0; k < RUNS; k++) {
      for (const [key, args] of Object.entries(commands)) samples[key].push(await timeOnce(args, env, preload))
    }
  } finally {
    rmSync(dir, {recursive: true, force: true})
  }
  const wall = (key) => median(samples[key].map((s) => s.wall))
  const cpu = (key) => median(samples[key].map((s) => s.cpu))
  const baseline = wall('baseline')
  const version = wall('version')
  const help = wall('help')
  const hostOnly = wall('hostOnly')
  const labels = {baseline: 'node -e 0', version: 'tp version', help: 'tp --help', hostOnly: 'tp --version'}
  for (const key of Object.keys(commands)) log(`${labels[key]}: wall ${wall(key).toFixed(3)} s, cpu ${cpu(key).toFixed(3)} s`)
  const note = `median of ${RUNS} runs, interleaved with node -e 0`
  return [
    {metric: 'tp version, wall time', tp: version, baseline, unit: 's', ratio: version / baseline, note: `${note}; includes asking Docker its version`},
    {
      metric: 'tp version, CPU time',
      tp: cpu('version'),
      baseline: cpu('baseline'),
      unit: 's',
      ratio: cpu('version') / cpu('baseline'),
      note: `${note}; user+system, steadier on a busy machine`,
    },
    {
      metric: 'tp --help, wall time',
      tp: help,
      baseline,
      unit: 's',
      ratio: help / baseline,
      note: `${note}; the root help: from the build's snapshot of oclif (src/fast-start.ts) when the user has no plugins, no Docker`,
    },
    {
      metric: 'tp --version, wall time',
      tp: hostOnly,
      baseline,
      unit: 's',
      ratio: hostOnly / baseline,
      note: `${note}; printed by bin/run.js as oclif would, oclif not loaded`,
    },
  ]
}
