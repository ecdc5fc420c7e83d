#!/usr/bin/env -S node --
// Node 20 looks for `--env-file` on its whole command line up to the first `--`, after the script
// too, and exits 9 ("node: x: not found") before any of tp runs when that file does not exist
// (tp's `--env-file` names a file tp is about to write). Executed directly (`tp`, ./run.js), the
// shebang's `node --` stops that search. Run as `node packages/cli/bin/run.js`, write a `--`
// after the script: `node packages/cli/bin/run.js -- intercept … --env-file x`; it is dropped here.
// dist/bundle/ holds oclif and tp's commands, bundled by `npm run build` (scripts/bundle.mjs).
import {answeredVersionFlag} from '../dist/bundle/version-flag.js'
import {selectDataDir} from '../dist/pins/select-data-dir.js'

if (process.argv[2] === '--') process.argv.splice(2, 1)

// `tp --version` is printed without loading oclif; everything else is oclif's
if (!(await answeredVersionFlag(process.argv.slice(2)))) {
  selectDataDir() // inside a repository with .tp/ pins: load its pinned plugins, not the user's
  const {execute} = await import('../dist/bundle/main.js')
  await execute({dir: import.meta.url})
}
