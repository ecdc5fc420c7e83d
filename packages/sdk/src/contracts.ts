import type {ClusterTarget, NamespaceReach} from './cluster.js'
import type {Descriptor, PluginContext} from './descriptor.js'
import type {Placement, PlacementCapabilities} from './placement.js'
import type {InterceptSession} from './session.js'

/** Extension API version this sdk speaks. A descriptor's apiVersion must fall in the supported range. */
export const API_VERSION = 1
export const SUPPORTED_API_VERSIONS = {min: 1, max: 1} as const

export type {Descriptor, Factory, Logger, PluginContext} from './descriptor.js'

// ---------------------------------------------------------------------------------------------
// Handlers

/** A CLI flag a handler owns. The host adds it to `tp intercept`. */
export interface HandlerFlag {
  type: 'boolean' | 'string'
  description: string
  multiple?: boolean
  /** Value placeholder for help, e.g. `<context>`. */
  helpValue?: string
  /** Name of a boolean flag this flag implies (e.g. docker-build implies docker-run). */
  implies?: string
}

export interface HandlerDescriptor extends Descriptor<Handler> {
  /** Flags this handler owns, by name without dashes. */
  flags: Record<string, HandlerFlag>
  /** The flag whose presence selects this handler (e.g. `docker-run`); none with `selectedByArgs`. */
  selectedBy?: string
  /**
   * Lower wins when several handlers are selected by implied flags (docker-build implies docker-run;
   * docker-build must win). Defaults to 100.
   */
  precedence?: number
  /**
   * JSON schema for this handler's section of an intercept specification: with it, the handler is
   * a kind of `tp spec` handler (`handlers[].<name>`); tp checks the section with ajv and hands it
   * to `prepare` as `HandlerRequest.spec`.
   */
  specSchema?: Record<string, unknown>
  /**
   * The handler runs a container whose port tp publishes where the placement can: `--port` then
   * takes `<local>:<container>[:<service port>]` there.
   */
  publishesPorts?: boolean
  /** Chosen when arguments follow `--` and no handler flag is given (the local-process handler). */
  selectedByArgs?: boolean
}

export interface HandlerRequest {
  workload: string
  /** Values of the flags this handler owns (and any others), keyed by flag name. */
  flags: Record<string, unknown>
  /** Everything after `--` on the command line. */
  args: string[]
  /**
   * What works where the intercept's handler will run (from the daemon backend), known before the
   * intercept exists: decide on these, never on a backend's name.
   */
  capabilities: PlacementCapabilities
  /**
   * With `tp spec run`: the handler's section of the intercept specification, already validated
   * against the descriptor's `specSchema`; absent on the command line.
   */
  spec?: Record<string, unknown>
  /** Requested local port (from --port). */
  localPort: number
  /** Requested container port (`--port L:C` where ports can be published); equals localPort otherwise. */
  containerPort: number
  cwd: string
}

export interface HandlerIO {
  stdin: NodeJS.ReadableStream
  stdout: NodeJS.WritableStream
  stderr: NodeJS.WritableStream
}

/** What other parts contribute at run time (volumes). */
export interface RunExtras {
  /** e.g. `-v <volume>:<path>` for each remote mount. */
  dockerRunArgs: string[]
  /** The local directory holding the remote mounts (a `directory` volume provider's root): TP_ROOT. */
  root?: string
}

/** The result of `prepare`: everything that could fail has been checked; nothing exists yet. */
export interface PreparedHandler {
  /** One line describing what will run, e.g. `docker run frontend-v2 (sha256:…)`. */
  describe: string
  /** Whether the handler wants the remote mounts. */
  wantsVolumes: boolean
  /** In which form (default `docker-volumes`). */
  volumeForm?: VolumeForm
  /** Where the handler listens: a container (default), or a process on this machine. */
  runsAs?: 'container' | 'process'
  /** Lines tp prints before the handler runs (what the placement cannot give it, …). */
  notes?: string[]
  /** Runs in the foreground; resolves with the exit code tp should exit with. */
  run(session: InterceptSession, io: HandlerIO, extras: RunExtras): Promise<number>
  /** Ends `run` early (Ctrl-C, `tp leave`, `tp quit`); idempotent; safe before run starts. */
  stop(reason: string): Promise<void>
  /** Removes whatever prepare created (e.g. a temporary build). Called on every path. */
  dispose?(): Promise<void>
}

