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
  LABEL_ROLE,
  UserError,
  connectionLabels,
  debugLog,
  isNotFound,
  sleep,
  swallow,
  sweep,
  waitUntilGone,
} from '@tp/sdk'
import {AGENT_READONLY_PATHS, startRelay} from '@tp/plugin-cluster-docker'
import {JANITOR_SOURCE, type JanitorSpec, LAUNCHER_SOCKET, LAUNCHER_SOURCE, type LaunchSpec} from './launcher.js'
import {
  type ImageFacts,
  LABEL_STACK,
  type NamespaceNetwork,
  type ServiceInfo,
  type TaskFile,
  type TaskInfo,
  imageWithoutDigest,
  isRunning,
  taskFiles,
  toWorkload,
} from './service.js'

const trace = debugLog('tp:cluster-swarm')

/** A node label naming where the node's engine socket is, when not at /var/run/docker.sock. */
export const LABEL_NODE_SOCKET = 'tp.docker-socket'

/** What each role runs in tp's runtime image, and whether it gets the workload's volumes. */
const ROLES: Record<AgentRole | 'cleanup', {command: string[]; volumes: boolean}> = {
  agent: {command: ['node', '/opt/tp/agent.cjs'], volumes: true},
  guard: {command: ['node', '/opt/tp/agent.cjs', 'guard'], volumes: false},
  cleanup: {command: ['node', '/opt/tp/agent.cjs', 'cleanup'], volumes: false},
}

export interface SwarmDriverOptions {
  /** tp's version: the tag of the runtime image (default: @tp/images' own). */
  tpVersion?: string
  /** `host[:port]` of the registry tp pushes its runtime image to, for the nodes to pull. */
  registry?: string
  /** Which namespaces count (tests keep to their own stacks). */
  namespaceFilter?: (name: string) => boolean
  progress?: (line: string) => void
  /** How often an agent's launcher is looked at (default 1 s). */
  pollMs?: number
}

interface NetworkInfo {
  Id: string
  Name: string
  Driver?: string
  Scope?: string
  Attachable?: boolean
  Ingress?: boolean
  Labels?: Record<string, string>
}

/** Why tp cannot join a namespace's overlay network, and what to do: a network's `attachable` cannot change in place. */
export function notAttachable(ns: NamespaceNetwork, namespace: string): UserError {
  const what = `the overlay network ${ns.networkName} of namespace ${namespace} is not attachable, so tp's relay cannot join it`
  if (ns.stack) {
    const key = ns.networkName.startsWith(`${ns.stack}_`) ? ns.networkName.slice(ns.stack.length + 1) : ns.networkName
    return new UserError(
      what,
      `make it attachable in the stack file (\`networks: {${key}: {attachable: true}}\`); a network cannot change that in place, so \`docker stack rm ${ns.stack}\`, then \`docker stack deploy\` it again`,
    )
  }
  return new UserError(
    what,
    `create it attachable: remove its services and \`docker network rm ${ns.networkName}\`, then \`docker network create --driver overlay --attachable ${ns.networkName}\` and create the services again`,
  )
}

function list(items: string[]): string {
  return items.length === 0 ? '(none)' : items.join(', ')
}

/**
 * The Swarm cluster driver, on a manager's engine: a stack (`com.docker.stack.namespace`) or an
 * overlay network is a namespace, each service on it a workload, each running task a replica on
 * its node. What runs beside a task is placed through the manager alone: a one-task service on the
 * task's node (the launcher) starts it in the task's network namespace with the node's engine.
 */
export class SwarmDriver implements ClusterDriver {
  /** A task that goes is replaced by the service's orchestrator (on another node, if its own was drained). */
  readonly replacesReplicas = true
  private readonly filter: (name: string) => boolean
  private readonly pollMs: number

  constructor(
    private readonly docker: Dockerode,
    private readonly options: SwarmDriverOptions = {},
  ) {
    this.filter = options.namespaceFilter ?? (() => true)
    this.pollMs = options.pollMs ?? 1000
  }

