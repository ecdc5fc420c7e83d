import type {PlacementCapabilities} from '@tp/sdk'

/**
 * What works with a daemon that runs elsewhere: handler containers here publish their port (the
 * daemon reaches them through this machine's address), and this machine does not resolve the
 * cluster's names. Its own module, so the hook reads it without loading the backend.
 */
export const CAPABILITIES: PlacementCapabilities = {canPublishPorts: true, sharesDaemonNetwork: false, hostReachesCluster: false}
