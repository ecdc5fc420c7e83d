import type Dockerode from 'dockerode'
import type {WorkloadPort} from '@tp/sdk'

export type {WorkloadPort} from '@tp/sdk'

/** A running container on a namespace network, as tp sees it. */
export interface Workload {
  /** Compose service name when the container has one, else the container name. */
  name: string
  /** Container name (without Docker's leading slash). */
  container: string
  containerId: string
  /** Network aliases on the namespace network (Docker's container-id alias dropped). */
  aliases: string[]
  /** Exposed ports, sorted by number. */
  ports: WorkloadPort[]
  /** Raw environment, from Config.Env. */
  environment: Record<string, string>
  mounts: Array<{path: string; readOnly: boolean; type: string; source?: string}>
  /** IPv4 address on the namespace network. */
  address: string
  startedAt: string
}

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

/** The Workload view of an inspected container on `namespace`. */
export function toWorkload(info: Dockerode.ContainerInspectInfo, namespace: string): Workload {
  const container = info.Name.replace(/^\//, '')
  const labels = info.Config.Labels ?? {}
  const network = info.NetworkSettings.Networks?.[namespace]
  const service = labels[LABEL_COMPOSE_SERVICE]
  // Docker adds the short container id as an alias on user-defined networks; it names nothing useful
  const aliases = [...new Set([...(network?.Aliases ?? []), ...(service ? [service] : [])])].filter(
    (alias) => !(alias.length >= 12 && info.Id.startsWith(alias)) && alias !== container,
  )
  return {
    name: service ?? container,
    container,
    containerId: info.Id,
    aliases: aliases.sort(),
    ports: exposedPorts(info.Config.ExposedPorts, parsePortNames(labels[LABEL_PORT_NAMES])),
    environment: parseEnv(info.Config.Env),
    mounts: (info.Mounts ?? []).map((m) => {
      const mount = m as {Type?: string; Name?: string; Source?: string; Destination: string; RW?: boolean}
      const source = mount.Type === 'volume' ? (mount.Name ?? mount.Source) : mount.Source
      return {path: mount.Destination, readOnly: mount.RW === false, type: mount.Type ?? 'bind', ...(source ? {source} : {})}
    }),
    address: network?.IPAddress ?? '',
    startedAt: info.State.StartedAt,
  }
}

export function describePort(p: WorkloadPort): string {
  return `${p.port}${p.protocol === 'udp' ? '/udp' : ''}${p.name ? ` (${p.name})` : ''}`
}
