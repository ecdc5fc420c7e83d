import {API_VERSION, defineDaemonBackends} from '@tp/sdk'

export default defineDaemonBackends([
  {
    name: 'container',
    apiVersion: API_VERSION,
    summary: 'runs the daemon in a container on the namespace network (tp connect --docker)',
    load: () => import('../backend.js'),
  },
])
