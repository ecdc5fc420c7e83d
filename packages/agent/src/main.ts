// The agent's process: `node /opt/tp/agent.cjs` inside the workload's network namespace.
// No top-level await: this file is bundled as CommonJS.
import {Agent, configFromEnv} from './agent.js'
import {connect} from 'node:net'
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

/**
 * `node agent.cjs guard`: a second process in the workload's network namespace, in a container of
 * its own, holding a connection to the agent. If the agent dies without taking its rule out
 * (docker kill, out of memory), the connection drops and the guard removes the rule at once, so
 * the workload's port is never left redirected to nothing.
 */
function guard(): void {
  const id = process.env.TP_AGENT_INTERCEPT_ID
  const port = Number(process.env.TP_AGENT_GUARD_PORT)
  if (!id || !Number.isInteger(port) || port < 1 || port > 65_535) {
    log('guard: TP_AGENT_INTERCEPT_ID and TP_AGENT_GUARD_PORT are needed')
    process.exit(2)
  }
  const restore = (why: string) => {
    removeLeftoverRules(id).then(
      (n) => {
        if (n > 0) log(`guard: ${why}; removed ${n} rule(s) the agent left`)
        process.exit(0)
      },
      (error: Error) => {
        log(`guard: ${why}; could not remove the rules: ${error.message}`)
        process.exit(1)
      },
    )
  }
  const socket = connect({host: '127.0.0.1', port})
  socket.on('connect', () => log(`guard: watching the agent of intercept ${id}`))
  socket.on('error', () => undefined) // 'close' follows
  socket.on('close', () => restore('the agent is gone'))
  for (const signal of ['SIGTERM', 'SIGINT'] as const) process.on(signal, () => restore(`received ${signal}`))
}

if (process.argv[2] === 'cleanup') cleanup()
else if (process.argv[2] === 'guard') guard()
else run()
