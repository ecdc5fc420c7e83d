import type Dockerode from 'dockerode'
import {
  type AgentRequest,
  type AgentRole,
  type ClusterDriver,
  type InjectedAgent,
  type NamespaceInfo,
  type NamespaceLink,
  type NamespaceReach,
  type Replica,
  type Workload,
  LABEL_CONNECTION,
  LABEL_MANAGED,
  LABEL_PAUSED,
  SubprocessError,
  UserError,
  connectionLabels,
  debugLog,
  demuxLogs,
  dockerStatusCode,
  isNotFound,
  swallow,
  sweep,
  waitUntilGone,
} from '@tp/sdk'
import {startRelay} from './relay.js'
import {namesUser, readContainerFile, resolveUser} from './users.js'
import {LABEL_COMPOSE_SERVICE, toWorkload} from './workload.js'

const trace = debugLog('tp:cluster-docker')

/** Networks Docker creates itself; they are not namespaces. */
const BUILTIN_NETWORKS = new Set(['bridge', 'host', 'none'])

export interface DockerDriverOptions {
  /**
   * Which user-defined networks count as namespaces (default: all). Tests use it to stay within
   * their own networks on a shared engine.
   */
  networkFilter?: (name: string) => boolean
  /** tp's version: the tag of the runtime image `ensureImages` makes (default: @tp/images' own). */
  tpVersion?: string
  progress?: (line: string) => void
}

/** What each role runs in tp's runtime image, and whether it gets the workload's volumes (the agent serves them). */
const ROLES: Record<AgentRole, {command: string[]; volumes: boolean}> = {
  agent: {command: ['node', '/opt/tp/agent.cjs'], volumes: true},
  guard: {command: ['node', '/opt/tp/agent.cjs', 'guard'], volumes: false},
}
/** Removes an agent's redirect rules when it could not (see restoreTraffic). */
const CLEANUP_COMMAND = ['node', '/opt/tp/agent.cjs', 'cleanup']

function list(items: string[]): string {
  return items.length === 0 ? '(none)' : items.join(', ')
}

/**
 * Docker's read-only paths, with /proc/sys split so that only /proc/sys/net stays writable: the
 * agent (and its guard and clean-up) may have to turn IPv4 forwarding on in the workload's network
 * namespace for the kernel path and off again afterwards. Net sysctls are per network namespace
 * and need NET_ADMIN there, so this reaches nothing beyond that namespace (Docker refuses
 * `--sysctl` with `--network container:`; `--privileged` would give everything). The rest of
 * /proc/sys (kernel, vm, fs, …) stays read-only as Docker makes it.
 */
export const AGENT_READONLY_PATHS = [
  '/proc/asound',
  '/proc/bus',
  '/proc/fs',
  '/proc/irq',
  '/proc/sysrq-trigger',
  ...['abi', 'crypto', 'debug', 'dev', 'fs', 'kernel', 'sunrpc', 'user', 'vm'].map((dir) => `/proc/sys/${dir}`),
]

/**
 * The Docker cluster driver: a user-defined network is a namespace, each running container on it
 * (except tp's own) a workload with one replica, its exposed ports the service ports.
 */
export class DockerDriver implements ClusterDriver {
  private readonly networkFilter: (name: string) => boolean
  private engineId?: Promise<string>
  /**
   * Each running container's main process, as its engine sees it (what a relay reads its sockets
   * by), and the namespace it was listed in: a full listing of that namespace drops the ones gone.
   */
  private readonly pids = new Map<string, {pid: number; namespace: string}>()

  constructor(
    private readonly docker: Dockerode,
    private readonly options: DockerDriverOptions = {},
  ) {
    this.networkFilter = options.networkFilter ?? (() => true)
  }

  /** The engine's own id (`docker info`): a handler engine with the same id may mount the workloads' volumes directly. */
  private engine(): Promise<string> {
    this.engineId ??= this.docker.info().then(
      (info: {ID?: string}) => info.ID ?? '',
      (error: unknown) => {
        this.engineId = undefined
        throw error
      },
    )
    return this.engineId
  }

  private async networkNames(): Promise<string[]> {
    const networks = await this.docker.listNetworks()
    return networks
      .filter((n) => !BUILTIN_NETWORKS.has(n.Name) && n.Driver !== 'host' && n.Driver !== 'null' && this.networkFilter(n.Name))
      .map((n) => n.Name)
      .sort()
  }

  /** Running containers that are workloads (not tp's own), with the networks they are on. */
  private async runningContainers(network?: string): Promise<Dockerode.ContainerInfo[]> {
    const containers = await this.docker.listContainers({filters: network ? {network: [network]} : {}})
    return containers.filter((c) => c.Labels?.[LABEL_MANAGED] !== 'true')
  }

