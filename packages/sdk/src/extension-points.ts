import type {ClusterDriver, ClusterDriverDescriptor} from './cluster.js'
import type {DaemonBackend, DaemonBackendDescriptor, Handler, HandlerDescriptor, VolumeProvider, VolumeProviderDescriptor} from './contracts.js'

/**
 * tp's extension points, in one table: the oclif hook a plugin answers with its descriptors, the
 * kind of plugin (`tp plugins new <kind>`), and the words tp uses for them. Everything that lists
 * the points (the registries, `tp extensions`, `tp plugins new`) reads it from here.
 */
export const EXTENSION_POINTS = {
  handlers: {hook: 'tp:handlers', kind: 'handler', title: 'Handlers', words: 'a handler'},
  'volume-providers': {hook: 'tp:volume-providers', kind: 'volume-provider', title: 'Volume providers', words: 'a volume provider'},
  'daemon-backends': {hook: 'tp:daemon-backends', kind: 'daemon-backend', title: 'Daemon backends', words: 'a daemon backend'},
  'cluster-drivers': {hook: 'tp:cluster-drivers', kind: 'cluster-driver', title: 'Cluster drivers', words: 'a cluster driver'},
} as const

export type ExtensionPoint = keyof typeof EXTENSION_POINTS

/** The points in the table's order. */
export const EXTENSION_POINT_NAMES = Object.keys(EXTENSION_POINTS) as ExtensionPoint[]

/** The oclif hook of each point. */
export const HOOK_NAMES = Object.fromEntries(EXTENSION_POINT_NAMES.map((p) => [p, EXTENSION_POINTS[p].hook])) as Record<ExtensionPoint, string>

/** What each point's extensions are, and their descriptors. */
export interface ExtensionTypes {
  handlers: {impl: Handler; descriptor: HandlerDescriptor}
  'volume-providers': {impl: VolumeProvider; descriptor: VolumeProviderDescriptor}
  'daemon-backends': {impl: DaemonBackend; descriptor: DaemonBackendDescriptor}
  'cluster-drivers': {impl: ClusterDriver; descriptor: ClusterDriverDescriptor}
}
