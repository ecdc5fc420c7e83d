import {Duplex} from 'node:stream'
import {serveTunnel} from './far.js'

// tp's relay: the far end of a tunnel, on its stdin and stdout (an attach stream of the Engine
// API), beside the workloads of a cluster on another machine. It opens no port but those its
// near end asks it to accept on, and ends (its container removes itself) when the tunnel ends.
const log = (m: string) => process.stderr.write(`${new Date().toISOString()} relay: ${m}\n`)
const transport = Duplex.from({readable: process.stdin, writable: process.stdout})
serveTunnel(transport, {log}).then((why) => {
  log(`ending: ${why}`)
  process.exit(0)
})
// PID 1 of its container: without a handler SIGTERM would be ignored, and a stopping engine
// (docker stop, a restart) would wait its 10 s before killing it. The tunnel ends with the process:
// the near end hears so at once.
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.on(signal, () => {
    log(`ending: ${signal}`)
    process.exit(0)
  })
}
