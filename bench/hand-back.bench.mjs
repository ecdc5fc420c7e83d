import Docker from 'dockerode'
import {demoUp, ensureFixtureImages} from '@tp/images'
import {benchTp, firstReply, load, startStaticServer} from './run.mjs'

export const name = 'hand-back'
export const description = 'failed requests through 10 loaded intercept starts and 10 loaded ends'

const CYCLES = Number(process.env.TP_BENCH_CYCLES ?? 10)
const docker = new Docker()

export async function run({log, root}) {
  const {busybox} = await ensureFixtureImages(docker)
  await demoUp(docker)
  const {tp, exited, remove} = benchTp(root, 'handback')
  const created = []
  try {
    if ((await exited(tp(['connect', '--docker', '--namespace', 'tp-demo', '--name', 'bench-handback']))) !== 0) throw new Error('tp connect failed')
    const {container: workload, ip} = await startStaticServer(docker, {
      name: 'tpb-handback-static',
      image: busybox,
      port: 80,
      marker: 'workload',
      network: 'tp-demo',
    })
    created.push(workload)
    const {container: handler} = await startStaticServer(docker, {
      name: 'tpb-handback-handler',
      image: busybox,
      port: 8000,
      marker: 'handler',
      network: 'container:tp-bench-handback-cn',
    })
    created.push(handler)
    await firstReply(ip, 80, 'workload', performance.now())

    log(`${CYCLES} intercepts started and ended under load`)
    const started = performance.now()
    const cycles = (async () => {
      for (let i = 0; i < CYCLES; i++) {
        const intercept = tp(['intercept', 'tpb-handback-static', '--port', '8000'])
        await firstReply(ip, 80, 'handler', performance.now())
        intercept.kill('SIGINT')
        await exited(intercept)
        await firstReply(ip, 80, 'workload', performance.now())
      }
    })()
    // the load runs until the cycles are done (measured in whole seconds)
    const loadDuring = (async () => {
      const results = []
      let done = false
      void cycles.finally(() => (done = true))
      while (!done) results.push(await load(ip, 80, {seconds: 1, concurrency: 4}))
      return results
    })()
    await cycles
    const during = await loadDuring
    const seconds = Math.round((performance.now() - started) / 1000)
    // each 1 s round's requests per second, times its second: what was answered
    const through = during.reduce((sum, r) => ({ok: sum.ok + r.rps, failed: sum.failed + r.failed}), {ok: 0, failed: 0})
    const baseline = await load(ip, 80, {seconds, concurrency: 4})
    return [
      {
        metric: `failed requests through ${CYCLES} loaded intercept starts and ${CYCLES} ends`,
        tp: through.failed,
        baseline: baseline.failed,
        unit: 'requests',
        ratio: null,
        note: `${Math.round(through.ok)} answered in ${seconds} s of cycles, 4 clients without pause; baseline: the same load for as long, no intercept (${Math.round(baseline.rps * seconds)} answered)`,
      },
    ]
  } finally {
    for (const c of created) await c.remove({force: true}).catch(() => undefined)
    await exited(tp(['quit', '--name', 'bench-handback']))
    remove()
  }
}
