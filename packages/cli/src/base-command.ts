import {Command, type Interfaces} from '@oclif/core'

type FlagOutput = {[name: string]: unknown}
type ArgOutput = {[name: string]: unknown}
import {type PluginContext, UserError, cacheDir, debugLog, formatError, isTpError} from '@tp/sdk'
import {type Registries, loadRegistries} from './extensions.js'

/** A flag as oclif's parser knows it (the part a message needs). */
interface KnownFlag {
  type?: string
  char?: string
}

/** Edit distance, a swap of two neighbours counting as one edit (`--prot`, `--jsno`), for "did you mean". */
function distance(a: string, b: string): number {
  const d: number[][] = Array.from({length: a.length + 1}, (_, i) => Array.from({length: b.length + 1}, (_, j) => (i === 0 ? j : j === 0 ? i : 0)))
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost)
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1)
    }
  }
  return d[a.length][b.length]
}

/**
 * What a flag oclif does not know probably meant: a known flag with its value glued on
 * (`--port8000`, the reference's own typo), else a known flag spelt a little differently.
 */
export function didYouMean(written: string, flags: Record<string, KnownFlag>): string | undefined {
  const match = /^--?([^=]+)(=.*)?$/.exec(written)
  if (!match) return undefined
  const name = match[1]
  const valued = Object.entries(flags)
    .filter(([known, flag]) => flag.type === 'option' && name.startsWith(known) && name.length > known.length)
    .sort(([a], [b]) => b.length - a.length)
  if (valued.length > 0) {
    const [known] = valued[0]
    return `\`--${known} ${name.slice(known.length).replace(/^[=:]/, '')}${match[2] ?? ''}\``
  }
  const prefixed = Object.keys(flags).filter((known) => known.startsWith(name))
  if (prefixed.length === 1) return `\`--${prefixed[0]}${match[2] ?? ''}\``
  const close = Object.keys(flags)
    .map((known) => ({known, d: distance(name, known)}))
    .filter(({known, d}) => d <= Math.max(1, Math.floor(known.length / 3)))
    .sort((a, b) => a.d - b.d)
  return close.length > 0 ? `\`--${close[0].known}${match[2] ?? ''}\`` : undefined
}

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

  /** oclif's parse, and no flag given an empty value (`--use=`, `--name=`): an empty name would mean "all" or "none" silently. */
  protected override async parse<F extends FlagOutput, B extends FlagOutput, A extends ArgOutput>(
    options?: Interfaces.Input<F, B, A>,
    argv?: string[],
  ): Promise<Interfaces.ParserOutput<F, B, A>> {
    const parsed = await super.parse(options, argv)
    for (const [flag, value] of Object.entries(parsed.flags as Record<string, unknown>)) {
      const values = Array.isArray(value) ? value : [value]
      if (values.some((v) => v === '')) {
        const command = `tp ${this.id?.replaceAll(':', ' ') ?? ''}`.trim()
        throw new UserError(`--${flag} needs a value`, `write --${flag} <value>, or leave it out; \`${command} --help\` says what it takes`)
      }
    }
    return parsed
  }

  /** oclif's parse errors (unknown flag, missing value, unexpected argument) as user errors that say what to do. */
  private parseError(error: Error & {flags?: string[]; args?: unknown[]; parse?: {input?: {flags?: Record<string, KnownFlag>}}}): UserError {
    const command = `tp ${this.id?.replaceAll(':', ' ') ?? ''}`.trim()
    const help = `\`${command} --help\` shows its flags and arguments`
    const message = error.message.replace(/\nSee more help with --help$/, '')
    const flags = error.parse?.input?.flags ?? (this.ctor.flags as Record<string, KnownFlag>) ?? {}
    if (error.flags) {
      const hints = error.flags.map((f) => ({f, hint: didYouMean(f, flags)}))
      const named = hints.map(({f, hint}) => (hint ? `${f} (did you mean ${hint}?)` : f)).join(', ')
      const first = hints.find((h) => h.hint)
      return new UserError(`${command} has no flag ${named}`, first ? `write ${first.hint}; ${help}` : help)
    }
    if (error.args && /^Unexpected argument/.test(error.message)) {
      const names = Object.keys(this.ctor.args ?? {}).map((a) => a.toUpperCase())
      return new UserError(
        `unexpected argument${error.args.length === 1 ? '' : 's'} ${error.args.map((a) => `"${String(a)}"`).join(', ')}: ${command} takes ${names.length > 0 ? names.join(' ') : 'no arguments'}`,
        help,
      )
    }
    if (error.args && /^Missing/.test(error.message)) {
      const missing = (error.args as unknown as Array<{name: string; description?: string}>).map(
        (a) => `${a.name.toUpperCase()}${a.description ? ` (${a.description})` : ''}`,
      )
      return new UserError(`${command} needs ${missing.join(' and ')}: missing ${missing.length} required argument${missing.length === 1 ? '' : 's'}`, help)
    }
    return new UserError(message, help)
  }

  protected override async catch(error: Error & {exitCode?: number; oclif?: {exit?: number}; code?: string}): Promise<unknown> {
    // oclif's parse errors exit 2 with a page of usage; tp says what was wrong and what to do, exit 1
    if (error.oclif && error.code !== 'EEXIT' && error.oclif.exit === 2) {
      const userError = this.parseError(error)
      process.stderr.write(`tp: ${formatError(userError)}\n`)
      this.exit(1)
    }
    if (isTpError(error)) {
      process.stderr.write(`tp: ${formatError(error)}\n`)
      this.exit(error.exitCode)
    }
    // oclif's own errors (exit()) keep their handling
    if (error.oclif) return super.catch(error)
    process.stderr.write(`tp: ${formatError(error)}\n`)
    this.exit(70)
  }
}
