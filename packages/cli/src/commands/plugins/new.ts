import {relative, resolve} from 'node:path'
import {Args, Flags} from '@oclif/core'
import {UserError} from '@tp/sdk'
import {TpCommand} from '../../base-command.js'
import {RESERVED_FLAGS} from '../../extensions.js'
import {
  PLUGIN_KINDS,
  type PluginKind,
  type PluginNames,
  checkTarget,
  hostSdk,
  pluginKind,
  pluginNames,
  renderPlugin,
  tarballName,
  writeProject,
} from '../../plugin-template.js'

export default class PluginsNew extends TpCommand {
  static override summary =
    'Write a new plugin project: a handler, a volume provider, a daemon backend or a cluster driver (TypeScript, builds, with its own test)'
  static override description =
    `Writes a working plugin to start from into ./<package name> (or --dir): TypeScript sources, a package.json whose hook registers the extension, a test run with node --test and @tp/sdk/testing, and a README. @tp/sdk comes from this tp (a peer dependency; the project builds against this tp's copy), so no registry needs to carry it.

Kinds:
  handler: runs the command after -- with the workload's environment and $PORT
  volume-provider: gives the volumes as local directories filled from a seed
  daemon-backend: connects to a tp daemon that runs elsewhere
  cluster-driver: a cluster whose workloads are listed in a JSON inventory file

A name without a scope becomes tp-plugin-<name>; the extension (and a handler's flag) is the name without scope and tp-plugin-.`
  static override examples = [
    '<%= config.bin %> plugins new handler acme',
    '<%= config.bin %> plugins new volume-provider @my-team/tp-plugin-fixtures --dir ./fixtures',
  ]
  static override args = {
    kind: Args.string({description: `what the plugin provides: ${Object.keys(PLUGIN_KINDS).join(', ')}`, required: true}),
    name: Args.string({description: 'its npm package name, e.g. acme (tp-plugin-acme) or @my-team/tp-plugin-acme', required: true}),
  }
  static override flags = {
    dir: Flags.string({description: 'directory to write it to (new or empty; default ./<package name without scope>)', helpValue: '<path>'}),
  }

  async run(): Promise<void> {
    const {args, flags} = await this.parse(PluginsNew)
    const kind = pluginKind(args.kind)
    const names = pluginNames(args.name)
    await this.refuseTaken(kind, names)
    const target = resolve(flags.dir ?? names.directory)
    await checkTarget(target)
    const files = await renderPlugin(kind, names, await hostSdk())
    await writeProject(target, files)

    const shown = relative(process.cwd(), target) || '.'
    const tarball = tarballName(names)
    this.log(`Wrote ${PLUGIN_KINDS[kind].words} plugin ${names.packageName} (${PLUGIN_KINDS[kind].point} "${names.extension}") to ${target}:
  ${[...files.keys()].sort().join('\n  ')}

Next:
  cd ${shown.includes(' ') ? JSON.stringify(shown) : shown}
  npm install                # typescript, and @tp/sdk from this tp
  npm run build
  npm test
  npm pack                   # writes ${tarball}
  tp plugins install ${resolve(target, tarball)}
  tp extensions              # lists it${kind === 'handler' ? `\n  tp intercept <workload> --port 8000 --${names.extension} -- <command>` : ''}`)
  }

  /** A name tp's own extensions (or, for a handler, tp's own flags) already have: tp would refuse the plugin. */
  private async refuseTaken(kind: PluginKind, names: PluginNames): Promise<void> {
    const registries = await this.registries()
    const registry = registries[PLUGIN_KINDS[kind].point]
    const core = registry.list().filter((e) => e.plugin.type === 'core')
    if (core.some((e) => e.descriptor.name === names.extension)) {
      throw new UserError(`tp has its own ${kind.replace('-', ' ')} named "${names.extension}": a plugin cannot replace it`, 'choose another name')
    }
    if (kind !== 'handler') return
    const taken = new Set([...RESERVED_FLAGS, ...core.flatMap((e) => Object.keys((e.descriptor as {flags?: object}).flags ?? {}))])
    for (const flag of [names.extension, `${names.extension}-port-env`]) {
      if (taken.has(flag)) throw new UserError(`--${flag} is already a flag of tp intercept: the handler's flag must be its own`, 'choose another name')
    }
  }
}
