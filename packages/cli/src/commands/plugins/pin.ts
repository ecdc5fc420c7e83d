import {resolve} from 'node:path'
import {Args, Flags} from '@oclif/core'
import {TpCommand} from '../../base-command.js'
import {readLock, readPluginsFile, writePinFiles} from '../../pins/files.js'
import {refuseBundled, repoToPin} from '../../pins/repo.js'
import {parsePinArg, resolveRegistry, resolveTarball} from '../../pins/resolve.js'
import {describeSet, settle} from '../../pins/settle.js'

export default class PluginsPin extends TpCommand {
  static override summary = 'Pin a plugin for this repository: resolve it, install it, record it in .tp/plugins.json and .tp/plugins.lock'
  static override description =
    `PLUGIN is an npm package with an optional semver range (acme, acme@^1.2.0, @scope/acme@~1.2) or the path of a packed plugin (./vendor/acme-1.2.0.tgz, optionally …tgz@^1.2.0). Without a range, ^ of the version it resolved to is recorded.
The repository is the nearest one with a .tp/ directory, else the root of the git repository, else the working directory. Inside it tp loads exactly the pinned plugins, not the ones installed with tp plugins install. Commit .tp/.`
  static override examples = [
    '<%= config.bin %> plugins pin acme@^0.1.0',
    '<%= config.bin %> plugins pin ./vendor/acme-0.1.0.tgz',
    '<%= config.bin %> plugins pin acme --registry http://127.0.0.1:4873/',
  ]
  static override args = {plugin: Args.string({description: 'an npm package[@range], or the path of a packed plugin (.tgz)', required: true})}
  static override flags = {
    registry: Flags.string({
      description: "the npm registry to resolve it on (recorded in .tp/plugins.json); default TP_NPM_REGISTRY, else npm's",
      helpValue: '<url>',
    }),
  }

  async run(): Promise<void> {
    const {args, flags} = await this.parse(PluginsPin)
    const repo = repoToPin()
    const wanted = (await readPluginsFile(repo)) ?? {plugins: {}}
    const lock = await readLock(repo)
    const refuseCore = (name: string) => refuseBundled([name], this.config.pjson.oclif.plugins, 'tp plugins pin')
    const arg = parsePinArg(args.plugin)
    if (arg.kind === 'registry') refuseCore(arg.name)
    const given = flags.registry ?? this.config.npmRegistry
    const resolved = arg.kind === 'tarball' ? await resolveTarball(resolve(arg.path), arg.range, repo) : await resolveRegistry(arg.name, arg.range, given)
    refuseCore(resolved.name)
    if (arg.kind === 'registry' && !flags.registry) delete resolved.wanted.registry
    wanted.plugins[resolved.name] = resolved.wanted
    const note = (line: string) => process.stderr.write(`${line}\n`)
    const settled = await settle({repo, wanted, lock, fresh: [resolved], note})
    await writePinFiles(repo, wanted, settled.lockBytes)
    const locked = settled.lock.plugins[resolved.name]
    this.log(`pinned ${resolved.name}@${locked.version} (${resolved.wanted.version}, from ${locked.resolved}) in ${repo}/.tp`)
    this.log(`installed set: ${describeSet(settled.lock)}`)
    this.log('commit .tp/plugins.json and .tp/plugins.lock; teammates and CI run `tp plugins sync` (CI: --frozen)')
  }
}
