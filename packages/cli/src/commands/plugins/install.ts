import {commands} from '@oclif/plugin-plugins'
import {UserError, formatError, isTpError} from '@tp/sdk'

const PluginPluginsInstall: (typeof commands)['plugins:install'] = commands['plugins:install']

/**
 * plugin-plugins' `plugins install`, except for `--jit`: it installs a plugin at the version the
 * CLI's package.json pins under `oclif.jitPlugins`. tp declares none, and plugin-plugins then warns
 * and installs the latest version anyway, which is not what `--jit` asked for: tp refuses instead.
 * (Per-repository versions are what `.tp/plugins.json` pins.)
 */
export default class PluginsInstall extends PluginPluginsInstall {
  // oclif's parse spreads the command class: inherited statics would not be seen
  static override args = PluginPluginsInstall.args
  static override flags = PluginPluginsInstall.flags
  static override strict = PluginPluginsInstall.strict
  static override baseFlags = PluginPluginsInstall.baseFlags
  static override enableJsonFlag = PluginPluginsInstall.enableJsonFlag

  override async run(): Promise<void> {
    const {flags} = await this.parse(PluginsInstall)
    const jitPlugins = (this.config.pjson.oclif as {jitPlugins?: Record<string, string>}).jitPlugins ?? {}
    if (flags.jit && Object.keys(jitPlugins).length === 0) {
      throw new UserError(
        'tp declares no just-in-time plugins (oclif.jitPlugins in its package.json), so --jit has no version to install',
        'leave --jit out: `tp plugins install <plugin>` installs the latest version, `<plugin>@<version>` another one',
      )
    }
    return super.run()
  }

  protected override async catch(error: Error & {exitCode?: number}): Promise<unknown> {
    if (!isTpError(error)) return super.catch(error)
    process.stderr.write(`tp: ${formatError(error)}\n`)
    this.exit(error.exitCode)
  }
}
