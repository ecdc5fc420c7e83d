import type {Replica, Workload, WorkloadMount, WorkloadPort} from '@tp/sdk'
import {exposedPorts, numericUser, parseEnv, parsePortNames} from '@tp/plugin-cluster-docker'

/** The label `docker stack deploy` puts on a stack's services, networks, secrets and configs. */
export const LABEL_STACK = 'com.docker.stack.namespace'
/** Names a service's ports, as on a container (`tp.port-names=http:80`). */
const LABEL_PORT_NAMES = 'tp.port-names'

/** What the driver reads of a service (the Engine API's, as dockerode returns it). */
export interface ServiceInfo {
  ID: string
  Spec: {
    Name: string
    Labels?: Record<string, string>
    TaskTemplate?: {
      ContainerSpec?: {
        Image?: string
        Env?: string[]
        User?: string
        Mounts?: Array<{Type?: string; Source?: string; Target: string; ReadOnly?: boolean}>
        Secrets?: Array<{SecretID?: string; SecretName?: string; File?: {Name?: string}}>
        Configs?: Array<{ConfigID?: string; ConfigName?: string; File?: {Name?: string}}>
      }
      Networks?: Array<{Target: string; Aliases?: string[]}>
    }
    Mode?: {Replicated?: {Replicas?: number}; Global?: object}
    EndpointSpec?: {Mode?: string; Ports?: Array<{Protocol?: string; TargetPort?: number; PublishedPort?: number}>}
  }
}

export interface TaskInfo {
  ID: string
  ServiceID: string
  Slot?: number
  NodeID?: string
  DesiredState?: string
  Status?: {State?: string; Timestamp?: string; ContainerStatus?: {ContainerID?: string}}
  NetworksAttachments?: Array<{Network?: {ID?: string; Spec?: {Name?: string}}; Addresses?: string[]}>
  Spec?: {ContainerSpec?: NonNullable<NonNullable<ServiceInfo['Spec']['TaskTemplate']>['ContainerSpec']>}
}

/**
 * A secret's or a config's file in a task: its id, and its path there. The engine of the task's
 * node keeps its data in the task container's own tmpfs, `<container root>/mounts/secrets/<id>`
 * (configs too); a secret's data cannot be read back through the API.
 */
export interface TaskFile {
  id: string
  target: string
}

/** The files of a task's secrets (at /run/secrets/<target> unless absolute) and configs (at /<target> unless absolute). */
export function taskFiles(spec: NonNullable<TaskInfo['Spec']>['ContainerSpec'] | undefined): TaskFile[] {
  const at = (dir: string, name: string) => (name.startsWith('/') ? name : `${dir}/${name}`)
  return [
    ...(spec?.Secrets ?? []).flatMap((s) => (s.SecretID ? [{id: s.SecretID, target: at('/run/secrets', s.File?.Name ?? s.SecretName ?? s.SecretID)}] : [])),
    ...(spec?.Configs ?? []).flatMap((c) => (c.ConfigID ? [{id: c.ConfigID, target: at('', c.File?.Name ?? c.ConfigName ?? c.ConfigID)}] : [])),
  ]
}

/**
 * The files right under / (a config's default target, `/<name>`): no directory of theirs can be
 * mounted, and Docker 20.10 mounts no single file of a volume, so the handler does not get them.
 */
export function unservedTaskFiles(files: TaskFile[]): Array<{path: string; why: string}> {
  return files
    .filter((f) => f.target.lastIndexOf('/') === 0)
    .map((f) => ({path: f.target, why: 'a file right under / cannot be mounted in the handler: give it a target in a directory, e.g. /etc/<name>'}))
}

/**
 * The directories that hold a service's secret and config files, as read-only mounts for the
 * handler (each holds those files alone there); a file right under / has none (unservedTaskFiles).
 */
export function taskFileMounts(files: TaskFile[], mounts: WorkloadMount[]): WorkloadMount[] {
  const dirs = new Set(files.map((f) => f.target.slice(0, f.target.lastIndexOf('/'))).filter((d) => d !== ''))
  for (const m of mounts) dirs.delete(m.path)
  return [...dirs].sort().map((path) => ({path, readOnly: true}))
}

/** What a service's image says (when the manager has the image): its environment and exposed ports. */
export interface ImageFacts {
  env?: string[]
  exposed?: Record<string, unknown>
  user?: string
}

