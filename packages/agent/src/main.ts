// The agent's process: `node /opt/tp/agent.cjs` inside the workload's network namespace.
import {Agent, configFromEnv} from './agent.js'

const log = (m: string) => process.stderr.write(`tp-agent: ${m}\n`)

let agent: Agent | undefined
try {
  agent = new Agent({...configFromEnv(process.env), log})
} catch (error) {
  log(`bad configuration: ${(error as Error).message}`)
  process.exit(2)
}

const running = agent
// the rule must never outlive this process, whatever ends it
process.on('exit', () => running.emergencyCleanup())
for (const signal of ['SIGTERM', 'SIGINT'] as const) process.on(signal, () => void running.release(`received ${signal}`))
process.on('uncaughtException', (error) => {
  log(`crashed: ${error.stack ?? error.message}`)
  running.emergencyCleanup()
  process.exit(1)
})

// no top-level await: this file is bundled as CommonJS
running.start().then(
  async () => process.exit(await running.done),
  (error: Error) => {
    log(error.message)
    running.emergencyCleanup()
    process.exit(1)
  },
)
