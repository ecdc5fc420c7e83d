/**
 * Where a connection's daemon lives and how handlers reach it: owned by the daemon backend, given
 * to handlers and volume providers in the session and to the daemon as configuration. Handlers
 * decide on `capabilities`, never on the backend's name, so a third party's backend can declare
 * its own placement. Plain data: it travels as JSON.
 */

/** What works where this connection's handlers run. */
export interface PlacementCapabilities {
  /** `docker run -p` works for a handler container (not when it joins the daemon's network namespace). */
  canPublishPorts: boolean
  /** A handler container joins the daemon's network namespace and listens there on the local port. */
  sharesDaemonNetwork: boolean
  /** Processes on this machine reach the namespace's workloads by name and IP while connected. */
  hostReachesCluster: boolean
}

export interface Placement {
  /** The backend that made this placement (for messages and status only; never decide on it). */
  backend: string
  capabilities: PlacementCapabilities
  /** `docker run` arguments that make a handler container join the connection (e.g. `--network container:tp-x-cn`). */
  containerArgs: string[]
  /** How a handler container listening on the local port is reached. */
  handler: {
    /** Host the daemon connects to (relay, readiness checks), e.g. 127.0.0.1. */
    daemonConnectsTo: string
    /**
     * Host the traffic agent may connect to straight, skipping the daemon's relay, when the handler
     * listens on more than loopback; absent when the agent cannot reach the handler itself.
     */
    agentConnectsTo?: string
  }
  /**
   * How a process on this machine listening on the local port is reached (it must listen on more
   * than loopback when the daemon is not on this machine's network); absent: processes here
   * cannot be handlers of this connection.
   */
  process?: {daemonConnectsTo: string; agentConnectsTo?: string}
  /** The daemon as the cluster sees it: where agents dial its control port. */
  daemon: {
    /** Host name or IP the agents connect to (resolved once by the daemon). */
    agentHost: string
    /** Address the daemon's agent listener binds to. */
    listenHost: string
  }
  /** Label selector (`key=value`) of every Docker object this connection creates: what a sweep removes. */
  sweepLabels: string[]
  /** One line saying where the daemon runs, e.g. `container tp-default-cn` or `process 1234 on this host`. */
  where: string
}

/** Capabilities as shown to users (`tp extensions`, messages). */
export function describeCapabilities(c: PlacementCapabilities): string {
  const yes = (flag: boolean, text: string) => (flag ? text : `no ${text}`)
  return [
    yes(c.canPublishPorts, 'port publishing'),
    c.sharesDaemonNetwork ? "handler containers share the daemon's network" : 'handler containers run on their own network',
    yes(c.hostReachesCluster, 'cluster names on this host'),
  ].join(', ')
}

/** Structural check of a placement a (third-party) backend returned. */
export function placementProblems(value: unknown): string[] {
  const problems: string[] = []
  if (typeof value !== 'object' || value === null) return ['the placement is not an object']
  const p = value as Record<string, unknown>
  const caps = p.capabilities as Record<string, unknown> | undefined
  for (const key of ['canPublishPorts', 'sharesDaemonNetwork', 'hostReachesCluster']) {
    if (typeof caps?.[key] !== 'boolean') problems.push(`capabilities.${key} must be true or false`)
  }
  if (!Array.isArray(p.containerArgs) || !p.containerArgs.every((a) => typeof a === 'string')) problems.push('containerArgs must be a list of strings')
  const handler = p.handler as Record<string, unknown> | undefined
  if (typeof handler?.daemonConnectsTo !== 'string') problems.push('handler.daemonConnectsTo must be a host')
  const daemon = p.daemon as Record<string, unknown> | undefined
  if (typeof daemon?.agentHost !== 'string' || typeof daemon?.listenHost !== 'string') problems.push('daemon.agentHost and daemon.listenHost must be hosts')
  if (!Array.isArray(p.sweepLabels) || p.sweepLabels.length === 0) problems.push('sweepLabels must name the labels of the connection’s objects')
  return problems
}
