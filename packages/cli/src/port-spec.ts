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
