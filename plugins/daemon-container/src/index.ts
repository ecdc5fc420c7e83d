export {ContainerBackend, daemonContainerName} from './backend.js'
