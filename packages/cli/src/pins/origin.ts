/** Where a loaded plugin came from, for `tp version` and `tp extensions`: core, pinned by `<repo>/.tp` (and whether it is as locked), user, link. */
import {sep} from 'node:path'
import type {PinStatus} from './state.js'

export interface PluginOrigin {
  /** core (bundled), pinned (by a repository's .tp), user (`tp plugins install`), link (`tp plugins link`), dev */
  origin: string
  /** `<repo>/.tp`, for a pinned plugin */
  pinnedBy?: string
  /** for a pinned plugin: `matches` or what differs from the lock */
  lock?: string
  /** how it is shown in a table */
  label: string
}

export function originOf(plugin: {name: string; type: string; root: string; version: string}, status: PinStatus | undefined): PluginOrigin {
  if (!status || plugin.type !== 'user' || !plugin.root.startsWith(`${status.setDir}${sep}`)) return {origin: plugin.type, label: plugin.type}
  const entry = status.entries.find((e) => e.name === plugin.name)
  const lock = !entry
    ? 'not in the lock'
    : (entry.problem ?? (entry.version === plugin.version ? 'matches' : `the lock has ${entry.version}, ${plugin.version} is loaded`))
  return {origin: 'pinned', pinnedBy: status.pinsDir, lock, label: `pinned by ${status.pinsDir} (${lock === 'matches' ? 'matches the lock' : lock})`}
}

/** One line on the pinned set, for the end of a report (undefined outside a repository with pins). */
export function pinsSummary(status: PinStatus | undefined): string | undefined {
  if (!status) return undefined
  if (status.problems.length === 0)
    return `${status.pinsDir}: ${status.entries.length} pinned plugin${status.entries.length === 1 ? '' : 's'}, installed as locked (your own plugins are not loaded here)`
  return `${status.pinsDir}: not ready: ${status.problems.join('; ')} → run \`tp plugins sync\``
}
