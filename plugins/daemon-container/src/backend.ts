import {randomBytes} from 'node:crypto'
import {existsSync} from 'node:fs'
import {homedir} from 'node:os'
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
  LABEL_CACHE_DIR,
  LABEL_CONNECTION,
  LABEL_MANAGED,
  LABEL_ROLE,
  type PluginContext,
  type StaleConnection,
  type StrayDaemon,
  SubprocessError,
  UserError,
  clusterTarget,
  defaultEngineUrl,
  dockerEndpoint,
  dockerUnreachable,
  connectionLabels,
  debugLog,
  demuxLogs,
  dockerMessage,
  packageDir,
  sleep,
  swallow,
  sweep,
  tail,
  waitUntilGone,
  tpLabels,
} from '@tp/sdk'
import {daemonTunables} from '@tp/daemon/tunables'
import {CONTAINER_CAPABILITIES} from './capabilities.js'

const trace = debugLog('tp:plugin:daemon-container')
const API_PORT = 4700
const CONTROL_PORT = 4701
const READY_TIMEOUT_MS = 20_000
/** Where the daemon container finds the TLS files of a cluster on another machine (lent read-only). */
const TLS_DIR = '/run/tp/cluster-tls'
/** Where it finds the user's ssh agent. */
const SSH_AGENT_SOCKET = '/run/tp/ssh-agent.sock'
/** The addon that serves a linked namespace's names to the handler containers (see names-addon.ts). */
const NAMES_ADDON = 'container-names'

export function daemonContainerName(connection: string): string {
  return `tp-${connection}-cn`
}

/** Runs each connection's daemon as container `tp-<connection>-cn` on the namespace network. */
export class ContainerBackend implements DaemonBackend {
  private readonly docker = new Docker()
  private readonly store: ConnectionStore

  constructor(private readonly context: PluginContext) {
    this.store = new ConnectionStore(join(context.cacheDir, 'connections'))
  }

  placement(record: Pick<ConnectionRecord, 'name' | 'details'>): Placement {
    const container = daemonContainerName(record.name)
    const gateway = record.details?.gateway
    if (record.details?.linked === '1') {
      // a namespace on another machine: the daemon links to it and serves its names in its own
      // network namespace, which the handler containers join; agents reach nothing here but the daemon
      return {
        backend: 'container',
        capabilities: CONTAINER_CAPABILITIES,
        containerArgs: ['--network', `container:${container}`],
        handler: {daemonConnectsTo: '127.0.0.1'},
        // a process on this machine listens on all its addresses: the gateway of the daemon's network is one
        process: gateway ? {daemonConnectsTo: gateway} : undefined,
        // the volumes' forwards listen where the telemount plugin (on this machine's network) reaches them
        daemon: {agentHost: '127.0.0.1', listenHost: '0.0.0.0'},
        sweepLabels: connectionLabels(record.name),
        where: `container ${container}`,
      }
    }
    return {
      backend: 'container',
      capabilities: CONTAINER_CAPABILITIES,
      containerArgs: ['--network', `container:${container}`],
      // the handler listens in the daemon's namespace: on its loopback, and on its address for the agents
      handler: {daemonConnectsTo: '127.0.0.1', agentConnectsTo: container},
      // a process on this machine listens on all its addresses: the namespace's gateway is one
      process: gateway ? {daemonConnectsTo: gateway, agentConnectsTo: gateway} : undefined,
      // Docker's embedded DNS gives the container's own name its address on the namespace network
      daemon: {agentHost: container, listenHost: '0.0.0.0'},
      sweepLabels: connectionLabels(record.name),
      where: `container ${container}`,
    }
  }

