export * from './schema.js'
export * from './positions.js'
export * from './expand.js'
export * from './validate.js'
