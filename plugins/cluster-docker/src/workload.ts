import type Dockerode from 'dockerode'
import type {EngineMount, Workload, WorkloadMount, WorkloadPort} from '@tp/sdk'

/** Label that names a container's ports, e.g. `tp.port-names=http:80,admin:8080`. */
export const LABEL_PORT_NAMES = 'tp.port-names'
export const LABEL_COMPOSE_SERVICE = 'com.docker.compose.service'

/** Parses `http:80,admin:8080` into port → name; malformed entries are ignored. */
export function parsePortNames(label: string | undefined): Map<number, string> {
  const names = new Map<number, string>()
  for (const entry of (label ?? '').split(',')) {
    const match = entry.trim().match(/^([A-Za-z][\w-]*):(\d{1,5})$/)
    if (match) names.set(Number(match[2]), match[1])
  }
  return names
}

/** `KEY=VALUE` lines into a map (a value may contain `=`; a bare `KEY` is an empty value). */
export function parseEnv(lines: string[] | undefined): Record<string, string> {
  const env: Record<string, string> = {}
  for (const line of lines ?? []) {
    const at = line.indexOf('=')
    if (at < 0) env[line] = ''
    else env[line.slice(0, at)] = line.slice(at + 1)
  }
  return env
}

export function exposedPorts(exposed: Record<string, unknown> | undefined, names: Map<number, string>): WorkloadPort[] {
  const ports: WorkloadPort[] = []
  for (const key of Object.keys(exposed ?? {})) {
    const [number, protocol = 'tcp'] = key.split('/')
    if (protocol !== 'tcp' && protocol !== 'udp') continue
    const port = Number(number)
    const name = names.get(port)
    ports.push(name === undefined ? {port, protocol} : {port, name, protocol})
  }
  return ports.sort((a, b) => a.port - b.port || a.protocol.localeCompare(b.protocol))
}

interface ContainerMount {
  path: string
  readOnly: boolean
  type: string
  source?: string
}

function containerMounts(info: Dockerode.ContainerInspectInfo): ContainerMount[] {
  return (info.Mounts ?? []).map((m) => {
    const mount = m as {Type?: string; Name?: string; Source?: string; Destination: string; RW?: boolean}
    const source = mount.Type === 'volume' ? (mount.Name ?? mount.Source) : mount.Source
    return {path: mount.Destination, readOnly: mount.RW === false, type: mount.Type ?? 'bind', ...(source ? {source} : {})}
  })
}

/**
 * Where the engine keeps a mount, for a handler on this engine to mount it directly: a named
 * volume or a bind mount, and only one with no other mount of the workload inside it (over SFTP
 * the handler sees those too; a direct mount would not).
 */
function engineMount(mounts: ContainerMount[], mount: ContainerMount, engine: string): EngineMount | undefined {
  if ((mount.type !== 'volume' && mount.type !== 'bind') || !mount.source) return undefined
  const inside = `${mount.path.replace(/\/$/, '')}/`
  if (mounts.some((other) => other !== mount && other.path.startsWith(inside))) return undefined
  return {engine, type: mount.type, source: mount.source}
}

/**
 * The container's user (`Config.User`: `1000`, `1000:1000`) as numbers; a user given by name is
 * unknown here (its number is in the workload's own /etc/passwd: see users.ts), and root is none
 * at all. A uid without a group takes the group of the same number.
 */
export function numericUser(user: string | undefined): {uid: number; gid: number} | undefined {
  const match = /^(\d+)(?::(\d+))?$/.exec(user ?? '')
  if (!match) return undefined
  const uid = Number(match[1])
  const gid = Number(match[2] ?? match[1])
  return uid === 0 && gid === 0 ? undefined : {uid, gid}
}

/**
 * The Workload view of an inspected container on `namespace`: one replica, the container itself.
 * `engine` is the engine's id (what a handler engine compares to mount volumes directly); `user`
 * the container's user as numbers, when its `Config.User` names it (see users.ts).
 */
export function toWorkload(
  info: Dockerode.ContainerInspectInfo,
  namespace: string,
  engine: string,
  user: {uid: number; gid: number} | undefined = numericUser(info.Config.User),
): Workload {
  const container = info.Name.replace(/^\//, '')
  const labels = info.Config.Labels ?? {}
  const network = info.NetworkSettings.Networks?.[namespace]
  const service = labels[LABEL_COMPOSE_SERVICE]
  // Docker adds the short container id as an alias on user-defined networks; it names nothing useful
  const aliases = [...new Set([...(network?.Aliases ?? []), ...(service ? [service] : [])])].filter(
    (alias) => !(alias.length >= 12 && info.Id.startsWith(alias)) && alias !== container,
  )
  const mounts = containerMounts(info)
  return {
    name: service ?? container,
    namespace,
    aliases: aliases.sort(),
    ports: exposedPorts(info.Config.ExposedPorts, parsePortNames(labels[LABEL_PORT_NAMES])),
    environment: parseEnv(info.Config.Env),
    // a handler mounting a volume directly writes as its own user: only a workload that runs as
    // root gets direct mounts, another's go over SFTP, served as its user
    mounts: mounts.map((m): WorkloadMount => {
      const direct = user ? undefined : engineMount(mounts, m, engine)
      return {path: m.path, readOnly: m.readOnly, ...(direct ? {engine: direct} : {})}
    }),
    ...(user ? {user} : {}),
    replicas: [{id: info.Id, name: container, address: network?.IPAddress ?? '', startedAt: info.State.StartedAt}],
  }
}
