import {
  type CreateInterceptRequest,
  type InterceptLease,
  type InterceptSession,
  type PlacementCapabilities,
  type PluginContext,
  type PreparedHandler,
  type ProvidedVolumes,
  type VolumeProvider,
  debugLog,
  swallow,
} from '@tp/sdk'
import type {LiveConnection} from './connections.js'
import type {Registries} from './extensions.js'
import {chooseVolumeProvider, loadVolumeProviderEarly, provideVolumes} from './intercept-steps.js'

/**
 * One intercept's way from a prepared handler to a running one, the same for `tp intercept` and
 * each intercept of `tp spec run`: the volume provider is chosen (and starts loading) before the
 * intercept exists; the intercept's session comes before its agents are ready, so that volumes
 * and the handler start while they come up.
 */

const trace = debugLog('tp:cli')

/** Which volume provider gives a handler its volumes, chosen before the intercept exists. */
export interface VolumePlan {
  /** The provider's name; undefined when the handler wants no volumes, or none fits. */
  provider?: string
  /** Why none fits: only an error if the workload turns out to have volumes. */
  missing?: unknown
  /** The provider, loading and warming up meanwhile. */
  loading?: Promise<VolumeProvider>
}

/**
 * Chooses the provider for a prepared handler's volumes (`--volume-provider`, or the only one that
 * fits) and starts loading it. That none fits is kept for later, unless one was asked for.
 */
export function planVolumes(
  registries: Registries,
  context: PluginContext,
  capabilities: PlacementCapabilities,
  prepared: PreparedHandler | undefined,
  mount: {wanted: boolean},
  wanted?: string,
): VolumePlan {
  if (!prepared?.wantsVolumes || !mount.wanted) return {}
  let provider: string
  try {
    provider = chooseVolumeProvider(registries, capabilities, prepared.volumeForm ?? 'docker-volumes', wanted)
  } catch (error) {
    if (wanted || !/^no installed volume provider/.test((error as Error).message)) throw error
    return {missing: error}
  }
  const loading = loadVolumeProviderEarly(registries, context, provider)
  loading.catch(swallow(trace, 'loading the volume provider (awaited when the volumes are made)'))
  return {provider, loading}
}

/** An intercept as it runs: its session (placed where the backend says handlers run), lease and volumes. */
export interface OpenIntercept {
  session: InterceptSession
  lease: InterceptLease
  /** The hand-back before a planned stop; nothing was switched before the agents were ready, so nothing to give back then. */
  drain: () => Promise<void>
  volumes?: ProvidedVolumes
}

export interface OpenInterceptOptions {
  registries: Registries
  context: PluginContext
  connection: LiveConnection
  request: CreateInterceptRequest
  prepared?: PreparedHandler
  mount: {wanted: boolean; root?: string}
  volumes: VolumePlan
  /** What the session becomes before anything uses it (a spec handler's own environment). */
  shape?: (session: InterceptSession) => InterceptSession
  /** Hears each step (TP_DEBUG=1). */
  step?: (what: string) => void
  /** Hears the lease as soon as it exists: what ends the intercept must know it, even if making the volumes fails. */
  onLease?: (lease: InterceptLease) => void
  /** Whether to stop before the volumes (a signal arrived). */
  cancelled?: () => boolean
}

/**
 * Creates the intercept (held by this process's lease) and makes its volumes: a provider that waits
 * for the workload's SFTP server itself gets the session at once, any other once the agents are
 * ready. A failure after the lease exists leaves it to the caller's teardown (`endIntercept`).
 */
export async function openIntercept(o: OpenInterceptOptions): Promise<OpenIntercept> {
  const step = o.step ?? (() => undefined)
  const lease = await o.connection.client.createIntercept(o.request, {early: true})
  o.onLease?.(lease)
  const placed: InterceptSession = {...lease.session, placement: o.connection.placement}
  const session = o.shape ? o.shape(placed) : placed
  const {client} = o.connection
  const drain = () => lease.ready.then(() => client.drain(session.name))
  step(`intercept ${session.name} created (agents starting)`)
  const open: OpenIntercept = {session, lease, drain}
  const {prepared} = o
  if (!prepared?.wantsVolumes || !o.mount.wanted || session.mounts.length === 0 || o.cancelled?.()) return open
  if (!o.volumes.provider) throw o.volumes.missing
  const request = {form: prepared.volumeForm ?? 'docker-volumes', root: o.mount.root} as const
  if (!o.registries['volume-providers'].get(o.volumes.provider).descriptor.waitsForServer) await lease.ready
  open.volumes = await provideVolumes(o.registries, o.context, session, request, o.volumes.loading ? await o.volumes.loading : o.volumes.provider)
  step(`${session.mounts.length} volume(s) provided${open.volumes.root ? ` under ${open.volumes.root}` : ''}`)
  return open
}
