/** From what a user names (a registry package with a range, or a packed plugin) or what a lock says, to a tarball checked by its sha512. */
import {existsSync} from 'node:fs'
import {mkdtemp, readFile, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {isAbsolute, join, relative, resolve, sep} from 'node:path'
import {UserError} from '@tp/sdk'
import semver from 'semver'
import type {LockedPlugin, WantedPlugin} from './files.js'
import {FEW_RETRIES, NpmError, npmPack, runNpm} from './npm.js'
import {cachedTarball, integrityOf, storeTarball} from './store.js'

export type PinArg = {kind: 'tarball'; path: string; range?: string} | {kind: 'registry'; name: string; range?: string}

/** A plugin resolved to one version: what plugins.json wants, what the lock records, and its tarball in the cache. */
export interface Resolved {
  name: string
  wanted: WantedPlugin
  locked: LockedPlugin
  tarball: string
}

const NAME = /^(@[a-z0-9][a-z0-9._~-]*\/)?[a-z0-9][a-z0-9._~-]*$/

function checkRange(range: string | undefined, example: string): void {
  if (range !== undefined && !semver.validRange(range)) throw new UserError(`"${range}" is not a semver range`, `write e.g. ${example}`)
}

/** `name`, `name@range`, `@scope/name@range`; a path (`/…`, `./…`, `../…`, `….tgz`) is a packed plugin, `….tgz@range` with a range. */
export function parsePinArg(arg: string): PinArg {
  const tarball = /^(.*\.(?:tgz|tar\.gz))(?:@([^/]+))?$/.exec(arg)
  if (tarball || /^(\/|\.\.?(\/|$)|~\/)/.test(arg) || (sep === '\\' && isAbsolute(arg))) {
    const path = tarball ? tarball[1] : arg
    checkRange(tarball?.[2], `${path}@^1.0.0`)
    return {kind: 'tarball', path, range: tarball?.[2]}
  }
  const at = arg.indexOf('@', arg.startsWith('@') ? 1 : 0)
  const name = at > 0 ? arg.slice(0, at) : arg
  const range = at > 0 ? arg.slice(at + 1) : undefined
  if (!NAME.test(name)) {
    throw new UserError(
      `"${arg}" is neither an npm package name nor a path to a packed plugin`,
      'write a package (`acme`, `@scope/acme@^1.2.0`) or a path (`./vendor/acme-1.0.0.tgz`)',
    )
  }
  checkRange(range, `${name}@^1.0.0`)
  return {kind: 'registry', name, range}
}

async function withTemp<T>(use: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'tp-pins-'))
  try {
    return await use(dir)
  } finally {
    await rm(dir, {recursive: true, force: true})
  }
}

/** How a path is written into `.tp/`: relative to the repository when inside it (so a team shares it), else absolute. */
function pathInRepo(repo: string, abs: string): string {
  const rel = relative(repo, abs)
  return rel.startsWith('..') || isAbsolute(rel) ? abs : rel.split(sep).join('/')
}

export async function resolveTarball(abs: string, range: string | undefined, repo: string): Promise<Resolved> {
  if (!existsSync(abs)) throw new UserError(`no such tarball: ${abs}`, "give the path of a packed plugin (`npm pack` in the plugin's directory writes one)")
  const bytes = await readFile(abs)
  const packed = await withTemp((dir) => npmPack(abs, dir)).catch((error: unknown) => {
    if (error instanceof NpmError)
      throw new UserError(`${abs} is not a packed npm package: ${error.failure.summary}`, "`npm pack` in the plugin's directory writes one")
    throw error
  })
  const wantedRange = range ?? `^${packed.version}`
  if (!semver.satisfies(packed.version, wantedRange)) {
    throw new UserError(
      `${abs} is ${packed.name}@${packed.version}, which ${wantedRange} does not allow`,
      `pin it without a range, or give a range that allows ${packed.version}`,
    )
  }
  const ref = pathInRepo(repo, abs)
  const integrity = integrityOf(bytes)
  return {
    name: packed.name,
    wanted: {version: wantedRange, tarball: ref},
    locked: {version: packed.version, resolved: `file:${ref}`, integrity},
    tarball: await storeTarball(bytes),
  }
}

function registryError(error: NpmError, name: string, range: string | undefined, registry: string): UserError {
  const {code, summary} = error.failure
  if (code === 'E404')
    return new UserError(`${name} is not on the registry ${registry}`, 'check the name; --registry <url> (or TP_NPM_REGISTRY) names another registry')
  if (code === 'ETARGET') {
    return new UserError(
      `no version of ${name} on ${registry} satisfies ${range}`,
      `\`npm view ${name} versions --registry ${registry}\` lists them; pin one of those`,
    )
  }
  return new UserError(
    `cannot get ${name}${range ? `@${range}` : ''} from the registry ${registry}: ${summary}`,
    'check that the registry is reachable (--registry <url>, TP_NPM_REGISTRY)',
  )
}

