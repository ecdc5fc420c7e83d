import type {DockerCluster} from '@tp/cluster-docker'

/**
 * What the daemon needs of a cluster driver: find workloads, inject and remove the traffic agent,
 * say why a workload is gone. An interface, so the daemon's logic is tested with a fake cluster.
 */
export type Cluster = Pick<DockerCluster, 'workloads' | 'workload' | 'resolvePort' | 'injectAgent' | 'removeAgent' | 'whyNotRunning' | 'restoreTraffic'>

/** How the daemon's intercepts reach the agents and the handler, worked out once at start from the placement. */
export interface Reach {
  /** `<host>:<port>` the agents dial (the daemon's control listener). */
  agentsDial: string
  /** Host where the daemon reaches a handler (readiness checks, relay). */
  handlerHost: string
  /** Host where an agent may reach the handler straight; undefined: always through the daemon. */
  directHost?: string
}
