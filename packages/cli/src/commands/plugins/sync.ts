import {writeFile} from 'node:fs/promises'
import {Flags} from '@oclif/core'
import {TpCommand} from '../../base-command.js'
import {lockPath} from '../../pins/files.js'
import {pinnedRepo, refuseBundled} from '../../pins/repo.js'
import {describeSet, settle} from '../../pins/settle.js'

export default class PluginsSync extends TpCommand {
  static override summary = "Install exactly the plugins this repository's .tp/plugins.lock names"
  static override description =
    `Every tarball is checked against the lock's sha512 before anything is installed; the set is installed beside the one in use and swapped in only when complete, so a failure leaves it as it was. Tarballs are cached by their sha512: after one sync it works offline.
Without --frozen, plugins that .tp/plugins.json wants and the lock does not give (new, out of range, from elsewhere) are resolved and the lock is updated. With --frozen (for CI) that is an error, and nothing is changed.`
  static override examples = ['<%= config.bin %> plugins sync', '<%= config.bin %> plugins sync --frozen']
  static override flags = {
    frozen: Flags.boolean({description: 'fail, changing nothing, if the lock does not satisfy .tp/plugins.json (never rewrite the lock)'}),
  }

  async run(): Promise<void> {
    const {flags} = await this.parse(PluginsSync)
    const {repo, wanted, lock} = await pinnedRepo('sync')
    refuseBundled(Object.keys(wanted.plugins), this.config.pjson.oclif.plugins, `${repo}/.tp/plugins.json`)
    const settled = await settle({repo, wanted, lock, frozen: flags.frozen, note: (line) => process.stderr.write(`${line}\n`)})
    if (settled.lockChanged) await writeFile(lockPath(repo), settled.lockBytes)
    const what = describeSet(settled.lock)
    this.log(settled.installed ? `installed the plugins pinned by ${repo}/.tp: ${what}` : `the plugins pinned by ${repo}/.tp are installed as locked: ${what}`)
    if (settled.lockChanged) this.log('updated .tp/plugins.lock: commit it')
  }
}
