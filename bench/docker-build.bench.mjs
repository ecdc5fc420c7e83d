// Bench: build a context of 20,000 small files whose node_modules is ignored by .dockerignore,
// with tp's Engine API build (plugins/handler-docker-build) and with the docker CLI (legacy
// builder), the same context in the same run: once with no cache (every step runs) and once with
// every step cached (mostly context walking and sending). Medians; ratio = tp / docker CLI (lower is better).
import {mkdir, mkdtemp, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import Dockerode from 'dockerode'
import {execa} from 'execa'
import {LABEL_INPUTS, STATIC_BUSYBOX, ensureImportedImage, inputsHash} from '@tp/images'
import {buildImage, parseBuildOptions, resolveBuildContext} from '@tp/plugin-handler-docker-build'
import {median} from './run.mjs'

export const name = 'docker-build'
export const description = 'build a 20,000-file context (node_modules ignored): tp (Engine API) vs docker build (CLI)'

const BASE = {repo: 'tpt-build-bench-busybox', tag: 'latest'}
const FILES = 20_000
const RUNS = 5

async function writeContext(dir) {
  for (let d = 0; d < FILES / 100; d++) {
    const pkg = join(dir, 'node_modules', `pkg${d}`)
    await mkdir(pkg, {recursive: true})
    await Promise.all(Array.from({length: 100}, (_, f) => writeFile(join(pkg, `index${f}.js`), `module.exports = ${d * 100 + f}\n`)))
  }
  await mkdir(join(dir, 'src'), {recursive: true})
  for (let f = 0; f < 20; f++) await writeFile(join(dir, 'src', `module${f}.js`), `export const n = ${f}\n`.repeat(50))
  await writeFile(join(dir, '.dockerignore'), 'node_modules\n')
  await writeFile(join(dir, 'Dockerfile'), `FROM ${BASE.repo}:${BASE.tag}\nCOPY . /app\nRUN ls -R /app | wc -l\nCMD ["ls", "/app"]\n`)
}

const BASE_SPEC = {busybox: STATIC_BUSYBOX}
const BASE_LABELS = {'tp.fixture': 'true'}

/** Removes the bench's base and every image built on it (they all carry its inputs label). */
async function removeBaseAndDescendants(docker) {
  const hash = await inputsHash(BASE_SPEC, [JSON.stringify(BASE_LABELS)])
  for (let round = 0; round < 10; round++) {
    const images = await docker.listImages({all: true, filters: {label: [`${LABEL_INPUTS}=${hash}`]}})
    if (images.length === 0) return
    images.sort((a, b) => b.Created - a.Created) // children first
    for (const image of images)
      await docker
        .getImage(image.Id)
        .remove({force: true})
        .catch(() => undefined)
  }
}

function parseSize(text) {
  // legacy CLI: "Sending build context to Docker daemon  12.29kB"
  const m = text.match(/Sending build context to Docker daemon\s+([\d.]+)\s*([kMG]?B)/)
  if (!m) return undefined
  return Number(m[1]) * {B: 1, kB: 1000, MB: 1e6, GB: 1e9}[m[2]]
}

/** @param {{log?: ((message: string) => void) | {info?: (message: string) => void}}} [options] */
export async function run({log} = {}) {
  const say = typeof log === 'function' ? log : (message) => log?.info?.(message)
  const docker = new Dockerode()
  await ensureImportedImage(docker, {...BASE, spec: BASE_SPEC, labels: BASE_LABELS, what: 'bench fixture'})
  const dir = await mkdtemp(join(tmpdir(), 'tpt-build-bench-'))
  const images = new Set()
  try {
    await writeContext(dir)
    const context = await resolveBuildContext(dir, '/')
    // tp labels what it builds (tp.built-by=tp, a LABEL step in the legacy builder): the CLI gets the same
    const cliArgs = ['build', '--rm', '--force-rm', '--label', 'tp.built-by=tp', dir]
    const rows = []
    let cliBytes
    let tpBytes = 0
    for (const noCache of [true, false]) {
      const options = parseBuildOptions(noCache ? ['no-cache'] : [])
      const tpSeconds = []
      const cliSeconds = []
      for (let i = 0; i < RUNS; i++) {
        // alternate which goes first, so neither always runs on a warmer engine
        const order = i % 2 === 0 ? ['tp', 'cli'] : ['cli', 'tp']
        for (const who of order) {
          const started = performance.now()
          if (who === 'tp') {
            const built = await buildImage(docker, {context, options})
            tpSeconds.push((performance.now() - started) / 1000)
            tpBytes = built.contextBytes
            images.add(built.imageId)
          } else {
            const cli = await execa('docker', noCache ? ['build', '--no-cache', ...cliArgs.slice(1)] : cliArgs, {env: {DOCKER_BUILDKIT: '0'}, all: true})
            cliSeconds.push((performance.now() - started) / 1000)
            cliBytes = parseSize(cli.all) ?? cliBytes
            const id = cli.stdout.match(/Successfully built ([0-9a-f]+)/)?.[1]
            if (id) images.add(id)
          }
        }
        say(`${noCache ? 'no cache' : 'cached'} run ${i + 1}: tp ${tpSeconds.at(-1).toFixed(2)} s, docker build ${cliSeconds.at(-1).toFixed(2)} s`)
      }
      const tp = median(tpSeconds)
      const baseline = median(cliSeconds)
      rows.push({
        metric: `build a ${FILES.toLocaleString('en')}-file context, node_modules ignored (${noCache ? 'no cache' : 'cached steps'}, median of ${RUNS})`,
        tp: Number(tp.toFixed(3)),
        baseline: Number(baseline.toFixed(3)),
        unit: 's',
        ratio: Number((tp / baseline).toFixed(2)),
        note: noCache
          ? 'tp: Engine API (dockerode + tar-fs + @balena/dockerignore); baseline: docker build CLI, legacy builder, same context and label'
          : 'every step cached: mostly the cost of walking, packing and sending the context',
      })
    }
    rows.push({
      metric: 'build context sent',
      tp: tpBytes,
      baseline: cliBytes ?? null,
      unit: 'bytes',
      ratio: cliBytes ? Number((tpBytes / cliBytes).toFixed(2)) : null,
      note: 'baseline from the CLI\'s "Sending build context" line (rounded by the CLI); the ignored node_modules is ~20,000 files',
    })
    return rows
  } finally {
    for (const id of images)
      await docker
        .getImage(id)
        .remove({force: true})
        .catch(() => undefined)
    await removeBaseAndDescendants(docker)
    await rm(dir, {recursive: true, force: true})
  }
}