  async find(name: string, options: {onStale?: (stale: StaleConnection) => void} = {}): Promise<ConnectionRecord | undefined> {
    const record = await this.store.get(name)
    if (!record || record.backend !== 'container') return undefined
    const container = await this.docker
      .getContainer(daemonContainerName(name))
      .inspect()
      .catch(swallow(trace, `inspecting ${daemonContainerName(name)} (gone)`))
    if (container?.State?.Running && container.Id === record.containerId) return record
    await this.store.remove(name)
    // The daemon is gone (killed, engine restarted): remove what it left. Unless a daemon of the
    // same name runs (started from another cache directory): then those objects are its own.
    const cleanedUp = container?.State?.Running ? [`left ${daemonContainerName(name)} alone: it is another daemon of that name`] : await this.sweepReport(name)
    options.onStale?.({record, cleanedUp})
    return undefined
  }

  async strays(known: ReadonlySet<string>): Promise<StrayDaemon[]> {
    const daemons = await this.docker.listContainers({filters: {label: [`${LABEL_MANAGED}=true`, `${LABEL_ROLE}=daemon`], status: ['running']}})
    const strays: StrayDaemon[] = []
    for (const d of daemons) {
      const connection = d.Labels?.[LABEL_CONNECTION]
      if (!connection || known.has(connection) || !CONNECTION_NAME_PATTERN.test(connection)) continue
      // ours: started from this cache directory, or (a daemon from before that label) one whose record here is damaged
      const ours = d.Labels[LABEL_CACHE_DIR] ? d.Labels[LABEL_CACHE_DIR] === this.context.cacheDir : (await this.store.read(connection)).damaged !== undefined
      if (!ours) continue
      const name = (d.Names[0] ?? d.Id).replace(/^\//, '')
      strays.push({
        connection,
        backend: 'container',
        where: `container ${name}`,
        namespace: Object.keys(d.NetworkSettings?.Networks ?? {})[0],
        stop: async () => {
          // no usable record, so no token for its API: stopping the container is its SIGTERM
          const container = this.docker.getContainer(d.Id)
          await container.stop({t: 15}).catch(swallow(trace, `stopping ${name} (already stopped)`))
          await container.remove({force: true}).catch(swallow(trace, `removing ${name} (already removed: AutoRemove)`))
          await this.store.remove(connection)
          await this.sweep(connection)
        },
      })
    }
    return strays
  }

  async check(): Promise<void> {
    await this.docker.ping().catch((error: unknown) => {
      throw dockerUnreachable(error)
    })
    this.socketPath()
  }

  /** The handler engine's unix socket, which the daemon's container mounts. */
  private socketPath(): string {
    const {socketPath, where} = dockerEndpoint()
    if (!socketPath) {
      throw new UserError(
        `the container daemon needs the Docker engine's unix socket, but ${where} is not one`,
        'point DOCKER_HOST at a unix socket (unix:///var/run/docker.sock)',
      )
    }
    return socketPath
  }

  async ensure(options: ConnectOptions): Promise<ConnectionRecord> {
    const socketPath = this.socketPath()
    const linked = options.reach.linked === true
    const {namespace} = options
    // linked: the daemon runs on this engine's default bridge, whose gateway is this machine
    const network = linked ? 'bridge' : options.reach.containerNetwork
    const gateway = linked ? await this.bridgeGateway() : options.reach.hostAddress
    const lent = linked ? this.lentToDaemon(options.cluster) : {binds: [], env: {}}
    // loaded only here: most commands find a running daemon and never start one (~50 ms of start-up)
    const {addonModulePath, driverModulePath, ensureDaemonImage} = await import('@tp/images')
    // the daemon runs the connection's cluster driver (and, linked, the names addon): their modules are in the daemon's image
    const image = await ensureDaemonImage(this.docker, {
      version: this.context.tpVersion,
      driver: {name: options.cluster.driver, module: options.cluster.module},
      addons: linked ? [{name: NAMES_ADDON, module: join(packageDir('@tp/plugin-daemon-container', import.meta.url), 'dist/module/names-addon.mjs')}] : [],
      progress: (line) => this.context.log.info(line),
    })
    // the engine's socket is the daemon's own /var/run/docker.sock: the cluster's engine, when it
    // is this one, is reached there
    const clusterEngine = options.cluster.engine === `unix://${socketPath}` ? 'unix:///var/run/docker.sock' : options.cluster.engine
    const name = daemonContainerName(options.name)
    // a lingering container of the same name (crash, engine restart) is replaced, not an error
    await this.removeContainer(name)
    const token = randomBytes(24).toString('hex')
    const record: ConnectionRecord = {
      name: options.name,
      backend: 'container',
      daemonId: options.name,
      namespace,
      cluster: clusterTarget(options.cluster),
      handlerEngine: defaultEngineUrl(),
      api: {url: '', token},
      ...(gateway || linked ? {details: {...(gateway ? {gateway} : {}), ...(linked ? {linked: '1'} : {})}} : {}),
      createdAt: new Date().toISOString(),
    }
    const container = await this.docker.createContainer({
      name,
      Image: image.ref,
      Cmd: ['node', '/opt/tp/daemon.cjs'],
      Labels: {...tpLabels({connection: options.name, role: 'daemon'}), [LABEL_CACHE_DIR]: this.context.cacheDir},
      Env: Object.entries({
        // the driver's own settings first: tp's own variables win
        ...options.cluster.env,
        TP_DAEMON_ID: record.daemonId,
        TP_CONNECTION: options.name,
        TP_NAMESPACE: namespace,
        TP_DAEMON_TOKEN: token,
        TP_API_PORT: String(API_PORT),
        TP_CONTROL_PORT: String(CONTROL_PORT),
        TP_RUNTIME_IMAGE: options.runtimeImage,
        TP_CLUSTER_DRIVER: options.cluster.driver,
        TP_CLUSTER_ENGINE: clusterEngine,
        TP_CLUSTER_DRIVER_MODULE: driverModulePath(options.cluster.driver),
        ...(linked ? {TP_CLUSTER_LINKED: '1', TP_DAEMON_ADDONS: JSON.stringify([addonModulePath(NAMES_ADDON)])} : {}),
        ...lent.env,
        TP_VERSION: this.context.tpVersion,
        ...daemonTunables(),
        TP_PLACEMENT: JSON.stringify(this.placement(record)),
      }).map(([k, v]) => `${k}=${v}`),
      ExposedPorts: {[`${API_PORT}/tcp`]: {}},
      HostConfig: {
        NetworkMode: network,
        PortBindings: {[`${API_PORT}/tcp`]: [{HostIp: '127.0.0.1', HostPort: ''}]},
        Binds: [`${socketPath}:/var/run/docker.sock`, ...lent.binds],
        AutoRemove: true,
      },
    })
    try {
      await container.start()
      const info = await container.inspect()
      const hostPort = info.NetworkSettings.Ports?.[`${API_PORT}/tcp`]?.[0]?.HostPort
      if (!hostPort) throw new SubprocessError(`docker run ${name}`, undefined, 'the daemon API port was not published')
      record.api.url = `http://127.0.0.1:${hostPort}`
      record.containerId = info.Id
      await this.waitUntilAnswering(record, container)
      await this.store.save(record)
      return record
    } catch (error) {
      await this.removeContainer(name)
      throw error
    }
  }

  /** The gateway of this engine's default bridge: this machine, as a container there reaches it. */
  private async bridgeGateway(): Promise<string | undefined> {
    const bridge = await this.docker.getNetwork('bridge').inspect()
    const configs: Array<{Gateway?: string}> = bridge.IPAM?.Config ?? []
    return configs.map((c) => c.Gateway).find((g): g is string => Boolean(g) && !g!.includes(':'))
  }

  /**
   * What a daemon in a container needs of this machine to reach a cluster on another one, lent
   * read-only: the TLS files of its engine; for ssh://, the user's ~/.ssh (config, keys,
   * known_hosts) and ssh agent, which the system ssh in tp's image uses as the ssh here would.
   */
  private lentToDaemon(cluster: ConnectOptions['cluster']): {binds: string[]; env: Record<string, string>} {
    const binds: string[] = []
    const env: Record<string, string> = {}
    if (cluster.tls) {
      const files = {ca: cluster.tls.ca, cert: cluster.tls.cert, key: cluster.tls.key}
      for (const [which, path] of Object.entries(files)) binds.push(`${path}:${TLS_DIR}/${which}.pem:ro`)
      env.TP_CLUSTER_TLS = JSON.stringify({...cluster.tls, ca: `${TLS_DIR}/ca.pem`, cert: `${TLS_DIR}/cert.pem`, key: `${TLS_DIR}/key.pem`})
    }
    if (cluster.engine.startsWith('ssh://')) {
      const sshDir = join(homedir(), '.ssh')
      if (existsSync(sshDir)) binds.push(`${sshDir}:/root/.ssh:ro`)
      const agent = process.env.SSH_AUTH_SOCK
      if (agent && existsSync(agent)) {
        binds.push(`${agent}:${SSH_AGENT_SOCKET}`)
        env.SSH_AUTH_SOCK = SSH_AGENT_SOCKET
      }
      if (binds.length === 0) {
        throw new UserError(
          `a daemon in a container reaches ${cluster.engine} with your ssh keys, but there is no ${sshDir} and no ssh agent (SSH_AUTH_SOCK)`,
          'put the key for that host in ~/.ssh (or start ssh-agent and `ssh-add` it), or connect with a daemon on this host: `tp connect` without --docker',
        )
      }
    }
    return {binds, env}
  }

  private async waitUntilAnswering(record: ConnectionRecord, container: Docker.Container): Promise<void> {
    const client = new DaemonClient(record.api, 2000)
    const deadline = Date.now() + READY_TIMEOUT_MS
    let lastError: unknown
    while (Date.now() < deadline) {
      try {
        await client.status()
        return
      } catch (error) {
        lastError = error
      }
      const state = await container.inspect().catch(swallow(trace, 'inspecting the starting daemon'))
      if (!state?.State?.Running) break
      await sleep(100)
    }
    const logs = await container.logs({stdout: true, stderr: true, tail: 30}).catch((error: unknown) => Buffer.from(`(no logs: ${dockerMessage(error)})`))
    throw new SubprocessError(
      `the tp daemon (${daemonContainerName(record.name)})`,
      undefined,
      tail(await demuxLogs(this.docker, logs)),
      `the tp daemon did not start: ${(lastError as Error)?.message ?? 'its container exited'}`,
    )
  }

  async quit(record: ConnectionRecord): Promise<void> {
    await new DaemonClient(record.api, 15_000).quit().catch(swallow(trace, `asking the daemon of ${record.name} to quit (gone: swept below)`))
    const container = this.docker.getContainer(daemonContainerName(record.name))
    // the daemon exits by itself once its intercepts are gone (their tp commands get up to 15 s to
    // stop their handlers); AutoRemove removes the container
    await waitUntilGone(() => container.inspect(), {timeoutMs: 30_000, pollMs: 200})
    await this.store.remove(record.name)
    await this.sweep(record.name)
  }

  /** Removes every object labelled with this connection (daemon, agents, handler containers, volumes). */
  async sweep(connection: string): Promise<void> {
    await this.sweepReport(connection)
  }

  /** `sweep`, saying what it removed. */
  private async sweepReport(connection: string): Promise<string[]> {
    const swept = await sweep(this.docker, {labels: this.placement({name: connection}).sweepLabels})
    return swept.map((o) => `removed ${o.kind} ${o.name}${o.role ? ` (${o.role})` : ''}`)
  }

  private async removeContainer(name: string): Promise<void> {
    const container = this.docker.getContainer(name)
    await container.remove({force: true}).catch(swallow(trace, `removing ${name} (not there)`))
    // with AutoRemove the engine may still be removing it; wait until the name is free
    await waitUntilGone(() => container.inspect(), {timeoutMs: 5000})
  }
}

export default (context: PluginContext) => new ContainerBackend(context)
