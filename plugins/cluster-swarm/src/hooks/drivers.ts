import {join} from 'node:path'
import {API_VERSION, defineClusterDrivers} from '@tp/sdk'
import {packageDir} from '@tp/sdk/paths'

/** The driver as one self-contained module (scripts/bundle-plugins.mjs makes it): what the daemon imports. */
const MODULE = join(packageDir('@tp/plugin-cluster-swarm', import.meta.url), 'dist/module/driver.mjs')

export default defineClusterDrivers([
  {
    name: 'swarm',
    apiVersion: API_VERSION,
    summary: 'a Docker Swarm stack (or overlay network) is a namespace, its services are workloads, their tasks on every node',
    module: MODULE,
    env: ['TP_REGISTRY'],
    load: () => import('../index.js'),
  },
])
