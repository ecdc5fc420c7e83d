import {spawn} from 'node:child_process'
import {randomBytes} from 'node:crypto'
import {constants, closeSync, openSync} from 'node:fs'
import {access, mkdir, readFile, rm} from 'node:fs/promises'
import {join} from 'node:path'
import Docker from 'dockerode'
import {
  CONNECTION_NAME_PATTERN,
  type ConnectOptions,
  type ConnectionRecord,
  ConnectionStore,
  DaemonClient,
  type DaemonBackend,
  type Placement,
  type PluginContext,
  type StaleConnection,
  type StrayDaemon,
  SubprocessError,
  UserError,
  connectionLabels,
  debugLog,
  clusterTarget,
  defaultEngineUrl,
  dockerEndpoint,
  dockerUnreachable,
  sleep,
  swallow,
  sweep,
  tail,
} from '@tp/sdk'
import {HOST_CAPABILITIES} from './capabilities.js'
import {daemonTunables} from '@tp/daemon/tunables'
import {DAEMON_MAIN, NAMES_ADDON, daemonRuns, listDaemonProcesses} from './daemon-process.js'
import {blockConnections, hostsFilePath, removeBlock} from './hosts-file.js'

const READY_TIMEOUT_MS = 20_000
const QUIT_TIMEOUT_MS = 30_000

const trace = debugLog('tp:plugin:daemon-host')

/**
 * Runs each connection's daemon as a detached process on this machine. Its API listens on
 * 127.0.0.1 (token in the 0600 connection record); agents dial it at the namespace network's
 * gateway, the host's own address on that network; this machine resolves the namespace's names
 * through a block of the hosts file that the daemon keeps up to date and removes when it ends.
 */
export class HostBackend implements DaemonBackend {
  private readonly docker = new Docker()
  private readonly store: ConnectionStore
  private readonly runDir: string

  constructor(private readonly context: PluginContext) {
    this.store = new ConnectionStore(join(context.cacheDir, 'connections'))
    this.runDir = join(context.cacheDir, 'daemons')
  }

  placement(record: Pick<ConnectionRecord, 'name' | 'namespace' | 'pid' | 'details'>): Placement {
    if (record.details?.linked === '1') return this.linkedPlacement(record)
    const gateway = record.details?.gateway ?? '127.0.0.1'
    return {
      backend: 'host',
      capabilities: HOST_CAPABILITIES,
      // on the namespace's network, a handler container resolves and reaches the workloads as they do each other
      containerArgs: ['--network', record.details?.network ?? record.namespace],
      handler: {daemonConnectsTo: '127.0.0.1', agentConnectsTo: gateway},
      // a process here is where a published container port is: on this machine
      process: {daemonConnectsTo: '127.0.0.1', agentConnectsTo: gateway},
      daemon: {agentHost: gateway, listenHost: gateway},
      sweepLabels: connectionLabels(record.name),
      where: `process ${record.pid ?? '?'} on this host`,
    }
  }

  /**
   * A namespace on another machine, which the daemon links to: its names are served on this
   * machine's loopback, so a handler container runs on this machine's network (where it resolves
   * them from the hosts file and listens on the local port itself); agents reach nothing here but
   * the daemon, through the link.
   */
  private linkedPlacement(record: Pick<ConnectionRecord, 'name' | 'pid'>): Placement {
    return {
      backend: 'host',
      capabilities: {canPublishPorts: false, sharesDaemonNetwork: true, hostReachesCluster: true},
      containerArgs: ['--network', 'host'],
      handler: {daemonConnectsTo: '127.0.0.1'},
      process: {daemonConnectsTo: '127.0.0.1'},
      daemon: {agentHost: '127.0.0.1', listenHost: '127.0.0.1'},
      sweepLabels: connectionLabels(record.name),
      where: `process ${record.pid ?? '?'} on this host`,
    }
  }

  /** Says what is missing before anything changes: writing the hosts file, and the Docker engine's socket. */
  private async checkPrivileges(): Promise<void> {
    const hostsFile = hostsFilePath()
    const missing: string[] = []
    await access(hostsFile, constants.R_OK | constants.W_OK).catch(() =>
      missing.push(`write ${hostsFile} (to make the namespace's names resolve on this machine)`),
    )
    const socket = dockerEndpoint().socketPath
    if (socket) await access(socket, constants.R_OK | constants.W_OK).catch(() => missing.push(`use the Docker engine's socket ${socket}`))
    if (missing.length > 0) {
      throw new UserError(
        `a daemon on this host needs to ${missing.join(' and to ')}, which this user may not`,
        'run it as root (`sudo tp connect`), or run the daemon in a container instead, which changes nothing on this machine: `tp connect --docker`',
      )
    }
  }

