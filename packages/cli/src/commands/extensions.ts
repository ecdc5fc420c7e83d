import {EXTENSION_POINTS, EXTENSION_POINT_NAMES, type ExtensionPoint, type ExtensionRegistry, type RegistryProblem} from '@tp/sdk'
import {TpCommand} from '../base-command.js'
import {originOf, pinsSummary} from '../pins/origin.js'
import {pinStatus} from '../pins/state.js'

export interface ExtensionRow {
  point: ExtensionPoint
  name: string
  summary: string
  apiVersion: number
  plugin: string
  pluginVersion: string
  /** core (bundled), user (`tp plugins install`), link (`tp plugins link`), or unknown. */
  pluginType: string
  /** core, pinned (by `pinnedBy`, a repository's .tp; `lock`: matches or what differs), user, link */
  origin: string
  pinnedBy?: string
  lock?: string
}

export type ExtensionsReport = {[P in ExtensionPoint]: ExtensionRow[]} & {
  problems: RegistryProblem[]
  /** the pins of the repository tp runs in, when there is one */
  pins?: {dir: string; problems: string[]}
}

export default class Extensions extends TpCommand {
  static override summary = 'List the handlers, volume providers, daemon backends and cluster drivers of every loaded plugin'
  static override description =
    'Shows each extension with the plugin (and version) that provides it. Problems — two plugins claiming one name, a plugin built for another extension API, a plugin whose registration failed — are listed too, and make the command exit with status 1.'
  static override enableJsonFlag = true

  async run(): Promise<ExtensionsReport> {
    await this.parse(Extensions)
    const registries = await this.registries()
    const pins = pinStatus()
    const plugins = new Map(this.config.getPluginsList().map((p) => [p.name, p]))
    const originLabels = new Map<string, string>()
    const rows = (registry: ExtensionRegistry<unknown>): ExtensionRow[] =>
      registry.list().map((e) => {
        const loaded = plugins.get(e.plugin.name)
        const {label, ...origin} = loaded ? originOf(loaded, pins) : {origin: 'unknown', label: 'unknown'}
        originLabels.set(e.plugin.name, label)
        return {
          point: registry.point,
          name: e.descriptor.name,
          summary: e.descriptor.summary ?? '',
          apiVersion: e.descriptor.apiVersion,
          plugin: e.plugin.name,
          pluginVersion: e.plugin.version,
          pluginType: loaded?.type ?? 'unknown',
          ...origin,
        }
      })
    const all = EXTENSION_POINT_NAMES.map((point) => registries[point] as ExtensionRegistry<unknown>)
    const report = {
      ...Object.fromEntries(all.map((registry) => [registry.point, rows(registry)])),
      problems: all.flatMap((r) => r.problems),
      ...(pins ? {pins: {dir: pins.pinsDir, problems: pins.problems}} : {}),
    } as ExtensionsReport

    for (const point of EXTENSION_POINT_NAMES) {
      this.log(`${EXTENSION_POINTS[point].title}:`)
      const list = report[point]
      if (list.length === 0) this.log('  (none)')
      const nameWidth = Math.max(0, ...list.map((r) => r.name.length))
      const pluginWidth = Math.max(0, ...list.map((r) => `${r.plugin}@${r.pluginVersion}`.length))
      for (const r of list) {
        this.log(
          `  ${r.name.padEnd(nameWidth)}  ${`${r.plugin}@${r.pluginVersion}`.padEnd(pluginWidth)}  ${(originLabels.get(r.plugin) ?? r.pluginType).padEnd(4)}  ${r.summary}`,
        )
      }
    }
    const summary = pinsSummary(pins)
    if (summary) this.log(`\nPins: ${summary}`)
    if (pins && pins.problems.length > 0) process.exitCode = 1
    if (report.problems.length > 0) {
      // on stderr even with --json, so that a script reading stdout still shows why it failed
      process.stderr.write(`\n${report.problems.length} problem${report.problems.length === 1 ? '' : 's'} with installed plugins:\n`)
      for (const p of report.problems) process.stderr.write(`  ✗ ${p.message}\n`)
      // everything is printed first; then fail (exitCode rather than exit() so --json still prints)
      process.exitCode = 1
    }
    return report
  }
}
