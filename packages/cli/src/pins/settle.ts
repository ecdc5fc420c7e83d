/** What pin, unpin and sync share: make the lock satisfy plugins.json, check every tarball, install the set. */
import {join} from 'node:path'
import {UserError} from '@tp/sdk'
import {type LockFile, type PluginsFile, entryProblem, lockPath, lockProblems, lockText, pluginsPath, readLock} from './files.js'
import {installSet} from './install.js'
import {type Resolved, fetchLocked, resolveWanted} from './resolve.js'
import {LOCK_FILE, PINS_DIR, readLockBytes, setDirFor} from './select-data-dir.js'
import {checkSet} from './state.js'

export interface Settled {
  lock: LockFile
  /** the lock's bytes as they are (or will be) on disk: they name the installed set */
  lockBytes: Buffer
  lockChanged: boolean
  setDir: string
  /** false: the set was installed already, exactly as locked */
  installed: boolean
}

export interface SettleOptions {
  repo: string
  wanted: PluginsFile
  lock: LockFile | undefined
  /** fail instead of resolving when the lock does not satisfy plugins.json */
  frozen?: boolean
  /** plugins resolved just now (tp plugins pin) */
  fresh?: Resolved[]
  note: (line: string) => void
}

/**
 * Nothing is written before every tarball has been checked and the set installed; the caller
 * writes `.tp/` afterwards. So a failure (a bad range, an integrity that differs, npm failing)
 * leaves the repository's files and the installed set as they were.
 */
export async function settle(options: SettleOptions): Promise<Settled> {
  const {repo, wanted, lock, frozen, note} = options
  if (frozen) {
    const problems = lockProblems(wanted, lock)
    if (problems.length > 0) {
      throw new UserError(
        `${lock ? lockPath(repo) : join(repo, PINS_DIR, LOCK_FILE)} does not satisfy ${pluginsPath(repo)}: ${problems.join('; ')}. Nothing was changed`,
        'run `tp plugins sync` without --frozen (or `tp plugins pin <plugin>`) and commit .tp/plugins.lock',
      )
    }
  }
  const fresh = new Map((options.fresh ?? []).map((r) => [r.name, r]))
  const next: LockFile = {lockfileVersion: 1, plugins: {}}
  const tarballs = new Map<string, string>()
  for (const [name, w] of Object.entries(wanted.plugins).sort(([a], [b]) => a.localeCompare(b))) {
    const given = fresh.get(name)
    const locked = lock?.plugins[name]
    if (!given && locked && !entryProblem(name, w, locked)) {
      next.plugins[name] = locked
      tarballs.set(name, await fetchLocked(name, locked, repo, note))
      continue
    }
    const resolved = given ?? (await resolveWanted(name, w, repo))
    if (!given) note(`${name}: ${entryProblem(name, w, locked)}; resolved ${resolved.locked.version}`)
    next.plugins[name] = resolved.locked
    tarballs.set(name, resolved.tarball)
  }
  const onDisk = readLockBytes(repo)
  const text = lockText(next)
  // against the lock as it is on disk (callers may have edited theirs), read the same way
  const current = await readLock(repo).catch(() => undefined)
  const lockChanged = !current || lockText(current) !== text
  // an unchanged lock keeps its bytes (and so its set), however it is formatted
  const lockBytes = lockChanged ? Buffer.from(text) : onDisk
  const setDir = setDirFor(lockBytes)
  const ready = checkSet(repo, setDir, lockBytes).problems.length === 0
  if (!ready) await installSet({repo, setDir, lock: next, lockBytes, tarballs})
  return {lock: next, lockBytes, lockChanged, setDir, installed: !ready}
}

export function describeSet(lock: LockFile): string {
  const names = Object.entries(lock.plugins)
  return names.length === 0 ? 'no plugins' : names.map(([name, l]) => `${name}@${l.version} (${l.resolved})`).join(', ')
}