export interface Handler {
  prepare(request: HandlerRequest): Promise<PreparedHandler>
}

// ---------------------------------------------------------------------------------------------
// Volume providers

/**
 * What a handler consumes: Docker volumes for a container (`-v <volume>:<path>`), or a directory on
 * this machine under which each remote mount appears at its own path (a process, `--docker-mount`).
 */
export type VolumeForm = 'docker-volumes' | 'directory'

export interface VolumeRequest {
  form: VolumeForm
  /**
   * `directory`: where the mounts go (`--mount=<dir>`, which must be empty or not exist yet); the
   * provider makes a fresh directory when it is not given.
   */
  root?: string
}

export interface ProvidedVolumes {
  /** `docker-volumes`: e.g. ['-v', 'tp-…:/data']; empty for `directory`. */
  dockerRunArgs: string[]
  /** `directory`: the local directory holding the mounts (`<root>/data` for `/data`): the handler's TP_ROOT. */
  root?: string
  /** Removes the volumes or unmounts the directory; call after the handler is gone; idempotent. */
  release(): Promise<void>
}

export interface VolumeProvider {
  /** Checks (and installs) what the provider needs, before the handler starts. */
  provide(session: InterceptSession, request?: VolumeRequest): Promise<ProvidedVolumes>
  /**
   * Optional: gets ready ahead of time (e.g. looks up or installs what `provide` needs) while the
   * intercept is being created, so that `provide` has less to do. Creates nothing that `provide`'s
   * `release` would have to remove; a failure here is ignored (`provide` meets it again and says so).
   */
  warmUp?(): Promise<void>
}

export type VolumeProviderDescriptor = Descriptor<VolumeProvider> & {
  /** The forms this provider gives (default `['docker-volumes']`). */
  forms?: VolumeForm[]
  /**
   * Capabilities the connection's placement must have for this provider to fit (e.g.
   * `{hostReachesCluster: true}` for mounts made on this host); empty: fits every placement.
   */
  requires: Partial<PlacementCapabilities>
  /**
   * The provider's volumes wait for the workload's SFTP server themselves (what connects to it
   * retries until it answers): tp then calls `provide` as soon as it has the session and starts the
   * handler while the workload's agent is still coming up. Without it, tp calls `provide` once the
   * agent is ready.
   */
  waitsForServer?: boolean
}

/** Whether a provider's requirements are met by a placement's capabilities. */
export function fitsCapabilities(requires: Partial<PlacementCapabilities> | undefined, capabilities: PlacementCapabilities): boolean {
  return Object.entries(requires ?? {}).every(([key, wanted]) => capabilities[key as keyof PlacementCapabilities] === wanted)
}

// ---------------------------------------------------------------------------------------------
// Daemon backends

export interface ConnectOptions {
  /** Connection name; `default` unless given. */
  name: string
  /** The namespace, as the cluster driver resolved it. */
  namespace: string
  /**
   * The cluster: its driver and engine, the driver's module (what the daemon imports) and its
   * settings (the variables of the driver's `env` that are set), for the daemon's environment.
   */
  cluster: ClusterTarget & {module: string; env: Record<string, string>}
  /** Where the namespace's names are reached (from the driver). */
  reach: NamespaceReach
  /** tp's runtime image where the cluster runs agents (from the driver's `ensureImages`). */
  runtimeImage: string
}

