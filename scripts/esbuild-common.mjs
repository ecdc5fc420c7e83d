/**
 * What tp's esbuild bundles share (packages/cli/scripts/bundle.mjs for the CLI,
 * scripts/bundle-plugins.mjs for the core plugins): ES modules for node 20, split into chunks so
 * that an entry loads only its own code, with a real `require` for the CommonJS inside.
 */

import {builtinModules} from 'node:module'

/** Loaded on first use only (patches/: dockerode asks for them for ssh:// engines): never bundled. */
export const LAZY_EXTERNALS = ['ssh2', 'cpu-features', '@grpc/*', 'protobufjs']

/** CommonJS bundled into an ES module (@oclif/core, dockerode) needs a real require. */
export const REQUIRE_BANNER = {js: "import {createRequire as __tpCreateRequire} from 'node:module'; const require = __tpCreateRequire(import.meta.url);"}

const BUILTIN = new Set(builtinModules)

/**
 * Built-ins that an ES module must not `import`: Node 22 and 24 build an imported built-in's
 * namespace from every export, lazy getters included, and `node:http`'s WebSocket and EventSource
 * getters load undici (~90 ms on every command that loads it; the others measured within noise).
 */
const COSTLY_TO_IMPORT = new Set(['http', 'https', 'http2'])

/**
 * Gets Node's built-ins with `process.getBuiltinModule` (Node >= 20.16: the module as `require`
 * returns it, reading only what the code uses) instead of `import` for COSTLY_TO_IMPORT, and, with
 * `requires`, instead of `require` for every built-in that bundled CommonJS requires: such a
 * bundle needs no `require` and no `import.meta` for them, so it can itself be bundled again into
 * CommonJS (the sdk's bundle is, into the agent and daemon). A built-in becomes a small CommonJS
 * module of the bundle; the other imports of built-ins stay imports (each such module would be a
 * chunk file of its own in a split bundle).
 */
export function builtinsWithoutImport({requires = false} = {}) {
  return {
    name: 'builtins-without-import',
    setup(b) {
      b.onResolve({filter: /^[\w/:]+$/}, (args) => {
        if (args.namespace === 'tp-builtin') return undefined
        const name = args.path.replace(/^node:/, '')
        if (!BUILTIN.has(name) && !args.path.startsWith('node:')) return undefined
        const imported = args.kind === 'import-statement' || args.kind === 'dynamic-import'
        if (imported ? !COSTLY_TO_IMPORT.has(name.split('/')[0]) : !(requires && args.kind === 'require-call')) return undefined
        return {path: `node:${name}`, namespace: 'tp-builtin'}
      })
      b.onLoad({filter: /.*/, namespace: 'tp-builtin'}, (args) => ({
        contents: `module.exports = process.getBuiltinModule(${JSON.stringify(args.path)})`,
        loader: 'js',
      }))
    },
  }
}

/** esbuild options for a split ES-module bundle into `outdir`, with its metafile. */
export function splitBundle(outdir) {
  return {
    outdir,
    bundle: true,
    splitting: true,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    chunkNames: 'chunks/[name]-[hash]',
    banner: REQUIRE_BANNER,
    logLevel: 'warning',
    metafile: true,
    plugins: [builtinsWithoutImport()],
  }
}
