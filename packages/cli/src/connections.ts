import {join} from 'node:path'
import {
  CONNECTION_NAME_PATTERN,
  type ClusterDriver,
  type ClusterTarget,
  type ConnectionRecord,
  ConnectionStore,
  type DaemonBackend,
  type DamagedRecord,
  DamagedRecordError,
  DaemonClient,
  type Placement,
  type PlacementCapabilities,
  type PluginContext,
  type StaleConnection,
  type StrayDaemon,
  UserError,
  defaultEngineUrl,
  resolveEngine,
  reuseRunning,
} from '@tp/sdk'
import type {Registries} from './extensions.js'

/** The bundled backend that runs the daemon in a container; chosen by --docker. */
export const CONTAINER_BACKEND = 'container'
/** The backend that runs the daemon on this host: the default when it is installed. */
export const HOST_BACKEND = 'host'
/** The cluster driver tp uses unless told otherwise ($TP_CLUSTER_DRIVER). */
export const DEFAULT_DRIVER = 'docker'

/**
 * The cluster a connection made now works on: $TP_CLUSTER_DRIVER (else docker), on the engine
 * `--cluster` names (a Docker context or an engine URL), else $TP_CLUSTER, else the handler's own
 * engine (DOCKER_HOST, else the local socket).
 */
export function defaultCluster(given?: string, env: NodeJS.ProcessEnv = process.env): ClusterTarget {
  const {url, tls, context} = resolveEngine(given || env.TP_CLUSTER || undefined, env, {contexts: false})
  return {driver: env.TP_CLUSTER_DRIVER || DEFAULT_DRIVER, engine: url, ...(tls ? {tls} : {}), ...(context ? {context} : {})}
}

/** Whether a cluster is on another engine than the handlers': then nothing here routes to it, and the driver links to it. */
export function isLinked(cluster: ClusterTarget, env: NodeJS.ProcessEnv = process.env): boolean {
  return cluster.engine !== defaultEngineUrl(env)
}

