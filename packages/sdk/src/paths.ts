import {createRequire} from 'node:module'
import {homedir} from 'node:os'
import {dirname, join} from 'node:path'

/**
 * tp's cache directory: $TP_CACHE_DIR, else $XDG_CACHE_HOME/tp, else ~/.cache/tp. Its own module
 * (`@tp/sdk/paths`) so that hooks run before every command can find it without loading the sdk.
 */
export function cacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.TP_CACHE_DIR) return env.TP_CACHE_DIR
  if (env.XDG_CACHE_HOME) return join(env.XDG_CACHE_HOME, 'tp')
  return join(homedir(), '.cache', 'tp')
}

/**
 * The directory of an installed package (`name`, which must export its package.json), resolved
 * from the module at `from` (its `import.meta.url`). Code that finds files of its own package uses
 * this rather than its own file's place: it may run from a bundle, at another depth than in dist/.
 */
export function packageDir(name: string, from: string): string {
  return dirname(createRequire(from).resolve(`${name}/package.json`))
}
