/**
 * What tp's esbuild bundles share (packages/cli/scripts/bundle.mjs for the CLI,
 * scripts/bundle-plugins.mjs for the core plugins): ES modules for node 20, split into chunks so
 * that an entry loads only its own code, with a real `require` for the CommonJS inside.
 */

/** Loaded on first use only (patches/: dockerode asks for them for ssh:// engines): never bundled. */
export const LAZY_EXTERNALS = ['ssh2', 'cpu-features', '@grpc/*', 'protobufjs']

/** CommonJS bundled into an ES module (@oclif/core, dockerode) needs a real require. */
export const REQUIRE_BANNER = {js: "import {createRequire as __tpCreateRequire} from 'node:module'; const require = __tpCreateRequire(import.meta.url);"}

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
  }
}
