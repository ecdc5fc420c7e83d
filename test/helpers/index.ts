export * from './demo.js'
export * from './tp.js'
