import type {Interfaces} from '@oclif/core'
import {EXTENSION_POINT_NAMES, type ExtensionPoint, ExtensionRegistry, type ExtensionTypes, HOOK_NAMES, type HookOutcome} from '@tp/sdk'

/** One registry per extension point (the sdk's table), keyed by the point's name. */
export type Registries = {[P in ExtensionPoint]: ExtensionRegistry<ExtensionTypes[P]['impl'], ExtensionTypes[P]['descriptor']>}

/** How long a plugin's hook may take to return its descriptors before it is skipped ($TP_HOOK_TIMEOUT_MS). */
const HOOK_TIMEOUT_MS = Number(process.env.TP_HOOK_TIMEOUT_MS ?? 3000)

/** Flags of `tp intercept` itself: no handler may take them. */
export const RESERVED_FLAGS = [
  'port',
  'name',
  'docker',
  'namespace',
  'cluster',
  'use',
  'mount',
  'output',
  'env-file',
  'env-syntax',
  'env-json',
  'help',
  'volume-provider',
]

async function collect(config: Interfaces.Config, point: ExtensionPoint): Promise<HookOutcome> {
  // oclif's own timer for the time limit does not keep the process alive: a hook that never
  // settles would end tp with nothing said (exit 13); this one does, until the limit
  const keepAlive = setTimeout(() => undefined, HOOK_TIMEOUT_MS + 1000)
  // captureErrors: a plugin whose hook throws or times out is reported, the others still register
  const result = await config.runHook(HOOK_NAMES[point] as never, {} as never, HOOK_TIMEOUT_MS, true).finally(() => clearTimeout(keepAlive))
  const ref = (p: {name: string; version: string; type?: string}) => ({name: p.name, version: p.version, type: p.type})
  return {
    successes: result.successes.map((s) => ({plugin: ref(s.plugin), result: s.result})),
    failures: result.failures.map((f) => ({plugin: ref(f.plugin), error: f.error})),
  }
}

/** Asks every loaded plugin for its descriptors, for every extension point. Implementations are not imported here. */
export async function loadRegistries(config: Interfaces.Config): Promise<Registries> {
  const outcomes = await Promise.all(EXTENSION_POINT_NAMES.map((point) => collect(config, point)))
  return Object.fromEntries(
    EXTENSION_POINT_NAMES.map((point, i) => [point, new ExtensionRegistry(point, outcomes[i], point === 'handlers' ? {reservedFlags: RESERVED_FLAGS} : {})]),
  ) as unknown as Registries
}
