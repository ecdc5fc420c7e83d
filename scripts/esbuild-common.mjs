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
 * Node's built-ins through `process.getBuiltinModule` (Node >= 20.16: the module as `require`
 * returns it), never through `import`, in bundled code:
 * - an ES module's `import … from 'node:http'` makes Node 22 and 24 build its namespace from every
 *   export, lazy getters included: `node:http`'s WebSocket and EventSource load undici (~90 ms);
 *   `node:process`'s and `node:util`'s load their reports, parsers and MIME types;
 * - esbuild hoists a bundled module's imports to the top of its output file: a built-in that only
 *   a lazily loaded module imports (wsl-utils' `node:child_process`) would load with the file.
 * A built-in, imported or required, becomes a one-line CommonJS module of the bundle that gets
 * it, one per importing module (so that it lands in its importer's chunk, not in a chunk file of
 * its own), evaluated when its importer is. The bundle needs no `require` and no `import.meta`
 * for them, so it can itself be bundled again into CommonJS (the sdk's bundle is, into the agent
 * and daemon).
 */
export function builtinsWithoutImport() {
  return {
    name: 'builtins-without-import',
    setup(b) {
      b.onResolve({filter: /^[\w/:]+$/}, (args) => {
        if (args.namespace === 'tp-builtin') return undefined
        const name = args.path.replace(/^node:/, '')
        if (!BUILTIN.has(name) && !args.path.startsWith('node:')) return undefined
        return {path: `node:${name}`, namespace: 'tp-builtin', pluginData: args.importer, suffix: `?${args.importer}`}
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
