import {fileURLToPath} from 'node:url'
import {API_VERSION, defineClusterDrivers} from '@tp/sdk'

/** The compiled driver (dist/src/driver.js): the self-contained module tp's daemon imports by its path. */
export const MODULE = fileURLToPath(new URL('../driver.js', import.meta.url))

/**
 * What tp reads when it starts (package.json names this file under `oclif.hooks["tp:cluster-drivers"]`):
 * descriptors only. `TP_CLUSTER_DRIVER=__NAME__ tp connect` chooses this driver.
 */
export default defineClusterDrivers([
  {
    name: '__NAME__',
    apiVersion: API_VERSION,
    summary:
      'a cluster whose workloads are listed in a JSON inventory file ($TP___ENV___INVENTORY, else ./tp-inventory.json); agents run as processes on this machine',
    module: MODULE,
    // its setting: tp passes it on to the daemon, which runs the driver too
    env: ['TP___ENV___INVENTORY'],
    load: () => import('../driver.js'),
  },
])
