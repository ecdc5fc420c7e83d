import {access, writeFile} from 'node:fs/promises'
import {Args, Flags} from '@oclif/core'
import {UserError, type WorkloadInfo} from '@tp/sdk'
import {TpCommand} from '../../base-command.js'
import {Connections} from '../../connections.js'

/** A starting spec: one docker handler per workload, intercepting its first port. */
export function initialSpec(namespace: string, connection: string, workloads: WorkloadInfo[]): string {
  const lines = [
    '# An intercept specification: tp spec validate <file>, tp spec run <file>.',
    '# Fields: see "Intercept specifications" in tp\'s README, or `tp spec schema`.',
    `name: ${namespace}`,
    'connection:',
    `  namespace: ${namespace}`,
    `  name: ${connection}`,
    'handlers:',
  ]
  workloads.forEach((w, i) => {
    lines.push(
      `  - name: ${w.name}-handler`,
      '    environment:',
      '      - name: TP_SPEC',
      `        value: "${w.name}"`,
      '    docker:',
      `      image: \${${w.name.toUpperCase().replace(/[^A-Z0-9_]/g, '_')}_IMAGE:-${w.name}}   # the image to run instead of ${w.name}`,
      `      ports: [${8080 + i}]   # where it listens`,
    )
  })
  lines.push('workloads:')
  for (const w of workloads) {
    const [first, ...others] = w.ports
    lines.push(`  - name: ${w.name}`, '    intercepts:', `      - handler: ${w.name}-handler`)
    if (first) lines.push(`        port: ${first.name ?? first.port}${others.length > 0 ? `   # also: ${others.map((p) => p.name ?? p.port).join(', ')}` : ''}`)
  }
  lines.push(
    '# prerequisites run with no intercept: creates before, the deletes of the creates that ran after.',
    '# prerequisites:',
    '#   - create: setup',
    '#     delete: teardown',
  )
  return `${lines.join('\n')}\n`
}

export default class SpecInit extends TpCommand {
  static override summary = 'Write a starting intercept specification for a workload (or every workload) of the connected namespace'
  static override examples = ['<%= config.bin %> spec init frontend-v1 --output tp-spec.yaml']
  static override args = {workload: Args.string({description: 'the workload (default: every workload of the namespace)'})}
  static override flags = {
    output: Flags.string({char: 'o', description: 'write it to this file (which must not exist) instead of stdout'}),
    use: Flags.string({description: 'connection to use (when there are several)'}),
  }

  async run(): Promise<void> {
    const {args, flags} = await this.parse(SpecInit)
    const connections = new Connections(await this.registries(), this.pluginContext())
    const {client, record} = await connections.current({use: flags.use})
    const all = await client.workloads()
    const chosen = args.workload
      ? all.filter((w) => w.name === args.workload || w.replicas.some((r) => r.name === args.workload) || w.aliases.includes(args.workload as string))
      : all
    if (chosen.length === 0) {
      throw new UserError(
        args.workload ? `there is no workload "${args.workload}" in namespace ${record.namespace}` : `namespace ${record.namespace} has no workloads`,
        all.length > 0 ? `workloads: ${all.map((w) => w.name).join(', ')}` : 'start one, or connect to another namespace',
      )
    }
    const text = initialSpec(record.namespace, record.name, chosen)
    if (!flags.output) {
      process.stdout.write(text)
      return
    }
    const exists = await access(flags.output).then(
      () => true,
      () => false,
    )
    if (exists) throw new UserError(`${flags.output} exists already`, 'choose another --output, or remove it first')
    await writeFile(flags.output, text)
    process.stderr.write(`Wrote ${flags.output}; check it with \`tp spec validate ${flags.output}\`.\n`)
  }
}
