// The driver's module: tp's daemon imports this file by its path, alone (tp may copy it into its
// daemon image), so it imports nothing at runtime but Node's own modules; from @tp/sdk only types
// (`import type`, erased when it compiles). Its errors are recognised by their shape (see UserError).
import {spawn} from 'node:child_process'
import {closeSync, openSync} from 'node:fs'
import {mkdir, readFile, readdir, rm, writeFile} from 'node:fs/promises'
import {constants} from 'node:os'
import {dirname, join, resolve} from 'node:path'
import type {
  AgentRequest,
  ClusterDriver,
  ClusterDriverContext,
  InjectedAgent,
  NamespaceInfo,
  NamespaceReach,
  Replica,
  Workload,
  WorkloadMount,
  WorkloadPort,
} from '@tp/sdk'

/** The variable that names the inventory file (default `./tp-inventory.json`). */
export const INVENTORY_ENV = 'TP___ENV___INVENTORY'
export const DEFAULT_INVENTORY = 'tp-inventory.json'
/** The label that names an agent's connection (tp's `tp.connection`): what sweep and gc go by. */
const LABEL_CONNECTION = 'tp.connection'
/** Set in each agent's environment: tells an agent of ours from another process that got its pid. */
const AGENT_TAG_ENV = 'TP___ENV___AGENT'

/**
 * Something the user can fix, with the next step: tp recognises it by its shape (`kind: 'user'`
 * and `next`), so this module needs no runtime import of @tp/sdk's UserError.
 */
export class UserError extends Error {
  readonly kind = 'user' as const
  exitCode = 1
  constructor(
    message: string,
    readonly next: string,
  ) {
    super(message)
    this.name = 'UserError'
  }
}

// ---------------------------------------------------------------------------------------------
// The inventory file

/** A namespace of the inventory file. */
interface InventoryNamespace {
  /** The network handlers join to reach its workloads by name (default: the namespace's name). */
  network?: string
  /** This machine's address as its workloads reach it, if they can. */
  hostAddress?: string
  workloads: Array<{
    name: string
    aliases?: string[]
    /** `80`, or `{port: 53, protocol: 'udp', name: 'dns'}`. */
    ports?: Array<number | {port: number; name?: string; protocol?: 'tcp' | 'udp'}>
    environment?: Record<string, string>
    mounts?: Array<{path: string; readOnly?: boolean}>
    /** Its running instances (none: it is stopped); id defaults to the name, address to 127.0.0.1. */
    replicas?: Array<{name: string; id?: string; address?: string; startedAt?: string}>
  }>
}

