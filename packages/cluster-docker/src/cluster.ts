import type Dockerode from 'dockerode'
import {demuxLogs, dockerStatusCode, isNotFound, LABEL_MANAGED, SubprocessError, UserError, waitUntilGone, debugLog, swallow} from '@tp/sdk'
import {LABEL_COMPOSE_SERVICE, describePort, toWorkload, type Workload, type WorkloadPort} from './workload.js'

const trace = debugLog('tp:daemon')

/** Networks Docker creates itself; they are not namespaces. */
const BUILTIN_NETWORKS = new Set(['bridge', 'host', 'none'])

export interface DockerClusterOptions {
  /**
   * Which user-defined networks count as namespaces (default: all). Tests use it to stay within
   * their own networks on a shared engine.
   */
  networkFilter?: (name: string) => boolean
}

export interface AgentSpec {
  workload: Workload
  image: string
  name: string
  labels: Record<string, string>
  env: Record<string, string>
  /** Default: the agent (`node /opt/tp/agent.cjs`); the guard is `node /opt/tp/agent.cjs guard`. */
  command?: string[]
  /** Mount the workload's volumes (the agent serves them); default true. */
  volumes?: boolean
}

function list(items: string[]): string {
  return items.length === 0 ? '(none)' : items.join(', ')
}

/**
 * The Docker cluster driver: a user-defined network is a namespace, each running container on it
 * (except tp's own) a workload, its exposed ports the service ports.
 */
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

export class DockerCluster {
  private readonly networkFilter: (name: string) => boolean

