import {type Descriptor, type Factory, type PluginContext, SUPPORTED_API_VERSIONS, isDescriptor} from './contracts.js'
import type {ExtensionPoint} from './extension-points.js'
import {BugError, UserError} from './errors.js'

/** The plugin a descriptor came from. */
export interface PluginRef {
  name: string
  version: string
  /** oclif's plugin type: `core` (bundled with tp), `user` (installed), `link`, … */
  type?: string
}

export interface RegistryOptions {
  /** Flag names tp's own commands use: a handler cannot take them (`tp intercept --port`, …). */
  reservedFlags?: readonly string[]
}

/**
 * The outcome of running one extension-point hook across all plugins, as oclif's
 * `config.runHook` reports it (kept structural so the sdk does not depend on oclif).
 */
export interface HookOutcome {
  successes: Array<{plugin: PluginRef; result: unknown}>
  failures: Array<{plugin: PluginRef; error: Error}>
}

export interface RegisteredExtension<T> {
  point: ExtensionPoint
  descriptor: Descriptor<T, never>
  plugin: PluginRef
}

export interface RegistryProblem {
  point: ExtensionPoint
  plugin: PluginRef
  /** Extension name where known. */
  name?: string
  reason: 'duplicate' | 'api-version' | 'hook-failed' | 'hook-timeout' | 'malformed' | 'shadows-core' | 'flag-taken'
  message: string
  /** The flags the extension declared (handlers): a command line that uses one learns why it is missing. */
  flags?: string[]
}

/** The extensions of one extension point, collected from every plugin. */
// a descriptor whose factory takes more than the plugin context (a cluster driver's) is one too: `never`
export class ExtensionRegistry<T, D extends Descriptor<T, never> = Descriptor<T>> {
  private readonly byName = new Map<string, RegisteredExtension<T> & {descriptor: D}>()
  readonly problems: RegistryProblem[] = []
  /** Names claimed by more than one plugin: unusable until one plugin is removed. */
  private readonly duplicates = new Map<string, PluginRef[]>()

  /** Flags handlers own, by name → the plugin that owns it. */
  private readonly flagOwners = new Map<string, PluginRef>()

  constructor(
    readonly point: ExtensionPoint,
    outcome: HookOutcome,
    private readonly options: RegistryOptions = {},
  ) {
    for (const failure of outcome.failures) {
      const timedOut = /^Timed out after \d+ ms/.test(failure.error?.message ?? '')
      this.problems.push({
        point,
        plugin: failure.plugin,
        reason: timedOut ? 'hook-timeout' : 'hook-failed',
        message: timedOut
          ? `plugin ${pluginLabel(failure.plugin)} did not answer for its ${point} in time (${failure.error.message.replace(/\.$/, '')}); it was skipped and the rest goes on`
          : `plugin ${pluginLabel(failure.plugin)} failed to register its ${point}: ${failure.error?.message ?? String(failure.error)}`,
      })
    }
    // core plugins first: what tp ships is registered before anything could claim its names
    const isCore = (s: {plugin: PluginRef}) => (s.plugin.type === 'core' ? 0 : 1)
    outcome = {...outcome, successes: [...outcome.successes].sort((a, b) => isCore(a) - isCore(b))}
    for (const success of outcome.successes) {
      const result = success.result
      if (result === undefined || result === null) continue // the plugin does not extend this point
      const items = Array.isArray(result) ? result : [result]
      for (const item of items) this.add(success.plugin, item)
    }
  }

  private add(plugin: PluginRef, item: unknown): void {
    const before = this.problems.length
    this.addChecked(plugin, item)
    // a refused handler's flags: `tp intercept --<flag>` then says why it is missing
    const flags = Object.keys(((item as {flags?: unknown})?.flags as object | undefined) ?? {})
    if (this.point === 'handlers' && flags.length > 0) for (const problem of this.problems.slice(before)) problem.flags = flags
  }

