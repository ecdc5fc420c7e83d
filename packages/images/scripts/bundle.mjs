#!/usr/bin/env node
// Bundles the agent, the daemon and the relay into single CommonJS files for tp's runtime image
// (packages/images/bundle/{agent,daemon,relay}.cjs). Run after `tsc -b`; entries that are not built
// yet are reported and skipped, so the runtime image fails clearly when it needs them.
import {existsSync, mkdirSync, rmSync} from 'node:fs'
import {fileURLToPath} from 'node:url'
import {build} from 'esbuild'

const root = fileURLToPath(new URL('../../../', import.meta.url))
const outDir = fileURLToPath(new URL('../bundle/', import.meta.url))
const entries = {
  agent: `${root}packages/agent/dist/main.js`,
  daemon: `${root}packages/daemon/dist/main.js`,
  relay: `${root}packages/tunnel/dist/relay-main.js`,
}

mkdirSync(outDir, {recursive: true})
const missing = []
for (const [name, entry] of Object.entries(entries)) {
  const outfile = `${outDir}${name}.cjs`
  if (!existsSync(entry)) {
    // a stale bundle would silently ship old code
    rmSync(outfile, {force: true})
    missing.push(`${name}: ${entry} does not exist (build its package first: npx tsc -b)`)
    continue
  }
  await build({
    entryPoints: [entry],
    outfile,
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node20',
    legalComments: 'none',
    logLevel: 'warning',
    // optional native modules of ssh2 (dockerode's ssh transport); ssh2 works without them
    external: ['cpu-features', '*.node'],
  })
  console.log(`bundled ${name} → ${outfile}`)
}
for (const line of missing) console.error(`not bundled: ${line}`)
