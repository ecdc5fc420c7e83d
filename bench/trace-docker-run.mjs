#!/usr/bin/env node
/**
 * The timeline behind docker-run.bench.mjs's first row: runs `tp intercept … --docker-run` as that
 * benchmark does, with TP_DEBUG=1, and prints each run's debug lines stamped with ms since the
 * command started, with the moment the handler itself first answers (at the daemon's address, where
 * it listens), the first intercepted reply, and a plain `docker run` of the same image for scale.
 *
 *   node bench/trace-docker-run.mjs [runs]       (default 3; serialize it like any Docker-heavy run)
 *
 * Not a benchmark (run.mjs runs only *.bench.mjs): its own network and connection, removed at the end.
 */
import {spawn} from 'node:child_process'
import {mkdtempSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {dirname, join} from 'node:path'
import {fileURLToPath} from 'node:url'
import {demoDown, demoUp} from '@tp/images'
import Docker from 'dockerode'
import {httpBody} from './run.mjs'

const root = dirname(dirname(fileURLToPath(import.meta.url)))
const RUNS = Number(process.argv[2] ?? 3)
const NETWORK = 'tpb-trace-docker-run'
const CONNECTION = 'bench-trace'
const docker = new Docker()
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

async function ipOf(container) {
  const info = await docker.getContainer(container).inspect()
  const ip = info.NetworkSettings.Networks[NETWORK]?.IPAddress
  if (!ip) throw new Error(`${container} has no address yet`)
  return ip
}

/** ms from `started` until `address()`:port answers with a body starting with `marker`. */
async function firstReply(address, port, marker, started, timeoutMs = 60_000) {
  for (;;) {
    const host = await address().catch(() => undefined)
    const body = host ? await httpBody(host, port).catch(() => '') : ''
    if (body.startsWith(marker)) return performance.now() - started
    if (performance.now() - started > timeoutMs) throw new Error(`no reply starting with "${marker}" on port ${port}`)
    await sleep(10)
  }
}

const exited = (child) => new Promise((resolve) => (child.exitCode !== null ? resolve(child.exitCode) : child.on('exit', (code) => resolve(code))))

const demo = await demoUp(docker, {network: NETWORK})
const cacheDir = mkdtempSync(join(tmpdir(), 'tpb-trace-'))
const tp = (args, env = {}) =>
  spawn(process.execPath, [join(root, 'packages/cli/bin/run.js'), ...args], {
    env: {...process.env, TP_CACHE_DIR: cacheDir, ...env},
    stdio: ['ignore', 'ignore', 'pipe'],
  })
const workload = () => ipOf(demo.frontend)
try {
  if ((await exited(tp(['connect', '--docker', '--namespace', NETWORK, '--name', CONNECTION]))) !== 0) throw new Error('tp connect failed')
  await firstReply(workload, 80, 'frontend-v1', performance.now())
  for (let i = 0; i < RUNS; i++) {
    const lines = []
    const at = (started, what) => lines.push(`[${String(Math.round(performance.now() - started)).padStart(5)}] ${what}`)
    const started = performance.now()
    const intercept = tp(['intercept', '--use', CONNECTION, 'frontend-v1', '--port', '8000', '--docker-run', '--', demo.images.frontendV2Bare], {TP_DEBUG: '1'})
    intercept.stderr.on('data', (chunk) => {
      for (const line of chunk.toString().split('\n')) if (line.trim()) at(started, line.replace(/^\S+Z /, ''))
    })
    // the handler shares the daemon's network namespace: it answers at the daemon's address
    const handler = firstReply(() => ipOf(`tp-${CONNECTION}-cn`), 8000, 'frontend-v2', started).then(() => at(started, 'the handler itself answers'))
    const ms = await firstReply(workload, 80, 'frontend-v2', started)
    at(started, 'FIRST INTERCEPTED REPLY')
    await handler
    intercept.kill('SIGINT')
    await exited(intercept)
    console.log(`=== run ${i + 1}: first intercepted reply after ${Math.round(ms)} ms\n${lines.join('\n')}`)
    await firstReply(workload, 80, 'frontend-v1', performance.now())

    const plainName = 'tpb-trace-plain'
    const plainStarted = performance.now()
    const plain = spawn('docker', ['run', '--rm', '--name', plainName, '--label', 'tp.fixture=true', '--network', NETWORK, demo.images.frontendV2Bare], {
      stdio: 'ignore',
    })
    try {
      console.log(`plain docker run: first reply after ${Math.round(await firstReply(() => ipOf(plainName), 8000, 'frontend-v2', plainStarted))} ms`)
    } finally {
      await docker
        .getContainer(plainName)
        .stop({t: 2})
        .catch(() => undefined)
      await exited(plain)
    }
  }
} finally {
  await exited(tp(['quit', '--name', CONNECTION]))
  await demoDown(docker, {network: NETWORK}).catch(() => undefined)
  rmSync(cacheDir, {recursive: true, force: true})
}