/** The inventory, checked: what the driver works from. */
export interface Inventory {
  path: string
  namespaces: Map<string, {network: string; hostAddress?: string; workloads: Workload[]}>
  /** The command line an agent runs (`sh -c`), in the inventory's directory. */
  agentCommand?: string
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/** Reads and checks the inventory file; every problem with it is a UserError that says where. */
export async function readInventory(path: string): Promise<Inventory> {
  const fix = `fix ${path} (its format: the plugin's README)`
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code
    throw new UserError(
      code === 'ENOENT' ? `there is no inventory file at ${path}` : `the inventory file ${path} cannot be read (${code ?? String(error)})`,
      `write one (its format: the plugin's README), or set ${INVENTORY_ENV} to its path`,
    )
  }
  let raw: unknown
  try {
    raw = JSON.parse(text)
  } catch (error) {
    throw new UserError(`the inventory file ${path} is not JSON: ${(error as Error).message}`, fix)
  }
  const bad = (where: string, what: string): never => {
    throw new UserError(`the inventory file ${path}: ${where} ${what}`, fix)
  }
  if (!isObject(raw) || !isObject(raw.namespaces)) return bad('it', 'needs a "namespaces" object (namespace name → {workloads: [...]})')
  if (raw.agent !== undefined && (!isObject(raw.agent) || typeof raw.agent.command !== 'string')) bad('"agent"', 'must be {"command": "<a command line>"}')
  const namespaces: Inventory['namespaces'] = new Map()
  for (const [namespace, value] of Object.entries(raw.namespaces).sort(([a], [b]) => a.localeCompare(b))) {
    const at = `namespaces.${namespace}`
    const ns = value as InventoryNamespace
    if (!isObject(ns) || !Array.isArray(ns.workloads)) bad(at, 'needs a "workloads" array')
    const workloads: Workload[] = ns.workloads.map((w, i) => {
      const where = `${at}.workloads[${i}]`
      if (!isObject(w) || typeof w.name !== 'string' || w.name === '') return bad(where, 'needs a "name"')
      const ports: WorkloadPort[] = (w.ports ?? []).map((p) => {
        const port: WorkloadPort =
          typeof p === 'number' ? {port: p, protocol: 'tcp'} : {port: p?.port, protocol: p?.protocol ?? 'tcp', ...(p?.name ? {name: p.name} : {})}
        if (!Number.isInteger(port.port) || port.port < 1 || port.port > 65535 || !['tcp', 'udp'].includes(port.protocol))
          bad(`${where}.ports`, `has ${JSON.stringify(p)}: give a port number, or {"port": <1-65535>, "protocol": "tcp" | "udp"}`)
        return port
      })
      const environment = w.environment ?? {}
      if (!isObject(environment) || Object.values(environment).some((v) => typeof v !== 'string')) bad(`${where}.environment`, 'must be an object of strings')
      const mounts: WorkloadMount[] = (w.mounts ?? []).map((m) => {
        if (!isObject(m) || typeof m.path !== 'string' || !m.path.startsWith('/'))
          bad(`${where}.mounts`, `has ${JSON.stringify(m)}: give {"path": "/absolute/path"}`)
        return {path: m.path, readOnly: m.readOnly === true}
      })
      const replicas: Replica[] = (w.replicas ?? []).map((r) => {
        if (!isObject(r) || typeof r.name !== 'string' || r.name === '') bad(`${where}.replicas`, `has ${JSON.stringify(r)}: each needs a "name"`)
        return {id: r.id ?? r.name, name: r.name, address: r.address ?? '127.0.0.1', startedAt: r.startedAt ?? ''}
      })
      return {
        name: w.name,
        namespace,
        aliases: Array.isArray(w.aliases) ? w.aliases.map(String) : [],
        ports: ports.sort((a, b) => a.port - b.port),
        environment: environment as Record<string, string>,
        mounts,
        replicas,
      }
    })
    namespaces.set(namespace, {
      network: typeof ns.network === 'string' && ns.network !== '' ? ns.network : namespace,
      ...(typeof ns.hostAddress === 'string' ? {hostAddress: ns.hostAddress} : {}),
      workloads: workloads.sort((a, b) => a.name.localeCompare(b.name)),
    })
  }
  return {path, namespaces, agentCommand: isObject(raw.agent) ? (raw.agent.command as string) : undefined}
}

// ---------------------------------------------------------------------------------------------
// Agents: processes on this machine, each recorded in a file so that any tp process finds them

interface AgentRecord {
  id: string
  name: string
  pid: number
  labels: Record<string, string>
}

function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal) // the agent leads its own process group: its children go too
  } catch {
    // already gone
  }
}