  async namespaces(): Promise<NamespaceInfo[]> {
    const [names, containers] = await Promise.all([this.networkNames(), this.runningContainers()])
    return names.map((name) => ({
      name,
      workloads: containers.filter((c) => c.NetworkSettings?.Networks?.[name] !== undefined).length,
    }))
  }

  /**
   * A container joins the namespace's own network; this machine is its IPv4 gateway there (its own
   * address on the network), undefined when it has none.
   */
  async reach(namespace: string): Promise<NamespaceReach> {
    const network = await this.docker.getNetwork(namespace).inspect()
    const configs: Array<{Gateway?: string}> = network.IPAM?.Config ?? []
    const gateway = configs.map((c) => c.Gateway).find((g): g is string => Boolean(g) && !g!.includes(':'))
    return {containerNetwork: namespace, ...(gateway ? {hostAddress: gateway} : {})}
  }

  /**
   * A namespace on another machine: tp's relay starts there, on the namespace's network, and the
   * tunnel runs through its attach stream (the Engine API connection, over ssh or TLS).
   */
  async link(namespace: string, options: {connection: string; image: string; labels: Record<string, string>}): Promise<NamespaceLink> {
    await this.requireNamespace(namespace)
    const name = `tp-${options.connection}-relay`
    // a relay of an earlier daemon of this connection goes first (it would end by itself soon)
    await this.docker
      .getContainer(name)
      .remove({force: true})
      .catch(swallow(trace, `removing an earlier relay ${name}`))
    await waitUntilGone(() => this.docker.getContainer(name).inspect(), {timeoutMs: 5000})
    const relay = await startRelay(this.docker, {namespace, image: options.image, name, labels: options.labels})
    const {tunnel} = relay
    return {
      agentHost: relay.address,
      connect: (host, port) => tunnel.connect(host, port),
      listen: (port, onConnection) => tunnel.listen(port, onConnection),
      listeningPorts: async (replicas) => {
        // the relay reads each replica's sockets by its main process (the relay sees the engine's processes)
        const pids = replicas.flatMap((r) => {
          const pid = this.pids.get(r.id)?.pid
          return pid ? [[r.id, pid] as const] : []
        })
        const ports = await tunnel.listeningPorts(pids.map(([, pid]) => pid))
        return new Map(pids.flatMap(([id, pid]) => (ports.has(pid) ? [[id, ports.get(pid)!]] : [])))
      },
      closed: tunnel.closed,
      close: (why) => tunnel.close(why),
    }
  }

  /** tp's runtime image on this engine, built from the host's own files the first time. */
  async ensureImages(options: {progress?: (line: string) => void} = {}): Promise<{runtime: string}> {
    const {ensureRuntimeImage} = await import('@tp/images')
    const progress = options.progress ?? this.options.progress
    const image = await ensureRuntimeImage(this.docker, {version: this.options.tpVersion, progress})
    return {runtime: image.ref}
  }

  async resolveNamespace(requested?: string): Promise<string> {
    const namespaces = await this.namespaces()
    const describe = namespaces.map((n) => `${n.name} (${n.workloads} running)`)
    if (requested !== undefined) {
      if (namespaces.some((n) => n.name === requested)) return requested
      if (BUILTIN_NETWORKS.has(requested)) {
        throw new UserError(
          `namespace "${requested}" is one of Docker's built-in networks; tp works on user-defined networks (they give containers names)`,
          `pass --namespace with one of: ${list(describe)}`,
        )
      }
      throw new UserError(
        `namespace "${requested}" does not exist: there is no user-defined Docker network of that name`,
        `pass --namespace with one of: ${list(describe)}`,
      )
    }
    const withWorkloads = namespaces.filter((n) => n.workloads > 0)
    if (withWorkloads.length === 1) return withWorkloads[0].name
    if (withWorkloads.length === 0) {
      throw new UserError(
        'no user-defined Docker network has running containers, so there is no namespace to connect to',
        namespaces.length === 0
          ? 'start your stack (e.g. `docker-compose up -d`) and try again'
          : `start your stack, or pass --namespace with one of: ${list(describe)}`,
      )
    }
    throw new UserError(
      `several Docker networks have running containers: ${list(withWorkloads.map((n) => `${n.name} (${n.workloads} running)`))}`,
      'pass --namespace <network> to choose one (or configure a default namespace)',
    )
  }

  private async requireNamespace(namespace: string): Promise<void> {
    const names = await this.networkNames()
    if (!names.includes(namespace)) {
      throw new UserError(`namespace "${namespace}" does not exist: there is no user-defined Docker network of that name`, `use one of: ${list(names)}`)
    }
  }

