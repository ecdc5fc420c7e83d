import {Args, Flags} from '@oclif/core'
import {TpCommand} from '../../base-command.js'
import {requirePinnedSet} from '../../pins/state.js'
import {Interrupts} from '../../interrupts.js'
import {describePlan, loadSpec, runSpec} from '../../spec-run.js'

export default class SpecRun extends TpCommand {
  static override summary = 'Run an intercept specification: connect, create prerequisites, intercept every workload, run every handler'
  static override description =
    `Validates the file, connects with its connection options unless that connection is live, runs the create prerequisites in order, creates every intercept and runs every handler at once.
Ctrl-C, SIGTERM, a handler ending, tp leave or tp quit end everything in reverse order: handlers, volumes, intercepts, then the deletes of the creates that ran, then the connection if this run made it (a connection that was live before stays).
The exit code is the first ending handler's (or a failing create's), else 0.`
  static override examples = ['<%= config.bin %> spec run tp-spec.yaml', '<%= config.bin %> spec run tp-spec.yaml --dry-run']
  static override args = {file: Args.string({description: 'the spec file (YAML or JSON)', required: true})}
  static override flags = {
    'dry-run': Flags.boolean({description: 'print the plan (connection, prerequisites, intercepts, handler commands) and create nothing'}),
  }

  async run(): Promise<void> {
    const {args, flags} = await this.parse(SpecRun)
    requirePinnedSet() // a repository's pinned plugins must be installed as locked
    const registries = await this.registries()
    const context = this.pluginContext()
    const {spec, kinds, dir} = await loadSpec(args.file, registries)
    if (flags['dry-run']) {
      process.stdout.write(await describePlan({registries, context, spec, kinds, dir}))
      return
    }
    const interrupts = new Interrupts((text) => process.stderr.write(text))
    let code: number
    try {
      code = await runSpec({registries, context, spec, kinds, dir, interrupts, write: (text) => process.stderr.write(text)})
    } finally {
      interrupts.dispose()
    }
    if (code !== 0) this.exit(code)
  }
}
