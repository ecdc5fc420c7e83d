/** Installs a lock's set of plugins into its own directory, from tarballs already checked against the lock. */
import {existsSync} from 'node:fs'
import {mkdir, readFile, rename, rm, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {UserError, packageDir} from '@tp/sdk'
import type {LockFile} from './files.js'
import {NpmError, runNpm} from './npm.js'
import {type InstalledState, STATE_FILE, hashInstalledFiles, installedRoot, lockDigest} from './state.js'

/**
 * Builds the set next to `setDir` and swaps it in only when npm succeeded and every plugin is
 * there at its locked version: a failed install leaves what was installed before. The set's
 * package.json is what oclif reads as its user plugins, and it gives `@tp/sdk` as tp's own copy
 * (`file:`), as `tp plugins install` does, so plugins that peer-depend on it install and load.
 */
export async function installSet(options: {
  repo: string
  setDir: string
  lock: LockFile
  lockBytes: string | Buffer
  tarballs: Map<string, string>
}): Promise<void> {
  const {repo, setDir, lock, lockBytes, tarballs} = options
  const staging = `${setDir}.tmp-${process.pid}-${Date.now()}`
  const sdk = packageDir('@tp/sdk', import.meta.url)
  const names = Object.keys(lock.plugins).sort()
  await mkdir(staging, {recursive: true})
  try {
    const pjson = {
      private: true,
      description: `The plugins pinned by ${join(repo, '.tp')}, installed by tp plugins sync. Do not edit: tp plugins sync replaces it.`,
      dependencies: {'@tp/sdk': `file:${sdk}`, ...Object.fromEntries(names.map((name) => [name, `file:${tarballs.get(name)}`]))},
      oclif: {schema: 1, plugins: names.map((name) => ({name, type: 'user', tag: lock.plugins[name].version}))},
    }
    await writeFile(join(staging, 'package.json'), `${JSON.stringify(pjson, null, 2)}\n`)
    try {
      await runNpm(['install', '--omit=dev', '--prefer-offline', '--no-save'], staging)
    } catch (error) {
      if (!(error instanceof NpmError)) throw error
      throw new UserError(
        `installing the plugins pinned by ${join(repo, '.tp')} failed: ${error.failure.summary}`,
        'TP_DEBUG=tp:cli:pins shows the npm command; a plugin whose own dependencies come from a registry needs it reachable at its first sync',
      )
    }
    const state: InstalledState = {lock: lockDigest(lockBytes), repo, plugins: {}}
    for (const name of names) {
      const root = installedRoot(staging, name)
      const version = existsSync(join(root, 'package.json'))
        ? (JSON.parse(await readFile(join(root, 'package.json'), 'utf8')) as {version: string}).version
        : undefined
      if (version !== lock.plugins[name].version) {
        throw new UserError(
          `the tarball locked for ${name}@${lock.plugins[name].version} installed ${version ? `version ${version}` : 'nothing'}`,
          `pin it again: tp plugins pin ${name}`,
        )
      }
      state.plugins[name] = {version, integrity: lock.plugins[name].integrity, files: hashInstalledFiles(root)}
    }
    await writeFile(join(staging, STATE_FILE), `${JSON.stringify(state, null, 2)}\n`)
    const old = `${setDir}.old-${process.pid}-${Date.now()}`
    if (existsSync(setDir)) await rename(setDir, old)
    await rename(staging, setDir)
    await rm(old, {recursive: true, force: true})
  } finally {
    await rm(staging, {recursive: true, force: true})
  }
}