  private addChecked(plugin: PluginRef, item: unknown): void {
    if (!isDescriptor(item)) {
      const named = typeof (item as {name?: unknown})?.name === 'string' ? (item as {name: string}).name : undefined
      this.problems.push({
        point: this.point,
        plugin,
        ...(named ? {name: named} : {}),
        reason: 'malformed',
        message: `plugin ${pluginLabel(plugin)} returned ${named ? `"${named}", ` : ''}something that is not a ${this.point} descriptor (${describeShapeProblem(item)}; a descriptor needs name, apiVersion, summary and load)`,
      })
      return
    }
    const descriptor = item as unknown as D
    const shapeProblem = pointProblem(this.point, item)
    if (shapeProblem) {
      this.problems.push({
        point: this.point,
        plugin,
        name: descriptor.name,
        reason: 'malformed',
        message: `plugin ${pluginLabel(plugin)} provides ${this.point} "${descriptor.name}" with ${shapeProblem}; it was not loaded. This is a bug in that plugin.`,
      })
      return
    }
    const {min, max} = SUPPORTED_API_VERSIONS
    if (!Number.isInteger(descriptor.apiVersion) || descriptor.apiVersion < min || descriptor.apiVersion > max) {
      this.problems.push({
        point: this.point,
        plugin,
        name: descriptor.name,
        reason: 'api-version',
        message: `plugin ${pluginLabel(plugin)} provides ${this.point} "${descriptor.name}" for extension API ${descriptor.apiVersion}, but this tp supports API ${min === max ? min : `${min}–${max}`}; it was not loaded. Install a version of the plugin built for this tp.`,
      })
      return
    }
    const existing = this.byName.get(descriptor.name)
    if (existing?.plugin.type === 'core' && plugin.type !== 'core') {
      this.problems.push({
        point: this.point,
        plugin,
        name: descriptor.name,
        reason: 'shadows-core',
        message: `plugin ${pluginLabel(plugin)} provides ${this.point} "${descriptor.name}", which is tp's own (from ${pluginLabel(existing.plugin)}): it was not loaded and tp's is used. Ask its authors to rename it, or uninstall it (tp plugins uninstall ${plugin.name}).`,
      })
      return
    }
    const claimedBy = this.duplicates.get(descriptor.name)
    if (existing && existing.plugin.name === plugin.name && !claimedBy) {
      this.problems.push({
        point: this.point,
        plugin,
        name: descriptor.name,
        reason: 'duplicate',
        message: `plugin ${pluginLabel(plugin)} registers ${this.point} "${descriptor.name}" twice; the first one is used. This is a bug in that plugin.`,
      })
      return
    }
    if (existing || claimedBy) {
      const claimants = claimedBy ?? [existing!.plugin]
      claimants.push(plugin)
      this.duplicates.set(descriptor.name, claimants)
      this.byName.delete(descriptor.name)
      this.problems.push({
        point: this.point,
        plugin,
        name: descriptor.name,
        reason: 'duplicate',
        message: `${this.point} "${descriptor.name}" is provided by more than one plugin: ${claimants.map(pluginLabel).sort().join(' and ')}. Uninstall one of them (tp plugins uninstall <name>).`,
      })
      return
    }
    const takenFlag = this.flagProblem(plugin, item)
    if (takenFlag) {
      this.problems.push({point: this.point, plugin, name: descriptor.name, reason: 'flag-taken', message: takenFlag})
      return
    }
    this.byName.set(descriptor.name, {point: this.point, descriptor, plugin})
    for (const flag of Object.keys((descriptor as {flags?: object}).flags ?? {})) this.flagOwners.set(flag, plugin)
  }

  /** A handler may not take a flag of tp's own commands, nor one another plugin's handler owns. */
  private flagProblem(plugin: PluginRef, item: object): string | undefined {
    if (this.point !== 'handlers') return undefined
    const d = item as {name: string; flags?: Record<string, unknown>}
    for (const flag of Object.keys(d.flags ?? {})) {
      if (this.options.reservedFlags?.includes(flag)) {
        return `plugin ${pluginLabel(plugin)} provides handler "${d.name}" with a flag --${flag}, which is tp's own: it was not loaded. Its authors must rename the flag.`
      }
      const owner = this.flagOwners.get(flag)
      if (owner && owner.name !== plugin.name) {
        return `plugin ${pluginLabel(plugin)} provides handler "${d.name}" with a flag --${flag}, which ${pluginLabel(owner)} already owns: it was not loaded.`
      }
    }
    return undefined
  }

  /** The problem that made a handler flag unavailable, if one did (for `tp intercept --<flag>`). */
  problemWithFlag(flag: string): RegistryProblem | undefined {
    return this.problems.find((p) => p.flags?.includes(flag))
  }

  /** The problems that concern an extension of this name (for the command that needed it). */
  problemsWith(name: string): RegistryProblem[] {
    return this.problems.filter((p) => p.name === name)
  }

  list(): Array<RegisteredExtension<T> & {descriptor: D}> {
    return [...this.byName.values()].sort((a, b) => a.descriptor.name.localeCompare(b.descriptor.name))
  }

  has(name: string): boolean {
    return this.byName.has(name)
  }

  get(name: string): RegisteredExtension<T> & {descriptor: D} {
    const found = this.byName.get(name)
    if (found) return found
    const claimants = this.duplicates.get(name)
    if (claimants) {
      throw new UserError(
        `${this.point} "${name}" is provided by more than one plugin: ${claimants.map(pluginLabel).sort().join(' and ')}`,
        'uninstall one of them with `tp plugins uninstall <plugin>`',
      )
    }
    const known = this.list().map((e) => e.descriptor.name)
    throw new UserError(
      `no ${this.point.replace(/s$/, '')} named "${name}" is installed`,
      known.length > 0 ? `installed: ${known.join(', ')} (see \`tp extensions\`)` : 'install a plugin that provides one (`tp plugins install <name>`)',
    )
  }

