import {mkdirSync, readFileSync, renameSync, rmdirSync, unlinkSync, writeFileSync} from 'node:fs'
import {mkdir, readFile, readdir, rename, rmdir, unlink, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import type {Logger} from '@tp/sdk'
import {isMounted, isSshfsFor, processRuns, processStartTime, unmount, unmountSync} from './mounts.js'
import {sleep} from './run.js'

/**
 * What one tp process changed on this machine, kept in `<cacheDir>/mounts/<pid>.json` (0600) while
 * it runs, so that the next tp process can undo it if this one dies without cleaning up (kill -9,
 * a crash): the mounts it made and the directories it created (only those: never a directory that
 * was there before, never a file).
 */
export interface MountRecord {
  pid: number
  /** With the pid, names this process even after the pid is reused (/proc/<pid>/stat). */
  startTime?: string
  provisions: ProvisionRecord[]
}

/** One `provide()`: one intercept's root and mounts. */
export interface ProvisionRecord {
  id: string
  intercept: string
  root: string
  /** Directories this provision created, parents before children. */
  createdDirs: string[]
  /** Mount points, parents before children; sshfs's pid and command once it was started. */
  mounts: Array<{dir: string; pid?: number; command?: string}>
}

export function recordsDir(cacheDir: string): string {
  return join(cacheDir, 'mounts')
}

/** This process's record for one cache directory; every change is written before it is made. */
export class ProcessRecord {
  private readonly record: MountRecord
  private writes: Promise<void> = Promise.resolve()

  constructor(readonly cacheDir: string) {
    this.record = {pid: process.pid, startTime: processStartTime(process.pid), provisions: []}
  }

  get file(): string {
    return join(recordsDir(this.cacheDir), `${process.pid}.json`)
  }

  get provisions(): readonly ProvisionRecord[] {
    return this.record.provisions
  }

  /** Applies change to the record and writes it (atomically, one write at a time). */
  update(change: (record: MountRecord) => void): Promise<void> {
    change(this.record)
    const snapshot = JSON.stringify(this.record, null, 2)
    const empty = this.record.provisions.length === 0
    const write = this.writes.then(() => this.write(snapshot, empty))
    this.writes = write.catch(() => undefined)
    return write
  }

  private async write(snapshot: string, empty: boolean): Promise<void> {
    if (empty) {
      await unlink(this.file).catch(ignoreMissing)
      return
    }
    await mkdir(recordsDir(this.cacheDir), {recursive: true, mode: 0o700})
    const temporary = `${this.file}.tmp`
    await writeFile(temporary, snapshot, {mode: 0o600})
    await rename(temporary, this.file)
  }

  /**
   * For `process.on('exit')`, once everything was undone as far as it goes: keeps only what is
   * still there (for the next tp process's sweep), synchronously.
   */
  replaceSync(provisions: ProvisionRecord[]): void {
    this.record.provisions.splice(0, this.record.provisions.length, ...provisions)
    try {
      if (this.record.provisions.length === 0) unlinkSync(this.file)
      else {
        mkdirSync(recordsDir(this.cacheDir), {recursive: true, mode: 0o700})
        writeFileSync(`${this.file}.tmp`, JSON.stringify(this.record, null, 2), {mode: 0o600})
        renameSync(`${this.file}.tmp`, this.file)
      }
    } catch {
      // nothing more can be done at exit; the next tp process sweeps what is left
    }
  }
}

function ignoreMissing(error: NodeJS.ErrnoException): void {
  if (error.code !== 'ENOENT') throw error
}

// ---------------------------------------------------------------------------------------------
// Undoing a provision (release, sweep, exit)

/** Stops the sshfs of a mount if it still runs and is really ours (pid and command line). */
async function endSshfs(mount: ProvisionRecord['mounts'][number]): Promise<void> {
  if (!mount.pid || !mount.command) return
  for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
    if (!isSshfsFor(mount.pid, mount.dir, mount.command)) return
    try {
      process.kill(mount.pid, signal)
    } catch {
      return
    }
    for (let i = 0; i < 40 && isSshfsFor(mount.pid, mount.dir, mount.command); i++) await sleep(50)
  }
}

/**
 * Undoes a provision made by a process that is gone: unmounts (children first), ends its sshfs
 * processes, removes the directories it created (children first; rmdir only, so a directory that
 * holds anything is left). Resolves with one line per thing undone and one per thing left.
 */
