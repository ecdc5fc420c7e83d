import {Flags} from '@oclif/core'
import type {InterceptMode} from '@tp/sdk'
import Intercept from './intercept.js'

/** `tp ingest`: the handler gets the workload's environment and volumes; no traffic is taken. */
export default class Ingest extends Intercept {
  static override mode: InterceptMode = 'ingest'
  static override summary = "Run a handler with a workload's environment and volumes, taking none of its traffic"
  static override description =
    `The handler (a command after --, or --docker-run/--docker-build) gets the workload's environment and its volumes, read-only unless --writable; the workload keeps all of its traffic. Any number of ingests of one workload may run at once, beside an intercept too (each is named <workload>-ingest, -ingest-2, … unless --name says).`
  static override examples = [
    '<%= config.bin %> ingest frontend-v1 --docker-run -- frontend-v2 cat /data/config.txt',
    '<%= config.bin %> ingest frontend-v1 -- sh -c \'cat "$TP_ROOT/data/config.txt"\'',
    '<%= config.bin %> ingest frontend-v1 --writable --docker-run -- -it frontend-v2 sh',
  ]
  static override usage = 'ingest WORKLOAD [FLAGS] [-- COMMAND [ARGS...] | --docker-run -- [DOCKER RUN OPTIONS] IMAGE [ARGS...]]'
  static override flags = (() => {
    const {port: _port, 'http-header': _header, 'http-path-prefix': _prefix, ...rest} = Intercept.flags
    return {
      ...rest,
      name: Flags.string({description: 'ingest name (default: <workload>-ingest, then -ingest-2, …)'}),
      writable: Flags.boolean({description: "mount the workload's volumes writable (default: read-only)"}),
    }
  })()
}
