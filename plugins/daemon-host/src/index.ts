export {HostBackend} from './backend.js'
export {HOST_CAPABILITIES} from './capabilities.js'
export * from './hosts-file.js'
