import {join} from 'node:path'
import {API_VERSION, defineClusterDrivers} from '@tp/sdk'
import {packageDir} from '@tp/sdk/paths'

/** The driver as one self-contained module (scripts/bundle-plugins.mjs makes it): what the daemon imports. */
const MODULE = join(packageDir('@tp/plugin-cluster-docker', import.meta.url), 'dist/module/driver.mjs')

export default defineClusterDrivers([
  {
    name: 'docker',
    apiVersion: API_VERSION,
    summary: "a network on a Docker engine is a namespace, its containers are workloads (tp's default)",
    module: MODULE,
    load: () => import('../index.js'),
  },
])
