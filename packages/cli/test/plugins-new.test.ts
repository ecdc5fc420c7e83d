/**
 * `tp plugins new`: what it writes builds and passes its own tests, as a plugin author runs them
 * (npm install, npm run build, npm test), and installs into tp from its packed .tgz. No Docker.
 * npm uses one cache for every project and run (`--prefer-offline`): only a cold cache downloads.
 */
import {existsSync} from 'node:fs'
import {mkdir, readFile, readdir, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join, resolve} from 'node:path'
import {execa} from 'execa'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {type ExtensionsJson, type Sandbox, TP_BIN, makeSandbox} from './helpers.js'

const NPM_CACHE = join(tmpdir(), 'tp-test-npm-cache')
const ROOT = resolve(TP_BIN, '../../../..')
let sandbox: Sandbox

/** npm as a plugin author runs it in the project, with the shared cache; throws with npm's output when it fails. */
async function npm(cwd: string, args: string[]): Promise<string> {
  const result = await execa('npm', [...args, '--prefer-offline', '--no-audit', '--no-fund'], {
    cwd,
    reject: false,
    env: {npm_config_cache: NPM_CACHE, npm_config_update_notifier: 'false'},
    timeout: 180_000,
  })
  if (result.exitCode !== 0) throw new Error(`npm ${args.join(' ')} in ${cwd} exited ${result.exitCode}:\n${result.stdout}\n${result.stderr}`)
  return result.stdout
}

/** `tp plugins new` in the sandbox, from `cwd`. */
function tpNew(args: string[], cwd: string) {
  return execa('node', [TP_BIN, 'plugins', 'new', ...args], {cwd, env: sandbox.env, reject: false, stdin: 'ignore'})
}

beforeAll(async () => {
  sandbox = await makeSandbox('plugins-new')
  await mkdir(NPM_CACHE, {recursive: true})
})
afterAll(() => sandbox.remove())