/** The cluster of a record (a record from before cluster drivers: the Docker driver on the engine it was made on). */
export function clusterOf(record: Pick<ConnectionRecord, 'cluster'>): ClusterTarget {
  return record.cluster ?? {driver: DEFAULT_DRIVER, engine: defaultEngineUrl()}
}

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
  private readonly drivers = new Map<string, Promise<ClusterDriver>>()

  constructor(
    private readonly registries: Registries,
    private readonly context: PluginContext,
  ) {
    this.store = new ConnectionStore(join(context.cacheDir, 'connections'))
  }

  backend(name: string): Promise<DaemonBackend> {
    let backend = this.loaded.get(name)
    if (!backend) {
      backend = this.registries['daemon-backends'].load(name, this.context)
      this.loaded.set(name, backend)
    }
    return backend
  }

  /** The driver of a cluster (loaded once per driver and engine). */
  driver(cluster: ClusterTarget): Promise<ClusterDriver> {
    const key = `${cluster.driver} ${cluster.engine}`
    let driver = this.drivers.get(key)
    if (!driver) {
      driver = this.registries['cluster-drivers'].load(cluster.driver, {...this.context, cluster})
      this.drivers.set(key, driver)
      driver.catch(() => this.drivers.delete(key))
    }
    return driver
  }

  /**
   * The driver of a cluster none was named for: the first installed driver other than the default
   * that claims the engine (`ClusterDriver.claims`: a swarm manager's is the swarm driver's), else
   * the default.
   */
  private async detectDriver(cluster: ClusterTarget): Promise<ClusterTarget> {
    for (const {descriptor} of this.registries['cluster-drivers'].list()) {
      if (descriptor.name === cluster.driver) continue
      const candidate = {...cluster, driver: descriptor.name}
      const driver = await this.driver(candidate).catch(() => undefined)
      if (driver?.claims && (await driver.claims().catch(() => false))) return candidate
    }
    return cluster
  }

  /** Ends a live connection: its backend stops the daemon, then the driver removes what the connection left on the cluster. */
  async quit(connection: Pick<LiveConnection, 'record' | 'backend'>): Promise<void> {
    await connection.backend.quit(connection.record)
    await this.sweepCluster(connection.record)
  }

  /** What a connection left on its cluster, removed by the cluster's driver (one line each). */
  private async sweepCluster(record: ConnectionRecord): Promise<string[]> {
    const cluster = clusterOf(record)
    if (!this.registries['cluster-drivers'].has(cluster.driver)) return []
    return (await this.driver(cluster)).sweep(record.name)
  }

  /** `--docker` forces the container daemon; otherwise $TP_DAEMON_BACKEND, the host backend if one is installed, else the container one. */
  backendName(docker: boolean): string {
    if (docker) return CONTAINER_BACKEND
    if (process.env.TP_DAEMON_BACKEND) return process.env.TP_DAEMON_BACKEND
    return this.registries['daemon-backends'].has(HOST_BACKEND) ? HOST_BACKEND : CONTAINER_BACKEND
  }

  /** What a connection made by that backend will offer, before it exists (from the backend's descriptor). */
  capabilitiesOf(backendName: string): PlacementCapabilities {
    return this.registries['daemon-backends'].get(backendName).descriptor.capabilities
  }

  private liveConnection(record: ConnectionRecord, backend: DaemonBackend): LiveConnection {
    return {record, backend, client: new DaemonClient(record.api), placement: backend.placement(record)}
  }

  /**
   * What the connection records say, checked: the connections whose daemons run, those whose
   * daemons were found dead just now (their backends removed the records and cleaned up), the
   * records that cannot be used, and (with `strays`) daemons that run without a usable record.
   */
  async survey(options: {strays?: boolean} = {}): Promise<ConnectionSurvey> {
    const survey: ConnectionSurvey = {live: [], died: [], damaged: [], strays: []}
    const {records, damaged} = await this.store.scan()
    survey.damaged.push(...damaged)
    for (const record of records) {
      if (!this.registries['daemon-backends'].has(record.backend)) {
        survey.damaged.push({
          name: record.name,
          file: this.store.file(record.name),
          reason: `it was made by daemon backend "${record.backend}", which is not installed`,
        })
        continue
      }
      const backend = await this.backend(record.backend)
      const died: StaleConnection[] = []
      const found = await backend.find(record.name, {onStale: (stale) => died.push(stale)})
      if (found) survey.live.push(this.liveConnection(found, backend))
      for (const stale of died) {
        const swept = await this.sweepCluster(stale.record).catch((error: Error) => [`not the cluster's part (${error.message})`])
        survey.died.push({...stale, cleanedUp: [...stale.cleanedUp, ...swept]})
      }
    }
    if (options.strays) {
      const known = new Set(survey.live.map((c) => c.record.name))
      for (const {descriptor} of this.registries['daemon-backends'].list()) {
        const backend = await this.backend(descriptor.name)
        if (backend.strays) survey.strays.push(...(await backend.strays(known)))
      }
    }
    return survey
  }

  /** Every connection whose daemon is alive; a daemon found dead is cleaned up by its backend and said so on stderr. */
  async live(): Promise<LiveConnection[]> {
    const survey = await this.survey()
    this.warn(survey)
    return survey.live
  }

  async connect(options: {name: string; namespace?: string; docker: boolean; cluster?: string; clusterDriver?: string}): Promise<LiveConnection> {
    if (!CONNECTION_NAME_PATTERN.test(options.name)) {
      throw new UserError(`"${options.name}" is not a usable connection name`, 'use lower-case letters, digits and dashes, at most 31 characters (--name)')
    }
    const existing = await this.store.get(options.name)
    const backendName = existing && !options.docker ? existing.backend : this.backendName(options.docker)
    if (existing && existing.backend !== backendName && (await (await this.backend(existing.backend)).find(existing.name))) {
      // a second daemon under the same name would orphan the first one's record
      throw new UserError(
        `connection "${options.name}" already exists with a ${existing.backend} daemon (namespace ${existing.namespace}), not a ${backendName} one`,
        `use it as it is (\`--use ${options.name}\`), connect another one (\`tp connect${options.docker ? ' --docker' : ''} --name <other>\`), or \`tp quit --name ${options.name}\` first`,
      )
    }
    const backend = await this.backend(backendName)
    // what this backend needs of this machine, before anything is made
    await backend.check?.()
    let cluster = defaultCluster(options.cluster)
    const running = await backend.find(options.name)
    if (running) {
      if (options.cluster !== undefined && clusterOf(running).engine !== cluster.engine) {
        throw new UserError(
          `connection "${options.name}" is to the ${describeCluster(running)}, not to ${cluster.engine}`,
          `run \`tp quit --name ${options.name}\` first, or connect a second one with \`tp connect --cluster ${options.cluster} --name <other>\``,
        )
      }
      return this.liveConnection(reuseRunning(running, options, backendName === CONTAINER_BACKEND ? 'tp connect --docker' : 'tp connect'), backend)
    }
    // which driver: the one named (--cluster-driver, $TP_CLUSTER_DRIVER), else the one that claims the engine
    if (options.clusterDriver) cluster = {...cluster, driver: options.clusterDriver}
    else if (!process.env.TP_CLUSTER_DRIVER) cluster = await this.detectDriver(cluster)
    // the cluster: its driver resolves the namespace, says where its names are reached (or links
    // to it, on another machine), and has tp's runtime image where agents run
    const driver = await this.driver(cluster)
    const namespace = await driver.resolveNamespace(options.namespace ?? process.env.TP_NAMESPACE)
    const linked = isLinked(cluster)
    if (linked && !driver.link) {
      throw new UserError(
        `cluster driver ${cluster.driver} cannot reach a cluster on another engine (${cluster.engine}) than your handlers' (${defaultEngineUrl()})`,
        'use a driver that can, or a cluster on the engine DOCKER_HOST names',
      )
    }
    const [reach, images] = await Promise.all([
      linked ? ({containerNetwork: 'host', linked: true} as const) : driver.reach(namespace),
      driver.ensureImages({progress: (line) => this.context.log.info(line)}),
    ])
    const {module, env: settings = []} = this.registries['cluster-drivers'].get(cluster.driver).descriptor
    const env = Object.fromEntries(settings.flatMap((name) => (process.env[name] ? [[name, process.env[name]]] : [])))
    const record = await backend.ensure({name: options.name, namespace, cluster: {...cluster, module, env}, reach, runtimeImage: images.runtime})
    return this.liveConnection(record, backend)
  }

  /**
   * The live connection a command works on, or undefined when there is none and the command may
   * connect implicitly. `--use <name>` names a connection that must exist: it never creates one
   * (a typo would otherwise start a daemon); `--namespace` must agree with the connection chosen.
   */
  async choose(options: {use?: string; namespace?: string}): Promise<LiveConnection | undefined> {
    const survey = await this.survey()
    // about the connection --use names, the error says it all
    this.warn(survey, options.use)
    const {live} = survey
    let chosen: LiveConnection | undefined
    if (options.use) {
      chosen = live.find((c) => c.record.name === options.use)
      if (!chosen) throw this.missing(options.use, survey)
    } else if (live.length === 1) chosen = live[0]
    else if (live.length > 1) {
      throw new UserError(
        `there are ${live.length} connections (${describeConnections(live)}) and it is not clear which one to use`,
        'choose one with --use <name>',
      )
    }
    if (chosen && options.namespace && options.namespace !== chosen.record.namespace) {
      throw new UserError(
        `--namespace ${options.namespace} disagrees with connection "${chosen.record.name}", which points to namespace ${chosen.record.namespace}`,
        `leave --namespace out to work in ${chosen.record.namespace}, or connect to ${options.namespace} too (\`tp connect --name <other> --namespace ${options.namespace}\`) and pass --use <other>`,
      )
    }
    return chosen
  }

  /** What a command that goes on anyway says about dead daemons (cleaned up now) and records it cannot use. */
  private warn(survey: ConnectionSurvey, except?: string): void {
    for (const stale of survey.died.filter((s) => s.record.name !== except)) this.context.log.warn(describeDeath(stale))
    for (const d of survey.damaged.filter((d) => d.name !== except))
      this.context.log.warn(
        `the record of connection ${d.name} is damaged (${d.file}: ${d.reason}); \`tp status\` shows it, \`tp quit --name ${d.name}\` removes it`,
      )
  }

  /** Why `--use <name>` names no live connection, and what to do. */
  private missing(name: string, survey: ConnectionSurvey): UserError {
    const damaged = survey.damaged.find((d) => d.name === name)
    if (damaged) return new DamagedRecordError(damaged)
    const died = survey.died.find((d) => d.record.name === name)
    const others = survey.live.length > 0 ? `; connections: ${describeConnections(survey.live)}` : '; there are no connections'
    const connect = `\`tp connect --name ${name}\` (or \`tp connect --docker --name ${name}\`) makes it`
    if (died)
      return new UserError(
        `the daemon of connection "${name}" had died (its clean-up is done), so there is no connection named "${name}" any more`,
        `${connect}${others}`,
      )
    return new UserError(`there is no connection named "${name}" (--use never creates one)`, `${connect}${others}`)
  }

  /**
   * The connection a command works on: `--use <name>`, else the only live one; with `implicit`,
   * connects (as `default`) when there is none — the way `tp intercept` works without `tp connect`.
   */
  async current(options: {use?: string; implicit?: {docker: boolean; namespace?: string; cluster?: string}}): Promise<LiveConnection> {
    const chosen = await this.choose({use: options.use, namespace: options.implicit?.namespace})
    if (chosen) return chosen
    if (options.implicit) return this.connect({name: 'default', ...options.implicit})
    throw new UserError('tp is not connected', 'connect with `tp connect --docker` (or run `tp intercept`, which connects by itself)')
  }
}

