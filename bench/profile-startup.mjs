#!/usr/bin/env node
/**
 * Where a tp command's start-up goes: `node bench/profile-startup.mjs [--runs N] [-- <tp args>]`
 * (default: `version`, `--help`, `--version`). Runs tp under `--cpu-prof` (100 µs samples) and
 * prints, for each command, the median over the runs of the CPU time attributed to each group of
 * code (self time: node's own start, @oclif/core, tp's bundle, the sdk, dockerode, plugins,
 * V8's compiler and GC), and the files the process loaded (ES modules through a loader hook,
 * CommonJS from require.cache), with their sizes. bench/README.md keeps what it printed.
 */
import {execFileSync} from 'node:child_process'
import {mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {dirname, join, relative} from 'node:path'
import {fileURLToPath, pathToFileURL} from 'node:url'

const root = dirname(dirname(fileURLToPath(import.meta.url)))
const bin = process.env.TP_PROFILE_BIN || join(root, 'packages/cli/bin/run.js')
const argv = process.argv.slice(2)
let runs = 5
if (argv[0] === '--runs') {
  runs = Number(argv[1])
  argv.splice(0, 2)
}
if (argv[0] === '--') argv.shift()
const commands = argv.length > 0 ? [argv] : [['version'], ['--help'], ['--version']]
const node = process.env.TP_PROFILE_NODE || process.execPath

/** The group a profile node's self time belongs to. */
function group(url, fn) {
  if (!url) {
    if (fn === '(garbage collector)') return 'GC'
    if (fn === '(program)') return 'V8/node native (compile, module linking, start)'
    if (fn === '(idle)') return 'idle (waiting: I/O, Docker)'
    return `native: ${fn}`
  }
  if (url.startsWith('node:')) return 'node built-ins (JS)'
  const path = url.startsWith('file://') ? fileURLToPath(url) : url
  const rel = relative(root, path).replace(/^\.\.\/\.\.\/tmp\/su\/exp\/base\//, '')
  if (/node_modules\/@oclif\/core\//.test(rel)) return '@oclif/core (node_modules)'
  if (/node_modules\/(dockerode|docker-modem)\//.test(rel)) return 'dockerode'
  if (/node_modules\//.test(rel)) return `node_modules/${rel.split('node_modules/')[1].split('/')[0]}`
  if (rel.startsWith('packages/cli/dist/bundle/') || rel.startsWith('packages/cli/dist/')) return 'tp CLI (dist/, @oclif/core bundled in)'
  if (rel.startsWith('packages/cli/bin/')) return 'tp CLI (bin/)'
  if (rel.startsWith('packages/sdk/dist/vendor/')) return 'dockerode'
  if (rel.startsWith('packages/sdk/')) return '@tp/sdk'
  if (rel.startsWith('plugins/')) return `plugins (hooks)`
  return rel.startsWith('..') ? path : rel
}

function summarise(profileFile) {
  const profile = JSON.parse(readFileSync(profileFile, 'utf8'))
  const byId = new Map(profile.nodes.map((n) => [n.id, n]))
  const self = new Map()
  const fns = new Map()
  const deltas = profile.timeDeltas
  for (let k = 0; k < profile.samples.length; k++) {
    const n = byId.get(profile.samples[k])
    const dt = (deltas[k + 1] ?? 0) / 1000
    const g = group(n.callFrame.url, n.callFrame.functionName)
    self.set(g, (self.get(g) ?? 0) + dt)
    const f = `${n.callFrame.functionName || '(anonymous)'} ${n.callFrame.url ? relative(root, n.callFrame.url.replace(/^file:\/\//, '')) : ''}`.trim()
    fns.set(f, (fns.get(f) ?? 0) + dt)
  }
  return {total: (profile.endTime - profile.startTime) / 1000, self, fns}
}

const median = (values) => {
  const s = [...values].sort((a, b) => a - b)
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2
}

const dir = mkdtempSync(join(tmpdir(), 'tp-profile-'))
try {
  const hooks = join(dir, 'hooks.mjs')
  writeFileSync(
    hooks,
    `import {appendFileSync} from 'node:fs'\nexport async function load(url, context, next) {\n  if (url.startsWith('file:')) appendFileSync(process.env.TP_PROFILE_LOADED, url + '\\n')\n  return next(url, context)\n}\n`,
  )
  const register = join(dir, 'register.mjs')
  writeFileSync(register, `import {register} from 'node:module'\nregister(${JSON.stringify(pathToFileURL(hooks).href)})\n`)
  const cjs = join(dir, 'cjs.cjs')
  writeFileSync(
    cjs,
    `process.on('exit', () => require('node:fs').appendFileSync(process.env.TP_PROFILE_LOADED, Object.keys(require.cache).filter((f) => !f.startsWith(${JSON.stringify(dir)})).map((f) => 'file://' + f).join('\\n') + '\\n'))\n`,
  )
  const env = {...process.env, XDG_DATA_HOME: join(root, 'bench/.empty-data-home'), DEBUG: '', TP_DEBUG: ''}
  console.log(`node ${execFileSync(node, ['--version'], {encoding: 'utf8'}).trim()}, ${runs} runs each, median CPU ms by group (self time)\n`)
  for (const args of commands) {
    const totals = []
    const groups = new Map()
    const functions = new Map()
    for (let k = 0; k < runs; k++) {
      const profDir = join(dir, `prof-${commands.indexOf(args)}-${k}`)
      execFileSync(node, ['--cpu-prof', '--cpu-prof-interval', '100', '--cpu-prof-dir', profDir, bin, ...args], {env, stdio: 'ignore'})
      const file = readdirSync(profDir).find((f) => f.endsWith('.cpuprofile'))
      const {total, self, fns} = summarise(join(profDir, file))
      totals.push(total)
      for (const [g, ms] of self) groups.set(g, [...(groups.get(g) ?? []), ms])
      for (const [f, ms] of fns) functions.set(f, (functions.get(f) ?? 0) + ms / runs)
    }
    console.log(`tp ${args.join(' ')}: profiled ${median(totals).toFixed(0)} ms (from node's bootstrap to exit)`)
    const rows = [...groups].map(([g, v]) => [g, median([...v, ...Array(runs - v.length).fill(0)])]).sort((a, b) => b[1] - a[1])
    for (const [g, ms] of rows) if (ms >= 0.5) console.log(`  ${ms.toFixed(1).padStart(6)} ms  ${g}`)
    console.log('  the functions with the most self time (mean):')
    for (const [f, ms] of [...functions].sort((a, b) => b[1] - a[1]).slice(0, 12)) console.log(`  ${ms.toFixed(1).padStart(6)} ms  ${f}`)
    // what it loads
    const loaded = join(dir, 'loaded.txt')
    writeFileSync(loaded, '')
    execFileSync(node, ['--import', pathToFileURL(register).href, '--require', cjs, bin, ...args], {
      env: {...env, TP_PROFILE_LOADED: loaded},
      stdio: 'ignore',
    })
    const files = [...new Set(readFileSync(loaded, 'utf8').split('\n').filter(Boolean))].map((u) => fileURLToPath(u))
    const size = files.reduce((s, f) => s + statSync(f).size, 0)
    console.log(`  loads ${files.length} files, ${(size / 1024).toFixed(0)} KiB:`)
    for (const f of files) console.log(`    ${(statSync(f).size / 1024).toFixed(0).padStart(5)} KiB  ${relative(root, f)}`)
    console.log()
  }
} finally {
  rmSync(dir, {recursive: true, force: true})
}
