import {lstat, mkdir, mkdtemp, readdir, realpath, rmdir, stat} from 'node:fs/promises'
import {dirname, join, resolve} from 'node:path'
import {UserError} from '@tp/sdk'

/** The directory the mounts go under (the handler's TP_ROOT), and which of its directories tp made. */
export interface PreparedRoot {
  /** Real path (no symlinks): what /proc/self/mountinfo will show for the mounts. */
  root: string
  /** Directories created for the root, parents first (empty when the user's directory existed). */
  createdDirs: string[]
}

const NEXT = 'choose an empty directory with --mount=<dir>, or go without the volumes with --mount=false'

function reason(error: unknown): string {
  const code = (error as NodeJS.ErrnoException).code
  switch (code) {
    case 'ENOTDIR':
      return 'a part of that path is a file, not a directory'
    case 'EACCES':
    case 'EPERM':
      return 'permission denied'
    case 'EROFS':
      return 'it is on a read-only file system'
    case 'ENOSPC':
      return 'no space left on the device'
    default:
      return code ?? String(error)
  }
}

/**
 * `--mount=<dir>`: a directory that is empty or does not exist yet (then it is created, with its
 * missing parents, mode 0700), and writable. Checked before anything is mounted; a UserError says
 * what is wrong and leaves the file system as it was.
 */
export async function prepareGivenRoot(given: string): Promise<PreparedRoot> {
  const dir = resolve(given)
  let exists = true
  try {
    const info = await stat(dir)
    if (!info.isDirectory()) throw new UserError(`cannot mount the volumes under ${dir}: it is not a directory`, NEXT)
  } catch (error) {
    if ((error as {kind?: string}).kind === 'user') throw error
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw new UserError(`cannot mount the volumes under ${dir}: ${reason(error)}`, NEXT, {cause: error})
    exists = false
  }

  if (exists) {
    const entries = await readdir(dir).catch((error: unknown) => {
      throw new UserError(`cannot mount the volumes under ${dir}: ${reason(error)}`, NEXT, {cause: error})
    })
    if (entries.length > 0) {
      const shown = entries.slice(0, 3).join(', ') + (entries.length > 3 ? ', …' : '')
      throw new UserError(`cannot mount the volumes under ${dir}: it is not empty (${shown})`, NEXT)
    }
    // writable for real (a read-only mount, an ACL, another user's directory): make and remove a directory
    try {
      await rmdir(await mkdtemp(join(dir, '.tp-write-check-')))
    } catch (error) {
      throw new UserError(`cannot mount the volumes under ${dir}: it is not writable (${reason(error)})`, NEXT, {cause: error})
    }
    return {root: await realpath(dir), createdDirs: []}
  }

  // one level at a time (node's recursive mkdir reports EROFS as ENOENT), so tp knows what it made
  const missing = [dir]
  while (dirname(missing[0]) !== missing[0] && !(await pathExists(dirname(missing[0])))) missing.unshift(dirname(missing[0]))
  const created: string[] = []
  try {
    for (const level of missing) {
      await mkdir(level, {mode: 0o700})
      created.push(level)
    }
  } catch (error) {
    for (const level of created.reverse()) await rmdir(level).catch(() => undefined)
    throw new UserError(`cannot create ${dir} for the volumes: ${reason(error)}`, NEXT, {cause: error})
  }
  // created directories have no symlinks in them: the real root ends in the same names
  const root = await realpath(dir)
  return {root, createdDirs: created.map((_, i) => ancestor(root, created.length - 1 - i))}
}

async function pathExists(path: string): Promise<boolean> {
  try {
    await lstat(path)
    return true
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false
    return true // ENOTDIR, EACCES: mkdir below says why
  }
}

function ancestor(dir: string, levels: number): string {
  let result = dir
  for (let i = 0; i < levels; i++) result = dirname(result)
  return result
}

/** No `--mount`: a fresh private directory, `<tmp>/tp-<intercept>-XXXXXX` (mode 0700). */
export async function freshRoot(parent: string, intercept: string): Promise<PreparedRoot> {
  const safe = intercept.replace(/[^A-Za-z0-9_.-]+/g, '-').slice(0, 60) || 'intercept'
  let dir: string
  try {
    dir = await realpath(await mkdtemp(join(parent, `tp-${safe}-`)))
  } catch (error) {
    throw new UserError(
      `cannot create a directory for the volumes in ${parent}: ${reason(error)}`,
      'set TMPDIR to a writable directory, choose one with --mount=<dir>, or use --mount=false',
      {cause: error},
    )
  }
  return {root: dir, createdDirs: [dir]}
}