  private async swarmInfo(): Promise<{managers: number; nodes: number}> {
    const info = (await this.docker.info()) as {Swarm?: {LocalNodeState?: string; ControlAvailable?: boolean; Nodes?: number; Managers?: number}}
    if (info.Swarm?.LocalNodeState !== 'active' || !info.Swarm.ControlAvailable) {
      throw new UserError(
        "the cluster's engine is not a swarm manager, so the swarm driver cannot work on it",
        'connect to a manager of the swarm (--cluster <context|URL>), or use the docker driver (TP_CLUSTER_DRIVER=docker)',
      )
    }
    return {managers: info.Swarm.Managers ?? 1, nodes: info.Swarm.Nodes ?? 1}
  }

  /** The engine is a swarm manager's. */
  async claims(): Promise<boolean> {
    const info = (await this.docker.info()) as {Swarm?: {LocalNodeState?: string; ControlAvailable?: boolean}}
    return info.Swarm?.LocalNodeState === 'active' && info.Swarm.ControlAvailable === true
  }

  /** The namespaces: every stack, and every overlay network that belongs to no stack. */
  private async namespaceNetworks(): Promise<{namespaces: NamespaceNetwork[]; services: ServiceInfo[]}> {
    await this.swarmInfo()
    const [networks, services] = await Promise.all([
      this.docker.listNetworks({filters: {driver: ['overlay']}}) as Promise<NetworkInfo[]>,
      this.docker.listServices() as unknown as Promise<ServiceInfo[]>,
    ])
    const overlays = networks.filter((n) => n.Scope === 'swarm' && !n.Ingress && n.Labels?.[LABEL_MANAGED] !== 'true')
    const namespaces = new Map<string, NamespaceNetwork>()
    const stacks = new Set(services.map((s) => s.Spec.Labels?.[LABEL_STACK]).filter((s): s is string => Boolean(s)))
    for (const stack of stacks) {
      const own = overlays.filter((n) => n.Labels?.[LABEL_STACK] === stack)
      // a stack's services meet on its default network, else on its first
      const network = own.find((n) => n.Name === `${stack}_default`) ?? own.sort((a, b) => a.Name.localeCompare(b.Name))[0]
      if (network) namespaces.set(stack, {name: stack, stack, networkId: network.Id, networkName: network.Name})
    }
    for (const n of overlays) {
      if (n.Labels?.[LABEL_STACK] || namespaces.has(n.Name)) continue
      namespaces.set(n.Name, {name: n.Name, networkId: n.Id, networkName: n.Name})
    }
    return {namespaces: [...namespaces.values()].filter((n) => this.filter(n.name)).sort((a, b) => a.name.localeCompare(b.name)), services}
  }

  /** The services of a namespace: a stack's, or those attached to the overlay network. */
  private static servicesOf(ns: NamespaceNetwork, services: ServiceInfo[]): ServiceInfo[] {
    return services.filter((s) =>
      ns.stack
        ? s.Spec.Labels?.[LABEL_STACK] === ns.stack
        : (s.Spec.TaskTemplate?.Networks ?? []).some((n) => n.Target === ns.networkId || n.Target === ns.networkName),
    )
  }

  async namespaces(): Promise<NamespaceInfo[]> {
    const {namespaces, services} = await this.namespaceNetworks()
    return namespaces.map((ns) => ({name: ns.name, workloads: SwarmDriver.servicesOf(ns, services).length}))
  }

  async resolveNamespace(requested?: string): Promise<string> {
    const namespaces = await this.namespaces()
    const describe = namespaces.map((n) => `${n.name} (${n.workloads} service${n.workloads === 1 ? '' : 's'})`)
    if (requested !== undefined) {
      if (namespaces.some((n) => n.name === requested)) return requested
      throw new UserError(`namespace "${requested}" is neither a stack nor an overlay network of this swarm`, `pass --namespace with one of: ${list(describe)}`)
    }
    const withWorkloads = namespaces.filter((n) => n.workloads > 0)
    if (withWorkloads.length === 1) return withWorkloads[0].name
    if (withWorkloads.length === 0) {
      throw new UserError(
        'this swarm has no stack and no overlay network with services, so there is no namespace to connect to',
        'deploy your stack (`docker stack deploy -c compose.yml NAME`) and try again',
      )
    }
    throw new UserError(`several stacks or overlay networks have services: ${list(describe)}`, 'pass --namespace <stack> to choose one')
  }

