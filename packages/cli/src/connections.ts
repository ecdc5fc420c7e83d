import {join} from 'node:path'
import {
  CONNECTION_NAME_PATTERN,
  type ConnectionRecord,
  ConnectionStore,
  type DaemonBackend,
  DaemonClient,
  type Placement,
  type PlacementCapabilities,
  type PluginContext,
  UserError,
} from '@tp/sdk'
import type {Registries} from './extensions.js'

/** The bundled backend that runs the daemon in a container; chosen by --docker. */
export const CONTAINER_BACKEND = 'container'
/** The backend that runs the daemon on this host: the default when it is installed. */
export const HOST_BACKEND = 'host'

export interface LiveConnection {
  record: ConnectionRecord
  backend: DaemonBackend
  client: DaemonClient
  /** Where its daemon lives and how handlers reach it, as its backend says. */
  placement: Placement
}

/** Finds, starts and lists connections across every installed daemon backend. */
export class Connections {
  private readonly store: ConnectionStore
  private readonly loaded = new Map<string, Promise<DaemonBackend>>()

  constructor(
    private readonly registries: Registries,
    private readonly context: PluginContext,
  ) {
    this.store = new ConnectionStore(join(context.cacheDir, 'connections'))
  }

  backend(name: string): Promise<DaemonBackend> {
    let backend = this.loaded.get(name)
    if (!backend) {
      backend = this.registries.daemonBackends.load(name, this.context)
      this.loaded.set(name, backend)
    }
    return backend
  }

  /** `--docker` forces the container daemon; otherwise $TP_DAEMON_BACKEND, the host backend if one is installed, else the container one. */
  backendName(docker: boolean): string {
    if (docker) return CONTAINER_BACKEND
    if (process.env.TP_DAEMON_BACKEND) return process.env.TP_DAEMON_BACKEND
    return this.registries.daemonBackends.has(HOST_BACKEND) ? HOST_BACKEND : CONTAINER_BACKEND
  }

  /** What a connection made by that backend will offer, before it exists (from the backend's descriptor). */
  capabilitiesOf(backendName: string): PlacementCapabilities {
    return this.registries.daemonBackends.get(backendName).descriptor.capabilities
  }

  private liveConnection(record: ConnectionRecord, backend: DaemonBackend): LiveConnection {
    return {record, backend, client: new DaemonClient(record.api), placement: backend.placement(record)}
  }

  /** Every connection whose daemon is alive (stale records are cleaned up by their backend). */
  async live(): Promise<LiveConnection[]> {
    const live: LiveConnection[] = []
    for (const record of await this.store.list()) {
      if (!this.registries.daemonBackends.has(record.backend)) continue
      const backend = await this.backend(record.backend)
      const found = await backend.find(record.name)
      if (found) live.push(this.liveConnection(found, backend))
    }
    return live
  }

  async connect(options: {name: string; namespace?: string; docker: boolean}): Promise<LiveConnection> {
    if (!CONNECTION_NAME_PATTERN.test(options.name)) {
      throw new UserError(`"${options.name}" is not a usable connection name`, 'use lower-case letters, digits and dashes, at most 31 characters (--name)')
    }
    const existing = await this.store.get(options.name)
    const backendName = existing && !options.docker ? existing.backend : this.backendName(options.docker)
    const backend = await this.backend(backendName)
    const record = await backend.ensure({name: options.name, namespace: options.namespace})
    return this.liveConnection(record, backend)
  }

  /**
   * The connection a command works on: `--use <name>`, else the only live one; with `implicit`,
   * connects (as `default`) when there is none — the way `tp intercept` works without `tp connect`.
   */
  async current(options: {use?: string; implicit?: {docker: boolean; namespace?: string}}): Promise<LiveConnection> {
    const live = await this.live()
    if (options.use) {
      const found = live.find((c) => c.record.name === options.use)
      if (found) return found
      if (options.implicit) return this.connect({name: options.use, docker: options.implicit.docker, namespace: options.implicit.namespace})
      throw new UserError(
        `there is no connection named "${options.use}"`,
        live.length > 0 ? `connections: ${live.map((c) => c.record.name).join(', ')}` : 'connect first with `tp connect --docker`',
      )
    }
    if (live.length === 1) return live[0]
    if (live.length > 1) {
      throw new UserError(
        `there are ${live.length} connections (${live.map((c) => c.record.name).join(', ')}) and it is not clear which one to use`,
        'choose one with --use <name>',
      )
    }
    if (options.implicit) return this.connect({name: 'default', docker: options.implicit.docker, namespace: options.implicit.namespace})
    throw new UserError('tp is not connected', 'connect with `tp connect --docker` (or run `tp intercept`, which connects by itself)')
  }
}