  async find(name: string, options: {onStale?: (stale: StaleConnection) => void} = {}): Promise<ConnectionRecord | undefined> {
    const record = await this.store.get(name)
    if (!record || record.backend !== 'host') return undefined
    if (record.pid && daemonRuns(record.pid)) return record
    // the daemon is gone (killed, machine restarted): undo what it left
    await this.store.remove(name)
    options.onStale?.({record, cleanedUp: await this.sweepReport(name)})
    return undefined
  }

  /** Host daemons started from this cache directory (their ready file is in it) that no usable record knows. */
  async strays(known: ReadonlySet<string>): Promise<StrayDaemon[]> {
    const strays: StrayDaemon[] = []
    for (const daemon of listDaemonProcesses()) {
      const connection = daemon.env.TP_CONNECTION
      if (!connection || known.has(connection) || !CONNECTION_NAME_PATTERN.test(connection)) continue
      if (daemon.env.TP_READY_FILE !== join(this.runDir, `${connection}.ready.json`)) continue
      strays.push({
        connection,
        backend: 'host',
        where: `process ${daemon.pid} on this host`,
        namespace: daemon.env.TP_NAMESPACE,
        stop: async () => {
          // no usable record, so no token for its API: SIGTERM ends it as `tp quit` would
          const signal = (s: NodeJS.Signals) => {
            if (daemonRuns(daemon.pid)) process.kill(daemon.pid, s)
          }
          signal('SIGTERM')
          const deadline = Date.now() + QUIT_TIMEOUT_MS
          while (Date.now() < deadline && daemonRuns(daemon.pid)) await sleep(100)
          signal('SIGKILL')
          await this.store.remove(connection)
          await this.sweep(connection)
        },
      })
    }
    return strays
  }

  async check(): Promise<void> {
    await this.checkPrivileges()
    await this.docker.ping().catch((error: unknown) => {
      throw dockerUnreachable(error)
    })
  }

  async ensure(options: ConnectOptions): Promise<ConnectionRecord> {
    const {namespace} = options
    const {linked} = options.reach
    const gateway = options.reach.hostAddress
    if (!gateway && !linked) {
      throw new UserError(
        `namespace ${namespace} has no address of this machine that its workloads reach, so their agents cannot reach a daemon on this host`,
        'use a daemon in a container: `tp connect --docker`',
      )
    }
    await mkdir(this.runDir, {recursive: true, mode: 0o700})
    const readyFile = join(this.runDir, `${options.name}.ready.json`)
    const logFile = join(this.runDir, `${options.name}.log`)
    await rm(readyFile, {force: true})
    const token = randomBytes(24).toString('hex')
    const record: ConnectionRecord = {
      name: options.name,
      backend: 'host',
      daemonId: options.name,
      namespace,
      cluster: clusterTarget(options.cluster),
      handlerEngine: defaultEngineUrl(),
      api: {url: '', token},
      // the network a handler container joins to reach the namespace's names (the driver's reach)
      details: linked ? {linked: '1'} : {gateway: gateway as string, network: options.reach.containerNetwork},
      createdAt: new Date().toISOString(),
    }
    const logFd = openSync(logFile, 'a', 0o600)
    const child = spawn(process.execPath, [DAEMON_MAIN], {
      // its own session: Ctrl-C in the terminal of `tp connect` does not reach it, and it outlives tp
      detached: true,
      stdio: ['ignore', logFd, logFd],
      env: {
        // the driver's own settings first: tp's own variables win
        ...options.cluster.env,
        PATH: process.env.PATH ?? '/usr/bin:/bin',
        ...(process.env.DOCKER_HOST ? {DOCKER_HOST: process.env.DOCKER_HOST} : {}),
        ...(process.env.TP_HOSTS_FILE ? {TP_HOSTS_FILE: process.env.TP_HOSTS_FILE} : {}),
        ...daemonTunables(),
        TP_DAEMON_ID: record.daemonId,
        TP_CONNECTION: options.name,
        TP_NAMESPACE: namespace,
        TP_DAEMON_TOKEN: token,
        TP_API_HOST: '127.0.0.1',
        TP_API_PORT: '0',
        TP_CONTROL_PORT: '0',
        TP_READY_FILE: readyFile,
        TP_RUNTIME_IMAGE: options.runtimeImage,
        TP_CLUSTER_DRIVER: options.cluster.driver,
        TP_CLUSTER_ENGINE: options.cluster.engine,
        TP_CLUSTER_DRIVER_MODULE: options.cluster.module,
        ...(linked ? {TP_CLUSTER_LINKED: '1'} : {}),
        ...(options.cluster.tls ? {TP_CLUSTER_TLS: JSON.stringify(options.cluster.tls)} : {}),
        TP_DAEMON_ADDONS: JSON.stringify([NAMES_ADDON]),
        TP_VERSION: this.context.tpVersion,
        TP_PLACEMENT: JSON.stringify(this.placement({...record, pid: undefined})),
      },
    })
    closeSync(logFd)
    child.unref()
    record.pid = child.pid
    let exited = false
    child.once('exit', () => (exited = true))
    try {
      record.api.url = `http://127.0.0.1:${await this.waitUntilReady(readyFile, logFile, child.pid, () => exited)}`
      await new DaemonClient(record.api, 2000).status()
      await this.store.save(record)
      return record
    } catch (error) {
      if (child.pid && !exited) process.kill(child.pid, 'SIGKILL')
      await this.sweep(options.name)
      throw error
    }
  }

