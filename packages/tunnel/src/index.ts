export * from './far.js'
export * from './near.js'
export * from './pipe.js'
export * from './settings.js'
