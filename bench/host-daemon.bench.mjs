/**
 * The host daemon against the container daemon, in the same run, on the same workload:
 *  - `tp connect` (a new daemon each time, quit in between) — host vs `--docker`;
 *  - `tp intercept` → first reply through the workload's address, with a handler already listening
 *    where each placement puts it (a process on this host; a server in the daemon's namespace);
 *  - requests/s through a local-process intercept and through a hybrid one (`--docker-run` with a
 *    published port), each against the same load through a container daemon's intercept.
 */
import {spawn} from 'node:child_process'
import {mkdirSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'
import Docker from 'dockerode'
import {demoUp, ensureFixtureImages} from '@tp/images'
import {benchTp, firstReply, interceptSettled, load, median, startStaticServer, staticServerCmd} from './run.mjs'

export const name = 'host-daemon'
export const description = 'host daemon vs container daemon: tp connect, and intercept → first reply'

const RUNS = Number(process.env.TP_BENCH_RUNS ?? 5)
const LOAD_SECONDS = Number(process.env.TP_BENCH_LOAD_SECONDS ?? 4)
const docker = new Docker()

export async function run({log, root}) {
  const {busybox} = await ensureFixtureImages(docker)
  await demoUp(docker)
  const {cacheDir, tp, exited, remove} = benchTp(root, 'host')
  const must = async (args) => {
    const code = await exited(tp(args))
    if (code !== 0) throw new Error(`tp ${args.join(' ')} exited ${code}`)
  }
  const created = []
  const processes = []
  try {
    const connectTimes = {host: [], container: []}
    for (let i = 0; i < RUNS; i++) {
      log(`tp connect ${i + 1}/${RUNS}`)
      for (const [kind, extra] of [
        ['host', []],
        ['container', ['--docker']],
      ]) {
        const started = performance.now()
        await must(['connect', ...extra, '--namespace', 'tp-demo', '--name', `bench-${kind}`])
        connectTimes[kind].push((performance.now() - started) / 1000)
        await must(['quit', '--name', `bench-${kind}`])
      }
    }
    const rows = [
      {
        metric: 'host daemon: tp connect',
        tp: median(connectTimes.host),
        baseline: median(connectTimes.container),
        unit: 's',
        note: `median of ${RUNS}, a new daemon each time; baseline: tp connect --docker (container daemon)`,
      },
    ]

    await must(['connect', '--namespace', 'tp-demo', '--name', 'bench-host'])
    await must(['connect', '--docker', '--namespace', 'tp-demo', '--name', 'bench-container'])
    const {container: workload, ip: workloadIp} = await startStaticServer(docker, {
      name: 'tpb-host-static',
      image: busybox,
      port: 80,
      marker: 'workload',
      network: 'tp-demo',
    })
    created.push(workload)
    // the handlers: busybox httpd on this host (all addresses), and in the container daemon's namespace
    const www = join(cacheDir, 'www')
    mkdirSync(www)
    writeFileSync(join(www, 'index.html'), 'handler\n')
    const local = spawn('busybox', ['httpd', '-f', '-p', '18080', '-h', www], {stdio: 'ignore'})
    processes.push(local)
    const {container: inDaemon} = await startStaticServer(docker, {
      name: 'tpb-host-handler',
      image: busybox,
      port: 18080,
      marker: 'handler',
      network: 'container:tp-bench-container-cn',
    })
    created.push(inDaemon)
    await firstReply(workloadIp, 80, 'workload', performance.now())

    const interceptTimes = {host: [], container: []}
    for (let i = 0; i < RUNS; i++) {
      log(`intercept → first reply ${i + 1}/${RUNS}`)
      for (const kind of ['host', 'container']) {
        const started = performance.now()
        const intercept = tp(['intercept', '--use', `bench-${kind}`, 'tpb-host-static', '--port', '18080'])
        interceptTimes[kind].push(await firstReply(workloadIp, 80, 'handler', started))
        intercept.kill('SIGINT')
        await exited(intercept)
        await firstReply(workloadIp, 80, 'workload', performance.now())
      }
    }
    const intercepted = async (args) => {
      const intercept = tp(['intercept', ...args])
      await firstReply(workloadIp, 80, 'handler', performance.now())
      await interceptSettled(docker, args[1])
      const result = await load(workloadIp, 80, {seconds: LOAD_SECONDS})
      intercept.kill('SIGINT')
      await exited(intercept)
      await firstReply(workloadIp, 80, 'workload', performance.now())
      return result
    }
    log('load through each kind of intercept')
    const throughContainer = await intercepted(['--use', 'bench-container', 'tpb-host-static', '--port', '18080'])
    const throughProcess = await intercepted(['--use', 'bench-host', 'tpb-host-static', '--port', '18080'])
    for (const p of processes.splice(0)) p.kill()
    const throughHybrid = await intercepted([
      '--use',
      'bench-host',
      'tpb-host-static',
      '--port',
      '18081:80',
      '--mount=false',
      '--docker-run',
      '--',
      busybox,
      ...staticServerCmd(80, 'handler'),
    ])
    const loadNote = `8 clients, a new connection per request, ${LOAD_SECONDS}s; baseline: the same load through a container daemon's intercept (${Math.round(throughContainer.rps)} req/s)`
    rows.push({
      metric: 'host daemon: requests/s through a local-process intercept',
      tp: Math.round(throughProcess.rps),
      baseline: Math.round(throughContainer.rps),
      unit: 'req/s',
      note: `${loadNote}; failed: ${throughProcess.failed}`,
    })
    rows.push({
      metric: 'host daemon: requests/s through a hybrid --docker-run intercept (-p)',
      tp: Math.round(throughHybrid.rps),
      baseline: Math.round(throughContainer.rps),
      unit: 'req/s',
      note: `${loadNote}; failed: ${throughHybrid.failed}`,
    })
    rows.push({
      metric: 'host daemon: tp intercept → first reply (handler already up)',
      tp: median(interceptTimes.host),
      baseline: median(interceptTimes.container),
      unit: 's',
      note: `median of ${RUNS}; handler: busybox httpd on this host; baseline: the same intercept on a container daemon`,
    })
    return rows
  } finally {
    for (const p of processes) p.kill()
    for (const c of created) await c.remove({force: true}).catch(() => undefined)
    await exited(tp(['quit', '--name', 'bench-host']))
    await exited(tp(['quit', '--name', 'bench-container']))
    remove()
  }
}
