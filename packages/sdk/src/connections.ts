import {mkdir, readFile, readdir, rm, writeFile, chmod} from 'node:fs/promises'
import {homedir} from 'node:os'
import {join} from 'node:path'
import type {ConnectionRecord} from './contracts.js'
import {debugLog, swallow} from './debug.js'

const trace = debugLog('tp:connections')

/** tp's cache directory: $TP_CACHE_DIR, else $XDG_CACHE_HOME/tp, else ~/.cache/tp. */
export function cacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.TP_CACHE_DIR) return env.TP_CACHE_DIR
  if (env.XDG_CACHE_HOME) return join(env.XDG_CACHE_HOME, 'tp')
  return join(homedir(), '.cache', 'tp')
}

/** Connection records, one 0600 JSON file each (they hold the daemon's API token). */
export class ConnectionStore {
  constructor(readonly dir: string = join(cacheDir(), 'connections')) {}

  private file(name: string): string {
    return join(this.dir, `${name}.json`)
  }

  async save(record: ConnectionRecord): Promise<void> {
    await mkdir(this.dir, {recursive: true, mode: 0o700})
    const file = this.file(record.name)
    await writeFile(file, JSON.stringify(record, null, 2) + '\n', {mode: 0o600})
    await chmod(file, 0o600) // writeFile keeps the mode of an existing file
  }

  async get(name: string): Promise<ConnectionRecord | undefined> {
    try {
      return JSON.parse(await readFile(this.file(name), 'utf8')) as ConnectionRecord
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined
      throw error
    }
  }

  async list(): Promise<ConnectionRecord[]> {
    let names: string[]
    try {
      names = await readdir(this.dir)
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return []
      throw error
    }
    const records: ConnectionRecord[] = []
    for (const name of names.filter((n) => n.endsWith('.json')).sort()) {
      const record = await this.get(name.slice(0, -'.json'.length)).catch(swallow(trace, `reading connection record ${name}`))
      if (record) records.push(record)
    }
    return records
  }

  async remove(name: string): Promise<void> {
    await rm(this.file(name), {force: true})
  }
}

/** Connection names become container names and file names: keep them simple. */
export const CONNECTION_NAME_PATTERN = /^[a-z0-9][a-z0-9-]{0,30}$/
