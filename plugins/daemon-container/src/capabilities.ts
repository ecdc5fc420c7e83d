import type {PlacementCapabilities} from '@tp/sdk'

/**
 * Handler containers join the daemon's network namespace (so ports cannot be published there) and
 * nothing on this machine's own network changes. Its own module: the hook reads it without
 * loading the backend (dockerode).
 */
export const CONTAINER_CAPABILITIES: PlacementCapabilities = {canPublishPorts: false, sharesDaemonNetwork: true, hostReachesCluster: false}
