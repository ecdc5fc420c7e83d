import {readFileSync, writeFileSync} from 'node:fs'

/**
 * The names a host daemon adds to this machine: one block of the hosts file per connection, marked
 * with its connection and the daemon's pid (kubefwd's approach; Telepresence runs a DNS server
 * instead, which needs routes and a resolver configuration a Docker network does not: the host
 * already routes to its bridge networks). Everything outside tp's blocks is left byte for byte.
 * The file is rewritten in place (not renamed over): it is often a bind mount (containers, WSL).
 */

const BEGIN = '# tp begin'
const END = '# tp end'

/** Whether the hosts file at `path` may hold blocks of tp's (false when it cannot be read). */
export function mayHaveBlocks(path: string): boolean {
  try {
    return readFileSync(path, 'utf8').includes(BEGIN)
  } catch {
    return false
  }
}

export interface HostEntry {
  address: string
  names: string[]
}

/** $TP_HOSTS_FILE (tests, unusual systems), else /etc/hosts. */
export function hostsFilePath(env: NodeJS.ProcessEnv = process.env): string {
  return env.TP_HOSTS_FILE || '/etc/hosts'
}

interface Block {
  connection: string
  pid: number
  /** Line indexes, end inclusive. */
  start: number
  end: number
}

function blocks(lines: string[]): Block[] {
  const found: Block[] = []
  for (let i = 0; i < lines.length; i++) {
    const begin = lines[i].match(/^# tp begin (\S+) pid=(\d+)/)
    if (!begin) continue
    const connection = begin[1]
    let end = lines.findIndex((line, j) => j > i && line.startsWith(`${END} ${connection}`))
    if (end < 0) end = i // a truncated block: only its first line is certainly ours
    found.push({connection, pid: Number(begin[2]), start: i, end})
    i = end
  }
  return found
}

function withoutBlocks(text: string, drop: (block: Block) => boolean): {text: string; dropped: string[]} {
  const lines = text.split('\n')
  const dropped: string[] = []
  const remove = new Set<number>()
  for (const block of blocks(lines)) {
    if (!drop(block)) continue
    dropped.push(block.connection)
    for (let i = block.start; i <= block.end; i++) remove.add(i)
  }
  return {text: lines.filter((_, i) => !remove.has(i)).join('\n'), dropped}
}

function rewrite(file: string, update: (text: string) => string): void {
  const before = readFileSync(file, 'utf8')
  const after = update(before)
  if (after !== before) writeFileSync(file, after)
}

/** A valid host name (RFC 1123 labels); anything else is not put in the file. */
function hostName(name: string): boolean {
  return name.length <= 253 && /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/i.test(name)
}

/** The block's text for these entries (names already used by an earlier entry are left out). */
export function renderBlock(connection: string, pid: number, entries: HostEntry[]): string {
  // a name goes to the first entry that has it, or to several entries with the very same names
  // (every replica's own address, as swarm's tasks.<service>)
  const claimedBy = new Map<string, string>()
  const lines = [`${BEGIN} ${connection} pid=${pid} (added by tp while connected; removed when the connection ends)`]
  for (const entry of entries) {
    const group = entry.names.map((n) => n.toLowerCase()).join(' ')
    const names = entry.names.filter((n) => hostName(n) && (claimedBy.get(n.toLowerCase()) ?? group) === group)
    for (const n of names) claimedBy.set(n.toLowerCase(), group)
    if (names.length > 0) lines.push(`${entry.address}\t${names.join(' ')}`)
  }
  lines.push(`${END} ${connection}`)
  return lines.join('\n')
}

/** Puts the connection's block in the file, replacing its earlier one. */
export function writeBlock(file: string, connection: string, pid: number, entries: HostEntry[]): void {
  rewrite(file, (text) => {
    const block = renderBlock(connection, pid, entries)
    const lines = text.split('\n')
    const own = blocks(lines).find((b) => b.connection === connection)
    // in place when it is there (the file does not change when nothing did), else at the end
    if (own) return [...lines.slice(0, own.start), block, ...lines.slice(own.end + 1)].join('\n')
    const base = text.endsWith('\n') || text === '' ? text : `${text}\n`
    return `${base}${block}\n`
  })
}

/** Takes the connection's block out; the file is then as it was before tp touched it. */
export function removeBlock(file: string, connection: string): boolean {
  let removed = false
  rewrite(file, (text) => {
    const result = withoutBlocks(text, (b) => b.connection === connection)
    removed = result.dropped.length > 0
    return result.text
  })
  return removed
}

/** Removes the blocks whose daemon is gone (killed with SIGKILL); returns their connections. */
export function removeDeadBlocks(file: string, alive: (pid: number) => boolean, keep: (connection: string) => boolean = () => false): string[] {
  let dropped: string[] = []
  const text = readFileSync(file, 'utf8')
  if (!text.includes(BEGIN)) return []
  rewrite(file, (current) => {
    const result = withoutBlocks(current, (b) => !keep(b.connection) && !alive(b.pid))
    dropped = result.dropped
    return result.text
  })
  return dropped
}

/** The connections that have a block in the file. */
export function blockConnections(file: string): Array<{connection: string; pid: number}> {
  return blocks(readFileSync(file, 'utf8').split('\n')).map(({connection, pid}) => ({connection, pid}))
}