/** Where a namespace is: its stack (if it is one) and the overlay network its services meet on. */
export interface NamespaceNetwork {
  /** The namespace's name: a stack's, or an overlay network's. */
  name: string
  stack?: string
  /** The overlay network's id and name. */
  networkId: string
  networkName: string
}

/** A service's name as tp shows it: without its stack's prefix (`shop_web` → `web`). */
export function shortName(service: string, stack: string | undefined): string {
  return stack && service.startsWith(`${stack}_`) ? service.slice(stack.length + 1) : service
}

/** An image reference without the digest `docker stack deploy` pins (`busybox:1@sha256:…` → `busybox:1`). */
export function imageWithoutDigest(image: string): string {
  return image.replace(/@sha256:[0-9a-f]+$/, '')
}

/** The ports of a service: its endpoint spec's target ports, and its image's exposed ones. */
export function servicePorts(service: ServiceInfo, image: ImageFacts | undefined): WorkloadPort[] {
  const names = parsePortNames(service.Spec.Labels?.[LABEL_PORT_NAMES])
  const exposed: Record<string, unknown> = {...(image?.exposed ?? {})}
  for (const p of service.Spec.EndpointSpec?.Ports ?? []) if (p.TargetPort) exposed[`${p.TargetPort}/${p.Protocol ?? 'tcp'}`] = {}
  return exposedPorts(exposed, names)
}

/** Where a task is on the namespace's network (its address without the prefix length). */
export function taskAddress(task: TaskInfo, networkId: string): string | undefined {
  const attachment = task.NetworksAttachments?.find((a) => a.Network?.ID === networkId)
  return attachment?.Addresses?.[0]?.split('/')[0]
}

/** A service's running task as a replica: `shop_web.1` (the slot; a global service's node id). */
export function toReplica(service: ServiceInfo, task: TaskInfo, networkId: string, nodes: ReadonlyMap<string, string>): Replica {
  const suffix = task.Slot ? String(task.Slot) : (task.NodeID ?? task.ID)
  return {
    id: task.ID,
    name: `${service.Spec.Name}.${suffix}`,
    address: taskAddress(task, networkId) ?? '',
    startedAt: task.Status?.Timestamp ?? '',
    ...(task.NodeID ? {node: nodes.get(task.NodeID) ?? task.NodeID} : {}),
  }
}

/** Whether a task runs now (and has a container there). */
export function isRunning(task: TaskInfo): boolean {
  return task.Status?.State === 'running' && task.DesiredState === 'running'
}

/**
 * A service as a workload: its name without the stack prefix (the full name and its network
 * aliases are aliases), the environment its tasks see (the image's, then the service's), its
 * mounts (a named volume is per node: served by the agent beside the first replica), its user
 * when given as numbers, and its running tasks, sorted by name.
 */
export function toWorkload(
  service: ServiceInfo,
  tasks: TaskInfo[],
  ns: NamespaceNetwork,
  nodes: ReadonlyMap<string, string>,
  image: ImageFacts | undefined,
): Workload {
  const spec = service.Spec.TaskTemplate?.ContainerSpec ?? {}
  const name = shortName(service.Spec.Name, ns.stack)
  const aliases = new Set<string>([service.Spec.Name])
  for (const network of service.Spec.TaskTemplate?.Networks ?? []) {
    if (network.Target === ns.networkId || network.Target === ns.networkName) for (const alias of network.Aliases ?? []) aliases.add(alias)
  }
  aliases.delete(name)
  const volumes: WorkloadMount[] = (spec.Mounts ?? []).map((m) => ({path: m.Target, readOnly: m.ReadOnly === true}))
  const files = taskFiles(spec)
  const mounts = [...volumes, ...taskFileMounts(files, volumes)]
  const unserved = unservedTaskFiles(files)
  const user = numericUser(spec.User ?? image?.user)
  return {
    name,
    namespace: ns.name,
    aliases: [...aliases].sort(),
    // as swarm's own DNS answers: tasks.<service> (and of each alias) with every task's address
    replicaNames: [name, ...aliases].sort().map((n) => `tasks.${n}`),
    ports: servicePorts(service, image),
    environment: {...parseEnv(image?.env), ...parseEnv(spec.Env)},
    mounts,
    ...(user ? {user} : {}),
    ...(unserved.length > 0 ? {unservedFiles: unserved} : {}),
    replicas: tasks
      .filter((t) => t.ServiceID === service.ID && isRunning(t))
      .map((t) => toReplica(service, t, ns.networkId, nodes))
      .sort((a, b) => a.name.localeCompare(b.name, undefined, {numeric: true})),
  }
}
