#!/usr/bin/env node
/**
 * Bundles the CLI for start-up speed (`npm run build` runs it after tsc): @oclif/core and tp's
 * commands, hooks and help class into dist/bundle/ (esbuild, ES modules with code splitting).
 * Loading a few files instead of ~170 modules is most of what `tp` costs before a command runs.
 * - Each command stays its own entry file, so oclif still finds commands by file (`oclif.commands`
 *   is ./dist/bundle/commands, listed in oclif.manifest.json) and a command loads only its own code;
 *   what several entries share (@oclif/core first) is one chunk, loaded once.
 * - Every file under src/commands and src/hooks is an entry: a new command needs no list edited.
 * - `tp version` and `tp --help` answered without oclif (src/fast-start.ts) is an entry of its own:
 *   it shares no chunk with oclif's code.
 * - What bin/run.js runs before oclif (src/launch.ts: `tp --version`, the engine prefetch of `tp
 *   version`, the pins' data directory) is dist/bundle/launch.js, one file bundled on its own.
 * - dockerode is bundled too, as a chunk of its own that only the commands which import it
 *   (`version`, `gc`) load; ssh2 and gRPC stay outside, loaded on first use (patches/).
 * - Workspace packages (@tp/*: the plugin contracts, one copy shared with the plugins) and the
 *   core oclif plugins stay outside; src/main.ts copes with their own copy of @oclif/core.
 * - Code that finds files of this package finds them from its package.json, not from its own
 *   file (which is at another depth in dist/bundle/ than in dist/).
 * - `node:http` is never imported (scripts/esbuild-common.mjs says why).
 * - The CommonJS packages that @oclif/core requires on first use only (patches/: minimatch,
 *   tinyglobby, lilconfig, ejs, semver, cli-spinners; and ansi-styles' color-convert) are each a
 *   CommonJS file of their own under dist/bundle/lazy/, required when used: the chunk every
 *   command loads does not carry them, and start-up does not compile them (~380 KB of 700).
 * - `wsl-utils` (oclif's and `tp --version`'s "is this WSL?") is its `isWsl` only, from `is-wsl`:
 *   the rest of it (PowerShell, for oclif's shell detection on Windows) loads on first use, and
 *   with it `node:child_process`, which nothing else at start-up needs.
 */
import {readdirSync, rmSync, writeFileSync} from 'node:fs'
import {createRequire} from 'node:module'
import {dirname, join, relative} from 'node:path'
import {fileURLToPath} from 'node:url'
import {build} from 'esbuild'
import {LAZY_EXTERNALS, builtinsWithoutImport, splitBundle} from '../../../scripts/esbuild-common.mjs'

const cli = dirname(dirname(fileURLToPath(import.meta.url)))
const src = join(cli, 'src')
const out = join(cli, 'dist/bundle')

const sources = (dir) =>
  readdirSync(join(src, dir), {withFileTypes: true, recursive: true})
    .filter((e) => e.isFile() && e.name.endsWith('.ts') && !e.name.endsWith('.d.ts'))
    .map((e) => relative(src, join(e.parentPath, e.name)))

const entries = ['main.ts', 'help.ts', 'fast-start.ts', ...sources('hooks'), ...sources('commands')]

/** `wsl-utils` as its isWsl (is-wsl, as wsl-utils has it) and a powerShellPath that loads the rest. */
const wslUtilsIsWsl = {
  name: 'wsl-utils-is-wsl',
  setup(b) {
    b.onResolve({filter: /^wsl-utils$/}, (args) => (args.namespace === 'tp-wsl' ? undefined : {path: 'wsl-utils', namespace: 'tp-wsl'}))
    b.onLoad({filter: /.*/, namespace: 'tp-wsl'}, async () => {
      const real = await b.resolve('wsl-utils', {kind: 'import-statement', resolveDir: cli, namespace: 'tp-wsl'})
      if (real.errors.length > 0) return {errors: real.errors}
      return {
        resolveDir: dirname(real.path),
        loader: 'js',
        contents: "export {default as isWsl} from 'is-wsl'\nexport const powerShellPath = async () => (await import('wsl-utils')).powerShellPath()\n",
      }
    })
  },
}

