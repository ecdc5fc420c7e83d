/**
 * Which plugin directory tp loads its installed plugins from. Runs in bin/run.js before oclif
 * starts, on every command: it imports nothing but node built-ins and does a few `stat`s.
 *
 * Inside a repository with pins (a `.tp/plugins.json` or `.tp/plugins.lock` in the working
 * directory or above it), oclif's data directory (`TP_DATA_DIR`) becomes the directory of the
 * lock's installed set, `<user data dir>/pins/sets/<hash of the lock>`, so exactly the pinned
 * plugins load there, and never the user's own (`tp plugins install`, `tp plugins link`). Two
 * repositories with different locks use different directories on one machine.
 */
import {existsSync, readFileSync} from 'node:fs'
import {homedir} from 'node:os'
import {dirname, join} from 'node:path'

export const PINS_DIR = '.tp'
export const PLUGINS_FILE = 'plugins.json'
export const LOCK_FILE = 'plugins.lock'

/** Set by selectDataDir: the repository whose `.tp/` chose the data directory. */
export const REPO_ENV = 'TP_PINS_REPO'
/** Set by selectDataDir: `TP_DATA_DIR` as it was before ('' when it was not set). */
const OUTER_ENV = 'TP_PINS_OUTER_DATA_DIR'
/** `TP_NO_PINS=1`: ignore `.tp/` (load the user's plugins as outside any repository). */
const OFF_ENV = 'TP_NO_PINS'

/** The nearest directory, from `from` upwards, whose `.tp/` has a plugins file or a lock. */
export function findPinnedRepo(from: string): string | undefined {
  let dir = from
  for (;;) {
    if (existsSync(join(dir, PINS_DIR, PLUGINS_FILE)) || existsSync(join(dir, PINS_DIR, LOCK_FILE))) return dir
    const parent = dirname(dir)
    if (parent === dir) return undefined
    dir = parent
  }
}

/** The user's own tp data directory, as oclif computes it (`TP_DATA_DIR`, else XDG), whatever a pin made of `TP_DATA_DIR`. */
export function userDataDir(env: NodeJS.ProcessEnv = process.env): string {
  const given = env[REPO_ENV] === undefined ? env.TP_DATA_DIR : env[OUTER_ENV]
  if (given) return given
  const base = env.XDG_DATA_HOME || (process.platform === 'win32' && env.LOCALAPPDATA) || join(homedir(), '.local/share')
  return join(base, 'tp')
}

/** Where installed sets and the tarball cache live. */
export function pinsHome(env: NodeJS.ProcessEnv = process.env): string {
  return join(userDataDir(env), 'pins')
}

/**
 * The name of a lock's installed set: a 53-bit hash of the lock file's bytes (cyrb53), and their
 * length. Not node:crypto: loading it would cost every command ~2.5 ms, and the name only has to
 * tell locks apart (the set's own record is checked against the lock anyway).
 */
export function lockKey(lockBytes: string | Buffer): string {
  const bytes = typeof lockBytes === 'string' ? Buffer.from(lockBytes) : lockBytes
  let h1 = 0xdeadbeef
  let h2 = 0x41c6ce57
  for (const b of bytes) {
    h1 = Math.imul(h1 ^ b, 2654435761)
    h2 = Math.imul(h2 ^ b, 1597334677)
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507) ^ Math.imul(h2 ^ (h2 >>> 13), 3266489909)
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507) ^ Math.imul(h1 ^ (h1 >>> 13), 3266489909)
  const hash = 4294967296 * (2097151 & h2) + (h1 >>> 0)
  return `${hash.toString(16).padStart(14, '0')}-${bytes.length.toString(16)}`
}

export function setDirFor(lockBytes: string | Buffer, env: NodeJS.ProcessEnv = process.env): string {
  return join(pinsHome(env), 'sets', lockKey(lockBytes))
}

export function readLockBytes(repo: string): Buffer {
  try {
    return readFileSync(join(repo, PINS_DIR, LOCK_FILE))
  } catch {
    return Buffer.alloc(0)
  }
}

/**
 * Points `TP_DATA_DIR` at the installed set of the nearest repository's lock, and returns that
 * repository. A tp started by a tp (a handler, a script of a spec) inherits these variables: they
 * are undone first, so the child decides from its own working directory.
 */
export function selectDataDir(env: NodeJS.ProcessEnv = process.env, cwd = process.cwd()): string | undefined {
  if (env[REPO_ENV] !== undefined) {
    if (env[OUTER_ENV]) env.TP_DATA_DIR = env[OUTER_ENV]
    else delete env.TP_DATA_DIR
    delete env[REPO_ENV]
    delete env[OUTER_ENV]
  }
  if (env[OFF_ENV] === '1' || env[OFF_ENV] === 'true') return undefined
  const repo = findPinnedRepo(cwd)
  if (!repo) return undefined
  const dataDir = setDirFor(readLockBytes(repo), env)
  env[OUTER_ENV] = env.TP_DATA_DIR ?? ''
  env[REPO_ENV] = repo
  env.TP_DATA_DIR = dataDir
  return repo
}
