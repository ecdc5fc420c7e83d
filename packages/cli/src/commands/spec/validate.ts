import {readFile} from 'node:fs/promises'
import {Args} from '@oclif/core'
import {UserError} from '@tp/sdk'
import {formatProblem, validateSpec} from '@tp/spec'
import {TpCommand} from '../../base-command.js'
import {pluginKinds} from '../../spec-handlers.js'

export default class SpecValidate extends TpCommand {
  static override summary = 'Check an intercept specification: every problem with its line and column'
  static override description =
    `Needs no Docker engine and no connection. \${VAR} and \${VAR:-default} are expanded from this environment, as tp spec run would.
Handler kinds of installed plugins are checked against their plugins' schemas.`
  static override examples = ['<%= config.bin %> spec validate tp-spec.yaml']
  static override args = {file: Args.string({description: 'the spec file (YAML or JSON)', required: true})}

  async run(): Promise<void> {
    const {args} = await this.parse(SpecValidate)
    const text = await readFile(args.file, 'utf8').catch((error: NodeJS.ErrnoException) => {
      throw new UserError(
        `cannot read ${args.file}: ${error.code === 'ENOENT' ? 'no such file' : error.message}`,
        'give the path of a spec file (YAML or JSON)',
      )
    })
    const result = validateSpec(text, {file: args.file, kinds: pluginKinds(await this.registries())})
    if (!result.spec) {
      for (const problem of result.problems) process.stderr.write(`${formatProblem(problem, args.file)}\n`)
      process.stderr.write(`${args.file}: ${result.problems.length} problem${result.problems.length === 1 ? '' : 's'}\n`)
      this.exit(1)
      return
    }
    const {spec} = result
    const intercepts = spec.workloads.flatMap((w) => w.intercepts).filter((i) => i.enabled !== false).length
    const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`
    this.log(
      `${args.file}: valid spec ${spec.name}: ${plural(spec.handlers.length, 'handler')}, ${plural(spec.workloads.length, 'workload')} (${plural(intercepts, 'intercept')}), ${plural(spec.prerequisites.length, 'prerequisite')}`,
    )
  }
}
