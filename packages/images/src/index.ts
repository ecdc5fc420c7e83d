export * from './rootfs.js'
export * from './runtime.js'
export * from './fixtures.js'
export * from './demo.js'
