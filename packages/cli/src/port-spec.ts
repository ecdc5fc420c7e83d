import {type PlacementCapabilities, UserError} from '@tp/sdk'

export interface PortSpec {
  local: number
  /** Port inside the handler container (`L:C` where ports are published); equals local otherwise. */
  container: number
  /** Service port by name or number, when given. */
  service?: string
}

type Where = Pick<PlacementCapabilities, 'canPublishPorts'>

function expected(where: Where): string {
  return where.canPublishPorts ? '--port <local>[:<container port>[:<service port name or number>]]' : '--port <local>[:<service port name or number>]'
}

function portNumber(text: string, what: string, where: Where): number {
  const n = Number(text)
  if (!/^\d+$/.test(text) || n < 1 || n > 65_535) {
    throw new UserError(`--port: ${what} "${text}" is not a port number from 1 to 65535`, `use ${expected(where)}`)
  }
  return n
}

/**
 * Parses --port. Where ports cannot be published (the handler shares the daemon's network
 * namespace): `L` or `L:svc`, three parts mean nothing. Where they can: `L`, `L:C` (C numeric),
 * `L:C:svc`.
 */
export function parsePortSpec(spec: string, where: Where): PortSpec {
  const parts = spec.split(':')
  if (parts.some((p) => p === '')) throw new UserError(`--port "${spec}" has an empty part`, `use ${expected(where)}`)
  const local = portNumber(parts[0], 'local port', where)
  if (parts.length === 1) return {local, container: local}
  if (!where.canPublishPorts) {
    if (parts.length > 2) {
      throw new UserError(
        `--port "${spec}" has three parts, which means nothing with this daemon: the handler shares the daemon's network, so there is no separate container port`,
        `use ${expected(where)}`,
      )
    }
    return {local, container: local, service: parts[1]}
  }
  if (parts.length === 2) return {local, container: portNumber(parts[1], 'container port', where)}
  if (parts.length === 3) return {local, container: portNumber(parts[1], 'container port', where), service: parts[2]}
  throw new UserError(`--port "${spec}" has too many parts`, `use ${expected(where)}`)
}

/**
 * `--port` in each mode: `intercept` one `<local>[:…]`; `replace` any number of
 * `<local>:<service port>` (the others: the handler listens on the service port's own number);
 * `ingest` has none (the session names 8080, which nothing uses).
 */
export function parseModePorts(
  mode: 'intercept' | 'ingest' | 'replace' | 'wiretap',
  given: string | string[] | undefined,
  publishes: {canPublishPorts: boolean},
): {port: {local: number; container: number; service?: string}; portMap: Array<{service: string; local: number}>} {
  if (mode === 'ingest') return {port: {local: 8080, container: 8080}, portMap: []}
  if (mode === 'intercept' || mode === 'wiretap')
    return {port: parsePortSpec(typeof given === 'string' ? given : (given?.[0] ?? '8080'), publishes), portMap: []}
  const specs = typeof given === 'string' ? [given] : (given ?? [])
  const portMap = specs.map((spec) => {
    const parts = spec.split(':')
    const local = Number(parts[0])
    if (parts.length !== 2 || !/^\d+$/.test(parts[0]) || local < 1 || local > 65_535 || parts[1] === '') {
      throw new UserError(
        `--port "${spec}" is not <local>:<service port>`,
        'with tp replace, --port says where your handler listens for one service port, e.g. --port 8000:80; ports left out go to the same number',
      )
    }
    return {service: parts[1], local}
  })
  // the session's own port: the first mapping, else decided by the daemon (the first service port's number)
  const first = portMap[0]?.local ?? 0
  return {port: {local: first, container: first}, portMap}
}