  private async requireNamespace(namespace: string): Promise<{ns: NamespaceNetwork; services: ServiceInfo[]}> {
    const {namespaces, services} = await this.namespaceNetworks()
    const ns = namespaces.find((n) => n.name === namespace)
    if (!ns)
      throw new UserError(
        `namespace "${namespace}" is neither a stack nor an overlay network of this swarm`,
        `use one of: ${list(namespaces.map((n) => n.name))}`,
      )
    return {ns, services: SwarmDriver.servicesOf(ns, services)}
  }

  /** Node ids → host names. */
  private async nodeNames(): Promise<Map<string, string>> {
    const nodes = (await this.docker.listNodes()) as Array<{ID: string; Description?: {Hostname?: string}}>
    return new Map(nodes.map((n) => [n.ID, n.Description?.Hostname ?? n.ID]))
  }

  /** What the manager knows of a service's image (nothing when the image is only on other nodes). */
  private async imageFacts(image: string | undefined): Promise<ImageFacts | undefined> {
    if (!image) return undefined
    const info = await this.docker
      .getImage(imageWithoutDigest(image))
      .inspect()
      .catch(swallow(trace, `inspecting image ${image} on the manager`))
    if (!info) return undefined
    return {env: info.Config?.Env, exposed: info.Config?.ExposedPorts, user: info.Config?.User}
  }

  private async toWorkloads(ns: NamespaceNetwork, services: ServiceInfo[]): Promise<Workload[]> {
    if (services.length === 0) return []
    const [tasks, nodes] = await Promise.all([
      this.docker.listTasks({filters: {'desired-state': ['running']}}) as unknown as Promise<TaskInfo[]>,
      this.nodeNames(),
    ])
    const workloads = await Promise.all(
      services.map(async (s) => toWorkload(s, tasks, ns, nodes, await this.imageFacts(s.Spec.TaskTemplate?.ContainerSpec?.Image))),
    )
    return workloads.filter((w) => w.replicas.length > 0).sort((a, b) => a.name.localeCompare(b.name))
  }

  async workloads(namespace: string): Promise<Workload[]> {
    const {ns, services} = await this.requireNamespace(namespace)
    return this.toWorkloads(ns, services)
  }

  async workload(namespace: string, name: string): Promise<Workload> {
    const {ns, services} = await this.requireNamespace(namespace)
    const all = await this.toWorkloads(ns, services)
    const match = all.find((w) => w.name === name) ?? all.find((w) => w.aliases.includes(name))
    if (match) return match
    const service = services.find((s) => s.Spec.Name === name || s.Spec.Name === `${ns.stack}_${name}`)
    if (service) {
      throw new UserError(
        `service ${service.Spec.Name} has no running task in namespace ${namespace}`,
        `see why with \`docker service ps ${service.Spec.Name}\` on the manager; \`tp list\` shows the running workloads`,
      )
    }
    throw new UserError(`no service named "${name}" in namespace ${namespace}`, `workloads there: ${list(all.map((w) => w.name))}`)
  }

  /** A task is never restarted in place (a new task replaces it): it runs, or it is why. */
  async whyNotRunning(_namespace: string, replica: Replica): Promise<string | undefined> {
    try {
      const task = (await this.docker.getTask(replica.id).inspect()) as TaskInfo
      if (isRunning(task)) return undefined
      return task.DesiredState !== 'running' ? `was replaced (task ${task.Status?.State ?? 'ended'})` : `is ${task.Status?.State ?? 'not running'}`
    } catch (error) {
      return isNotFound(error) ? 'was removed' : undefined
    }
  }

  /** Handler containers on the manager's engine may join an attachable overlay; across machines, everything goes through the link. */
  async reach(namespace: string): Promise<NamespaceReach> {
    const {ns} = await this.requireNamespace(namespace)
    return {containerNetwork: ns.networkName}
  }

  /**
   * tp's relay, a container on the manager on the namespace's overlay network (it must be
   * attachable), with the tunnel through its attach stream as for a remote engine.
   */
  async link(namespace: string, options: {connection: string; image: string; labels: Record<string, string>}): Promise<NamespaceLink> {
    const {ns} = await this.requireNamespace(namespace)
    const network = (await this.docker.getNetwork(ns.networkId).inspect()) as NetworkInfo
    if (!network.Attachable) throw notAttachable(ns, namespace)
    const name = `tp-${options.connection}-relay`
    await this.docker
      .getContainer(name)
      .remove({force: true})
      .catch(swallow(trace, `removing an earlier relay ${name}`))
    await waitUntilGone(() => this.docker.getContainer(name).inspect(), {timeoutMs: 5000})
    const relay = await startRelay(this.docker, {namespace: ns.networkName, image: options.image, name, labels: options.labels})
    try {
      await this.startJanitor(relay.id, options)
    } catch (error) {
      relay.tunnel.close('its janitor did not start')
      throw error
    }
    const {tunnel} = relay
    return {
      agentHost: relay.address,
      connect: (host, port) => tunnel.connect(host, port),
      listen: (port, onConnection) => tunnel.listen(port, onConnection),
      closed: tunnel.closed,
      close: (why) => tunnel.close(why),
    }
  }

