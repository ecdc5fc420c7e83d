import {API_VERSION, defineHandlers} from '@tp/sdk'

/**
 * What tp reads when it starts (package.json names this file under `oclif.hooks["tp:handlers"]`):
 * descriptors only. The implementation (`load`) is imported when `--__NAME__` is given.
 */
export default defineHandlers([
  {
    name: '__NAME__',
    apiVersion: API_VERSION,
    summary: "runs the command after -- on this machine with the workload's environment and the port to listen on in $PORT",
    selectedBy: '__NAME__',
    flags: {
      __NAME__: {type: 'boolean', description: 'hand the traffic to the command after --, run by __PACKAGE__'},
      '__NAME__-port-env': {type: 'string', helpValue: '<VAR>', description: 'the environment variable that tells the command its port (default PORT)'},
    },
    load: () => import('../handler.js'),
  },
])
