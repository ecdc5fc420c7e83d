import type {ClusterDriverDescriptor} from './cluster.js'
import type {DaemonBackendDescriptor, HandlerDescriptor, VolumeProviderDescriptor} from './contracts.js'

/**
 * Helpers for plugin authors: an oclif hook that returns descriptors. Use as the default export
 * of the file named under `oclif.hooks["tp:handlers"]` (etc.) in the plugin's package.json.
 */
type HookFn<D> = (this: unknown, options: Record<string, unknown>) => Promise<D[]>

export function defineHandlers(descriptors: HandlerDescriptor[]): HookFn<HandlerDescriptor> {
  return async () => descriptors
}

export function defineVolumeProviders(descriptors: VolumeProviderDescriptor[]): HookFn<VolumeProviderDescriptor> {
  return async () => descriptors
}

export function defineDaemonBackends(descriptors: DaemonBackendDescriptor[]): HookFn<DaemonBackendDescriptor> {
  return async () => descriptors
}

export function defineClusterDrivers(descriptors: ClusterDriverDescriptor[]): HookFn<ClusterDriverDescriptor> {
  return async () => descriptors
}
