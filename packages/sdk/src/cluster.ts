import type {Duplex} from 'node:stream'
import type {Descriptor, PluginContext} from './descriptor.js'

/**
 * The cluster driver contract: what the daemon (and `tp connect`, `tp gc`) need of the place where
 * workloads live, and nothing about how that place works. The Docker-network driver (`docker`, a
 * core plugin) is one implementation; a Swarm or Kubernetes driver is another.
 *
 * Two engines are never confused: the *cluster's* engine is where workloads (and the agents beside
 * them) live, named by `ClusterTarget.engine`; the *handler's* engine (DOCKER_HOST / the current
 * Docker context) is where handler containers and their volumes run. Drivers see only the first.
 */

export interface WorkloadPort {
  port: number
  name?: string
  protocol: 'tcp' | 'udp'
}

/** One running instance of a workload (a container, a task, a pod): each gets its own agent. */
export interface Replica {
  /** The driver's id for it (a container id, a task id); stable while it runs. */
  id: string
  /** Its name in words (`frontend-v1`, `shop_web.2`), for messages and as a host name. */
  name: string
  /** Its address in the namespace: where its agent serves the workload's volumes. */
  address: string
  /** When it started: a later start means it restarted under the intercept. */
  startedAt: string
  /** The node it runs on, where the cluster has several. */
  node?: string
}

/**
 * Where the cluster's engine keeps a workload's volume, when a handler on that same engine may
 * mount it directly instead of over SFTP (the same files at a local mount's speed).
 */
export interface EngineMount {
  /** The cluster engine's own id (Docker: `docker info`'s ID): a handler engine with the same id is that engine. */
  engine: string
  type: 'volume' | 'bind'
  /** The volume's name, or the bind mount's path on the engine's host. */
  source: string
}

export interface WorkloadMount {
  /** Path inside the workload. */
  path: string
  readOnly: boolean
  /** Set when a handler on the cluster's own engine may mount it directly. */
  engine?: EngineMount
}

/** A workload as every part of tp sees it, whatever the driver. */
export interface Workload {
  /** The name to intercept it by (a compose or swarm service name, a container name). */
  name: string
  namespace: string
  /** Other names it answers to in the namespace. */
  aliases: string[]
  /** Service ports, sorted by number. */
  ports: WorkloadPort[]
  /** Its environment as the workload sees it. */
  environment: Record<string, string>
  mounts: WorkloadMount[]
  /**
   * The user its processes run as, where the cluster knows it as numbers: what tp writes into its
   * volumes (a handler's files) is owned as the workload's own writes are. Undefined: root.
   */
  user?: {uid: number; gid: number}
  /** Its running instances; never empty for a workload a driver returns. */
  replicas: Replica[]
  /**
   * Names that resolve to each replica's own address, all of them at once (swarm's `tasks.<service>`):
   * a client of one of them reaches that replica, not the workload's.
   */
  replicaNames?: string[]
  /** Files of the workload tp cannot give a handler, each with why and what to do (a swarm config right under `/`). */
  unservedFiles?: Array<{path: string; why: string}>
}

export interface NamespaceInfo {
  name: string
  /** How many workloads run in it. */
  workloads: number
}

/** What the daemon asks a driver to start beside a replica (in its network namespace, with its volumes). */
export type AgentRole =
  /** The traffic agent: redirects the intercepted port, relays to the daemon, serves the volumes. */
  | 'agent'
  /** Watches the agent and removes its redirect the moment it dies. */
  | 'guard'

export interface AgentRequest {
  role: AgentRole
  namespace: string
  workload: Workload
  replica: Replica
  /** A name for what the driver creates (unique per connection, intercept and replica). */
  name: string
  /** The runtime image (from `ensureImages`). */
  image: string
  /** Labels the driver puts on everything it creates for this agent (what sweeps find). */
  labels: Record<string, string>
  /** The agent's environment (TP_AGENT_*). */
  env: Record<string, string>
}

