// The agent's process: `node /opt/tp/agent.cjs` inside the workload's network namespace.
// No top-level await: this file is bundled as CommonJS.
import {Agent, configFromEnv} from './agent.js'
import {removeLeftoverRules} from './iptables.js'

const log = (m: string) => process.stderr.write(`tp-agent: ${m}\n`)

/** `node agent.cjs cleanup`: removes the rules of an agent that was killed (SIGKILL) before it could. */
function cleanup(): void {
  // the intercept's rules, or every agent's when TP_AGENT_INTERCEPT_ID is not set
  removeLeftoverRules(process.env.TP_AGENT_INTERCEPT_ID || undefined).then(
    (n) => {
      log(`removed ${n} leftover rule(s)`)
      process.exit(0)
    },
    (error: Error) => {
      log(`cleanup failed: ${error.message}`)
      process.exit(1)
    },
  )
}

function run(): void {
  let agent: Agent
  try {
    agent = new Agent({...configFromEnv(process.env), log})
  } catch (error) {
    log(`bad configuration: ${(error as Error).message}`)
    process.exit(2)
  }
  // the rule must never outlive this process, whatever ends it
  process.on('exit', () => agent.emergencyCleanup())
  for (const signal of ['SIGTERM', 'SIGINT'] as const) process.on(signal, () => void agent.release(`received ${signal}`))
  process.on('uncaughtException', (error) => {
    log(`crashed: ${error.stack ?? error.message}`)
    agent.emergencyCleanup()
    process.exit(1)
  })
  agent.start().then(
    async () => process.exit(await agent.done),
    (error: Error) => {
      log(error.message)
      agent.emergencyCleanup()
      process.exit(1)
    },
  )
}

if (process.argv[2] === 'cleanup') cleanup()
else run()