export interface ConnectionSurvey {
  live: LiveConnection[]
  /** Connections whose daemon was found dead by this survey: their records are gone, what they left is cleaned up. */
  died: StaleConnection[]
  /** Records that exist but cannot be used (not JSON, cut short, foreign, of a backend not installed). */
  damaged: DamagedRecord[]
  /** Daemons that run without a usable record (only with `strays`). */
  strays: StrayDaemon[]
}

function describeConnections(live: LiveConnection[]): string {
  return live.map((c) => `${c.record.name} → ${c.record.namespace}`).join(', ')
}

/** One line about a connection whose daemon died: what it was and what was cleaned up. */
/** A connection's cluster in words: `docker cluster at unix:///var/run/docker.sock`. */
export function describeCluster(record: Pick<ConnectionRecord, 'cluster'>): string {
  const {driver, engine, context} = clusterOf(record)
  return `${driver} cluster at ${engine}${context ? ` (context ${context})` : ''}`
}

export function describeDeath({record, cleanedUp}: StaleConnection): string {
  const what = `the ${record.backend} daemon of connection ${record.name} (namespace ${record.namespace}${record.pid ? `, process ${record.pid}` : ''}) had died`
  return `${what}; cleaned up: ${cleanedUp.length > 0 ? cleanedUp.join(', ') : 'nothing was left'}, and its record removed`
}
