export * from './demo.js'
export * from './tp.js'
export * from './terminal.js'
