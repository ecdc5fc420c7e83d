export * from './demo.js'
export * from './tp.js'
export * from './terminal.js'
export * from './poll.js'
