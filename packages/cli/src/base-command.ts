import {Command} from '@oclif/core'
import {type PluginContext, cacheDir, debugLog, formatError, isTpError} from '@tp/sdk'
import {type Registries, loadRegistries} from './extensions.js'

/** Base of every tp command: typed error output, the plugin context, the extension registries. */
export abstract class TpCommand extends Command {
  private registriesPromise?: Promise<Registries>

  protected registries(): Promise<Registries> {
    this.registriesPromise ??= loadRegistries(this.config)
    return this.registriesPromise
  }

  /** `tp:cli` debug lines (TP_DEBUG=1, TP_DEBUG=<pattern> or DEBUG=<pattern>). */
  protected readonly debugLine = debugLog('tp:cli')

  protected pluginContext(): PluginContext {
    return {
      tpVersion: this.config.version,
      cacheDir: cacheDir(),
      log: {
        info: (m) => process.stderr.write(`${m}\n`),
        warn: (m) => process.stderr.write(`warning: ${m}\n`),
        debug: this.debugLine,
      },
    }
  }

  protected override async catch(error: Error & {exitCode?: number; oclif?: {exit?: number}}): Promise<unknown> {
    if (isTpError(error)) {
      process.stderr.write(`tp: ${formatError(error)}\n`)
      this.exit(error.exitCode)
    }
    // oclif's own errors (bad flags, exit()) keep their handling
    if (error.oclif) return super.catch(error)
    process.stderr.write(`tp: ${formatError(error)}\n`)
    this.exit(70)
  }
}
