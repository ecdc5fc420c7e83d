#!/usr/bin/env -S node --
// Node 20 looks for `--env-file` on its whole command line up to the first `--`, after the script
// too, and exits 9 ("node: x: not found") before any of tp runs when that file does not exist
// (tp's `--env-file` names a file tp is about to write). Executed directly (`tp`, ./run.js), the
// shebang's `node --` stops that search. Run as `node packages/cli/bin/run.js`, write a `--`
// after the script: `node packages/cli/bin/run.js -- intercept … --env-file x`; it is dropped here.
// dist/bundle/ holds oclif and tp's commands, bundled by `npm run build` (scripts/bundle.mjs).
import module from 'node:module'

// Node >= 22.1 keeps V8's compiled code of every module loaded from here on (in the OS's temporary
// directory, node-compile-cache/; NODE_DISABLE_COMPILE_CACHE=1 turns it off): the next start reads
// it instead of compiling oclif and tp again. Node 20 has no such cache (bench/README.md). The
// imports below are dynamic so that they come after it.
module.enableCompileCache?.()

if (process.argv[2] === '--') process.argv.splice(2, 1)

// what comes before oclif, one file (src/launch.ts)
const {answeredVersionFlag, fastCommand, prefetchEngineVersion, selectDataDir} = await import('../dist/bundle/launch.js')
const argv = process.argv.slice(2)
// `tp --version` is printed without loading oclif; everything else is oclif's
if (!(await answeredVersionFlag(argv))) {
  prefetchEngineVersion(argv) // `tp version`: the engine is asked now, its answer comes while oclif loads
  selectDataDir() // inside a repository with .tp/ pins: load its pinned plugins, not the user's
  // `tp version`, `tp --help`: answered from the build's snapshot of oclif when nothing differs from it (src/fast-start.ts)
  const fast = fastCommand(argv) !== undefined && (await (await import('../dist/bundle/fast-start.js')).answered(argv, new URL('..', import.meta.url)))
  if (!fast) {
    const {execute} = await import('../dist/bundle/main.js')
    await execute({dir: import.meta.url})
  }
}
