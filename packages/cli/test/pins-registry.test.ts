import {createHash} from 'node:crypto'
import {existsSync} from 'node:fs'
import {mkdir, readFile, rename, rm, writeFile} from 'node:fs/promises'
import {createServer} from 'node:net'
import {dirname, join, resolve} from 'node:path'
import {fileURLToPath} from 'node:url'
import {execa, type ResultPromise} from 'execa'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {type ExtensionsJson, freshUser, makeSandbox, type Sandbox, TP_BIN} from './helpers.js'

/**
 * Pins from an npm registry, against a real one: verdaccio, started here with no uplink (so
 * nothing reaches the public registry). verdaccio 6 needs Node 22; 5.33 is the last that runs on
 * Node 20. It is installed on first use into node_modules/.cache (not a dependency of the
 * repository: 300 packages, 80 MB that only this test needs).
 */
const VERDACCIO = '5.33.0'
const CACHE = resolve(dirname(fileURLToPath(import.meta.url)), '../../../node_modules/.cache', `tpt-verdaccio-${VERDACCIO}`)
const PLUGIN = 'tpt-pins-registry-acme'

let s: Sandbox
let registry: string
let server: ResultPromise | undefined
const packed: Record<string, string> = {}

async function ensureVerdaccio(): Promise<string> {
  const bin = join(CACHE, 'node_modules', 'verdaccio', 'bin', 'verdaccio')
  if (existsSync(bin)) return bin
  const staging = `${CACHE}.tmp-${process.pid}`
  await rm(staging, {recursive: true, force: true})
  await mkdir(staging, {recursive: true})
  await writeFile(join(staging, 'package.json'), '{"private": true}\n')
  await execa('npm', ['install', '--no-audit', '--no-fund', '--loglevel=error', '-E', `verdaccio@${VERDACCIO}`], {cwd: staging, timeout: 240_000})
  await rm(CACHE, {recursive: true, force: true})
  await rename(staging, CACHE)
  return bin
}

function freePort(): Promise<number> {
  return new Promise((done, fail) => {
    const probe = createServer()
    probe.once('error', fail)
    probe.listen(0, '127.0.0.1', () => {
      const {port} = probe.address() as {port: number}
      probe.close(() => done(port))
    })
  })
}

async function startRegistry(): Promise<void> {
  const bin = await ensureVerdaccio()
  const dir = join(s.dir, 'verdaccio')
  await mkdir(dir, {recursive: true})
  await writeFile(
    join(dir, 'config.yaml'),
    `storage: ${join(dir, 'storage')}
auth:
  htpasswd:
    file: ${join(dir, 'htpasswd')}
uplinks: {}
packages:
  '**':
    access: $all
    publish: $authenticated
web:
  enable: false
log: {type: stdout, format: pretty, level: warn}
`,
  )
  const port = await freePort()
  registry = `http://127.0.0.1:${port}/`
  server = execa('node', [bin, '-c', join(dir, 'config.yaml'), '-l', `127.0.0.1:${port}`], {reject: false, stdin: 'ignore'})
  const deadline = Date.now() + 30_000
  for (;;) {
    const ok = await fetch(`${registry}-/ping`).then(
      (r) => r.ok,
      () => false,
    )
    if (ok) break
    if (Date.now() > deadline || server.exitCode !== null) throw new Error(`verdaccio did not start on ${registry}`)
    await new Promise((r) => setTimeout(r, 200))
  }
}

async function stopRegistry(): Promise<void> {
  if (!server) return
  server.kill('SIGTERM')
  await server
  server = undefined
}

/** Publishes one version of the throw-away plugin (plain JS, imports @tp/sdk, peer-depends on it). */
async function publish(version: string, npmrc: string): Promise<void> {
  const dir = join(s.dir, 'src', version)
  await mkdir(dir, {recursive: true})
  const pjson = {name: PLUGIN, version, type: 'module', peerDependencies: {'@tp/sdk': '>=0.1.0'}, oclif: {hooks: {'tp:handlers': './hooks.js'}}}
  await writeFile(join(dir, 'package.json'), `${JSON.stringify(pjson, null, 2)}\n`)
  await writeFile(
    join(dir, 'hooks.js'),
    `import {API_VERSION} from '@tp/sdk'
export default async function () {
  return [{name: 'reg-acme', apiVersion: API_VERSION, summary: 'registry acme v${version}', selectedBy: 'reg-acme', flags: {'reg-acme': {type: 'boolean', description: 'use it'}}, load: () => import('./impl.js')}]
}
`,
  )
  await writeFile(join(dir, 'impl.js'), 'export default {}\n')
  const out = join(s.dir, 'packed')
  await mkdir(out, {recursive: true})
  await execa('npm', ['pack', dir, '--pack-destination', out, '--silent'])
  packed[version] = join(out, `${PLUGIN}-${version}.tgz`)
  await execa('npm', ['publish', packed[version], `--registry=${registry}`, '--loglevel=error'], {env: {npm_config_userconfig: npmrc}})
}

const userEnv = (label: string) => freshUser(s, label)

