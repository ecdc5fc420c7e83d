import {homedir} from 'node:os'
import {join} from 'node:path'

/**
 * tp's cache directory: $TP_CACHE_DIR, else $XDG_CACHE_HOME/tp, else ~/.cache/tp. Its own module
 * (`@tp/sdk/paths`) so that hooks run before every command can find it without loading the sdk.
 */
export function cacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.TP_CACHE_DIR) return env.TP_CACHE_DIR
  if (env.XDG_CACHE_HOME) return join(env.XDG_CACHE_HOME, 'tp')
  return join(homedir(), '.cache', 'tp')
}