  async workloads(namespace: string): Promise<Workload[]> {
    const [, containers] = await Promise.all([this.requireNamespace(namespace), this.runningContainers(namespace)])
    const listed = new Set(containers.map((c) => c.Id))
    for (const [id, known] of this.pids) if (known.namespace === namespace && !listed.has(id)) this.pids.delete(id)
    return this.inspectWorkloads(containers, namespace)
  }

  /** The workloads among listed containers (inspected: env, aliases, mounts), sorted by name. */
  private async inspectWorkloads(containers: Dockerode.ContainerInfo[], namespace: string): Promise<Workload[]> {
    const engine = this.engine()
    const inspected = await Promise.all(
      containers.map((c) =>
        this.docker
          .getContainer(c.Id)
          .inspect()
          .catch((error: unknown) => {
            // it stopped between list and inspect
            if (isNotFound(error)) return undefined
            throw error
          }),
      ),
    )
    const engineId = await engine
    const running = inspected.filter(
      (info): info is Dockerode.ContainerInspectInfo => info?.State.Running === true && info.NetworkSettings.Networks?.[namespace] !== undefined,
    )
    for (const [k, info] of inspected.entries()) if (!info?.State.Running) this.pids.delete(containers[k].Id)
    for (const info of running) if (info.State.Pid) this.pids.set(info.Id, {pid: info.State.Pid, namespace})
    const workloads = await Promise.all(
      running.map(async (info) =>
        namesUser(info.Config.User) ? toWorkload(info, namespace, engineId, await this.userOf(info)) : toWorkload(info, namespace, engineId),
      ),
    )
    return workloads.sort((a, b) => a.name.localeCompare(b.name) || a.replicas[0].name.localeCompare(b.replicas[0].name))
  }

  /** A container's user given by name, as numbers: read from its own /etc/passwd and /etc/group. */
  private async userOf(info: Dockerode.ContainerInspectInfo): Promise<{uid: number; gid: number} | undefined> {
    const container = this.docker.getContainer(info.Id)
    const [passwd, group] = await Promise.all([readContainerFile(container, '/etc/passwd'), readContainerFile(container, '/etc/group')])
    const user = resolveUser(info.Config.User, {passwd, group})
    if (!user && !/^(root|0)(:(root|0))?$/.test(info.Config.User))
      trace(`user ${info.Config.User} of ${info.Name} is not in its /etc/passwd or /etc/group: served as root`)
    return user
  }