/**
 * The text helpers of oclif's help formatter, imported by src/root-help.ts (the root help page
 * without oclif), as @oclif/core resolves them (its own wrap-ansi 7, supports-color 8): the page's
 * wrapping and colours then come from the same code as oclif's.
 */
const OCLIF_TEXT = /^(ansis|indent-string|string-width|supports-color|widest-line|wrap-ansi)$/
const oclifHelpDir = join(dirname(createRequire(import.meta.url).resolve('@oclif/core')), 'help')
const oclifTextCopies = {
  name: 'oclif-text-copies',
  setup(b) {
    b.onResolve({filter: OCLIF_TEXT}, (args) =>
      args.importer === join(src, 'root-help.ts') ? b.resolve(args.path, {kind: args.kind, resolveDir: oclifHelpDir}) : undefined,
    )
  },
}

/** CommonJS packages required on first use only (see above), and by what: name → the requiring package. */
const LAZY_CJS = new Map([
  ...['minimatch', 'tinyglobby', 'lilconfig', 'ejs', 'semver', 'cli-spinners'].map((name) => [name, '@oclif/core']),
  ['color-convert', 'ansi-styles'], // oclif's help colours through ansi-styles, which requires it for 256 and RGB colours only
])
const lazyCjs = new Map()
const lazyCjsFiles = {
  name: 'lazy-cjs',
  setup(b) {
    b.onResolve({filter: /^[\w-]+$/}, async (args) => {
      const by = LAZY_CJS.get(args.path)
      const importer = args.importer.split(/[/\\]node_modules[/\\]/).at(-1)
      if (args.kind !== 'require-call' || !by || !importer.startsWith(`${by}/`)) return undefined
      const real = await b.resolve(args.path, {kind: args.kind, resolveDir: args.resolveDir})
      if (real.errors.length > 0) return {errors: real.errors}
      const known = lazyCjs.get(args.path)
      if (known && known !== real.path) return {errors: [{text: `@oclif/core requires two copies of ${args.path}: ${known}, ${real.path}`}]}
      lazyCjs.set(args.path, real.path)
      return {path: args.path, namespace: 'tp-lazy-cjs'}
    })
    // found from this package's package.json (its exports name it): the requiring chunk's own depth in dist/bundle/ is esbuild's choice
    b.onLoad({filter: /.*/, namespace: 'tp-lazy-cjs'}, (args) => ({
      loader: 'js',
      contents: `const {dirname, join} = require('node:path')\nmodule.exports = require(join(dirname(require.resolve('@tp/cli/package.json')), 'dist/bundle/lazy/${args.path}.cjs'))\n`,
    }))
  },
}

rmSync(out, {recursive: true, force: true})
const {metafile} = await build({
  absWorkingDir: cli,
  entryPoints: Object.fromEntries(entries.map((f) => [f.replace(/\.ts$/, ''), join(src, f)])),
  ...splitBundle(out),
  // typescript, ts-node, tsx: oclif's development mode (a plugin's .ts sources) loads them when present
  // @oclif/plugin-plugins: a core plugin oclif loads from node_modules anyway (it finds npm beside itself)
  external: ['@tp/*', '@oclif/plugin-plugins', 'typescript', 'ts-node', 'tsx', ...LAZY_EXTERNALS],
  plugins: [builtinsWithoutImport(), wslUtilsIsWsl, lazyCjsFiles, oclifTextCopies],
})
// what bin/run.js loads before oclif (src/launch.ts): one file, nothing shared with the rest
await build({
  absWorkingDir: cli,
  entryPoints: [join(src, 'launch.ts')],
  outfile: join(out, 'launch.js'),
  bundle: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  plugins: [builtinsWithoutImport(), wslUtilsIsWsl],
  logLevel: 'warning',
})
for (const [name, file] of lazyCjs) {
  await build({
    entryPoints: [file],
    outfile: join(out, 'lazy', `${name}.cjs`),
    bundle: true,
    format: 'cjs',
    platform: 'node',
    target: 'node20',
    logLevel: 'warning',
  })
}
// which output holds which input: tests use it to tell the files that carry Docker code
writeFileSync(join(out, 'meta.json'), JSON.stringify(metafile))