/** What is kept (0600) in the cache directory about one live connection. */
export interface ConnectionRecord {
  name: string
  backend: string
  daemonId: string
  namespace: string
  /** The cluster the namespace is in: its driver and engine (a record from before drivers has none: docker, the local engine). */
  cluster?: ClusterTarget
  /** The handler's engine when the connection was made (where handler containers and their volumes run). */
  handlerEngine?: string
  api: {url: string; token: string}
  /** What the backend needs to find its daemon again: a container id, a process id, … */
  containerId?: string
  pid?: number
  /** Backend-specific facts (e.g. the namespace network's gateway); the backend's own business. */
  details?: Record<string, string>
  createdAt: string
}

/** What `find` did about a connection whose daemon is gone: its record is removed, and what it left. */
export interface StaleConnection {
  /** The record as it was (what the connection was: backend, namespace, daemon). */
  record: ConnectionRecord
  /** What the clean-up removed or undid, one line each (`container tp-x-agent-…`); empty: nothing was left. */
  cleanedUp: string[]
}

/**
 * A daemon that runs without a usable record in this cache directory (the record was damaged or
 * removed), found by what the backend knows of its daemons (Docker labels, process command lines),
 * so that `tp status`, `tp quit` and `tp gc` still see it and can stop it.
 */
export interface StrayDaemon {
  connection: string
  /** The backend's name. */
  backend: string
  /** Where it runs, in words (`container tp-x-cn`, `process 42 on this host`). */
  where: string
  namespace?: string
  /** Stops it and removes everything its connection left (the backend's sweep); idempotent. */
  stop(): Promise<void>
}

export interface DaemonBackend {
  /**
   * Says what is missing on this machine for a daemon of this backend (privileges, the handler's
   * engine), before anything is made. Optional.
   */
  check?(): Promise<void>
  /**
   * Starts a daemon for the connection (`find` found none running) on the namespace the cluster
   * driver resolved; replaces a stale one.
   */
  ensure(options: ConnectOptions): Promise<ConnectionRecord>
  /**
   * The live connection of that name, or undefined. A stale record (its daemon is gone) is removed
   * and what the connection left is swept; `onStale` is told what was done. A damaged record is
   * a `DamagedRecordError` (from `ConnectionStore.get`).
   */
  find(name: string, options?: {onStale?: (stale: StaleConnection) => void}): Promise<ConnectionRecord | undefined>
  /**
   * Daemons of this backend, started from this cache directory, that run without a usable record
   * (`known`: the names whose records are usable and whose daemons `find` found). Optional: a
   * backend without it leaves such daemons to its own clean-up.
   */
  strays?(known: ReadonlySet<string>): Promise<StrayDaemon[]>
  /** Stops the daemon and removes everything the connection created. */
  quit(record: ConnectionRecord): Promise<void>
  /** Where this connection's daemon lives and how handlers reach it (the one owner of that knowledge). */
  placement(record: ConnectionRecord): Placement
  /**
   * Removes what the connection left (its labelled Docker objects, and whatever the backend changed
   * on this machine) once its daemon is gone; `tp gc` calls it for connections no daemon owns.
   */
  sweep(connection: string): Promise<void>
  /**
   * `tp gc`: undoes what this backend changed on this machine (outside Docker) for connections
   * not in `live`; returns one line per thing undone (or that would be, with dryRun).
   */
  gc?(options: {live: ReadonlySet<string>; dryRun: boolean}): Promise<string[]>
}

export type DaemonBackendDescriptor = Descriptor<DaemonBackend> & {
  /** What works with this backend's daemons, known before one exists (what `placement` will say). */
  capabilities: PlacementCapabilities
}

/** Structural checks, used instead of instanceof across packages. */
export function isDescriptor(value: unknown): value is Descriptor<unknown> {
  if (typeof value !== 'object' || value === null) return false
  const d = value as Record<string, unknown>
  return typeof d.name === 'string' && d.name.length > 0 && typeof d.apiVersion === 'number' && typeof d.load === 'function'
}
