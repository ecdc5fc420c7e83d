import {chmod, mkdir, readFile, readdir, rename, rm, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import type {ConnectionRecord} from './contracts.js'
import {debugLog, swallow} from './debug.js'
import {UserError} from './errors.js'
import {cacheDir} from './paths.js'

const trace = debugLog('tp:connections')

/** A connection record that exists but cannot be used: not JSON, cut short, or not a record of that connection. */
export interface DamagedRecord {
  name: string
  file: string
  /** What is wrong with it, in words. */
  reason: string
}

/** Why `value` (read from `<name>.json`) is not a usable connection record, or undefined when it is one. */
export function recordProblem(value: unknown, name: string): string | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'it is not a JSON object'
  const r = value as Record<string, unknown>
  const api = r.api as Record<string, unknown> | undefined
  const missing = [
    typeof r.name !== 'string' && 'name',
    typeof r.backend !== 'string' && 'backend',
    typeof r.daemonId !== 'string' && 'daemonId',
    typeof r.namespace !== 'string' && 'namespace',
    (typeof api !== 'object' || api === null || typeof api.url !== 'string' || typeof api.token !== 'string') && 'api.url/api.token',
  ].filter((m): m is string => typeof m === 'string')
  if (missing.length > 0) return `it lacks ${missing.join(', ')}`
  if (r.name !== name) return `it is the record of connection "${String(r.name)}", not of "${name}"`
  if (r.pid !== undefined && typeof r.pid !== 'number') return 'its pid is not a number'
  return undefined
}

/** Thrown by `get` for a record that exists but cannot be used; a UserError with the way out. */
export class DamagedRecordError extends UserError {
  constructor(readonly damaged: DamagedRecord) {
    super(
      `the record of connection "${damaged.name}" is damaged (${damaged.file}: ${damaged.reason})`,
      `\`tp quit --name ${damaged.name}\` stops its daemon (found by its labels or process) and removes the record; \`tp status\` shows what runs`,
    )
  }
}

/**
 * Connection records, one 0600 JSON file each (they hold the daemon's API token). Written
 * atomically (a temporary file renamed over the record), so a reader never sees half a record;
 * one that is damaged anyway (edited, a full disk, another program) is reported by name, never
 * skipped silently.
 */
export class ConnectionStore {
  constructor(readonly dir: string = join(cacheDir(), 'connections')) {}

  file(name: string): string {
    return join(this.dir, `${name}.json`)
  }

  async save(record: ConnectionRecord): Promise<void> {
    await mkdir(this.dir, {recursive: true, mode: 0o700})
    const file = this.file(record.name)
    // the temporary file is not `*.json`: a listing never takes it for a record (node:crypto is
    // got here, not imported: loading it costs every command that loads the sdk a few ms)
    const temporary = join(this.dir, `.${record.name}.${process.pid}.${process.getBuiltinModule('node:crypto').randomBytes(4).toString('hex')}.tmp`)
    try {
      await writeFile(temporary, `${JSON.stringify(record, null, 2)}\n`, {mode: 0o600, flag: 'wx'})
      await chmod(temporary, 0o600) // the umask may have taken bits away; never more than 0600
      await rename(temporary, file)
    } catch (error) {
      await rm(temporary, {force: true}).catch(swallow(trace, `removing ${temporary}`))
      throw error
    }
  }

  /** The record, or why it is damaged; `{}` when there is none. */
  async read(name: string): Promise<{record?: ConnectionRecord; damaged?: DamagedRecord}> {
    const file = this.file(name)
    let text: string
    try {
      text = await readFile(file, 'utf8')
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code
      if (code === 'ENOENT') return {}
      return {damaged: {name, file, reason: `it cannot be read (${code ?? (error as Error).message})`}}
    }
    let value: unknown
    try {
      value = JSON.parse(text)
    } catch {
      return {damaged: {name, file, reason: text.trim() === '' ? 'it is empty' : 'it is not valid JSON (cut short or overwritten?)'}}
    }
    const problem = recordProblem(value, name)
    if (problem) return {damaged: {name, file, reason: problem}}
    return {record: value as ConnectionRecord}
  }

  /** The record of that connection; undefined when there is none; a DamagedRecordError when it is damaged. */
  async get(name: string): Promise<ConnectionRecord | undefined> {
    const {record, damaged} = await this.read(name)
    if (damaged) throw new DamagedRecordError(damaged)
    return record
  }

  /** Every record, usable ones and damaged ones, by name. */
  async scan(): Promise<{records: ConnectionRecord[]; damaged: DamagedRecord[]}> {
    let names: string[]
    try {
      names = await readdir(this.dir)
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return {records: [], damaged: []}
      throw error
    }
    const records: ConnectionRecord[] = []
    const damaged: DamagedRecord[] = []
    for (const file of names.filter((n) => n.endsWith('.json') && !n.startsWith('.')).sort()) {
      const read = await this.read(file.slice(0, -'.json'.length))
      if (read.record) records.push(read.record)
      if (read.damaged) damaged.push(read.damaged)
    }
    return {records, damaged}
  }

  /** The usable records (`scan` also says which are damaged). */
  async list(): Promise<ConnectionRecord[]> {
    return (await this.scan()).records
  }

  async remove(name: string): Promise<void> {
    await rm(this.file(name), {force: true})
  }
}

/** Connection names become container names and file names: keep them simple. */
export const CONNECTION_NAME_PATTERN = /^[a-z0-9][a-z0-9-]{0,30}$/

/**
 * `tp connect` found the connection's daemon running: it is reused, unless the user asked for
 * another namespace than it serves. `connectCommand` is how to connect a second one (e.g. `tp
 * connect --docker`).
 */
export function reuseRunning(existing: ConnectionRecord, options: {name: string; namespace?: string}, connectCommand: string): ConnectionRecord {
  if (options.namespace && options.namespace !== existing.namespace) {
    throw new UserError(
      `connection "${options.name}" is connected to namespace ${existing.namespace}, not ${options.namespace}`,
      `run \`tp quit --name ${options.name}\` first, or connect a second one with \`${connectCommand} --name <other> --namespace ${options.namespace}\``,
    )
  }
  return existing
}
