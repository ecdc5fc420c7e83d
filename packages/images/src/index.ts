export * from './rootfs.js'
export * from './fixtures.js'
