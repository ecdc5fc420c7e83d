#!/usr/bin/env node
/**
 * Bundles @tp/sdk's entry point (`npm run build` runs it right after tsc, before anything that
 * bundles or imports the sdk): packages/sdk/dist/bundle/index.js, one ES module instead of ~20,
 * with `debug` inside it. Every tp command and every plugin loads the sdk: as tsc's modules that
 * took ~40 ms (~20 files to find and link; `debug`, CommonJS imported from an ES module, costs
 * node its CommonJS export lexer), as one bundle ~20 ms. The sdk's `exports` give the bundle to
 * `import`/`require` and tsc's declarations (dist/*.d.ts) to TypeScript; `@tp/sdk/paths`,
 * `/testing` and `/dockerode` are unchanged. Types and the modules in dist/ stay what tsc made of
 * src/. The bundle needs no `require` and no `import.meta` (debug's built-ins come from
 * process.getBuiltinModule): the agent's and daemon's CommonJS bundles take it in as it is.
 */
import {dirname, join} from 'node:path'
import {fileURLToPath} from 'node:url'
import {build} from 'esbuild'
import {builtinsWithoutImport} from './esbuild-common.mjs'

const sdk = join(dirname(dirname(fileURLToPath(import.meta.url))), 'packages/sdk')

await build({
  absWorkingDir: sdk,
  entryPoints: [join(sdk, 'dist/index.js')],
  outfile: join(sdk, 'dist/bundle/index.js'),
  bundle: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  plugins: [builtinsWithoutImport()],
  // dockerode: the sdk names its types only; the shared copy is @tp/sdk/dockerode
  external: ['dockerode'],
  logLevel: 'warning',
})