describe('tp plugins new', () => {
  /**
   * Writes a plugin, checks its package.json and the next steps it prints, then as its author would:
   * npm install, build, test, pack, and `tp plugins install` of the .tgz (offline); the listing of
   * `tp extensions --json` afterwards.
   */
  async function writeBuildInstall(kind: string, name: string, hook: string, hookFile: string): Promise<ExtensionsJson> {
    const made = await tpNew([kind, name], sandbox.dir)
    expect(made.exitCode, made.stderr).toBe(0)
    const dir = join(sandbox.dir, `tp-plugin-${name}`)
    const tgz = join(dir, `tp-plugin-${name}-0.1.0.tgz`)
    // the next steps it prints are the ones this test takes
    for (const step of [`cd tp-plugin-${name}`, 'npm install', 'npm run build', 'npm test', 'npm pack', `tp plugins install ${tgz}`])
      expect(made.stdout).toContain(step)

    const pjson = JSON.parse(await readFile(join(dir, 'package.json'), 'utf8'))
    const sdk = JSON.parse(await readFile(join(ROOT, 'packages/sdk/package.json'), 'utf8'))
    const rootPjson = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8'))
    expect(pjson.peerDependencies).toEqual({'@tp/sdk': `^${sdk.version}`})
    expect(pjson.devDependencies).toEqual({
      '@tp/sdk': `file:${join(ROOT, 'packages/sdk')}`,
      '@types/node': rootPjson.devDependencies['@types/node'],
      typescript: rootPjson.devDependencies.typescript,
    })
    expect(pjson.oclif.hooks).toEqual({[hook]: `./dist/src/hooks/${hookFile}.js`})

    await npm(dir, ['install'])
    await npm(dir, ['run', 'build'])
    const tested = await npm(dir, ['test'])
    expect(tested).toMatch(/^# fail 0$/m)
    expect(tested).toMatch(/^# pass [1-9]/m)
    await npm(dir, ['pack'])
    expect(existsSync(tgz)).toBe(true)

    // offline: nothing may come from a registry
    const installed = await sandbox.tp(['plugins', 'install', tgz], {npm_config_offline: 'true', npm_config_cache: NPM_CACHE})
    expect(installed.exitCode, installed.stderr).toBe(0)
    const listed = await sandbox.tp(['extensions', '--json'])
    expect(listed.exitCode, listed.stderr).toBe(0)
    const report = JSON.parse(listed.stdout) as ExtensionsJson
    expect(report.problems).toEqual([])
    return report
  }

  it('handler acme: builds, its own test passes, and packed and installed from the .tgz, tp lists the acme handler of a user plugin', async () => {
    const report = await writeBuildInstall('handler', 'acme', 'tp:handlers', 'handlers')
    expect(report.handlers.find((h) => h.name === 'acme')).toMatchObject({plugin: 'tp-plugin-acme', pluginVersion: '0.1.0', pluginType: 'user'})
  })

  it('cluster-driver acme-cluster: builds, its own test (the sdk kit) passes, and installed from the .tgz, tp lists the driver of a user plugin', async () => {
    const report = await writeBuildInstall('cluster-driver', 'acme-cluster', 'tp:cluster-drivers', 'cluster-drivers')
    expect(report['cluster-drivers'].find((d) => d.name === 'acme-cluster')).toMatchObject({
      plugin: 'tp-plugin-acme-cluster',
      pluginVersion: '0.1.0',
      pluginType: 'user',
    })
    // the module the daemon imports, as installed: it imports only Node's own modules
    const module = join(sandbox.env.XDG_DATA_HOME, 'tp/node_modules/tp-plugin-acme-cluster/dist/src/driver.js')
    const imports = [...(await readFile(module, 'utf8')).matchAll(/^import\b[^'"]*['"]([^'"]+)['"]/gm)].map((m) => m[1])
    expect(imports.length).toBeGreaterThan(0)
    expect(imports.filter((specifier) => !specifier.startsWith('node:'))).toEqual([])
  })

  it.each([
    ['volume-provider', '@tpt-team/tp-plugin-fixtures', 'tp-plugin-fixtures', 'tp:volume-providers'],
    ['daemon-backend', 'shared-daemon', 'tp-plugin-shared-daemon', 'tp:daemon-backends'],
  ])('%s %s: builds and its own test passes', async (kind, name, directory, hook) => {
    const made = await tpNew([kind, name], sandbox.dir)
    expect(made.exitCode, made.stderr).toBe(0)
    const dir = join(sandbox.dir, directory)
    expect(Object.keys(JSON.parse(await readFile(join(dir, 'package.json'), 'utf8')).oclif.hooks)).toEqual([hook])
    await npm(dir, ['install'])
    const tested = await npm(dir, ['test']) // `pretest` builds
    expect(tested).toMatch(/^# fail 0$/m)
    expect(tested).toMatch(/^# pass [1-9]/m)
  })

  describe('bad input: a message with a next step, exit 1, nothing written', () => {
    it.each([
      [
        'an unknown kind',
        ['widget', 'acme'],
        'tp: "widget" is not a kind of plugin tp plugins new makes: handler, volume-provider, daemon-backend, cluster-driver\n  → ',
      ],
      ['a name npm refuses', ['handler', 'Acme Plugin'], 'tp: "Acme Plugin" is not a valid npm package name ('],
      ['a name that cannot be a flag', ['handler', 'acme_2'], 'tp: the extension would be named "acme_2": tp needs lower-case letters, digits and dashes'],
      [
        'the name of one of tp’s own handlers',
        ['handler', 'docker-run'],
        'tp: tp has its own handler named "docker-run": a plugin cannot replace it\n  → choose another name',
      ],
      ['one of tp intercept’s own flags', ['handler', 'port'], 'tp: --port is already a flag of tp intercept'],
      ['a directory that is not empty', ['handler', 'acme', '--dir', 'taken'], `is not empty\n  → give an empty or new directory with --dir, or another name`],
    ])('%s', async (_title, args, message) => {
      const cwd = join(sandbox.dir, 'bad-input')
      await mkdir(join(cwd, 'taken'), {recursive: true})
      await writeFile(join(cwd, 'taken', 'mine.txt'), 'mine\n')
      const result = await tpNew(args, cwd)
      expect(result.exitCode).toBe(1)
      expect(result.stderr).toContain(message)
      expect(result.stderr).toMatch(/\n {2}→ \S/)
      expect(await readdir(cwd)).toEqual(['taken'])
      expect(await readdir(join(cwd, 'taken'))).toEqual(['mine.txt'])
    })
  })
})
