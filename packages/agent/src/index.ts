// The daemon's side of the agent and the shared protocol; main.ts (the agent process) is not imported here.
export * from './server.js'
export * from './protocol.js'
export * from './splice.js'
export {Agent, configFromEnv, type AgentConfig} from './agent.js'
