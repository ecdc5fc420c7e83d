import {join} from 'node:path'
import type {ConnectOptions, ConnectionRecord, DaemonBackend, DaemonStatus, Factory, Placement, PluginContext, StaleConnection} from '@tp/sdk'
import {ConnectionStore, DaemonClient, UserError, connectionLabels, reuseRunning} from '@tp/sdk'
import {CAPABILITIES} from './capabilities.js'

/** Where the daemon is and how to reach it, from the environment of `tp connect`. */
export const ENV = {
  url: 'TP___ENV___URL',
  token: 'TP___ENV___TOKEN',
  /** The address at which the daemon reaches handlers on this machine. */
  handlerHost: 'TP___ENV___HANDLER_HOST',
} as const

/**
 * A connection to a daemon someone else started (on a shared machine, in the cluster): `ensure`
 * checks that it answers and keeps a record; `quit` forgets it and leaves the daemon running (it
 * is not this machine's to stop); a record whose daemon no longer answers is removed by `find`.
 */
export class AttachedBackend implements DaemonBackend {
  private readonly store: ConnectionStore

  constructor(
    context: PluginContext,
    private readonly env: NodeJS.ProcessEnv = process.env,
  ) {
    this.store = new ConnectionStore(join(context.cacheDir, 'connections'))
  }

  private async status(api: {url: string; token: string}): Promise<DaemonStatus | undefined> {
    return new DaemonClient(api, 5000).status().catch(() => undefined)
  }

  async ensure(options: ConnectOptions): Promise<ConnectionRecord> {
    const running = await this.find(options.name)
    if (running) return reuseRunning(running, options, `TP_DAEMON_BACKEND=__NAME__ tp connect`)
    const url = this.env[ENV.url]
    const token = this.env[ENV.token]
    if (!url || !token)
      throw new UserError(
        `the __NAME__ daemon backend needs ${ENV.url} and ${ENV.token}`,
        `set both to the daemon's API address and token, then run tp connect again`,
      )
    const status = await this.status({url, token})
    if (!status) throw new UserError(`no tp daemon answers at ${url} with that token`, `check ${ENV.url} and ${ENV.token}, and that the daemon runs`)
    if (options.namespace !== status.namespace) {
      throw new UserError(
        `the daemon at ${url} serves namespace ${status.namespace}, not ${options.namespace}`,
        `pass --namespace ${status.namespace}, or point ${ENV.url} at that namespace's daemon`,
      )
    }
    const record: ConnectionRecord = {
      name: options.name,
      backend: '__NAME__',
      daemonId: status.daemonId,
      namespace: status.namespace,
      cluster: {driver: options.cluster.driver, engine: options.cluster.engine},
      api: {url, token},
      details: {handlerHost: this.env[ENV.handlerHost] || '127.0.0.1', agentHost: new URL(url).hostname},
      createdAt: new Date().toISOString(),
    }
    await this.store.save(record)
    return record
  }

  async find(name: string, options: {onStale?: (stale: StaleConnection) => void} = {}): Promise<ConnectionRecord | undefined> {
    const record = await this.store.get(name)
    if (record?.backend !== '__NAME__') return undefined
    if (await this.status(record.api)) return record
    await this.store.remove(name)
    options.onStale?.({record, cleanedUp: []})
    return undefined
  }

  async quit(record: ConnectionRecord): Promise<void> {
    await this.store.remove(record.name)
  }

  placement(record: ConnectionRecord): Placement {
    const handlerHost = record.details?.handlerHost ?? '127.0.0.1'
    return {
      backend: '__NAME__',
      capabilities: CAPABILITIES,
      containerArgs: [],
      handler: {daemonConnectsTo: handlerHost},
      process: {daemonConnectsTo: handlerHost},
      daemon: {agentHost: record.details?.agentHost ?? new URL(record.api.url).hostname, listenHost: '0.0.0.0'},
      sweepLabels: connectionLabels(record.name),
      where: `daemon ${record.daemonId} at ${record.api.url}`,
    }
  }

  /** Nothing on this machine to undo: what the daemon made, it removes itself. */
  async sweep(): Promise<void> {}
}

const factory: Factory<DaemonBackend> = (context) => new AttachedBackend(context)
export default factory
