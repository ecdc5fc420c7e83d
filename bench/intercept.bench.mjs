import Docker from 'dockerode'
import {demoUp, ensureFixtureImages} from '@tp/images'
import {benchTp, firstReply, interceptSettled, load as loadOf, median, startStaticServer, staticServerCmd} from './run.mjs'

export const name = 'intercept'
export const description = 'time to the first intercepted reply, and throughput/latency through the agent'

const RUNS = Number(process.env.TP_BENCH_RUNS ?? 5)
const LOAD_SECONDS = Number(process.env.TP_BENCH_LOAD_SECONDS ?? 4)
const CONCURRENCY = 8
const load = (host, port) => loadOf(host, port, {seconds: LOAD_SECONDS, concurrency: CONCURRENCY})
const docker = new Docker()

async function address(container, network) {
  const info = await docker.getContainer(container).inspect()
  return info.NetworkSettings.Networks[network].IPAddress
}

export async function run({log, root}) {
  const {busybox} = await ensureFixtureImages(docker)
  await demoUp(docker)
  const {tp, exited, remove} = benchTp(root, 'intercept')
  const created = []
  const rows = []
  try {
    log('connecting (container daemon)')
    if ((await exited(tp(['connect', '--docker', '--namespace', 'tp-demo', '--name', 'bench']))) !== 0) throw new Error('tp connect failed')
    // the workload: a static server on tp-demo; the handler: the same server in the daemon's namespace
    const {container: workload, ip: workloadIp} = await startStaticServer(docker, {
      name: 'tpb-static',
      image: busybox,
      port: 80,
      marker: 'workload',
      network: 'tp-demo',
    })
    created.push(workload)
    const {container: handler} = await startStaticServer(docker, {
      name: 'tpb-handler',
      image: busybox,
      port: 8000,
      marker: 'handler',
      network: 'container:tp-bench-cn',
    })
    created.push(handler)
    await firstReply(workloadIp, 80, 'workload', performance.now())

    const interceptTimes = []
    const plainTimes = []
    for (let i = 0; i < RUNS; i++) {
      log(`first reply ${i + 1}/${RUNS}`)
      let started = performance.now()
      const intercept = tp(['intercept', 'tpb-static', '--port', '8000'])
      interceptTimes.push(await firstReply(workloadIp, 80, 'handler', started))
      intercept.kill('SIGINT')
      await exited(intercept)
      await firstReply(workloadIp, 80, 'workload', performance.now())

      started = performance.now()
      const plain = await docker.createContainer({
        name: `tpb-plain-${i}`,
        Image: busybox,
        Cmd: staticServerCmd(80, 'plain'),
        Labels: {'tp.fixture': 'true'},
        HostConfig: {NetworkMode: 'tp-demo'},
      })
      await plain.start()
      plainTimes.push(await firstReply(await address(`tpb-plain-${i}`, 'tp-demo'), 80, 'plain', started))
      await plain.remove({force: true})
    }
    rows.push({
      metric: 'tp intercept → first intercepted reply',
      tp: median(interceptTimes),
      baseline: median(plainTimes),
      unit: 's',
      note: `median of ${RUNS}; baseline: create+start a plain container of the same server → first reply`,
    })

    log('load through the agent and direct')
    const direct = await load(workloadIp, 80)
    const intercept = tp(['intercept', 'tpb-static', '--port', '8000'])
    await firstReply(workloadIp, 80, 'handler', performance.now())
    await interceptSettled(docker, 'bench')
    const through = await load(workloadIp, 80)
    intercept.kill('SIGINT')
    await exited(intercept)
    const note = `${CONCURRENCY} clients, a new connection per request, ${LOAD_SECONDS}s each; baseline: the same requests to the un-intercepted workload`
    rows.push({metric: 'requests/s through the agent', tp: Math.round(through.rps), baseline: Math.round(direct.rps), unit: 'req/s', note})
    rows.push({metric: 'p50 latency through the agent', tp: through.p50, baseline: direct.p50, unit: 'ms', note})
    rows.push({
      metric: 'p99 latency through the agent',
      tp: through.p99,
      baseline: direct.p99,
      unit: 'ms',
      note: `failed requests: ${through.failed} through, ${direct.failed} direct`,
    })
    return rows
  } finally {
    for (const c of created) await c.remove({force: true}).catch(() => undefined)
    await exited(tp(['quit']))
    remove()
  }
}
