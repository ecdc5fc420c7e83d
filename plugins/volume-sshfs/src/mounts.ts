import {readFileSync} from 'node:fs'
import {readFile} from 'node:fs/promises'
import {findExecutable, run, runSync, sleep} from './run.js'

/** One line of /proc/self/mountinfo: where, and what file system type (`fuse.sshfs`). */
export interface MountEntry {
  mountPoint: string
  fsType: string
  source: string
}

export function parseMountinfo(text: string): MountEntry[] {
  const entries: MountEntry[] = []
  for (const line of text.split('\n')) {
    const [left, right] = line.split(' - ')
    if (!right) continue
    const [fsType = '', source = ''] = right.split(' ')
    entries.push({mountPoint: unescapeMountPath(left.split(' ')[4] ?? ''), fsType, source: unescapeMountPath(source)})
  }
  return entries
}

function unescapeMountPath(path: string): string {
  return path.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(Number.parseInt(octal, 8)))
}

export async function mountEntries(): Promise<MountEntry[]> {
  return parseMountinfo(await readFile('/proc/self/mountinfo', 'utf8'))
}

export function mountEntriesSync(): MountEntry[] {
  return parseMountinfo(readFileSync('/proc/self/mountinfo', 'utf8'))
}

/** Whether something is mounted exactly at dir (any file system: a dead FUSE mount counts too). */
export async function isMounted(dir: string): Promise<boolean> {
  return (await mountEntries()).some((e) => e.mountPoint === dir)
}

/** Whether an sshfs mount is there at dir: what provide waits for before it answers. */
export async function isSshfsMounted(dir: string): Promise<boolean> {
  return (await mountEntries()).some((e) => e.mountPoint === dir && e.fsType === 'fuse.sshfs')
}

/**
 * The ways to take a mount away, mildest first: a normal FUSE unmount (fails while a process uses
 * the mount), then a lazy one (detaches it now; the kernel lets go when the last user does), then
 * the system umount. A command that is not installed is skipped.
 */
const UNMOUNTS: Array<[string, string[]]> = [
  ['fusermount3', ['-u']],
  ['fusermount', ['-u']],
  ['fusermount3', ['-u', '-z']],
  ['fusermount', ['-u', '-z']],
  ['umount', ['-l']],
]

/** Unmounts whatever is mounted at dir; resolves with what went wrong when it is still there. */
export async function unmount(dir: string): Promise<string | undefined> {
  const errors: string[] = []
  for (const [command, args] of UNMOUNTS) {
    if (!(await isMounted(dir))) return undefined
    if (!findExecutable(command)) continue
    const result = await run(command, [...args, dir])
    if (result.code !== 0) errors.push(`${result.command}: ${(result.stderr || result.startError?.message || `exit code ${result.code}`).trim()}`)
  }
  // a lazy unmount may take a moment to leave the table
  for (let i = 0; i < 20 && (await isMounted(dir)); i++) await sleep(25)
  return (await isMounted(dir)) ? errors.join('; ') || 'still mounted' : undefined
}

/** The same, for `process.on('exit')`: lazy at once, nothing else can wait there; whether it is gone. */
export function unmountSync(dir: string): boolean {
  const mounted = () => mountEntriesSync().some((e) => e.mountPoint === dir)
  for (const [command, args] of UNMOUNTS.slice(2)) {
    if (!mounted()) return true
    if (findExecutable(command)) runSync(command, [...args, dir])
  }
  return !mounted()
}

// ---------------------------------------------------------------------------------------------
// Processes

/**
 * A process's start time (clock ticks since boot, /proc/<pid>/stat field 22): with the pid it names
 * one process, even after the pid was reused. Undefined when the process does not exist or is a
 * zombie (dead, not yet reaped).
 */
export function processStartTime(pid: number): string | undefined {
  let stat: string
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  } catch {
    return undefined
  }
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  if (fields[0] === 'Z' || fields[0] === 'X') return undefined
  return fields[19]
}

/** Whether the process that had this pid (and start time, when known) still runs. */
export function processRuns(pid: number, startTime?: string): boolean {
  const now = processStartTime(pid)
  if (now === undefined) return false
  return startTime === undefined || now === startTime
}

/** The command line of a process, as its arguments; empty when it is gone. */
export function processArgs(pid: number): string[] {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean)
  } catch {
    return []
  }
}

/**
 * Whether pid is (still) the sshfs that mounts dir, started as `command`: never signal a process
 * that only reuses its pid.
 */
export function isSshfsFor(pid: number, dir: string, command: string): boolean {
  const args = processArgs(pid)
  return args.length > 0 && args[0] === command && args.at(-1) === dir
}
