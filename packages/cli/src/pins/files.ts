/** `.tp/plugins.json` (what a repository wants) and `.tp/plugins.lock` (exactly what it gets): reading, checking, writing. */
import {existsSync} from 'node:fs'
import {mkdir, readFile, rename, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {UserError} from '@tp/sdk'
import semver from 'semver'
import {LOCK_FILE, PINS_DIR, PLUGINS_FILE} from './select-data-dir.js'

/** One wanted plugin: a semver range, from a registry (the configured one unless named) or from a tarball. */
export interface WantedPlugin {
  version: string
  /** a packed plugin, relative to the repository root (or absolute) */
  tarball?: string
  /** the npm registry it comes from, when not the configured one */
  registry?: string
}

export interface PluginsFile {
  plugins: Record<string, WantedPlugin>
}

/** One locked plugin: the exact version, where its tarball came from and the tarball's sha512 (SRI, as npm writes it). */
export interface LockedPlugin {
  version: string
  /** `file:<path>` (relative to the repository root, or absolute), or the tarball's URL on a registry */
  resolved: string
  integrity: string
  /** the registry it was resolved on (registry pins only) */
  registry?: string
}

export interface LockFile {
  lockfileVersion: 1
  plugins: Record<string, LockedPlugin>
}

const LOCK_HEADER = 'Written by tp plugins pin, unpin and sync. Commit it with plugins.json; tp plugins sync --frozen installs exactly this.'

export const pluginsPath = (repo: string) => join(repo, PINS_DIR, PLUGINS_FILE)
export const lockPath = (repo: string) => join(repo, PINS_DIR, LOCK_FILE)

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

async function readJson(path: string, fix: string): Promise<unknown | undefined> {
  if (!existsSync(path)) return undefined
  const text = await readFile(path, 'utf8')
  try {
    return JSON.parse(text)
  } catch (error) {
    throw new UserError(`${path} is not JSON: ${(error as Error).message}`, fix)
  }
}

export async function readPluginsFile(repo: string): Promise<PluginsFile | undefined> {
  const path = pluginsPath(repo)
  const fix = `correct it (e.g. {"plugins": {"<name>": {"version": "^1.0.0"}}}), or remove the entry and run \`tp plugins pin <plugin>\``
  const json = await readJson(path, fix)
  if (json === undefined) return undefined
  if (!isObject(json) || !isObject(json.plugins)) throw new UserError(`${path} has no "plugins" object`, fix)
  const plugins: Record<string, WantedPlugin> = {}
  for (const [name, value] of Object.entries(json.plugins)) {
    const wanted = typeof value === 'string' ? {version: value} : value
    if (!isObject(wanted) || typeof wanted.version !== 'string') throw new UserError(`${path}: plugin ${name} needs a "version" (a semver range)`, fix)
    if (!semver.validRange(wanted.version)) throw new UserError(`${path}: plugin ${name} has version "${wanted.version}", which is not a semver range`, fix)
    for (const key of ['tarball', 'registry'] as const) {
      if (wanted[key] !== undefined && typeof wanted[key] !== 'string') throw new UserError(`${path}: plugin ${name}: "${key}" must be a string`, fix)
    }
    plugins[name] = {
      version: wanted.version,
      ...(wanted.tarball ? {tarball: wanted.tarball as string} : {}),
      ...(wanted.registry ? {registry: wanted.registry as string} : {}),
    }
  }
  return {plugins}
}

export async function readLock(repo: string): Promise<LockFile | undefined> {
  const path = lockPath(repo)
  const fix = 'restore it from version control, or remove it: `tp plugins sync` then writes it again from plugins.json'
  const json = await readJson(path, fix)
  if (json === undefined) return undefined
  if (!isObject(json) || json.lockfileVersion !== 1 || !isObject(json.plugins)) throw new UserError(`${path} is not a tp plugins lock (lockfileVersion 1)`, fix)
  const plugins: Record<string, LockedPlugin> = {}
  for (const [name, entry] of Object.entries(json.plugins)) {
    if (!isObject(entry) || typeof entry.version !== 'string' || !semver.valid(entry.version)) {
      throw new UserError(`${path}: plugin ${name} has no exact "version"`, fix)
    }
    if (typeof entry.resolved !== 'string' || typeof entry.integrity !== 'string' || !entry.integrity.startsWith('sha512-')) {
      throw new UserError(`${path}: plugin ${name} needs "resolved" and a sha512 "integrity"`, fix)
    }
    plugins[name] = {
      version: entry.version,
      resolved: entry.resolved,
      integrity: entry.integrity,
      ...(typeof entry.registry === 'string' ? {registry: entry.registry} : {}),
    }
  }
  return {lockfileVersion: 1, plugins}
}

/** Why a lock entry does not give what plugins.json wants (undefined: it does). */
export function entryProblem(name: string, wanted: WantedPlugin, locked: LockedPlugin | undefined): string | undefined {
  if (!locked) return `${name} is in plugins.json but not in the lock`
  if (!semver.satisfies(locked.version, wanted.version)) return `${name}: the lock has ${locked.version}, plugins.json wants ${wanted.version}`
  if (wanted.tarball && locked.resolved !== `file:${wanted.tarball}`)
    return `${name}: plugins.json wants the tarball ${wanted.tarball}, the lock has ${locked.resolved}`
  if (!wanted.tarball && locked.resolved.startsWith('file:')) return `${name}: plugins.json wants it from a registry, the lock has ${locked.resolved}`
  if (wanted.registry && locked.registry !== wanted.registry)
    return `${name}: plugins.json wants registry ${wanted.registry}, the lock has ${locked.registry ?? 'none'}`
  return undefined
}

/** Every way the lock does not satisfy plugins.json: missing, out of range, from elsewhere, or no longer wanted. */
export function lockProblems(wanted: PluginsFile, lock: LockFile | undefined): string[] {
  const problems: string[] = []
  for (const [name, w] of Object.entries(wanted.plugins)) {
    const problem = entryProblem(name, w, lock?.plugins[name])
    if (problem) problems.push(problem)
  }
  for (const name of Object.keys(lock?.plugins ?? {})) if (!wanted.plugins[name]) problems.push(`${name} is in the lock but no longer in plugins.json`)
  return problems
}

const sorted = <T>(record: Record<string, T>): Record<string, T> => Object.fromEntries(Object.entries(record).sort(([a], [b]) => a.localeCompare(b)))

export function lockText(lock: LockFile): string {
  return `${JSON.stringify({'//': LOCK_HEADER, lockfileVersion: 1, plugins: sorted(lock.plugins)}, null, 2)}\n`
}

export function pluginsText(file: PluginsFile): string {
  return `${JSON.stringify({plugins: sorted(file.plugins)}, null, 2)}\n`
}

async function writeAtomically(path: string, text: string | Buffer): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}`
  await writeFile(tmp, text)
  await rename(tmp, path)
}

/** Writes both files; the lock as the bytes its installed set was named by (plugins.json first: a lock newer than it would look satisfied by a file that does not yet want it). */
export async function writePinFiles(repo: string, file: PluginsFile, lockBytes: Buffer): Promise<void> {
  await mkdir(join(repo, PINS_DIR), {recursive: true})
  await writeAtomically(pluginsPath(repo), pluginsText(file))
  await writeAtomically(lockPath(repo), lockBytes)
}
