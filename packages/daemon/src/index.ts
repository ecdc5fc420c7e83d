export * from './config.js'
export * from './daemon.js'
export * from './intercepts.js'
export * from './cluster.js'
