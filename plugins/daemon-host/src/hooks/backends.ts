import {API_VERSION, defineDaemonBackends} from '@tp/sdk'
import {HOST_CAPABILITIES} from '../capabilities.js'

export default defineDaemonBackends([
  {
    name: 'host',
    apiVersion: API_VERSION,
    summary: 'runs the daemon as a process on this machine, which then reaches the namespace by name (tp connect)',
    capabilities: HOST_CAPABILITIES,
    load: () => import('../backend.js'),
  },
])