/** The registry npm is configured with (for the lock), unless one is named. */
export async function effectiveRegistry(given: string | undefined): Promise<string> {
  const registry = given ?? (await runNpm(['config', 'get', 'registry'], tmpdir())).trim()
  return registry.endsWith('/') ? registry : `${registry}/`
}

/** The registry's URL of a version's tarball (npm pack does not say it): what the lock records as where it came from. */
async function tarballUrl(name: string, version: string, registry: string): Promise<string> {
  const stdout = await runNpm(['view', `${name}@${version}`, 'dist.tarball', '--json', `--registry=${registry}`, ...FEW_RETRIES], tmpdir())
  return JSON.parse(stdout) as string
}

export async function resolveRegistry(name: string, range: string | undefined, given: string | undefined): Promise<Resolved> {
  const registry = await effectiveRegistry(given)
  return withTemp(async (dir) => {
    try {
      const packed = await npmPack(range ? `${name}@${range}` : name, dir, registry)
      const bytes = await readFile(join(dir, packed.filename))
      const integrity = integrityOf(bytes)
      const resolved = await tarballUrl(packed.name, packed.version, registry)
      return {
        name: packed.name,
        wanted: {version: range ?? `^${packed.version}`, ...(given ? {registry} : {})},
        locked: {version: packed.version, resolved, integrity, registry},
        tarball: await storeTarball(bytes),
      }
    } catch (error) {
      if (error instanceof NpmError) throw registryError(error, name, range, registry)
      throw error
    }
  })
}

/** Resolves what plugins.json wants of `name` again (a sync whose lock does not satisfy it). */
export function resolveWanted(name: string, wanted: WantedPlugin, repo: string): Promise<Resolved> {
  if (wanted.tarball) {
    return resolveTarball(resolve(repo, wanted.tarball), wanted.version, repo).then((r) => {
      if (r.name !== name)
        throw new UserError(`${wanted.tarball} is the package ${r.name}, not ${name}`, `correct .tp/plugins.json, or \`tp plugins pin ${wanted.tarball}\``)
      return {...r, wanted}
    })
  }
  return resolveRegistry(name, wanted.version, wanted.registry).then((r) => ({...r, wanted}))
}

/**
 * The tarball a lock entry names, checked against its integrity, as a path in the cache. A packed
 * plugin is read again from its path whenever it is there (other bytes there are an error, even
 * with a good copy cached: the lock no longer describes that file); when it is gone, or for a
 * registry's tarball, the cached copy is used, so a sync works offline after the first.
 */
export async function fetchLocked(name: string, locked: LockedPlugin, repo: string, note: (line: string) => void): Promise<string> {
  const mismatch = (where: string, found: string) =>
    new UserError(
      `the integrity of ${name}@${locked.version} differs: .tp/plugins.lock says ${locked.integrity}, ${where} is ${found}`,
      `if the new tarball is intended, \`tp plugins pin ${locked.resolved.startsWith('file:') ? locked.resolved.slice(5) : name}\` records it; otherwise restore the one the lock names. Nothing was changed`,
    )
  if (locked.resolved.startsWith('file:')) {
    const path = resolve(repo, locked.resolved.slice(5))
    if (existsSync(path)) {
      const bytes = await readFile(path)
      const found = integrityOf(bytes)
      if (found !== locked.integrity) throw mismatch(path, found)
      return storeTarball(bytes)
    }
    const cached = await cachedTarball(locked.integrity)
    if (!cached)
      throw new UserError(
        `${path}, the tarball locked for ${name}@${locked.version}, is not there (and not in tp's cache)`,
        `restore it, or pin another: tp plugins pin <path to ${name}'s .tgz>`,
      )
    note(`${path} is not there; using the copy tp cached when it was pinned (same sha512)`)
    return cached
  }
  const cached = await cachedTarball(locked.integrity)
  if (cached) return cached
  return withTemp(async (dir) => {
    let packed: Awaited<ReturnType<typeof npmPack>>
    try {
      packed = await npmPack(locked.resolved, dir, locked.registry)
    } catch (error) {
      if (!(error instanceof NpmError)) throw error
      throw new UserError(
        `cannot fetch ${name}@${locked.version} from ${locked.resolved}: ${error.failure.summary}`,
        'the registry must be reachable once; after one sync tp works offline from its cache',
      )
    }
    const bytes = await readFile(join(dir, packed.filename))
    const found = integrityOf(bytes)
    if (found !== locked.integrity) throw mismatch(locked.resolved, found)
    return storeTarball(bytes)
  })
}
