/** Where a handler listening on the local port is reached. */
export interface HandlerReach {
  /** Host where the daemon reaches the handler (readiness checks, relay). */
  handlerHost: string
  /** Host where an agent may reach the handler straight; undefined: always through the daemon. */
  directHost?: string
}

/** How the daemon's intercepts reach the agents and the handlers, worked out once at start from the placement. */
export interface Reach {
  /** `<host>:<port>` the agents dial (the daemon's control listener). */
  agentsDial: string
  /** A handler container. */
  container: HandlerReach
  /** A process on the user's machine; undefined when the placement cannot reach one. */
  process?: HandlerReach
  /**
   * For a namespace on another machine: a port on this side that reaches host:port there (a
   * workload's SFTP server, for the volume providers here).
   */
  forward?: (host: string, port: number, ready?: Promise<void>) => Promise<{host: string; port: number; close: () => void}>
  /** For a namespace on another machine: resolves when the link to it is gone. */
  linkClosed?: Promise<string>
}
