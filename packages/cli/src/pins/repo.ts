/** Which repository's `.tp/` a pin command works on. */
import {existsSync} from 'node:fs'
import {dirname, join, sep} from 'node:path'
import {UserError} from '@tp/sdk'
import {type LockFile, type PluginsFile, readLock, readPluginsFile} from './files.js'
import {findPinnedRepo} from './select-data-dir.js'

function gitRoot(from: string): string | undefined {
  for (let dir = from; ; dir = dirname(dir)) {
    if (existsSync(join(dir, '.git'))) return dir
    if (dirname(dir) === dir) return undefined
  }
}

/** For `tp plugins pin`: the nearest `.tp/` inside this git repository, else the repository's root, else the working directory. */
export function repoToPin(cwd = process.cwd()): string {
  const git = gitRoot(cwd)
  const pinned = findPinnedRepo(cwd)
  if (pinned && (!git || pinned === git || pinned.startsWith(`${git}${sep}`))) return pinned
  return git ?? cwd
}

export interface PinnedRepo {
  repo: string
  wanted: PluginsFile
  lock: LockFile | undefined
}

/** For unpin and sync: the nearest repository with pins, and its files. */
export async function pinnedRepo(command: string, cwd = process.cwd()): Promise<PinnedRepo> {
  const repo = findPinnedRepo(cwd)
  if (!repo)
    throw new UserError(
      `no .tp/plugins.json in ${cwd} or above it: there are no pins to ${command}`,
      '`tp plugins pin <plugin>` in a repository starts pinning its plugins',
    )
  const wanted = await readPluginsFile(repo)
  if (!wanted)
    throw new UserError(
      `${join(repo, '.tp')} has a plugins.lock but no plugins.json`,
      'restore .tp/plugins.json (from version control), or remove .tp/plugins.lock and pin again',
    )
  return {repo, wanted, lock: await readLock(repo)}
}

/** A bundled plugin cannot be pinned: tp's own copy always loads (and a core extension cannot be shadowed). */
export function refuseBundled(names: string[], bundled: unknown[] | undefined, where: string): void {
  const core = new Set((bundled ?? []).filter((p): p is string => typeof p === 'string'))
  const found = names.filter((n) => core.has(n))
  if (found.length > 0) {
    throw new UserError(
      `${found.join(', ')} ${found.length === 1 ? 'is' : 'are'} bundled with tp: ${where} cannot pin ${found.length === 1 ? 'it' : 'them'}`,
      '`tp version` lists the bundled plugins; pin third-party plugins only',
    )
  }
}
