export * from './cluster.js'
export * from './workload.js'
