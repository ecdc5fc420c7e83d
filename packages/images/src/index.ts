export * from './rootfs.js'
export * from './fixtures.js'
export * from './demo.js'