  /** The engine socket of the manager itself (as for any node: its label, else /var/run/docker.sock). */
  private async managerSocket(): Promise<string> {
    const info = (await this.docker.info()) as {Swarm?: {NodeID?: string}}
    const node = (await this.docker.getNode(info.Swarm?.NodeID ?? '').inspect()) as {Spec?: {Labels?: Record<string, string>}}
    return node.Spec?.Labels?.[LABEL_NODE_SOCKET] || LAUNCHER_SOCKET
  }

  /** Beside the relay, on the manager: removes the connection's services once the relay has gone (see JANITOR_SOURCE). */
  private async startJanitor(relay: string, options: {connection: string; image: string; labels: Record<string, string>}): Promise<void> {
    const name = `tp-${options.connection}-janitor`
    await this.docker
      .getContainer(name)
      .remove({force: true})
      .catch(swallow(trace, `removing an earlier janitor ${name}`))
    await waitUntilGone(() => this.docker.getContainer(name).inspect(), {timeoutMs: 5000})
    const spec: JanitorSpec = {relay, connection: options.connection}
    const container = await this.docker.createContainer({
      name,
      Image: options.image,
      Cmd: ['node', '-e', JANITOR_SOURCE],
      Env: [`TP_JANITOR=${JSON.stringify(spec)}`],
      Labels: {...options.labels, [LABEL_ROLE]: 'janitor'},
      HostConfig: {AutoRemove: true, NetworkMode: 'none', Binds: [`${await this.managerSocket()}:${LAUNCHER_SOCKET}`]},
    })
    await container.start()
  }

  /**
   * tp's runtime image, built on the manager; with more than one node it is pushed to the registry
   * the user named (once per version), and the nodes pull it from there.
   */
  async ensureImages(options: {progress?: (line: string) => void} = {}): Promise<{runtime: string}> {
    const {ensureRuntimeImage} = await import('@tp/images')
    const progress = options.progress ?? this.options.progress
    const {nodes} = await this.swarmInfo()
    const {registry} = this.options
    if (!registry && nodes > 1) {
      throw new UserError(
        `this swarm has ${nodes} nodes, and they take tp's runtime image from a registry: none was named`,
        'pass --registry host[:port] (or set TP_REGISTRY) with a registry every node can pull from and the manager can push to',
      )
    }
    const image = await ensureRuntimeImage(this.docker, {version: this.options.tpVersion, progress})
    if (!registry) return {runtime: image.ref}
    const ref = `${registry}/${image.ref}`
    const [repo, tag] = [ref.slice(0, ref.lastIndexOf(':')), ref.slice(ref.lastIndexOf(':') + 1)]
    const pushed = await this.docker
      .getImage(ref)
      .inspect()
      .catch(() => undefined)
    // pushed already: the tag is there and the registry gave it a digest
    if (pushed?.Id === image.id && (pushed.RepoDigests ?? []).some((d: string) => d.startsWith(`${repo}@`))) return {runtime: ref}
    await this.docker.getImage(image.ref).tag({repo, tag})
    progress?.(`pushing tp's runtime image to ${registry}`)
    const stream = (await this.docker.getImage(ref).push({authconfig: {serveraddress: registry}} as never)) as unknown as NodeJS.ReadableStream
    await new Promise<void>((resolve, reject) =>
      this.docker.modem.followProgress(stream, (error: Error | null, events: Array<{error?: string}>) => {
        const failed = error?.message ?? events.find((e) => e.error)?.error
        if (failed) {
          reject(
            new UserError(
              `tp's runtime image could not be pushed to ${registry}: ${failed}`,
              'check that the manager can push there (its /etc/docker/certs.d for a private CA, `docker login` for one that needs it)',
            ),
          )
        } else resolve()
      }),
    )
    return {runtime: ref}
  }