export interface InjectedAgent {
  /** What `removeAgent` takes. */
  id: string
  name: string
  /** Resolves with the agent's exit code when it ends (undefined when that cannot be known). */
  exited: Promise<number | undefined>
}

/** Where a connection's daemon and handlers reach the namespace's names. */
export interface NamespaceReach {
  /**
   * The network a container on the handler's engine joins to resolve and reach the namespace's
   * workloads by name (the Docker driver: the namespace's own network).
   */
  containerNetwork: string
  /**
   * This machine's address as the namespace's workloads reach it (where their agents reach a
   * daemon or a process on this machine); undefined when they cannot.
   */
  hostAddress?: string
  /**
   * The namespace is on another machine: nothing here routes to it, and everything between the two
   * travels through the driver's `link` (its names are served by the daemon on this side).
   */
  linked?: boolean
}

/**
 * What carries everything between this machine and a namespace on another machine's engine: one
 * connection the driver keeps (through the engine's own API), with many streams in it.
 */
export interface NamespaceLink {
  /** Where agents in the namespace dial the daemon: the far end's address there. */
  agentHost: string
  /** A connection from the far end to host:port in the namespace. */
  connect(host: string, port: number): Promise<Duplex>
  /** Takes the connections that arrive at the far end on `port` (agents dialling the daemon); returns a stop. */
  listen(port: number, onConnection: (accepted: {stream: Duplex; peer: {address: string; port: number}}) => void): () => void
  /**
   * The TCP ports each replica listens on for others, whether or not its workload declares them
   * (by replica id; a replica it cannot look into is left out): the names served on this side
   * carry those ports too. Optional: without it, only the workloads' declared ports are carried.
   */
  listeningPorts?(replicas: Replica[]): Promise<Map<string, number[]>>
  /** Resolves, with why, when the link is gone (the machine asleep, the engine restarted, closed). */
  closed: Promise<string>
  close(why?: string): void
}

/** TLS files of an engine reached over tcp://, as the docker CLI keeps them. */
export interface EngineTls {
  ca: string
  cert: string
  key: string
  /** Whether the engine's certificate is checked against `ca` (a context's SkipTLSVerify turns it off). */
  verify: boolean
}

/** Which cluster a connection works on: the driver, and the engine it talks to. */
export interface ClusterTarget {
  /** The driver's name (`docker`). */
  driver: string
  /** The cluster's engine: an engine URL (`unix:///var/run/docker.sock`, `tcp://…`, `ssh://…`). */
  engine: string
  /** For a tcp:// engine with TLS: its files. */
  tls?: EngineTls
  /** The Docker context the engine was named by, if it was. */
  context?: string
}

/** The cluster of a connection, as its record keeps it (no driver module, no settings). */
export function clusterTarget(cluster: ClusterTarget): ClusterTarget {
  const {driver, engine, tls, context} = cluster
  return {driver, engine, ...(tls ? {tls} : {}), ...(context ? {context} : {})}
}

/** Given to a cluster driver's factory. */
export interface ClusterDriverContext extends PluginContext {
  cluster: ClusterTarget
}

