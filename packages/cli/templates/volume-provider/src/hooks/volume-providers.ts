import {API_VERSION, defineVolumeProviders} from '@tp/sdk'

/**
 * What tp reads when it starts (package.json names this file under `oclif.hooks["tp:volume-providers"]`):
 * descriptors only. The implementation (`load`) is imported when an intercept uses this provider.
 */
export default defineVolumeProviders([
  {
    name: '__NAME__',
    apiVersion: API_VERSION,
    summary: "gives the workload's volumes to a handler on this machine as directories filled from $TP___ENV___SEED (local data, not the cluster's)",
    forms: ['directory'],
    // where it fits: every placement (it reads nothing from the cluster)
    requires: {},
    load: () => import('../provider.js'),
  },
])
