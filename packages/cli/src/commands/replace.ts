import {Flags} from '@oclif/core'
import type {InterceptMode} from '@tp/sdk'
import Intercept from './intercept.js'

/** `tp replace`: every port of the workload goes to the handler, and the workload is paused meanwhile. */
export default class Replace extends Intercept {
  static override mode: InterceptMode = 'replace'
  static override summary = 'Replace a workload: all of its ports go to a handler on your side, and the workload is paused meanwhile'
  static override description =
    `Every TCP port of the workload goes to the handler, which listens on the same port numbers unless --port <local>:<service port> says otherwise (repeatable). Once the handler answers, the workload's container is paused; it is resumed on every end: the handler exiting, Ctrl-C, tp leave, tp quit, a kill -9 of tp (the daemon resumes it), and should the daemon die too, the next tp command or tp gc.`
  static override examples = [
    '<%= config.bin %> replace --docker frontend-v1 --docker-run -- -e PORT=80 frontend-v2',
    '<%= config.bin %> replace frontend-v1 --port 8000:80 -- python3 -m http.server 8000',
  ]
  static override usage = 'replace WORKLOAD [FLAGS] [-- COMMAND [ARGS...] | --docker-run -- [DOCKER RUN OPTIONS] IMAGE [ARGS...]]'
  static override flags = {
    ...(() => {
      const {'http-header': _header, 'http-path-prefix': _prefix, ...rest} = Intercept.flags
      return rest
    })(),
    port: Flags.string({
      char: 'p',
      description: 'where the handler listens for a service port, when not on its own number: <local>:<service port> (repeatable)',
      multiple: true,
    }),
    name: Flags.string({description: 'name (default: the workload name)'}),
  }
}
