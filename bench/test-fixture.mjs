/**
 * A fixture of the tests (test/helpers/<name>.ts) for a benchmark: bundled by esbuild next to
 * node_modules (its packages resolve from there) and imported, so the tests and the benchmarks
 * share one implementation of the machines they build.
 */
import {join} from 'node:path'
import {pathToFileURL} from 'node:url'
import {build} from 'esbuild'

/** @param {string} root the repository @param {string} name e.g. 'remote-machine' */
export async function loadTestFixture(root, name) {
  const outfile = join(root, 'node_modules', '.cache', 'tp-bench', `${name}.mjs`)
  await build({
    entryPoints: [join(root, 'test', 'helpers', `${name}.ts`)],
    outfile,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    packages: 'external',
    logLevel: 'error',
  })
  return import(pathToFileURL(outfile).href)
}
