import type {PlacementCapabilities} from '@tp/sdk'

/**
 * A daemon on this machine: handler containers publish their port, processes here reach the
 * namespace's workloads by name and IP. Its own module: the hook reads it without loading the
 * backend (dockerode).
 */
export const HOST_CAPABILITIES: PlacementCapabilities = {canPublishPorts: true, sharesDaemonNetwork: false, hostReachesCluster: true}