const tp = (cwd: string, args: string[], env: Record<string, string>) =>
  execa('node', [TP_BIN, ...args], {cwd, env, reject: false, stdin: 'ignore', timeout: 120_000})
const sri = async (path: string) =>
  `sha512-${createHash('sha512')
    .update(await readFile(path))
    .digest('base64')}`

async function handlers(cwd: string, env: Record<string, string>) {
  const result = await tp(cwd, ['extensions', '--json'], env)
  return (JSON.parse(result.stdout) as ExtensionsJson & {handlers: Array<{origin: string; lock?: string}>}).handlers
}

beforeAll(async () => {
  s = await makeSandbox('pins-registry')
  await startRegistry()
  const created = await fetch(`${registry}-/user/org.couchdb.user:tpt`, {
    method: 'PUT',
    headers: {'content-type': 'application/json'},
    body: JSON.stringify({name: 'tpt', password: 'tpt-throw-away'}),
  })
  const {token} = (await created.json()) as {token: string}
  const npmrc = join(s.dir, 'publisher.npmrc')
  await writeFile(npmrc, `//${registry.replace(/^http:\/\//, '')}:_authToken=${token}\n`)
  for (const version of ['0.1.0', '0.1.1', '0.2.0']) await publish(version, npmrc)
}, 300_000)

afterAll(async () => {
  await stopRegistry()
  await s?.remove()
})

describe('tp plugins pin <name>@<range> from an npm registry (verdaccio)', () => {
  let repo: string

  it('pins the highest version the range allows, with the registry tarball as where it came from', async () => {
    repo = join(s.dir, 'repo')
    await mkdir(repo)
    await execa('git', ['init', '-q', repo])
    const env = userEnv('pinner')
    const pin = await tp(repo, ['plugins', 'pin', `${PLUGIN}@^0.1.0`, '--registry', registry], env)
    expect(pin.stderr).toBe('')
    expect(pin.exitCode).toBe(0)
    expect(JSON.parse(await readFile(join(repo, '.tp', 'plugins.json'), 'utf8')).plugins).toEqual({[PLUGIN]: {version: '^0.1.0', registry}})
    expect(JSON.parse(await readFile(join(repo, '.tp', 'plugins.lock'), 'utf8')).plugins).toEqual({
      [PLUGIN]: {version: '0.1.1', resolved: `${registry}${PLUGIN}/-/${PLUGIN}-0.1.1.tgz`, integrity: await sri(packed['0.1.1']), registry},
    })
    expect(await handlers(repo, env)).toContainEqual(
      expect.objectContaining({name: 'reg-acme', pluginVersion: '0.1.1', summary: 'registry acme v0.1.1', origin: 'pinned', lock: 'matches'}),
    )
  })

  it('says so when no version satisfies the range or the package is not there', async () => {
    const env = userEnv('pinner')
    const range = await tp(repo, ['plugins', 'pin', `${PLUGIN}@^0.3.0`, '--registry', registry], env)
    expect(range.exitCode).toBe(1)
    expect(range.stderr).toContain(`no version of ${PLUGIN} on ${registry} satisfies ^0.3.0`)
    expect(range.stderr).toContain(`npm view ${PLUGIN} versions`)
    const missing = await tp(repo, ['plugins', 'pin', 'tpt-pins-not-published', '--registry', registry], env)
    expect(missing.exitCode).toBe(1)
    expect(missing.stderr).toContain(`tpt-pins-not-published is not on the registry ${registry}`)
    expect(JSON.parse(await readFile(join(repo, '.tp', 'plugins.lock'), 'utf8')).plugins[PLUGIN].version).toBe('0.1.1')
  })

  it('after one sync, `sync --frozen` works offline (the registry stopped); a user who never synced is told the registry must be reachable once', async () => {
    const teammate = userEnv('teammate')
    const online = await tp(repo, ['plugins', 'sync', '--frozen'], teammate)
    expect(online.exitCode).toBe(0)
    await stopRegistry()

    // the installed set is gone (a new machine image, a cleaned data dir): the cached tarball is enough
    await rm(join(teammate.XDG_DATA_HOME, 'tp', 'pins', 'sets'), {recursive: true})
    await rm(join(teammate.HOME, '.npm'), {recursive: true, force: true})
    const offline = await tp(repo, ['plugins', 'sync', '--frozen'], teammate)
    expect(offline.stderr).toBe('')
    expect(offline.exitCode).toBe(0)
    expect(await handlers(repo, teammate)).toContainEqual(expect.objectContaining({name: 'reg-acme', pluginVersion: '0.1.1', lock: 'matches'}))

    const newcomer = userEnv('newcomer')
    const never = await tp(repo, ['plugins', 'sync', '--frozen'], newcomer)
    expect(never.exitCode).toBe(1)
    expect(never.stderr).toContain(`cannot fetch ${PLUGIN}@0.1.1 from ${registry}${PLUGIN}/-/${PLUGIN}-0.1.1.tgz`)
    expect(never.stderr).toContain('the registry must be reachable once')
    expect(existsSync(join(newcomer.XDG_DATA_HOME, 'tp', 'pins', 'sets'))).toBe(false)
  })
})
