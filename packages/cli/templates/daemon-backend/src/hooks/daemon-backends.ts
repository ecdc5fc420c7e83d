import {API_VERSION, defineDaemonBackends} from '@tp/sdk'
import {CAPABILITIES} from '../capabilities.js'

/**
 * What tp reads when it starts (package.json names this file under `oclif.hooks["tp:daemon-backends"]`):
 * descriptors only. `TP_DAEMON_BACKEND=__NAME__ tp connect` chooses this backend.
 */
export default defineDaemonBackends([
  {
    name: '__NAME__',
    apiVersion: API_VERSION,
    summary: 'connects to a tp daemon that runs elsewhere, at $TP___ENV___URL with $TP___ENV___TOKEN',
    capabilities: CAPABILITIES,
    load: () => import('../backend.js'),
  },
])