/** Whether the recorded agent still runs (where /proc says so, the process is really ours). */
async function running(agent: AgentRecord): Promise<boolean> {
  try {
    process.kill(agent.pid, 0)
  } catch {
    return false
  }
  // no /proc (macOS): the pid is all there is to go by
  if (process.platform !== 'linux') return true
  const environ = await readFile(`/proc/${agent.pid}/environ`, 'utf8').catch(() => '')
  return environ.split('\0').includes(`${AGENT_TAG_ENV}=${agent.id}`)
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** Resolves true once the agent has gone, false after `ms`. */
async function gone(agent: AgentRecord, ms: number, exited?: Promise<unknown>): Promise<boolean> {
  if (exited) {
    let timer: NodeJS.Timeout | undefined
    const ended = await Promise.race([exited.then(() => true), new Promise<boolean>((r) => (timer = setTimeout(() => r(false), ms)))])
    clearTimeout(timer)
    return ended
  }
  const deadline = Date.now() + ms
  while (Date.now() < deadline) {
    if (!(await running(agent))) return true
    await sleep(50)
  }
  return !(await running(agent))
}

/** A command's exit code, or 128 + the signal's number (as a shell gives it). */
function exitCode(code: number | null, signal: NodeJS.Signals | null): number | undefined {
  if (code !== null) return code
  const number = signal ? constants.signals[signal] : undefined
  return number === undefined ? undefined : 128 + number
}

/**
 * A cluster whose namespaces and workloads are listed in a JSON inventory file (read again on
 * every call, so editing it changes the cluster). Agents are processes on this machine: the
 * inventory's `agent.command`, started for each replica.
 */
export class InventoryDriver implements ClusterDriver {
  private readonly agentsDir: string
  /** The agents this process started: their `exited`. */
  private readonly exits = new Map<string, Promise<number | undefined>>()

  constructor(
    readonly inventoryPath: string,
    cacheDir: string,
  ) {
    this.agentsDir = join(cacheDir, '__NAME__-agents')
  }

  private inventory(): Promise<Inventory> {
    return readInventory(this.inventoryPath)
  }

  async namespaces(): Promise<NamespaceInfo[]> {
    const inventory = await this.inventory()
    return [...inventory.namespaces].map(([name, ns]) => ({name, workloads: ns.workloads.filter((w) => w.replicas.length > 0).length}))
  }

  async resolveNamespace(requested?: string): Promise<string> {
    const namespaces = await this.namespaces()
    const described = namespaces.map((n) => `${n.name} (${n.workloads} running)`).join(', ') || '(none)'
    if (requested !== undefined) {
      if (namespaces.some((n) => n.name === requested)) return requested
      throw new UserError(`namespace "${requested}" is not in the inventory ${this.inventoryPath}`, `pass --namespace with one of: ${described}`)
    }
    const withWorkloads = namespaces.filter((n) => n.workloads > 0)
    if (withWorkloads.length === 1) return withWorkloads[0].name
    if (withWorkloads.length === 0)
      throw new UserError(
        `no namespace of the inventory ${this.inventoryPath} has a running workload (one with replicas)`,
        'list the replicas of your workloads in it',
      )
    throw new UserError(`several namespaces of the inventory have running workloads: ${described}`, 'pass --namespace <namespace> to choose one')
  }

  /** A namespace's entry; a UserError when the inventory has no such namespace. */
  private async namespace(namespace: string): Promise<{network: string; hostAddress?: string; workloads: Workload[]}> {
    const inventory = await this.inventory()
    const ns = inventory.namespaces.get(namespace)
    if (!ns) {
      const names = [...inventory.namespaces.keys()].join(', ') || '(none)'
      throw new UserError(`namespace "${namespace}" is not in the inventory ${this.inventoryPath}`, `use one of: ${names}`)
    }
    return ns
  }

  /** The running workloads (those with replicas), sorted by name. */
  async workloads(namespace: string): Promise<Workload[]> {
    return (await this.namespace(namespace)).workloads.filter((w) => w.replicas.length > 0)
  }

  async workload(namespace: string, name: string): Promise<Workload> {
    const all = (await this.namespace(namespace)).workloads
    const byName = all.filter((w) => w.name === name)
    const matches = byName.length > 0 ? byName : all.filter((w) => w.aliases.includes(name))
    if (matches.length > 1)
      throw new UserError(
        `"${name}" is an alias of ${matches.length} workloads in namespace ${namespace}: ${matches.map((w) => w.name).join(', ')}`,
        'name one by its name',
      )
    const [found] = matches
    if (found && found.replicas.length > 0) return found
    const running = all.filter((w) => w.replicas.length > 0).map((w) => w.name)
    if (found)
      throw new UserError(
        `${found.name} is stopped in namespace ${namespace}: the inventory lists no replicas of it`,
        `add its replicas to ${this.inventoryPath}, then intercept again`,
      )
    throw new UserError(
      `no workload named "${name}" in namespace ${namespace}`,
      running.length > 0 ? `workloads there: ${running.join(', ')}` : `namespace ${namespace} has no running workloads`,
    )
  }

  /** The inventory is the truth: a replica it no longer lists was removed, one with another startedAt restarted. */
  async whyNotRunning(namespace: string, replica: Replica): Promise<string | undefined> {
    const inventory = await this.inventory().catch(() => undefined)
    if (!inventory) return undefined // the inventory cannot say now
    const now = inventory.namespaces
      .get(namespace)
      ?.workloads.flatMap((w) => w.replicas)
      .find((r) => r.id === replica.id)
    if (!now) return 'was removed from the inventory'
    return replica.startedAt && now.startedAt !== replica.startedAt ? `restarted (at ${now.startedAt})` : undefined
  }

  /** Handlers reach the namespace on its `network` (default: its name); this machine at its `hostAddress`. */
  async reach(namespace: string): Promise<NamespaceReach> {
    const ns = await this.namespace(namespace)
    return {containerNetwork: ns.network, ...(ns.hostAddress ? {hostAddress: ns.hostAddress} : {})}
  }

  /** Nothing to ship: agents are processes on this machine. Checks that the inventory says what they run. */
  async ensureImages(): Promise<{runtime: string}> {
    await this.agentCommand()
    return {runtime: 'process'}
  }

  private async agentCommand(): Promise<{command: string; cwd: string}> {
    const inventory = await this.inventory()
    if (!inventory.agentCommand?.trim())
      throw new UserError(`the inventory ${this.inventoryPath} does not say what an agent runs`, 'add "agent": {"command": "<a command line>"} to it')
    return {command: inventory.agentCommand, cwd: dirname(inventory.path)}
  }

  /**
   * Runs the inventory's `agent.command` (`sh -c`, in the inventory's directory) as a detached
   * process with the request's environment and TP_ROLE, TP_NAMESPACE, TP_WORKLOAD, TP_REPLICA;
   * its output goes to `<cacheDir>/__NAME__-agents/<id>.log`.
   */
  async injectAgent(request: AgentRequest): Promise<InjectedAgent> {
    const {command, cwd} = await this.agentCommand()
    await mkdir(this.agentsDir, {recursive: true})
    const id = `${request.name.replace(/[^\w.-]/g, '_')}-${Date.now().toString(36)}`
    const log = openSync(join(this.agentsDir, `${id}.log`), 'a')
    const child = spawn('/bin/sh', ['-c', command], {
      cwd,
      detached: true,
      stdio: ['ignore', log, log],
      env: {
        ...process.env,
        ...request.env,
        TP_ROLE: request.role,
        TP_NAMESPACE: request.namespace,
        TP_WORKLOAD: request.workload.name,
        TP_REPLICA: request.replica.name,
        [AGENT_TAG_ENV]: id,
      },
    })
    closeSync(log)
    // not unref'd: a process that awaits `exited` stays alive until the agent ends
    const exited = new Promise<number | undefined>((resolve) => {
      child.once('exit', (code, signal) => resolve(exitCode(code, signal)))
      child.once('error', () => resolve(undefined))
    })
    await new Promise<void>((resolve, reject) => {
      child.once('spawn', resolve)
      child.once('error', (error) =>
        reject(new UserError(`the agent command of ${this.inventoryPath} cannot start in ${cwd}: ${error.message}`, 'check that directory and /bin/sh')),
      )
    })
    const record: AgentRecord = {id, name: request.name, pid: child.pid as number, labels: request.labels}
    await writeFile(join(this.agentsDir, `${id}.json`), JSON.stringify(record))
    this.exits.set(id, exited)
    void exited.then(() => this.exits.delete(id))
    return {id, name: request.name, exited}
  }

  private async records(): Promise<AgentRecord[]> {
    const files = await readdir(this.agentsDir).catch(() => [] as string[])
    const records = await Promise.all(
      files
        .filter((f) => f.endsWith('.json'))
        .map((f) =>
          readFile(join(this.agentsDir, f), 'utf8')
            .then((text) => JSON.parse(text) as AgentRecord)
            .catch(() => undefined),
        ),
    )
    return records.filter((r): r is AgentRecord => r !== undefined)
  }

  /** Stops an agent by id or name: SIGTERM to its process group, SIGKILL after `graceSeconds`; forgets it. */
  async removeAgent(agent: string, options: {graceSeconds?: number} = {}): Promise<void> {
    const graceSeconds = options.graceSeconds ?? 10
    for (const record of (await this.records()).filter((r) => r.id === agent || r.name === agent)) {
      const exited = this.exits.get(record.id)
      if (exited || (await running(record))) {
        signalGroup(record.pid, 'SIGTERM')
        if (!(await gone(record, graceSeconds * 1000, exited))) {
          signalGroup(record.pid, 'SIGKILL')
          await gone(record, 5000, exited)
        }
      }
      await rm(join(this.agentsDir, `${record.id}.json`), {force: true})
      await rm(join(this.agentsDir, `${record.id}.log`), {force: true})
    }
  }

  /** Nothing to restore: an agent here is a process of its own, and changes no replica's traffic. */
  async restoreTraffic(): Promise<void> {}

  /** Removes the connection's agents (those this machine's tp started, recorded under the cache directory). */
  async sweep(connection: string): Promise<string[]> {
    const lines: string[] = []
    for (const record of (await this.records()).filter((r) => r.labels[LABEL_CONNECTION] === connection)) {
      await this.removeAgent(record.id, {graceSeconds: 2})
      lines.push(`removed agent ${record.name} (process ${record.pid})`)
    }
    return lines
  }

  /** `tp gc`: the agents of connections that are not live. */
  async gc(options: {live: ReadonlySet<string>; dryRun: boolean}): Promise<string[]> {
    const lines: string[] = []
    for (const record of await this.records()) {
      const connection = record.labels[LABEL_CONNECTION]
      if (connection && options.live.has(connection)) continue
      if (!options.dryRun) await this.removeAgent(record.id, {graceSeconds: 2})
      lines.push(`process ${record.pid} ${record.name} (agent, connection ${connection ?? '-'})`)
    }
    return lines
  }
}

/** What tp's daemon (and `load()`) call: the inventory from $TP___ENV___INVENTORY, else ./tp-inventory.json. */
export default function createDriver(context: ClusterDriverContext): ClusterDriver {
  return new InventoryDriver(resolve(process.env[INVENTORY_ENV] || DEFAULT_INVENTORY), context.cacheDir)
}
