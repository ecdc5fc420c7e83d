import {API_VERSION, defineHandlers} from '@tp/sdk'

export default defineHandlers([
  {
    name: 'process',
    apiVersion: API_VERSION,
    summary: "a command on this machine is the handler (tp intercept <workload> -- <command> [args]), with the workload's environment and volumes (TP_ROOT)",
    selectedByArgs: true,
    flags: {},
    load: () => import('../handler.js'),
  },
])