  constructor(
    private readonly docker: Dockerode,
    options: DockerClusterOptions = {},
  ) {
    this.networkFilter = options.networkFilter ?? (() => true)
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

  async namespaces(): Promise<Array<{name: string; workloads: number}>> {
    const [names, containers] = await Promise.all([this.networkNames(), this.runningContainers()])
    return names.map((name) => ({
      name,
      workloads: containers.filter((c) => c.NetworkSettings?.Networks?.[name] !== undefined).length,
    }))
  }

  /** The namespace network's IPv4 gateway: this machine's own address on it, undefined when it has none. */
  async gateway(namespace: string): Promise<string | undefined> {
    const network = await this.docker.getNetwork(namespace).inspect()
    const configs: Array<{Gateway?: string}> = network.IPAM?.Config ?? []
    return configs.map((c) => c.Gateway).find((g): g is string => Boolean(g) && !g!.includes(':'))
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
    return this.inspectWorkloads(containers, namespace)
  }

  /** The workloads among listed containers (inspected: env, aliases, mounts), sorted by name. */
  private async inspectWorkloads(containers: Dockerode.ContainerInfo[], namespace: string): Promise<Workload[]> {
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
    return inspected
      .filter((info): info is Dockerode.ContainerInspectInfo => info?.State.Running === true && info.NetworkSettings.Networks?.[namespace] !== undefined)
      .map((info) => toWorkload(info, namespace))
      .sort((a, b) => a.name.localeCompare(b.name) || a.container.localeCompare(b.container))
  }

  /**
   * A workload by name, alias or container name. A name (container or compose service) is found in
   * the list of containers, and only its container inspected; an alias needs every one inspected.
   */
  async workload(namespace: string, name: string): Promise<Workload> {
    const [, containers] = await Promise.all([this.requireNamespace(namespace), this.runningContainers(namespace)])
    const named = containers.filter((c) => c.Labels?.[LABEL_COMPOSE_SERVICE] === name || c.Names.some((n) => n.replace(/^\//, '') === name))
    const isNamed = (w: Workload) => w.name === name || w.container === name
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
        `"${name}" names ${matches.length} containers in namespace ${namespace}: ${list(matches.map((w) => w.container))}`,
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

  /** A service port by number or name; omitted → the workload's only TCP port. */
  resolvePort(workload: Workload, spec?: string): WorkloadPort {
    const tcp = workload.ports.filter((p) => p.protocol === 'tcp')
    const known = `ports of ${workload.name}: ${list(workload.ports.map(describePort))}`
    if (spec === undefined || spec === '') {
      if (tcp.length === 1) return tcp[0]
      if (tcp.length === 0)
        throw new UserError(
          `workload ${workload.name} exposes no TCP port, so there is nothing to intercept`,
          'expose the port in its image or compose file (`expose:`/`ports:`)',
        )
      throw new UserError(
        `workload ${workload.name} exposes several ports; say which one to intercept`,
        `pass --port <local>:<service port> with one of the ${known}`,
      )
    }
    const matches = /^\d+$/.test(spec) ? workload.ports.filter((p) => p.port === Number(spec)) : workload.ports.filter((p) => p.name === spec)
    const tcpMatches = matches.filter((p) => p.protocol === 'tcp')
    if (tcpMatches.length === 1) return tcpMatches[0]
    if (tcpMatches.length > 1) throw new UserError(`service port "${spec}" of ${workload.name} is ambiguous`, `use a port number; ${known}`)
    if (matches.length > 0) throw new UserError(`service port ${spec} of ${workload.name} is UDP; tp intercepts TCP only`, `choose a TCP port; ${known}`)
    throw new UserError(`workload ${workload.name} has no service port "${spec}"`, known)
  }

  /** Starts the traffic agent in the workload's network namespace, with its volumes. */
  /**
   * Starts the traffic agent (or its guard) in the workload's network namespace, with its volumes.
   * `exited` resolves with the container's exit code when it ends (undefined if that cannot be
   * known): the container removes itself, so afterwards nothing could say how it ended.
   */
  async injectAgent(spec: AgentSpec): Promise<{containerId: string; name: string; exited: Promise<number | undefined>}> {
    const container = await this.docker.createContainer({
      name: spec.name,
      Image: spec.image,
      Cmd: spec.command ?? ['node', '/opt/tp/agent.cjs'],
      Env: Object.entries(spec.env).map(([k, v]) => `${k}=${v}`),
      Labels: spec.labels,
      HostConfig: {
        NetworkMode: `container:${spec.workload.containerId}`,
        CapAdd: ['NET_ADMIN'],
        ReadonlyPaths: AGENT_READONLY_PATHS,
        VolumesFrom: spec.volumes === false ? [] : [spec.workload.containerId],
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
    return {containerId: container.id, name: spec.name, exited}
  }

  /**
   * Stops the agent (SIGTERM: it removes its rule and drains), then makes sure it is gone. An agent
   * that had to be killed (or crashed) cannot have removed its rule: restoreTraffic does it.
   */
  async removeAgent(containerId: string, graceSeconds = 10): Promise<void> {
    const container = this.docker.getContainer(containerId)
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
      await this.restoreTraffic({workloadContainerId: workload, image: info.Config.Image, interceptId, labels: info.Config.Labels ?? {}})
    }
  }

  /**
   * Why a workload's container no longer runs ("exited with code 0", "was removed"), or undefined
   * while it runs (or the engine cannot say).
   */
  /**
   * Why a workload is not the one an intercept was made for: it stopped, was removed, or (given
   * when it started then) restarted since; undefined while it runs as it did.
   */
  async whyNotRunning(containerId: string, startedAt?: string): Promise<string | undefined> {
    try {
      const info = await this.docker.getContainer(containerId).inspect()
      if (info.State.Running) return startedAt && info.State.StartedAt !== startedAt ? `restarted (at ${info.State.StartedAt})` : undefined
      return info.State.Status === 'exited' ? `exited with code ${info.State.ExitCode}` : `is ${info.State.Status}`
    } catch (error) {
      return isNotFound(error) ? 'was removed' : undefined
    }
  }

  /**
   * Removes the redirect rules an agent left in a workload's namespace (it was killed before it
   * could): runs `node /opt/tp/agent.cjs cleanup` there. Without interceptId, every agent's rules.
   * Does nothing when the workload is not running.
   */
  async restoreTraffic(o: {workloadContainerId: string; image: string; interceptId?: string; labels?: Record<string, string>}): Promise<void> {
    const workload = await this.docker
      .getContainer(o.workloadContainerId)
      .inspect()
      .catch(swallow(trace, `inspecting workload ${o.workloadContainerId} before restoring its traffic`))
    if (!workload?.State.Running) return
    const container = await this.docker.createContainer({
      Image: o.image,
      Cmd: ['node', '/opt/tp/agent.cjs', 'cleanup'],
      Env: o.interceptId ? [`TP_AGENT_INTERCEPT_ID=${o.interceptId}`] : [],
      Labels: o.labels ?? {},
      HostConfig: {NetworkMode: `container:${o.workloadContainerId}`, CapAdd: ['NET_ADMIN'], ReadonlyPaths: AGENT_READONLY_PATHS},
    })
    try {
      await container.start()
      const {StatusCode} = (await container.wait()) as {StatusCode: number}
      if (StatusCode !== 0) {
        const logs = await container.logs({stdout: true, stderr: true}).catch(swallow(trace, 'reading the logs of the cleanup container'))
        throw new SubprocessError('node /opt/tp/agent.cjs cleanup', StatusCode, (await demuxLogs(this.docker, logs ?? '')).slice(-2000))
      }
    } finally {
      await container.remove({force: true}).catch(swallow(trace, 'removing the cleanup container'))
    }
  }
}
