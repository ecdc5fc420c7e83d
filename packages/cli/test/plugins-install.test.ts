/**
 * `tp plugins install` says the version it installed, also when it replaces an installed one
 * (oclif's JSON cache still held the old package.json: issue 13's "installed v0.1.0" for 0.2.0),
 * and `--jit`, which means nothing without `oclif.jitPlugins`, is refused and changes nothing.
 * No Docker; npm offline.
 */
import {readFile, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {execa} from 'execa'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {type Sandbox, makeSandbox, writePlugin} from './helpers.js'

let sandbox: Sandbox
const tarballs: Record<string, string> = {}
// as a user runs tp: vitest's NODE_ENV=test turns oclif's JSON cache (and so the stale version) off
const offline = () => ({npm_config_offline: 'true', npm_config_cache: join(sandbox.dir, 'npm-cache'), NODE_ENV: 'production'})

beforeAll(async () => {
  sandbox = await makeSandbox('plugins-install')
  const dir = await writePlugin(sandbox, {name: 'tpt-versions', version: '0.1.0', hooks: {}})
  for (const version of ['0.1.0', '0.2.0']) {
    const pjson = JSON.parse(await readFile(join(dir, 'package.json'), 'utf8'))
    await writeFile(join(dir, 'package.json'), JSON.stringify({...pjson, version}))
    const packed = await execa('npm', ['pack', '--silent', '--pack-destination', sandbox.dir], {cwd: dir})
    tarballs[version] = join(sandbox.dir, packed.stdout.trim().split('\n').at(-1)!)
  }
})
afterAll(() => sandbox.remove())

/** The user plugins tp lists, `name version` each. */
async function installed(): Promise<string> {
  const listed = await sandbox.tp(['plugins'], {NODE_ENV: 'production'})
  expect(listed.exitCode, listed.stderr).toBe(0)
  return listed.stdout.trim()
}

describe('tp plugins install', () => {
  it('says the version it installed, also when it replaces another one', async () => {
    const first = await sandbox.tp(['plugins', 'install', tarballs['0.1.0']], offline())
    expect(first.exitCode, first.stderr).toBe(0)
    expect(first.stderr).toMatch(/installed v0\.1\.0$/m)
    const upgrade = await sandbox.tp(['plugins', 'install', tarballs['0.2.0']], offline())
    expect(upgrade.exitCode, upgrade.stderr).toBe(0)
    expect(upgrade.stderr).toMatch(/installed v0\.2\.0$/m)
    expect(await installed()).toBe('tpt-versions 0.2.0')
    const downgrade = await sandbox.tp(['plugins', 'install', tarballs['0.1.0']], offline())
    expect(downgrade.stderr).toMatch(/installed v0\.1\.0$/m)
    expect(await installed()).toBe('tpt-versions 0.1.0')
  })

  it('--jit is refused, since tp declares no just-in-time plugins, and the installed plugins stay as they were', async () => {
    const before = await installed()
    const result = await sandbox.tp(['plugins', 'install', '--jit', 'tpt-versions'], offline())
    expect(result.exitCode).toBe(1)
    expect(result.stderr).toBe(
      'tp: tp declares no just-in-time plugins (oclif.jitPlugins in its package.json), so --jit has no version to install\n' +
        '  → leave --jit out: `tp plugins install <plugin>` installs the latest version, `<plugin>@<version>` another one',
    )
    expect(await installed()).toBe(before)
  })
})