  /** Imports the implementation of the named extension and builds it (a cluster driver's context names its cluster). */
  async load(name: string, context: PluginContext & Parameters<Awaited<ReturnType<D['load']>>['default']>[0]): Promise<T> {
    const entry = this.get(name)
    let module: {default?: unknown}
    try {
      module = await entry.descriptor.load()
    } catch (error) {
      throw new BugError(`plugin ${pluginLabel(entry.plugin)} could not load ${this.point} "${name}": ${(error as Error).message}`, {cause: error})
    }
    const factory = module?.default
    if (typeof factory !== 'function') {
      throw new BugError(`plugin ${pluginLabel(entry.plugin)}: the module of ${this.point} "${name}" has no default export factory`)
    }
    return (factory as Factory<T, PluginContext>)(context)
  }
}

/** What each extension point needs of its descriptors beyond the common fields. */
const POINT_CHECKS: Record<ExtensionPoint, (d: Record<string, unknown>) => string | undefined> = {
  handlers: (d) => handlerProblem(d),
  'volume-providers': (d) =>
    d.requires !== undefined && (typeof d.requires !== 'object' || d.requires === null) ? 'a "requires" that is not an object of capabilities' : undefined,
  'daemon-backends': (d) => {
    const caps = d.capabilities as Record<string, unknown> | undefined
    const missing = ['canPublishPorts', 'sharesDaemonNetwork', 'hostReachesCluster'].filter((k) => typeof caps?.[k] !== 'boolean')
    return missing.length > 0 ? `no capabilities (${missing.join(', ')} must be true or false)` : undefined
  },
  'cluster-drivers': (d) =>
    typeof d.module !== 'string' || !d.module.startsWith('/') ? 'no module (the absolute path of the self-contained ES module the daemon imports)' : undefined,
}

function pointProblem(point: ExtensionPoint, item: object): string | undefined {
  const d = item as Record<string, unknown>
  if (typeof d.summary !== 'string' || d.summary.trim() === '') return 'no summary (a one-line description for `tp extensions`)'
  return POINT_CHECKS[point](d)
}

/** A handler descriptor's own fields: its flags, how it is selected, precedence, spec schema. */
function handlerProblem(d: Record<string, unknown>): string | undefined {
  const flags = d.flags
  if (typeof flags !== 'object' || flags === null || Array.isArray(flags)) return 'no flags (an object of the flags it owns, possibly empty)'
  for (const [flag, spec] of Object.entries(flags as Record<string, unknown>)) {
    if (!/^[a-z][a-z0-9-]*$/.test(flag)) return `a flag name "${flag}" that is not lower-case letters, digits and dashes`
    const f = spec as Record<string, unknown> | null
    if (typeof f !== 'object' || f === null || (f.type !== 'boolean' && f.type !== 'string'))
      return `a flag --${flag} whose type is neither "boolean" nor "string"`
    if (typeof f.description !== 'string' || f.description === '') return `a flag --${flag} without a description`
    if (f.multiple !== undefined && typeof f.multiple !== 'boolean') return `a flag --${flag} whose "multiple" is not true or false`
  }
  // a handler is chosen by a flag, by the arguments after --, or only in intercept specifications
  if (d.selectedBy !== undefined || (d.selectedByArgs !== true && d.specSchema === undefined)) {
    if (typeof d.selectedBy !== 'string' || d.selectedBy === '') return 'no selectedBy (the flag that chooses it), no selectedByArgs and no specSchema'
    if (!(d.selectedBy in (flags as object))) return `selectedBy "${d.selectedBy}", which is not one of its own flags`
  }
  if (d.precedence !== undefined && (typeof d.precedence !== 'number' || !Number.isFinite(d.precedence))) return 'a precedence that is not a number'
  if (d.specSchema !== undefined && (typeof d.specSchema !== 'object' || d.specSchema === null || Array.isArray(d.specSchema)))
    return 'a specSchema that is not a JSON Schema object'
  return undefined
}

export function pluginLabel(plugin: PluginRef): string {
  return `${plugin.name}@${plugin.version}`
}

/** Says what is wrong with something a hook returned instead of a descriptor. */
function describeShapeProblem(item: unknown): string {
  if (typeof item !== 'object' || item === null) return `got ${item === null ? 'null' : typeof item}`
  const d = item as Record<string, unknown>
  const wrong: string[] = []
  if (typeof d.name !== 'string' || d.name.length === 0) wrong.push('name is not a non-empty string')
  if (typeof d.apiVersion !== 'number') wrong.push('apiVersion is not a number')
  if (typeof d.load !== 'function') wrong.push('load is not a function')
  return wrong.join(', ') || 'unknown shape'
}