  private async waitUntilReady(readyFile: string, logFile: string, pid: number | undefined, exited: () => boolean): Promise<number> {
    const deadline = Date.now() + READY_TIMEOUT_MS
    while (Date.now() < deadline && !exited()) {
      // not there yet, or half written
      const ready = await readFile(readyFile, 'utf8')
        .then((t) => JSON.parse(t) as {apiPort: number})
        .catch(swallow(trace, 'reading the ready file'))
      if (ready?.apiPort) return ready.apiPort
      await sleep(25)
    }
    const logs = await readFile(logFile, 'utf8').catch(() => '')
    throw new SubprocessError(
      `the tp daemon (process ${pid ?? '?'})`,
      undefined,
      tail(logs),
      !exited() ? `the tp daemon did not answer within ${READY_TIMEOUT_MS / 1000} s` : `the tp daemon exited while starting (its log: ${logFile})`,
    )
  }

  async quit(record: ConnectionRecord): Promise<void> {
    await new DaemonClient(record.api, 15_000).quit().catch(swallow(trace, `asking the daemon of ${record.name} to quit (gone: swept below)`))
    // it exits by itself once its intercepts are gone (their tp commands get up to 15 s)
    const deadline = Date.now() + QUIT_TIMEOUT_MS
    while (Date.now() < deadline && record.pid && daemonRuns(record.pid)) await sleep(100)
    if (record.pid && daemonRuns(record.pid)) process.kill(record.pid, 'SIGKILL')
    await this.store.remove(record.name)
    await this.sweep(record.name)
  }

  /** What a connection leaves: labelled Docker objects, its block of the hosts file, its ready file. */
  async sweep(connection: string): Promise<void> {
    await this.sweepReport(connection)
  }

  /** `sweep`, saying what it removed or undid. */
  private async sweepReport(connection: string): Promise<string[]> {
    const swept = await sweep(this.docker, {labels: connectionLabels(connection)})
    const file = hostsFilePath()
    const hadBlock = blockConnections(file).some((b) => b.connection === connection)
    removeBlock(file, connection)
    await rm(join(this.runDir, `${connection}.ready.json`), {force: true})
    return [
      ...swept.map((o) => `removed ${o.kind} ${o.name}${o.role ? ` (${o.role})` : ''}`),
      ...(hadBlock ? [`removed the names of connection ${connection} from ${file}`] : []),
    ]
  }

  async gc(options: {live: ReadonlySet<string>; dryRun: boolean}): Promise<string[]> {
    const file = hostsFilePath()
    const stale = blockConnections(file).filter((b) => !options.live.has(b.connection))
    if (!options.dryRun) for (const b of stale) removeBlock(file, b.connection)
    return stale.map((b) => `the names of connection ${b.connection} from ${file}`)
  }
}

export default (context: PluginContext) => new HostBackend(context)
