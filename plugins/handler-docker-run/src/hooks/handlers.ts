import {API_VERSION, defineHandlers} from '@tp/sdk'

export default defineHandlers([
  {
    name: 'docker-run',
    apiVersion: API_VERSION,
    summary: 'docker run the handler container in the foreground, with the intercepted environment, volumes and network',
    selectedBy: 'docker-run',
    publishesPorts: true,
    precedence: 100,
    flags: {
      'docker-run': {
        type: 'boolean',
        description: 'Run a container as the handler: everything after -- is `[docker run options] <image> [command] [args...]`',
      },
      'docker-mount': {
        type: 'string',
        helpValue: '<dir>',
        description: 'Host daemon only: the local directory where the remote volumes are mounted, bound into the container',
      },
    },
    load: () => import('../handler.js'),
  },
])
