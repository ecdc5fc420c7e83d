import type {Hook} from '@oclif/core'
import {REPO_ENV} from '../pins/select-data-dir.js'

/** plugin-plugins' commands that change the user's plugin list (which tp does not load inside a repository with pins). */
const CHANGES_USER_PLUGINS = new Set(['plugins:install', 'plugins:link', 'plugins:uninstall', 'plugins:update', 'plugins:reset'])

/**
 * Inside a repository with pins, oclif's data directory is the pinned set: `tp plugins install`
 * there would add to that set behind the lock's back (and the next sync would drop it).
 */
const hook: Hook<'prerun'> = async function ({Command}) {
  const repo = process.env[REPO_ENV]
  if (!repo || !CHANGES_USER_PLUGINS.has(Command.id)) return
  const command = `tp ${Command.id.replace(':', ' ')}`
  process.stderr.write(
    `tp: ${command} changes your own plugins, which tp does not load inside ${repo} (its plugins are pinned by ${repo}/.tp)\n` +
      `  → use \`tp plugins pin <plugin>\` / \`tp plugins unpin <plugin>\` for this repository, or run ${command} outside it (or with TP_NO_PINS=1)\n`,
  )
  this.exit(1)
}

export default hook
