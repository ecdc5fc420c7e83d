import type {Interfaces} from '@oclif/core'
import {
  type DaemonBackend,
  type DaemonBackendDescriptor,
  type ExtensionPoint,
  ExtensionRegistry,
  type Handler,
  type HandlerDescriptor,
  HOOK_NAMES,
  type HookOutcome,
  type VolumeProvider,
  type VolumeProviderDescriptor,
} from '@tp/sdk'

export interface Registries {
  handlers: ExtensionRegistry<Handler, HandlerDescriptor>
  volumeProviders: ExtensionRegistry<VolumeProvider, VolumeProviderDescriptor>
  daemonBackends: ExtensionRegistry<DaemonBackend, DaemonBackendDescriptor>
}

async function collect(config: Interfaces.Config, point: ExtensionPoint): Promise<HookOutcome> {
  // captureErrors: a plugin whose hook throws is reported, the others still register
  const result = await config.runHook(HOOK_NAMES[point] as never, {} as never, 10_000, true)
  const ref = (p: {name: string; version: string}) => ({name: p.name, version: p.version})
  return {
    successes: result.successes.map((s) => ({plugin: ref(s.plugin), result: s.result})),
    failures: result.failures.map((f) => ({plugin: ref(f.plugin), error: f.error})),
  }
}

/** Asks every loaded plugin for its descriptors. Implementations are not imported here. */
export async function loadRegistries(config: Interfaces.Config): Promise<Registries> {
  const [handlers, volumeProviders, daemonBackends] = await Promise.all([
    collect(config, 'handlers'),
    collect(config, 'volume-providers'),
    collect(config, 'daemon-backends'),
  ])
  return {
    handlers: new ExtensionRegistry('handlers', handlers),
    volumeProviders: new ExtensionRegistry('volume-providers', volumeProviders),
    daemonBackends: new ExtensionRegistry('daemon-backends', daemonBackends),
  }
}