  /** The node a task runs on, its container there, and where that node's engine socket is. */
  private async taskPlace(replica: Replica): Promise<{node: string; container: string; socket: string; files: TaskFile[]}> {
    const task = (await this.docker.getTask(replica.id).inspect()) as TaskInfo
    const container = task.Status?.ContainerStatus?.ContainerID
    if (!isRunning(task) || !task.NodeID || !container) throw new UserError(`task ${replica.name} is not running (${task.Status?.State ?? 'unknown'})`)
    const node = (await this.docker.getNode(task.NodeID).inspect()) as {Spec?: {Labels?: Record<string, string>}}
    return {node: task.NodeID, container, socket: node.Spec?.Labels?.[LABEL_NODE_SOCKET] || LAUNCHER_SOCKET, files: taskFiles(task.Spec?.ContainerSpec)}
  }

  /** Places a launcher on the task's node that starts `role`'s container in the task's network namespace. */
  private async launch(
    role: AgentRole | 'cleanup',
    o: {name: string; image: string; replica: Replica; env: Record<string, string>; labels: Record<string, string>},
  ): Promise<Dockerode.Service> {
    const place = await this.taskPlace(o.replica)
    const what = ROLES[role]
    const spec: LaunchSpec = {
      name: o.name,
      graceSeconds: 10,
      // the agent serves the task's secrets and configs at their paths, as its volumes
      ...(what.volumes && place.files.length > 0 ? {taskFiles: {container: place.container, files: place.files}} : {}),
      body: {
        Image: o.image,
        Cmd: what.command,
        Env: Object.entries(o.env).map(([k, v]) => `${k}=${v}`),
        Labels: o.labels,
        HostConfig: {
          NetworkMode: `container:${place.container}`,
          CapAdd: ['NET_ADMIN'],
          ReadonlyPaths: AGENT_READONLY_PATHS,
          VolumesFrom: what.volumes ? [place.container] : [],
          AutoRemove: true,
        },
      },
    }
    await this.removeService(o.name, 0)
    return this.docker.createService({
      Name: o.name,
      Labels: o.labels,
      TaskTemplate: {
        ContainerSpec: {
          Image: o.image,
          Command: ['node', '-e', LAUNCHER_SOURCE],
          Env: [`TP_LAUNCH=${JSON.stringify(spec)}`],
          Labels: o.labels,
          Mounts: [{Type: 'bind', Source: place.socket, Target: LAUNCHER_SOCKET}],
          StopGracePeriod: 15_000_000_000,
        },
        Placement: {Constraints: [`node.id==${place.node}`]},
        RestartPolicy: {Condition: 'none'},
      },
      Mode: {Replicated: {Replicas: 1}},
    } as Dockerode.CreateServiceOptions)
  }

  /** The launcher's one task: its state, and its exit code once it ended. */
  private async launcherTask(service: string): Promise<(TaskInfo & {Status?: {ContainerStatus?: {ExitCode?: number}; Err?: string}}) | undefined> {
    const tasks = (await this.docker.listTasks({filters: {service: [service]}})) as Array<
      TaskInfo & {Status?: {ContainerStatus?: {ExitCode?: number}; Err?: string}}
    >
    return tasks[0]
  }

  /** Resolves with the launcher's exit code (its container's) once its task ended; undefined when it cannot be known. */
  private async followLauncher(service: string): Promise<number | undefined> {
    for (;;) {
      const task = await this.launcherTask(service).catch(() => undefined)
      if (!task) {
        // a service just made has no task yet; one that is gone ended in a way nobody can tell
        const exists = await this.docker
          .getService(service)
          .inspect()
          .then(
            () => true,
            (error: unknown) => !isNotFound(error),
          )
        if (!exists) return undefined
        await sleep(this.pollMs)
        continue
      }
      const state = task.Status?.State ?? ''
      if (['complete', 'failed', 'shutdown', 'rejected', 'orphaned', 'remove'].includes(state)) return task.Status?.ContainerStatus?.ExitCode
      await sleep(this.pollMs)
    }
  }

