import {writeFile} from 'node:fs/promises'
import {Flags} from '@oclif/core'
import {specJsonSchema} from '@tp/spec'
import {TpCommand} from '../../base-command.js'
import {pluginKinds} from '../../spec-handlers.js'

export default class SpecSchema extends TpCommand {
  static override summary = 'The JSON Schema of intercept specifications, with the sections of the installed plugins'
  static override description =
    'For editors: save it and point the spec at it, e.g. `# yaml-language-server: $schema=./tp-spec.schema.json` as the first line of a YAML spec.'
  static override examples = ['<%= config.bin %> spec schema --output tp-spec.schema.json']
  static override flags = {output: Flags.string({char: 'o', description: 'write it to this file instead of stdout'})}

  async run(): Promise<void> {
    const {flags} = await this.parse(SpecSchema)
    const text = `${JSON.stringify(specJsonSchema(pluginKinds(await this.registries())), null, 2)}\n`
    if (flags.output) {
      await writeFile(flags.output, text)
      process.stderr.write(`Wrote the schema to ${flags.output}.\n`)
    } else process.stdout.write(text)
  }
}
