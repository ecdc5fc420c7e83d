import type {Placement, PlacementCapabilities} from './placement.js'
import {connectionLabels} from './sweep.js'

/**
 * Placements for plugins' tests (`@tp/sdk/testing`): what the bundled backends give, without a
 * daemon. `shared`: handler containers join the daemon's network namespace; `host`: the daemon is
 * a process on this machine and containers publish their port.
 */
export function fakePlacement(kind: 'shared' | 'host', connection = 'test', over: Partial<Placement> = {}): Placement {
  const capabilities: PlacementCapabilities =
    kind === 'shared'
      ? {canPublishPorts: false, sharesDaemonNetwork: true, hostReachesCluster: false}
      : {canPublishPorts: true, sharesDaemonNetwork: false, hostReachesCluster: true}
  const base: Placement =
    kind === 'shared'
      ? {
          backend: 'container',
          capabilities,
          containerArgs: ['--network', `container:tp-${connection}-cn`],
          handler: {daemonConnectsTo: '127.0.0.1', agentConnectsTo: `tp-${connection}-cn`},
          daemon: {agentHost: `tp-${connection}-cn`, listenHost: '0.0.0.0'},
          sweepLabels: connectionLabels(connection),
          where: `container tp-${connection}-cn`,
        }
      : {
          backend: 'host',
          capabilities,
          containerArgs: [],
          handler: {daemonConnectsTo: '127.0.0.1', agentConnectsTo: '172.18.0.1'},
          daemon: {agentHost: '172.18.0.1', listenHost: '172.18.0.1'},
          sweepLabels: connectionLabels(connection),
          where: 'process 4242 on this host',
        }
  return {...base, ...over}
}
