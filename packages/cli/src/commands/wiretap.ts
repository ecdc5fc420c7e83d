import {Flags} from '@oclif/core'
import type {InterceptMode} from '@tp/sdk'
import Intercept from './intercept.js'

/** `tp wiretap`: the handler gets a copy of what clients send to one port; the workload still answers them. */
export default class Wiretap extends Intercept {
  static override mode: InterceptMode = 'wiretap'
  static override summary = 'Send a copy of the traffic to a workload port to a handler; the workload keeps answering'
  static override description =
    `Clients keep being answered by the workload; the handler (a command after --, or --docker-run/--docker-build) gets a copy of what they send to the port, and its answers are dropped. A slow or failing handler never delays or fails a client (a copy that cannot keep up is dropped). The handler gets the workload's environment and its volumes, read-only unless --writable. Any number of wiretaps may run at once, beside intercepts and personal intercepts of the same port (each is named <workload>-wiretap, -wiretap-2, … unless --name says).`
  static override examples = [
    '<%= config.bin %> wiretap frontend-v1 --port 8000 --docker-run -- frontend-v2',
    '<%= config.bin %> wiretap frontend-v1 --port 9000 -- node recorder.js',
  ]
  static override usage = 'wiretap WORKLOAD [FLAGS] [-- COMMAND [ARGS...] | --docker-run -- [DOCKER RUN OPTIONS] IMAGE [ARGS...]]'
  static override flags = (() => {
    const {'http-header': _header, 'http-path-prefix': _prefix, ...rest} = Intercept.flags
    return {
      ...rest,
      name: Flags.string({description: 'wiretap name (default: <workload>-wiretap, then -wiretap-2, …)'}),
      writable: Flags.boolean({description: "mount the workload's volumes writable (default: read-only)"}),
    }
  })()
}
