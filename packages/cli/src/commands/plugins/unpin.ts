import {resolve} from 'node:path'
import {Args} from '@oclif/core'
import {UserError} from '@tp/sdk'
import {TpCommand} from '../../base-command.js'
import {writePinFiles} from '../../pins/files.js'
import {pinnedRepo} from '../../pins/repo.js'
import {parsePinArg} from '../../pins/resolve.js'
import {describeSet, settle} from '../../pins/settle.js'

export default class PluginsUnpin extends TpCommand {
  static override summary = "Remove a plugin from this repository's pins (.tp/plugins.json and .tp/plugins.lock) and install the rest"
  static override examples = ['<%= config.bin %> plugins unpin acme']
  static override args = {plugin: Args.string({description: 'the pinned package name (or the tarball path it was pinned from)', required: true})}

  async run(): Promise<void> {
    const {args} = await this.parse(PluginsUnpin)
    const {repo, wanted, lock} = await pinnedRepo('remove')
    const arg = parsePinArg(args.plugin)
    const name =
      arg.kind === 'registry' ? arg.name : Object.entries(wanted.plugins).find(([, w]) => w.tarball && resolve(repo, w.tarball) === resolve(arg.path))?.[0]
    if (!name || !wanted.plugins[name]) {
      const pinned = Object.keys(wanted.plugins)
      throw new UserError(
        `${args.plugin} is not pinned in ${repo}/.tp/plugins.json`,
        pinned.length > 0 ? `pinned there: ${pinned.join(', ')}` : 'nothing is pinned there; remove .tp/ if the repository should not pin plugins',
      )
    }
    delete wanted.plugins[name]
    if (lock) delete lock.plugins[name]
    const settled = await settle({repo, wanted, lock, note: (line) => process.stderr.write(`${line}\n`)})
    await writePinFiles(repo, wanted, settled.lockBytes)
    this.log(`unpinned ${name} in ${repo}/.tp; installed set: ${describeSet(settled.lock)}`)
  }
}