export interface ClusterDriver {
  /** The namespaces of the cluster, sorted by name. */
  namespaces(): Promise<NamespaceInfo[]>
  /**
   * The namespace to connect to: `requested` if it exists, else the only one with workloads; a
   * UserError that names the candidates otherwise.
   */
  resolveNamespace(requested?: string): Promise<string>
  /** The workloads running in a namespace, sorted by name. */
  workloads(namespace: string): Promise<Workload[]>
  /** One workload by name or alias; a UserError says why there is none (stopped, unknown, ambiguous). */
  workload(namespace: string, name: string): Promise<Workload>
  /**
   * Why a replica is not the one an intercept was made for: it stopped, was removed, or restarted
   * since `replica.startedAt`; undefined while it runs as it did (or the cluster cannot say).
   */
  whyNotRunning(namespace: string, replica: Replica): Promise<string | undefined>
  /** Starts the agent (or its guard) beside a replica: in its network namespace, with its volumes. */
  injectAgent(request: AgentRequest): Promise<InjectedAgent>
  /**
   * Stops an agent (by its id or name; the agent removes its redirect and drains within
   * `graceSeconds`) and makes sure it is gone; an agent that had to be killed has its redirect
   * removed too. Nothing there: nothing to do.
   */
  removeAgent(agent: string, options?: {graceSeconds?: number}): Promise<void>
  /**
   * Removes the redirects an agent left beside a replica when it could not (it was killed):
   * `interceptId` names the agent's; without it, every agent's. Nothing running: nothing to do.
   */
  restoreTraffic(request: {namespace: string; replica: Replica; image: string; interceptId?: string; labels: Record<string, string>}): Promise<void>
  /**
   * `tp replace`: pauses a replica while a handler takes all of its traffic (its processes stop;
   * its network namespace, where the agents are, stays). The driver leaves a mark that `sweep` and
   * `gc` find, so a replica paused by a connection whose daemon died is resumed by them. Optional:
   * a driver without it cannot replace.
   */
  pause?(request: {namespace: string; replica: Replica; image: string; name: string; labels: Record<string, string>}): Promise<void>
  /** Resumes a replica `pause` paused and removes its mark; a replica not paused (or gone): nothing to do. */
  resume?(request: {namespace: string; replica: Replica; name: string}): Promise<void>
  /** Where the daemon and handlers reach the namespace's names (a namespace on the handler's own engine). */
  reach(namespace: string): Promise<NamespaceReach>
  /**
   * For a namespace on another machine (`NamespaceReach.linked`): opens what carries everything
   * between it and this machine; its far end goes by itself when this side does. Optional: a
   * driver without it only reaches clusters on the handler's own engine.
   */
  link?(namespace: string, options: {connection: string; image: string; labels: Record<string, string>}): Promise<NamespaceLink>
  /**
   * Makes sure tp's runtime image (agents) exists where the driver runs agents; resolves with
   * what `AgentRequest.image` is then. `progress` hears a line per step that takes a while.
   */
  ensureImages(options?: {progress?: (line: string) => void}): Promise<{runtime: string}>
  /** Removes what a connection left on the cluster (agents and their helpers); one line per thing removed. */
  sweep(connection: string): Promise<string[]>
  /**
   * `tp gc`: removes (or with dryRun only lists) what tp left on the cluster for connections not
   * in `live`; one line per thing, without a verb (`container tp-x-agent-web (agent, connection x)`).
   */
  gc?(options: {live: ReadonlySet<string>; dryRun: boolean}): Promise<string[]>
  /**
   * Whether this driver is the one for its cluster's engine when no driver was named (the swarm
   * driver: the engine is a swarm manager). Optional: a driver without it is used only when named.
   */
  claims?(): Promise<boolean>
  /**
   * Whether the cluster replaces a replica that goes by itself (a swarm service's task, rescheduled
   * by its orchestrator: a drained node, a failed task): an intercept whose last replica went then
   * waits a while for the one that replaces it instead of ending. Absent: a workload whose last
   * replica went is gone.
   */
  readonly replacesReplicas?: boolean
  /** Releases what the driver holds (connections to the engine). */
  close?(): Promise<void>
}

export type ClusterDriverDescriptor = Descriptor<ClusterDriver, ClusterDriverContext> & {
  /**
   * Absolute path of a self-contained ES module (no imports but Node's) whose default export is
   * the same factory as `load()`'s: the daemon imports it, on this machine or inside tp's daemon
   * image, where tp copies it.
   */
  module: string
  /**
   * Environment variables the driver reads (its settings): tp passes those set where `tp connect`
   * runs on to the daemon, which runs the driver too.
   */
  env?: string[]
}

/** A port in words: `80`, `53/udp`, `8080 (admin)`. */
export function describePort(p: WorkloadPort): string {
  return `${p.port}${p.protocol === 'udp' ? '/udp' : ''}${p.name ? ` (${p.name})` : ''}`
}
