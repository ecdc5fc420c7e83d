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
 * Node's own modules through `process.getBuiltinModule`, never `import`: an ES module's `import …
 * from 'node:http'` makes Node 22 and 24 build its namespace from every export, lazy getters
 * included — `node:http`'s WebSocket and EventSource load undici, ~90 ms on every command that
 * loads it; getBuiltinModule (Node >= 20.16) returns the module as `require` does, and reads only
 * what the code uses (~8 ms). A built-in, imported or required by bundled code, becomes a small
 * CommonJS module that gets it that way: the bundle needs no `require` or `import.meta` for it, so
 * it can itself be bundled again into CommonJS (the sdk's bundle is, into the agent and daemon).
 */
export const builtinsWithoutImport = {
  name: 'builtins-without-import',
  setup(b) {
    b.onResolve({filter: /^[\w/:]+$/}, (args) => {
      if (args.namespace === 'tp-builtin') return undefined
      if (!args.path.startsWith('node:') && !BUILTIN.has(args.path)) return undefined
      return {path: args.path.startsWith('node:') ? args.path : `node:${args.path}`, namespace: 'tp-builtin'}
    })
    b.onLoad({filter: /.*/, namespace: 'tp-builtin'}, (args) => ({contents: `module.exports = process.getBuiltinModule(${JSON.stringify(args.path)})`, loader: 'js'}))
  },
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
    plugins: [builtinsWithoutImport],
  }
}
