/** The kernel's connection tracking table of the current network namespace. */
export const CONNTRACK_TABLE = '/proc/net/nf_conntrack'

/** TCP states of a connection that has ended (both sides closed, or reset). */
const FINISHED = new Set(['TIME_WAIT', 'CLOSE'])

export interface DnatTarget {
  /** The port the connection was made to (the intercepted service port). */
  servicePort: number
  /** Where the kernel sent it instead. */
  host: string
  port: number
}

/**
 * How many TCP connections in a /proc/net/nf_conntrack listing were rewritten to `target` and have
 * not ended yet. A line looks like
 * `ipv4 2 tcp 6 431999 ESTABLISHED src=C dst=W sport=51000 dport=8080 src=H dst=W sport=9090 dport=51000 [ASSURED] …`:
 * the first src/dst/sport/dport are the original direction, the second the reply. A rewritten one
 * was made to the service port (original dport) and is answered by the target (reply src/sport),
 * which is not where it was sent (original dst).
 */
export function countInFlight(table: string, target: DnatTarget): number {
  const needle = `dport=${target.servicePort} `
  const from = `src=${target.host} `
  let count = 0
  for (const line of table.split('\n')) {
    // cheap filters first: the table can hold tens of thousands of TIME_WAIT lines
    if (!line.includes(needle) || !line.includes(from)) continue
    const words = line.split(/\s+/)
    if (words[2] !== 'tcp' || FINISHED.has(words[5])) continue
    const fields: Record<string, string[]> = {}
    for (const word of words) {
      const eq = word.indexOf('=')
      if (eq <= 0) continue
      const key = word.slice(0, eq)
      fields[key] = [...(fields[key] ?? []), word.slice(eq + 1)]
    }
    const [origDst, replySrc] = [fields.dst?.[0], fields.src?.[1]]
    if (fields.dport?.[0] !== String(target.servicePort)) continue
    if (replySrc !== target.host || fields.sport?.[1] !== String(target.port) || origDst === target.host) continue
    count++
  }
  return count
}