  /**
   * A workload by name, alias or container name. A name (container or compose service) is found in
   * the list of containers, and only its container inspected; an alias needs every one inspected.
   */
  async workload(namespace: string, name: string): Promise<Workload> {
    const [, containers] = await Promise.all([this.requireNamespace(namespace), this.runningContainers(namespace)])
    const named = containers.filter((c) => c.Labels?.[LABEL_COMPOSE_SERVICE] === name || c.Names.some((n) => n.replace(/^\//, '') === name))
    const isNamed = (w: Workload) => w.name === name || w.replicas[0].name === name
    let byName = named.length > 0 ? (await this.inspectWorkloads(named, namespace)).filter(isNamed) : []
    let all = byName
    if (byName.length === 0) {
      all = await this.inspectWorkloads(containers, namespace)
      byName = all.filter(isNamed)
    }
    const matches = byName.length > 0 ? byName : all.filter((w) => w.aliases.includes(name))
    if (matches.length === 1) return matches[0]
    if (matches.length > 1) {
      throw new UserError(
        `"${name}" names ${matches.length} containers in namespace ${namespace}: ${list(matches.map((w) => w.replicas[0].name))}`,
        'name one container by its container name',
      )
    }
    const stopped = await this.stoppedContainer(namespace, name)
    if (stopped) {
      const container = (stopped.Names[0] ?? stopped.Id).replace(/^\//, '')
      throw new UserError(
        `${name} is stopped${container === name ? '' : ` (container ${container})`} in namespace ${namespace}: ${stopped.Status || stopped.State}`,
        `start it (\`docker start ${container}\`, or your stack's up command), then intercept again; \`tp list\` shows the running workloads`,
      )
    }
    throw new UserError(
      `no workload named "${name}" in namespace ${namespace}`,
      all.length === 0 ? `namespace ${namespace} has no running containers` : `workloads there: ${list(all.map((w) => w.name))}`,
    )
  }

  /** A container of the namespace that is not running, by container name, network alias or compose service. */
  private async stoppedContainer(namespace: string, name: string): Promise<Dockerode.ContainerInfo | undefined> {
    const containers = await this.docker.listContainers({all: true, filters: {network: [namespace]}}).catch(swallow(trace, 'listing stopped containers'))
    const candidates = (containers ?? []).filter((c) => c.State !== 'running' && c.Labels?.[LABEL_MANAGED] !== 'true')
    const byName = candidates.find((c) => c.Names.some((n) => n.replace(/^\//, '') === name) || c.Labels?.['com.docker.compose.service'] === name)
    if (byName) return byName
    // a stopped container keeps its network settings, aliases included
    for (const c of candidates) {
      const info = await this.docker
        .getContainer(c.Id)
        .inspect()
        .catch(swallow(trace, `inspecting ${c.Id}`))
      if (info?.NetworkSettings?.Networks?.[namespace]?.Aliases?.includes(name)) return c
    }
    return undefined
  }

  /**
   * Starts the traffic agent (or its guard) as a container in the replica's network namespace,
   * with its volumes. `exited` resolves with the container's exit code when it ends (undefined if
   * that cannot be known): the container removes itself, so afterwards nothing could say how it ended.
   */
  async injectAgent(spec: AgentRequest): Promise<InjectedAgent> {
    const role = ROLES[spec.role]
    const container = await this.docker.createContainer({
      name: spec.name,
      Image: spec.image,
      Cmd: role.command,
      Env: Object.entries(spec.env).map(([k, v]) => `${k}=${v}`),
      Labels: spec.labels,
      HostConfig: {
        NetworkMode: `container:${spec.replica.id}`,
        CapAdd: ['NET_ADMIN'],
        ReadonlyPaths: AGENT_READONLY_PATHS,
        VolumesFrom: role.volumes ? [spec.replica.id] : [],
        AutoRemove: true,
      },
    })
    const exited = container.wait({condition: 'next-exit'}).then(
      (r: {StatusCode?: number}) => r.StatusCode,
      () => undefined,
    )
    try {
      await container.start()
    } catch (error) {
      await container.remove({force: true}).catch(swallow(trace, `removing agent container ${spec.name} that did not start`))
      throw error
    }
    return {id: container.id, name: spec.name, exited}
  }

  /**
   * Stops the agent (SIGTERM: it removes its rule and drains), then makes sure it is gone. An agent
   * that had to be killed (or crashed) cannot have removed its rule: restoreTraffic does it.
   */
  async removeAgent(agent: string, options: {graceSeconds?: number} = {}): Promise<void> {
    const graceSeconds = options.graceSeconds ?? 10
    const container = this.docker.getContainer(agent)
    const info = await container.inspect().catch((error: unknown) => {
      if (isNotFound(error)) return undefined
      throw error
    })
    if (!info) return
    const gone = (error: unknown) => {
      const code = dockerStatusCode(error)
      // 404: no such container; 304: already stopped; 409: removal already in progress
      if (code === 404 || code === 304 || code === 409) return
      throw error
    }
    const exited = container.wait({condition: 'next-exit'}).then(
      (r: {StatusCode?: number}) => r.StatusCode,
      () => undefined,
    )
    const wasRunning = info.State.Running
    await container.stop({t: graceSeconds}).catch(gone)
    let timer: NodeJS.Timeout | undefined
    const status = wasRunning
      ? await Promise.race([exited, new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), 5000)))])
      : info.State.ExitCode
    clearTimeout(timer)
    await container.remove({force: true}).catch(gone)
    // AutoRemove may have been removing it already (409): wait until it is really gone
    await waitUntilGone(() => container.inspect(), {timeoutMs: 5000})
    const workload = /^container:(.+)$/.exec(info.HostConfig.NetworkMode ?? '')?.[1]
    if (status !== 0 && workload) {
      const interceptId = (info.Config.Env ?? []).find((e) => e.startsWith('TP_AGENT_INTERCEPT_ID='))?.slice('TP_AGENT_INTERCEPT_ID='.length)
      await this.restoreIn(workload, {image: info.Config.Image, interceptId, labels: info.Config.Labels ?? {}})
    }
  }

  /**
   * Why a replica's container is not the one an intercept was made for: it stopped, was removed,
   * or restarted since; undefined while it runs as it did (or the engine cannot say).
   */
  async whyNotRunning(_namespace: string, replica: Replica): Promise<string | undefined> {
    try {
      const info = await this.docker.getContainer(replica.id).inspect()
      if (info.State.Running) return replica.startedAt && info.State.StartedAt !== replica.startedAt ? `restarted (at ${info.State.StartedAt})` : undefined
      return info.State.Status === 'exited' ? `exited with code ${info.State.ExitCode}` : `is ${info.State.Status}`
    } catch (error) {
      return isNotFound(error) ? 'was removed' : undefined
    }
  }

  /**
   * Removes the redirect rules an agent left in a replica's namespace (it was killed before it
   * could): runs the runtime image's clean-up there. Without interceptId, every agent's rules.
   * Does nothing when the replica is not running.
   */
  async restoreTraffic(o: {namespace: string; replica: Replica; image: string; interceptId?: string; labels: Record<string, string>}): Promise<void> {
    await this.restoreIn(o.replica.id, o)
  }

  private async restoreIn(workloadContainerId: string, o: {image: string; interceptId?: string; labels?: Record<string, string>}): Promise<void> {
    const workload = await this.docker
      .getContainer(workloadContainerId)
      .inspect()
      .catch(swallow(trace, `inspecting workload ${workloadContainerId} before restoring its traffic`))
    if (!workload?.State.Running) return
    const container = await this.docker.createContainer({
      Image: o.image,
      Cmd: CLEANUP_COMMAND,
      Env: o.interceptId ? [`TP_AGENT_INTERCEPT_ID=${o.interceptId}`] : [],
      Labels: o.labels ?? {},
      HostConfig: {NetworkMode: `container:${workloadContainerId}`, CapAdd: ['NET_ADMIN'], ReadonlyPaths: AGENT_READONLY_PATHS},
    })
    try {
      await container.start()
      const {StatusCode} = (await container.wait()) as {StatusCode: number}
      if (StatusCode !== 0) {
        const logs = await container.logs({stdout: true, stderr: true}).catch(swallow(trace, 'reading the logs of the cleanup container'))
        throw new SubprocessError(CLEANUP_COMMAND.join(' '), StatusCode, (await demuxLogs(this.docker, logs ?? '')).slice(-2000))
      }
    } finally {
      await container.remove({force: true}).catch(swallow(trace, 'removing the cleanup container'))
    }
  }

  /**
   * `tp replace`: the mark first (a created container that never runs, labelled with the
   * workload's id), so that from then on a daemon that dies leaves something `sweep` and `gc`
   * find; then the workload's container is paused.
   */
  async pause(o: {namespace: string; replica: Replica; image: string; name: string; labels: Record<string, string>}): Promise<void> {
    await this.docker
      .createContainer({name: o.name, Image: o.image, Cmd: ['true'], Labels: {...o.labels, [LABEL_PAUSED]: o.replica.id}, HostConfig: {NetworkMode: 'none'}})
      .catch((error: unknown) => {
        // a mark of that name is there already (an earlier daemon's): it marks the same container
        if (dockerStatusCode(error) !== 409) throw error
      })
    const container = this.docker.getContainer(o.replica.id)
    const info = await container.inspect()
    if (!info.State.Paused) await container.pause()
  }

  /** Resumes a container `pause` paused (if it still is) and removes its mark. */
  async resume(o: {namespace: string; replica: Replica; name: string}): Promise<void> {
    await this.unpause(o.replica.id)
    await this.docker
      .getContainer(o.name)
      .remove({force: true})
      .catch((error: unknown) => {
        if (!isNotFound(error) && dockerStatusCode(error) !== 409) throw error
      })
  }

  private async unpause(id: string): Promise<boolean> {
    const container = this.docker.getContainer(id)
    const info = await container.inspect().catch((error: unknown) => {
      if (isNotFound(error)) return undefined
      throw error
    })
    if (!info?.State.Paused) return false
    await container.unpause()
    return true
  }

  /** Removes every object of this engine labelled with the connection (agents, and on a shared engine everything of it); resumes what its replace paused. */
  async sweep(connection: string): Promise<string[]> {
    const swept = await sweep(this.docker, {labels: connectionLabels(connection)})
    return [...swept.map((o) => `removed ${o.kind} ${o.name}${o.role ? ` (${o.role})` : ''}`)]
  }

  /** `tp gc`: every tp-labelled object of this engine whose connection is not live (tp's demo and fixture networks too). */
  async gc(options: {live: ReadonlySet<string>; dryRun: boolean}): Promise<string[]> {
    const swept = await sweep(this.docker, {
      labels: [`${LABEL_MANAGED}=true`],
      keep: (labels) => Boolean(labels[LABEL_CONNECTION] && options.live.has(labels[LABEL_CONNECTION])),
      networks: true,
      dryRun: options.dryRun,
    })
    return swept.map((o) => `${o.kind} ${o.name}${o.kind === 'container' ? ` (${o.role ?? 'tp'}, connection ${o.connection ?? '-'})` : ''}`)
  }
}