export async function undoProvision(provision: ProvisionRecord, dryRun = false): Promise<{done: string[]; left: string[]}> {
  const done: string[] = []
  const left: string[] = []
  for (const mount of [...provision.mounts].reverse()) {
    if (await isMounted(mount.dir)) {
      if (dryRun) done.push(`would unmount ${mount.dir}`)
      else {
        const problem = await unmount(mount.dir)
        if (problem) left.push(`${mount.dir} is still mounted: ${problem}`)
        else done.push(`unmounted ${mount.dir}`)
      }
    }
    if (!dryRun) await endSshfs(mount)
  }
  for (const dir of [...provision.createdDirs].reverse()) {
    if (dryRun) {
      done.push(`would remove ${dir}`)
      continue
    }
    try {
      await rmdir(dir)
      done.push(`removed ${dir}`)
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code
      if (code !== 'ENOENT') left.push(`${dir} was not removed (${code === 'ENOTEMPTY' ? 'it holds files tp did not create' : code})`)
    }
  }
  return {done, left}
}

/** The same at process exit: synchronous, lazy unmounts, best effort; whether all is undone. */
export function undoProvisionSync(provision: ProvisionRecord): boolean {
  let complete = true
  for (const mount of [...provision.mounts].reverse()) {
    if (!unmountSync(mount.dir)) complete = false
    if (mount.pid && mount.command && isSshfsFor(mount.pid, mount.dir, mount.command)) {
      try {
        process.kill(mount.pid, 'SIGTERM')
      } catch {
        // gone
      }
    }
  }
  for (const dir of [...provision.createdDirs].reverse()) {
    try {
      rmdirSync(dir)
    } catch (error) {
      // not empty: left to the next sweep (or to the user)
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') complete = false
    }
  }
  return complete
}

// ---------------------------------------------------------------------------------------------
// The sweep

const RECORD = /^(\d+)\.json$/
const CLAIMED = /^(\d+)\.json\.sweeping-(\d+)$/
const TEMPORARY = /^(\d+)\.json\.tmp$/

export interface SweepOptions {
  cacheDir: string
  log?: Logger
  /** Only say what would be undone. */
  dryRun?: boolean
}

/**
 * Undoes what tp processes that no longer run left behind (kill -9, a crash): their sshfs mounts
 * and the directories they created, then deletes their records. Records of running processes are
 * left alone. Two sweeps at once never undo the same record: each claims a record by renaming it
 * first. Resolves with one line per thing undone (or that would be, with dryRun).
 */
export async function sweepMounts(options: SweepOptions): Promise<string[]> {
  const dir = recordsDir(options.cacheDir)
  const lines: string[] = []
  for (const name of await readdir(dir).catch(() => [] as string[])) {
    const record = RECORD.exec(name)
    const claimed = CLAIMED.exec(name)
    let file = join(dir, name)
    const temporary = TEMPORARY.exec(name)
    if (temporary) {
      // a record write cut short by the process's death
      if (!options.dryRun && !processRuns(Number(temporary[1]))) await unlink(file).catch(() => undefined)
      continue
    }
    if (record) {
      const pid = Number(record[1])
      const content = await readRecord(file)
      if (content === 'missing') continue
      if (content === 'unreadable') {
        if (!processRuns(pid)) {
          if (!options.dryRun) await unlink(file).catch(() => undefined)
          options.log?.warn(`tp: ${file} could not be read; removed it (its mounts, if any, must be undone by hand: see \`mount -t fuse.sshfs\`)`)
        }
        continue
      }
      if (processRuns(pid, content.startTime)) continue
    } else if (claimed) {
      // a sweep that died half-way: take it over once its sweeper is gone
      if (processRuns(Number(claimed[2]))) continue
    } else continue
    if (!options.dryRun) {
      const mine = join(dir, `${(record ?? claimed)![1]}.json.sweeping-${process.pid}`)
      try {
        await rename(file, mine)
      } catch {
        continue // another sweep took it
      }
      file = mine
    }
    const content = await readRecord(file)
    if (typeof content === 'string') continue
    let left = false
    for (const provision of content.provisions) {
      const result = await undoProvision(provision, options.dryRun)
      lines.push(...result.done.map((line) => `${line} (left by tp process ${content.pid}, intercept ${provision.intercept})`))
      for (const line of result.left) options.log?.warn(`tp: ${line}`)
      left ||= result.left.length > 0
    }
    if (!options.dryRun) {
      // what could not be undone stays recorded for the next sweep, under the dead process's name
      if (left) await rename(file, join(dir, `${content.pid}.json`)).catch(() => undefined)
      else await unlink(file).catch(() => undefined)
    }
  }
  for (const line of lines) options.log?.debug(`tp: ${line}`)
  return lines
}

async function readRecord(file: string): Promise<MountRecord | 'missing' | 'unreadable'> {
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch {
    return 'missing'
  }
  try {
    const parsed = JSON.parse(text) as MountRecord
    if (typeof parsed.pid !== 'number' || !Array.isArray(parsed.provisions)) return 'unreadable'
    return parsed
  } catch {
    return 'unreadable'
  }
}

/** Synchronous read, for tests and tools. */
export function readRecordSync(file: string): MountRecord | undefined {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as MountRecord
  } catch {
    return undefined
  }
}
