/**
 * Issue 4's benchmark: time from starting `tp intercept … --docker-run -- frontend-v2` to the first
 * reply from frontend-v2 at the workload's address, against a plain `docker run` of the same image
 * reaching its first reply at its own address. Same image, same reply (it fetches the catalog
 * service too), measured by this process (the host reaches container addresses on the bridge).
 *
 * Follows bench/run.mjs's interface. Runs on its own demo
 * network and connection, and removes both.
 */
import {spawn} from 'node:child_process'
import {mkdtempSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import Docker from 'dockerode'
import {demoDown, demoUp} from '@tp/images'
import {httpBody, median} from './run.mjs'

export const name = 'docker-run'
export const description = 'time to the first intercepted reply with --docker-run, vs a plain docker run of the same image'

const RUNS = Number(process.env.TP_BENCH_RUNS ?? 5)
const NETWORK = 'tpb-docker-run'
const CONNECTION = 'bench-docker-run'
const docker = new Docker()

const get = (host, port) => httpBody(host, port)

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

/** Seconds from `started` until `address()` answers with a body starting with `marker`. */
async function firstReply(address, port, marker, started, timeoutMs = 60_000) {
  for (;;) {
    const host = await address().catch(() => undefined)
    const body = host ? await get(host, port).catch(() => '') : ''
    if (body.startsWith(marker)) return (performance.now() - started) / 1000
    if (performance.now() - started > timeoutMs) throw new Error(`no reply starting with "${marker}" on port ${port}`)
    await sleep(10)
  }
}

async function ipOf(container) {
  const info = await docker.getContainer(container).inspect()
  const ip = info.NetworkSettings.Networks[NETWORK]?.IPAddress
  if (!ip) throw new Error(`${container} has no address yet`)
  return ip
}

const exited = (child) => new Promise((resolve) => (child.exitCode !== null ? resolve(child.exitCode) : child.on('exit', (code) => resolve(code))))

export async function run({log, root}) {
  const demo = await demoUp(docker, {network: NETWORK})
  const cacheDir = mkdtempSync(join(tmpdir(), 'tpb-docker-run-'))
  const env = {...process.env, TP_CACHE_DIR: cacheDir}
  const tp = (args, extraEnv = {}) =>
    spawn(process.execPath, [join(root, 'packages/cli/bin/run.js'), ...args], {env: {...env, ...extraEnv}, stdio: ['ignore', 'ignore', 'pipe']})
  const workload = () => ipOf(demo.frontend)
  try {
    log('connecting (container daemon)')
    if ((await exited(tp(['connect', '--docker', '--namespace', NETWORK, '--name', CONNECTION]))) !== 0) throw new Error('tp connect failed')
    await firstReply(workload, 80, 'frontend-v1', performance.now())

    const interceptTimes = []
    const telemountTimes = []
    const plainTimes = []
    // the demo's workload is on this engine: its 2 volumes are mounted straight from it; with
    // TP_TELEMOUNT_DIRECT=0 they go over SFTP through the telemount plugin, as for another engine
    const modes = [
      {times: interceptTimes, env: {}, what: 'volumes mounted directly'},
      {times: telemountTimes, env: {TP_TELEMOUNT_DIRECT: '0'}, what: 'volumes through telemount'},
    ]
    for (let i = 0; i < RUNS; i++) {
      let started
      for (const mode of modes) {
        log(`run ${i + 1}/${RUNS}: tp intercept --docker-run (${mode.what})`)
        started = performance.now()
        const intercept = tp(['intercept', '--use', CONNECTION, 'frontend-v1', '--port', '8000', '--docker-run', '--', demo.images.frontendV2Bare], mode.env)
        mode.times.push(await firstReply(workload, 80, 'frontend-v2', started))
        intercept.kill('SIGINT')
        if ((await exited(intercept)) !== 0) throw new Error('tp intercept did not exit 0 after Ctrl-C')
        await firstReply(workload, 80, 'frontend-v1', performance.now())
      }

      log(`run ${i + 1}/${RUNS}: plain docker run`)
      const plainName = `tpb-docker-run-plain-${i}`
      started = performance.now()
      const plain = spawn('docker', ['run', '--rm', '--name', plainName, '--label', 'tp.fixture=true', '--network', NETWORK, demo.images.frontendV2Bare], {
        stdio: 'ignore',
      })
      try {
        plainTimes.push(await firstReply(() => ipOf(plainName), 8000, 'frontend-v2', started))
      } finally {
        await docker
          .getContainer(plainName)
          .stop({t: 2})
          .catch(() => undefined)
        await exited(plain)
      }
    }
    const note = `median of ${RUNS}; baseline: docker run of the same image → its first reply (both fetch http://catalog/)`
    return [
      {
        metric: "tp intercept --docker-run → first intercepted reply (2 volumes, mounted from the workload's engine)",
        tp: median(interceptTimes),
        baseline: median(plainTimes),
        unit: 's',
        note,
      },
      {
        metric: 'the same with the volumes through telemount (TP_TELEMOUNT_DIRECT=0)',
        tp: median(telemountTimes),
        baseline: median(plainTimes),
        unit: 's',
        note,
      },
    ]
  } finally {
    await exited(tp(['quit', '--name', CONNECTION]))
    await demoDown(docker, {network: NETWORK}).catch(() => undefined)
    rmSync(cacheDir, {recursive: true, force: true})
  }
}
