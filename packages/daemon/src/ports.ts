import {UserError, type Workload, type WorkloadPort, describePort} from '@tp/sdk'

function list(items: string[]): string {
  return items.length === 0 ? '(none)' : items.join(', ')
}

/** A service port of a workload by number or name; omitted → the workload's only TCP port. */
export function resolvePort(workload: Pick<Workload, 'name' | 'ports'>, spec?: string): WorkloadPort {
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
