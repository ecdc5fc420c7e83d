import {UserError} from '@tp/sdk'

export interface PortSpec {
  local: number
  /** Port inside the handler container (host daemon `L:C`); equals local otherwise. */
  container: number
  /** Service port by name or number, when given. */
  service?: string
}

const EXPECTED = {
  container: '--port <local>[:<service port name or number>]',
  host: '--port <local>[:<container port>[:<service port name or number>]]',
}

function portNumber(text: string, what: string, kind: 'container' | 'host'): number {
  const n = Number(text)
  if (!/^\d+$/.test(text) || n < 1 || n > 65_535) {
    throw new UserError(`--port: ${what} "${text}" is not a port number from 1 to 65535`, `use ${EXPECTED[kind]}`)
  }
  return n
}

/**
 * Parses --port. Container daemon: `L` or `L:svc` (three parts mean nothing there). Host daemon:
 * `L`, `L:C` (C numeric), `L:C:svc`.
 */
export function parsePortSpec(spec: string, kind: 'container' | 'host'): PortSpec {
  const parts = spec.split(':')
  if (parts.some((p) => p === '')) throw new UserError(`--port "${spec}" has an empty part`, `use ${EXPECTED[kind]}`)
  const local = portNumber(parts[0], 'local port', kind)
  if (parts.length === 1) return {local, container: local}
  if (kind === 'container') {
    if (parts.length > 2) {
      throw new UserError(
        `--port "${spec}" has three parts, which means nothing with a container daemon: the handler shares the daemon's network, so there is no separate container port`,
        `use ${EXPECTED.container}`,
      )
    }
    return {local, container: local, service: parts[1]}
  }
  if (parts.length === 2) return {local, container: portNumber(parts[1], 'container port', kind)}
  if (parts.length === 3) return {local, container: portNumber(parts[1], 'container port', kind), service: parts[2]}
  throw new UserError(`--port "${spec}" has too many parts`, `use ${EXPECTED.host}`)
}
