export * from './rootfs.js'
