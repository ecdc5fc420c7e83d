import {API_VERSION, defineDaemonBackends} from '@tp/sdk'
import {CONTAINER_CAPABILITIES} from '../capabilities.js'

export default defineDaemonBackends([
  {
    name: 'container',
    apiVersion: API_VERSION,
    summary: 'runs the daemon in a container on the namespace network (tp connect --docker)',
    capabilities: CONTAINER_CAPABILITIES,
    load: () => import('../backend.js'),
  },
])
