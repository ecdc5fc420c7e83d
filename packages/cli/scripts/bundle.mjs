#!/usr/bin/env node
/**
 * Bundles the CLI for start-up speed (`npm run build` runs it after tsc): @oclif/core and tp's
 * commands, hooks and help class into dist/bundle/ (esbuild, ES modules with code splitting).
 * Loading a few files instead of ~170 modules is most of what `tp` costs before a command runs.
 * - Each command stays its own entry file, so oclif still finds commands by file (`oclif.commands`
 *   is ./dist/bundle/commands, listed in oclif.manifest.json) and a command loads only its own code;
 *   what several entries share (@oclif/core first) is one chunk, loaded once.
 * - Every file under src/commands and src/hooks is an entry: a new command needs no list edited.
 * - dockerode is bundled too, as a chunk of its own that only the commands which import it
 *   (`version`, `gc`) load; ssh2 and gRPC stay outside, loaded on first use (patches/).
 * - Workspace packages (@tp/*: the plugin contracts, one copy shared with the plugins) and the
 *   core oclif plugins stay outside; src/main.ts copes with their own copy of @oclif/core.
 * - Code that finds files of this package finds them from its package.json, not from its own
 *   file (which is at another depth in dist/bundle/ than in dist/).
 */
import {readdirSync, rmSync, writeFileSync} from 'node:fs'
import {dirname, join, relative} from 'node:path'
import {fileURLToPath} from 'node:url'
import {build} from 'esbuild'
import {LAZY_EXTERNALS, splitBundle} from '../../../scripts/esbuild-common.mjs'

const cli = dirname(dirname(fileURLToPath(import.meta.url)))
const src = join(cli, 'src')
const out = join(cli, 'dist/bundle')

const sources = (dir) =>
  readdirSync(join(src, dir), {withFileTypes: true, recursive: true})
    .filter((e) => e.isFile() && e.name.endsWith('.ts') && !e.name.endsWith('.d.ts'))
    .map((e) => relative(src, join(e.parentPath, e.name)))

const entries = ['main.ts', 'version-flag.ts', 'help.ts', ...sources('hooks'), ...sources('commands')]

rmSync(out, {recursive: true, force: true})
const {metafile} = await build({
  absWorkingDir: cli,
  entryPoints: Object.fromEntries(entries.map((f) => [f.replace(/\.ts$/, ''), join(src, f)])),
  ...splitBundle(out),
  // typescript, ts-node, tsx: oclif's development mode (a plugin's .ts sources) loads them when present
  // @oclif/plugin-plugins: a core plugin oclif loads from node_modules anyway (it finds npm beside itself)
  external: ['@tp/*', '@oclif/plugin-plugins', 'typescript', 'ts-node', 'tsx', ...LAZY_EXTERNALS],
})
// which output holds which input: tests use it to tell the files that carry Docker code
writeFileSync(join(out, 'meta.json'), JSON.stringify(metafile))
