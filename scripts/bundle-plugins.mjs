#!/usr/bin/env node
/**
 * Bundles each core plugin's oclif hooks for start-up speed (`npm run build` runs it after tsc),
 * as scripts/../packages/cli/scripts/bundle.mjs does for the CLI itself: a plugin's hook file and
 * what its descriptors' load() imports (a handler, a backend, a provider, with dockerode and execa)
 * become a few files under the plugin's dist/bundle/ instead of ~150 modules. `docker-run`'s
 * handler loads in ~35 ms instead of ~150 ms, on the path of every intercept.
 * - A plugin's package.json names its hooks in dist/bundle/ (`oclif.hooks`); each is bundled from
 *   the file of the same name in dist/ (tsc's output). Its exports (dist/) are unchanged.
 * - @tp/sdk stays outside: one copy of the contracts and errors per process (its `paths`, pure
 *   functions that the hooks run before every command use, is bundled in). Other workspace
 *   packages are bundled in; code that finds files of its package finds them from its
 *   package.json (packages/images/src/runtime.ts), never from its own file. @tp/daemon stays
 *   outside (the host daemon's own process loads it); ssh2 and gRPC too, loaded on first use (patches/).
 * - A plugin that names a `tp.daemonModule` ({from, to}: a cluster driver's) also gets that
 *   module as one self-contained ES module, everything bundled in but Node's own (and the lazy
 *   externals): the daemon imports it, on this machine or in tp's daemon image.
 * - dockerode is bundled once, into @tp/sdk/dockerode (dist/vendor/dockerode.js), and every
 *   plugin bundle imports that: one copy per process (~25 ms to load) instead of one per plugin.
 *   It is a devDependency of @tp/sdk (built in, so a third party's plugin does not install it);
 *   the ssh2 it loads for ssh:// engines comes from tp's own dependencies.
 */
import {readFileSync, readdirSync, rmSync, writeFileSync} from 'node:fs'
import {dirname, join} from 'node:path'
import {fileURLToPath} from 'node:url'
import {build} from 'esbuild'
import {builtinsWithoutImport, LAZY_EXTERNALS, REQUIRE_BANNER, splitBundle} from './esbuild-common.mjs'

const root = dirname(dirname(fileURLToPath(import.meta.url)))
const BUNDLED = './dist/bundle/'

// the one copy of dockerode the plugins share
await build({
  absWorkingDir: join(root, 'packages/sdk'),
  stdin: {contents: "export {default} from 'dockerode'", resolveDir: join(root, 'packages/sdk'), loader: 'js'},
  outfile: join(root, 'packages/sdk/dist/vendor/dockerode.js'),
  bundle: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  external: LAZY_EXTERNALS,
  banner: REQUIRE_BANNER,
  logLevel: 'warning',
})
/** Every plugin's `import Docker from 'dockerode'` becomes an import of that shared copy. */
const sharedDockerode = {
  name: 'shared-dockerode',
  setup(b) {
    b.onResolve({filter: /^dockerode$/}, () => ({path: '@tp/sdk/dockerode', external: true}))
  },
}

/**
 * @tp/sdk stays outside, but for `@tp/sdk/paths`: pure functions, bundled in, so that the hooks run
 * before every command (init) do not resolve the sdk's package (a few ms each). An `external`
 * entry would take the package's subpaths with it.
 */
const sdkOutside = {
  name: 'sdk-outside',
  setup(b) {
    b.onResolve({filter: /^@tp\/sdk(\/.*)?$/}, (args) => (args.path === '@tp/sdk/paths' ? undefined : {path: args.path, external: true}))
  },
}

for (const name of readdirSync(join(root, 'plugins')).sort()) {
  const dir = join(root, 'plugins', name)
  const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'))
  const daemonModule = pkg.tp?.daemonModule
  if (daemonModule) {
    await build({
      absWorkingDir: dir,
      entryPoints: [join(dir, daemonModule.from)],
      outfile: join(dir, daemonModule.to),
      bundle: true,
      format: 'esm',
      platform: 'node',
      target: 'node20',
      banner: REQUIRE_BANNER,
      external: LAZY_EXTERNALS,
      legalComments: 'none',
      logLevel: 'warning',
    })
  }
  const hooks = Object.values(pkg.oclif?.hooks ?? {}).flat()
  if (hooks.length === 0) continue
  const entries = {}
  for (const hook of hooks) {
    if (!hook.startsWith(BUNDLED)) throw new Error(`${name}: hook ${hook} is not under ${BUNDLED} (see scripts/bundle-plugins.mjs)`)
    const inside = hook.slice(BUNDLED.length).replace(/\.js$/, '')
    entries[inside] = join(dir, 'dist', `${inside}.js`)
  }
  const out = join(dir, 'dist/bundle')
  rmSync(out, {recursive: true, force: true})
  const {metafile} = await build({
    absWorkingDir: dir,
    entryPoints: entries,
    ...splitBundle(out),
    external: ['@tp/daemon', '@oclif/*', ...LAZY_EXTERNALS],
    plugins: [builtinsWithoutImport(), sharedDockerode, sdkOutside],
  })
  writeFileSync(join(out, 'meta.json'), JSON.stringify(metafile))
}
