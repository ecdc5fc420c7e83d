/**
 * What is installed in a lock's set, and whether it still is what the lock says. `tp plugins sync`
 * writes `tp-pins.json` into the set last; `tp intercept`, `tp spec run`, `tp version` and
 * `tp extensions` read it and hash each plugin's installed files again (its own files, not its
 * node_modules: a few milliseconds for a plugin of a few hundred kB).
 */
import {existsSync, readdirSync, readFileSync, readlinkSync} from 'node:fs'
import {join} from 'node:path'
import {UserError} from '@tp/sdk'
import {LOCK_FILE, PINS_DIR, REPO_ENV, readLockBytes} from './select-data-dir.js'

export const STATE_FILE = 'tp-pins.json'

export interface InstalledState {
  /** sha256 of the lock's bytes this set was installed for */
  lock: string
  repo: string
  plugins: Record<string, {version: string; integrity: string; files: string}>
}

/** node:crypto when a hash is made, not when `tp version` (which imports this module) starts. */
const createHash: typeof import('node:crypto').createHash = (...args) => process.getBuiltinModule('node:crypto').createHash(...args)

export function lockDigest(lockBytes: string | Buffer): string {
  return createHash('sha256').update(lockBytes).digest('hex')
}

/** One hash over a directory's files (paths and contents, symlinks by target), nested node_modules left out. */
export function hashInstalledFiles(root: string): string {
  const hash = createHash('sha512')
  const walk = (dir: string, prefix: string) => {
    const entries = readdirSync(dir, {withFileTypes: true}).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
    for (const entry of entries) {
      const rel = `${prefix}${entry.name}`
      const full = join(dir, entry.name)
      if (entry.isDirectory()) {
        if (entry.name !== 'node_modules') walk(full, `${rel}/`)
      } else if (entry.isSymbolicLink()) {
        hash.update(`L\0${rel}\0${readlinkSync(full)}\0`)
      } else if (entry.isFile()) {
        hash.update(`F\0${rel}\0`)
        hash.update(readFileSync(full))
        hash.update('\0')
      }
    }
  }
  walk(root, '')
  return `sha512-${hash.digest('base64')}`
}

export function installedRoot(setDir: string, name: string): string {
  return join(setDir, 'node_modules', ...name.split('/'))
}

export interface PinnedEntry {
  name: string
  version: string
  resolved: string
  /** undefined: installed and unchanged since the sync */
  problem?: string
}

export interface PinStatus {
  repo: string
  /** `<repo>/.tp` */
  pinsDir: string
  setDir: string
  entries: PinnedEntry[]
  /** everything that makes the set unusable; empty when it is ready */
  problems: string[]
}

function readState(setDir: string): InstalledState | undefined {
  try {
    return JSON.parse(readFileSync(join(setDir, STATE_FILE), 'utf8')) as InstalledState
  } catch {
    return undefined
  }
}

/** Whether the set in `setDir` is exactly what the lock (`lockBytes`, as on disk) of `repo` says. */
export function checkSet(repo: string, setDir: string, lockBytes: Buffer): PinStatus {
  const pinsDir = join(repo, PINS_DIR)
  const status: PinStatus = {repo, pinsDir, setDir, entries: [], problems: []}
  if (lockBytes.length === 0) {
    status.problems.push(`${pinsDir} has no ${LOCK_FILE} yet`)
    return status
  }
  let locked: Record<string, {version: string; resolved: string; integrity: string}>
  try {
    locked = (JSON.parse(lockBytes.toString('utf8')) as {plugins: typeof locked}).plugins ?? {}
  } catch {
    status.problems.push(`${join(pinsDir, LOCK_FILE)} is not JSON`)
    return status
  }
  const state = readState(setDir)
  const current = state?.lock === lockDigest(lockBytes) ? state : undefined
  for (const [name, lock] of Object.entries(locked)) {
    const entry: PinnedEntry = {name, version: lock.version, resolved: lock.resolved}
    const installed = current?.plugins[name]
    const root = installedRoot(setDir, name)
    if (!installed || installed.version !== lock.version || installed.integrity !== lock.integrity) entry.problem = 'is not installed'
    else if (!existsSync(join(root, 'package.json'))) entry.problem = 'is not installed any more (its copy is gone)'
    else if (hashInstalledFiles(root) !== installed.files) entry.problem = 'has installed files that changed since the sync'
    if (entry.problem) status.problems.push(`${name}@${lock.version} ${entry.problem}`)
    status.entries.push(entry)
  }
  if (!current && status.entries.length === 0) status.problems.push('the pinned set is not installed')
  return status
}

/** The status of the pinned set this tp runs with (undefined outside a repository with pins). */
export function pinStatus(env: NodeJS.ProcessEnv = process.env): PinStatus | undefined {
  const repo = env[REPO_ENV]
  const setDir = env.TP_DATA_DIR
  if (!repo || !setDir) return undefined
  return checkSet(repo, setDir, readLockBytes(repo))
}

/** Refuses to go on (intercepts, spec runs) unless the pinned set is installed exactly as locked. */
export function requirePinnedSet(env: NodeJS.ProcessEnv = process.env): void {
  const status = pinStatus(env)
  if (!status || status.problems.length === 0) return
  throw new UserError(
    `the plugins pinned by ${status.pinsDir} are not ready: ${status.problems.join('; ')}`,
    `run \`tp plugins sync\` in ${status.repo} (it installs exactly what ${PINS_DIR}/${LOCK_FILE} says)`,
  )
}