  async injectAgent(spec: AgentRequest): Promise<InjectedAgent> {
    const service = await this.launch(spec.role, {name: spec.name, image: spec.image, replica: spec.replica, env: spec.env, labels: spec.labels})
    const exited = this.followLauncher(service.id)
    // a launcher that could not start its container says so at once
    const early = await Promise.race([exited.then((code) => ({code})), sleep(200).then(() => undefined)])
    if (early && early.code !== 0) {
      const task = await this.launcherTask(service.id).catch(() => undefined)
      await this.removeService(service.id, 0)
      throw new Error(`tp's launcher on ${spec.replica.node ?? 'its node'} could not start ${spec.name}: ${task?.Status?.Err ?? `exit ${early.code}`}`)
    }
    return {id: service.id, name: spec.name, exited}
  }

  /** Removes a launcher service (its task's SIGTERM stops what it started, with grace) and waits until its task is gone. */
  private async removeService(service: string, graceSeconds: number): Promise<void> {
    const existing = await this.docker
      .getService(service)
      .inspect()
      .catch(() => undefined)
    if (!existing) return
    await this.docker
      .getService(existing.ID)
      .remove()
      .catch(swallow(trace, `removing service ${service}`))
    // the task's container stops (the launcher stops its own first): wait for it, bounded
    const deadline = Date.now() + (graceSeconds + 10) * 1000
    while (Date.now() < deadline) {
      const tasks = (await this.docker.listTasks({filters: {service: [existing.ID]}}).catch(() => [])) as TaskInfo[]
      if (tasks.every((t) => !['running', 'starting', 'preparing', 'assigned', 'accepted', 'pending', 'new', 'ready'].includes(t.Status?.State ?? ''))) return
      await sleep(250)
    }
  }

  async removeAgent(agent: string, options: {graceSeconds?: number} = {}): Promise<void> {
    await this.removeService(agent, options.graceSeconds ?? 10)
  }

  /** Runs the runtime image's clean-up in the task's network namespace (through a launcher on its node) and waits for it. */
  async restoreTraffic(o: {namespace: string; replica: Replica; image: string; interceptId?: string; labels: Record<string, string>}): Promise<void> {
    if (await this.whyNotRunning(o.namespace, o.replica)) return
    const name = `tp-cleanup-${o.replica.id.slice(0, 12)}`
    const service = await this.launch('cleanup', {
      name,
      image: o.image,
      replica: o.replica,
      env: o.interceptId ? {TP_AGENT_INTERCEPT_ID: o.interceptId} : {},
      labels: o.labels,
    })
    try {
      const code = await Promise.race([this.followLauncher(service.id), sleep(60_000).then(() => -1)])
      if (code !== 0) throw new Error(`restoring the traffic of ${o.replica.name} failed (exit ${code})`)
    } finally {
      await this.removeService(service.id, 0)
    }
  }

  /** Services labelled with the connection (launchers), then what else of it is on the manager's engine (its relay). */
  async sweep(connection: string): Promise<string[]> {
    const services = await this.docker.listServices({filters: {label: connectionLabels(connection)}})
    await Promise.all(services.map((s) => this.removeService(s.ID ?? '', 0)))
    const swept = await sweep(this.docker, {labels: connectionLabels(connection)})
    return [
      ...services.map((s) => `removed service ${s.Spec?.Name ?? s.ID}`),
      ...swept.map((o) => `removed ${o.kind} ${o.name}${o.role ? ` (${o.role})` : ''}`),
    ]
  }

  /**
   * `tp gc`: tp's services of connections not in `live` (its containers on the manager's engine are
   * the docker driver's to sweep there). An engine that is no swarm manager has none.
   */
  async gc(options: {live: ReadonlySet<string>; dryRun: boolean}): Promise<string[]> {
    if (!(await this.claims().catch(() => false))) return []
    const keep = (labels: Record<string, string>) => Boolean(labels[LABEL_CONNECTION] && options.live.has(labels[LABEL_CONNECTION]))
    const services = (await this.docker.listServices({filters: {label: [`${LABEL_MANAGED}=true`]}})).filter((s) => !keep(s.Spec?.Labels ?? {}))
    if (!options.dryRun) await Promise.all(services.map((s) => this.removeService(s.ID ?? '', 0)))
    return services.map((s) => `service ${s.Spec?.Name ?? s.ID} (connection ${s.Spec?.Labels?.[LABEL_CONNECTION] ?? '-'})`)
  }
}
