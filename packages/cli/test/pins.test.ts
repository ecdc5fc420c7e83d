import {createHash} from 'node:crypto'
import {existsSync} from 'node:fs'
import {cp, mkdir, readdir, readFile, rm, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {execa} from 'execa'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {type ExtensionsJson, freshUser, handlersHook, link, makeSandbox, type Sandbox, TP_BIN, writePlugin} from './helpers.js'

/** A throw-away handler plugin in plain JS that imports @tp/sdk and peer-depends on it, as a third party writes one. */
const PLUGIN = 'tpt-pins-acme'

interface PinsExtensionsJson extends ExtensionsJson {
  handlers: Array<ExtensionsJson['handlers'][number] & {origin: string; pinnedBy?: string; lock?: string}>
  pins?: {dir: string; problems: string[]}
}

let s: Sandbox
/** The packed plugin, by version. */
const tarballs: Record<string, string> = {}

async function packPlugin(version: string): Promise<string> {
  const dir = join(s.dir, 'src', `acme-${version}`)
  await mkdir(dir, {recursive: true})
  const pjson = {name: PLUGIN, version, type: 'module', peerDependencies: {'@tp/sdk': '>=0.1.0'}, oclif: {hooks: {'tp:handlers': './hooks.js'}}}
  await writeFile(join(dir, 'package.json'), `${JSON.stringify(pjson, null, 2)}\n`)
  await writeFile(
    join(dir, 'hooks.js'),
    `import {API_VERSION} from '@tp/sdk'
export default async function () {
  return [{name: 'acme', apiVersion: API_VERSION, summary: 'acme handler v${version}', selectedBy: 'acme', flags: {acme: {type: 'boolean', description: 'use acme'}}, load: () => import('./impl.js')}]
}
`,
  )
  await writeFile(join(dir, 'impl.js'), 'export default {}\n')
  const out = join(s.dir, 'packed')
  await mkdir(out, {recursive: true})
  await execa('npm', ['pack', dir, '--pack-destination', out, '--silent'], {env: s.env})
  return join(out, `${PLUGIN}-${version}.tgz`)
}

/** A user's environment of its own (HOME, XDG dirs): a fresh user data directory. */
function userEnv(label: string): Record<string, string> {
  // were tp to talk to Docker, this would say so: the refusals must come first
  return {...freshUser(s, label), DOCKER_HOST: 'unix:///nonexistent/tpt-pins-docker.sock'}
}

function tp(cwd: string, args: string[], env: Record<string, string>) {
  return execa('node', [TP_BIN, ...args], {cwd, env, reject: false, stdin: 'ignore', timeout: 120_000})
}

async function extensions(cwd: string, env: Record<string, string>): Promise<{json: PinsExtensionsJson; exitCode?: number; stderr: string}> {
  const result = await tp(cwd, ['extensions', '--json'], env)
  return {json: JSON.parse(result.stdout) as PinsExtensionsJson, exitCode: result.exitCode, stderr: result.stderr}
}

async function gitRepo(name: string): Promise<string> {
  const dir = join(s.dir, name)
  await mkdir(dir, {recursive: true})
  await execa('git', ['init', '-q', dir])
  return dir
}

const sri = async (path: string) =>
  `sha512-${createHash('sha512')
    .update(await readFile(path))
    .digest('base64')}`
const setsDir = (env: Record<string, string>) => join(env.XDG_DATA_HOME, 'tp', 'pins', 'sets')

/** Every file under a directory with its bytes' hash: what "left as it was" compares. */
async function snapshot(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {}
  if (!existsSync(dir)) return out
  for (const entry of await readdir(dir, {recursive: true, withFileTypes: true})) {
    if (!entry.isFile()) continue
    const path = join(entry.parentPath, entry.name)
    out[path] = createHash('sha256')
      .update(await readFile(path))
      .digest('hex')
  }
  return out
}

beforeAll(async () => {
  s = await makeSandbox('pins')
  tarballs['0.1.0'] = await packPlugin('0.1.0')
  tarballs['0.2.0'] = await packPlugin('0.2.0')
}, 60_000)

afterAll(async () => {
  await s?.remove()
})

describe('tp plugins pin | sync | unpin (tarballs)', () => {
  let repo1: string
  let repo2: string
  const first = () => userEnv('first')
  const fresh = () => userEnv('fresh')

  it('pin <tgz of v0.1.0> in a git repository writes .tp/plugins.json and .tp/plugins.lock (path relative to the repository, sha512 SRI)', async () => {
    repo1 = await gitRepo('repo1')
    await mkdir(join(repo1, 'vendor'))
    await cp(tarballs['0.1.0'], join(repo1, 'vendor', 'acme-0.1.0.tgz'))
    await mkdir(join(repo1, 'sub', 'dir'), {recursive: true})
    // from a subdirectory: the pins go to the git repository's root
    const result = await tp(join(repo1, 'sub', 'dir'), ['plugins', 'pin', '../../vendor/acme-0.1.0.tgz'], first())
    expect(result.stderr).toBe('')
    expect(result.exitCode).toBe(0)
    expect(result.stdout).toContain(`pinned ${PLUGIN}@0.1.0 (^0.1.0, from file:vendor/acme-0.1.0.tgz) in ${repo1}/.tp`)
    expect(JSON.parse(await readFile(join(repo1, '.tp', 'plugins.json'), 'utf8'))).toEqual({
      plugins: {[PLUGIN]: {version: '^0.1.0', tarball: 'vendor/acme-0.1.0.tgz'}},
    })
    const lock = JSON.parse(await readFile(join(repo1, '.tp', 'plugins.lock'), 'utf8'))
    expect(lock.lockfileVersion).toBe(1)
    expect(lock.plugins).toEqual({[PLUGIN]: {version: '0.1.0', resolved: 'file:vendor/acme-0.1.0.tgz', integrity: await sri(tarballs['0.1.0'])}})
    expect(existsSync(join(repo1, 'sub', 'dir', '.tp'))).toBe(false)
  })

  it('a fresh user data directory + `sync --frozen` makes the pinned plugin load, shown as pinned; the user’s own plugins do not load inside the repository', async () => {
    const env = fresh()
    // this user has a plugin of their own: it loads outside the repository only
    const own = await writePlugin(s, {name: 'tpt-pins-own', version: '3.0.0', hooks: {'tp:handlers': handlersHook([{name: 'own-handler'}])}})
    await link({...s, tp: (args, extra = {}) => tp(s.dir, args, {...env, ...extra})}, own)

    const before = await tp(repo1, ['intercept', 'frontend-v1', '--port', '8000'], env)
    expect(before.exitCode).toBe(1)
    expect(before.stderr).toContain('tp plugins sync')

    const sync = await tp(repo1, ['plugins', 'sync', '--frozen'], env)
    expect(sync.stderr).toBe('')
    expect(sync.exitCode).toBe(0)
    expect(sync.stdout).toContain(`installed the plugins pinned by ${repo1}/.tp: ${PLUGIN}@0.1.0`)

    const inside = await extensions(join(repo1, 'sub'), env)
    expect(inside.exitCode).toBe(0)
    expect(inside.json.handlers).toContainEqual(
      expect.objectContaining({
        name: 'acme',
        plugin: PLUGIN,
        pluginVersion: '0.1.0',
        origin: 'pinned',
        pinnedBy: join(repo1, '.tp'),
        lock: 'matches',
        summary: 'acme handler v0.1.0',
      }),
    )
    expect(inside.json.handlers.map((h) => h.name)).not.toContain('own-handler')
    expect(inside.json.pins).toEqual({dir: join(repo1, '.tp'), problems: []})

    const outside = await extensions(s.dir, env)
    expect(outside.json.handlers.map((h) => h.name)).toContain('own-handler')
    expect(outside.json.handlers.map((h) => h.name)).not.toContain('acme')

    const version = await tp(repo1, ['version'], env)
    expect(version.stdout).toMatch(new RegExp(`${PLUGIN}\\s+0\\.1\\.0\\s+pinned by ${repo1}/\\.tp \\(matches the lock\\)`))
    expect(version.stdout).not.toContain('tpt-pins-own')
    expect(version.stdout).toMatch(/^pins {4}.*: 1 pinned plugin, installed as locked/m)

    // a second sync has nothing to do
    const again = await tp(repo1, ['plugins', 'sync'], env)
    expect(again.stdout).toContain('are installed as locked')

    // installing a plugin of one's own inside the repository would go behind the lock's back
    const install = await tp(repo1, ['plugins', 'install', tarballs['0.2.0']], env)
    expect(install.exitCode).toBe(1)
    expect(install.stderr).toContain('use `tp plugins pin <plugin>`')
    const linkInside = await tp(repo1, ['plugins', 'link', '--no-install', own], env)
    expect(linkInside.exitCode).toBe(1)
    expect(linkInside.stderr).toContain(`pinned by ${repo1}/.tp`)
  })

  it('a second repository pinning v0.2.0 of the same plugin loads v0.2.0 there, while the first still gets v0.1.0', async () => {
    const env = fresh()
    repo2 = await gitRepo('repo2')
    // a tarball outside the repository is recorded by its absolute path
    const pin = await tp(repo2, ['plugins', 'pin', `${tarballs['0.2.0']}@~0.2.0`], env)
    expect(pin.exitCode).toBe(0)
    expect(JSON.parse(await readFile(join(repo2, '.tp', 'plugins.json'), 'utf8')).plugins[PLUGIN]).toEqual({version: '~0.2.0', tarball: tarballs['0.2.0']})

    const two = await extensions(repo2, env)
    expect(two.json.handlers).toContainEqual(
      expect.objectContaining({name: 'acme', pluginVersion: '0.2.0', summary: 'acme handler v0.2.0', pinnedBy: join(repo2, '.tp')}),
    )
    const one = await extensions(repo1, env)
    expect(one.json.handlers).toContainEqual(
      expect.objectContaining({name: 'acme', pluginVersion: '0.1.0', summary: 'acme handler v0.1.0', pinnedBy: join(repo1, '.tp')}),
    )
  })

  it('other bytes behind the lock make `sync` fail on integrity, and leave the installed set and .tp/ as they were', async () => {
    const env = fresh()
    const vendored = join(repo1, 'vendor', 'acme-0.1.0.tgz')
    const before = {sets: await snapshot(setsDir(env)), tp: await snapshot(join(repo1, '.tp'))}
    await cp(tarballs['0.2.0'], vendored)
    try {
      for (const args of [
        ['plugins', 'sync'],
        ['plugins', 'sync', '--frozen'],
      ]) {
        const sync = await tp(repo1, args, env)
        expect(sync.exitCode).toBe(1)
        expect(sync.stderr).toContain(
          `the integrity of ${PLUGIN}@0.1.0 differs: .tp/plugins.lock says ${await sri(tarballs['0.1.0'])}, ${vendored} is ${await sri(tarballs['0.2.0'])}`,
        )
        expect(sync.stderr).toContain('Nothing was changed')
      }
      expect(await snapshot(setsDir(env))).toEqual(before.sets)
      expect(await snapshot(join(repo1, '.tp'))).toEqual(before.tp)
      const one = await extensions(repo1, env)
      expect(one.json.handlers).toContainEqual(expect.objectContaining({name: 'acme', pluginVersion: '0.1.0', lock: 'matches'}))
    } finally {
      await cp(tarballs['0.1.0'], vendored)
    }
  })

  it('a deleted or changed installed copy makes `tp intercept` and `tp spec run` refuse with `tp plugins sync`, before touching Docker', async () => {
    const env = fresh()
    // where the pinned copy is installed, as `tp version` says
    const version = JSON.parse((await tp(repo1, ['version', '--json'], env)).stdout) as {plugins: Array<{name: string; root: string}>}
    const installed = version.plugins.find((p) => p.name === PLUGIN)?.root as string
    expect(installed.startsWith(setsDir(env))).toBe(true)
    await writeFile(
      join(repo1, 'tp-spec.yaml'),
      'connection:\n  namespace: tp-demo\nhandlers:\n  - name: h\nworkloads:\n  - name: frontend-v1\n    intercepts:\n      - handler: h\n',
    )

    await writeFile(join(installed, 'hooks.js'), '// changed by hand\n', {flag: 'a'})
    const changed = await tp(repo1, ['intercept', 'frontend-v1', '--port', '8000'], env)
    expect(changed.exitCode).toBe(1)
    expect(changed.stderr).toContain(`${PLUGIN}@0.1.0 has installed files that changed since the sync`)
    expect(changed.stderr).toContain('run `tp plugins sync`')

    await rm(installed, {recursive: true})
    for (const args of [
      ['intercept', 'frontend-v1', '--port', '8000', '--acme'],
      ['spec', 'run', 'tp-spec.yaml'],
    ]) {
      const refused = await tp(repo1, args, env)
      expect(refused.exitCode).toBe(1)
      expect(refused.stderr).toContain(`the plugins pinned by ${repo1}/.tp are not ready: ${PLUGIN}@0.1.0 is not installed any more`)
      expect(refused.stderr).toContain('run `tp plugins sync`')
      expect(refused.stderr).not.toMatch(/docker|nonexistent/i)
    }
    expect(existsSync(env.TP_CACHE_DIR)).toBe(false)
    const broken = await extensions(repo1, env)
    expect(broken.exitCode).toBe(1)
    expect(broken.json.pins?.problems).toEqual([`${PLUGIN}@0.1.0 is not installed any more (its copy is gone)`])

    const sync = await tp(repo1, ['plugins', 'sync', '--frozen'], env)
    expect(sync.exitCode).toBe(0)
    const repaired = await extensions(repo1, env)
    expect(repaired.json.handlers).toContainEqual(expect.objectContaining({name: 'acme', pluginVersion: '0.1.0', lock: 'matches'}))
  })

  it('`sync --frozen` with a lock that does not satisfy plugins.json fails and changes nothing; `sync` without it updates the lock', async () => {
    const env = fresh()
    await cp(tarballs['0.2.0'], join(repo1, 'vendor', 'acme-0.2.0.tgz'))
    await writeFile(join(repo1, '.tp', 'plugins.json'), JSON.stringify({plugins: {[PLUGIN]: {version: '^0.2.0', tarball: 'vendor/acme-0.2.0.tgz'}}}))
    const before = {sets: await snapshot(setsDir(env)), tp: await snapshot(join(repo1, '.tp'))}
    const frozen = await tp(repo1, ['plugins', 'sync', '--frozen'], env)
    expect(frozen.exitCode).toBe(1)
    expect(frozen.stderr).toContain(
      `${repo1}/.tp/plugins.lock does not satisfy ${repo1}/.tp/plugins.json: ${PLUGIN}: the lock has 0.1.0, plugins.json wants ^0.2.0`,
    )
    expect(frozen.stderr).toContain('run `tp plugins sync` without --frozen')
    expect(await snapshot(setsDir(env))).toEqual(before.sets)
    expect(await snapshot(join(repo1, '.tp'))).toEqual(before.tp)

    const sync = await tp(repo1, ['plugins', 'sync'], env)
    expect(sync.exitCode).toBe(0)
    expect(sync.stdout).toContain('updated .tp/plugins.lock: commit it')
    const lock = JSON.parse(await readFile(join(repo1, '.tp', 'plugins.lock'), 'utf8'))
    expect(lock.plugins[PLUGIN]).toEqual({version: '0.2.0', resolved: 'file:vendor/acme-0.2.0.tgz', integrity: await sri(tarballs['0.2.0'])})
    expect((await extensions(repo1, env)).json.handlers).toContainEqual(expect.objectContaining({name: 'acme', pluginVersion: '0.2.0', lock: 'matches'}))
  })

  it('unpin removes the plugin from both files and from what loads', async () => {
    const env = fresh()
    const unpin = await tp(repo2, ['plugins', 'unpin', PLUGIN], env)
    expect(unpin.exitCode).toBe(0)
    expect(JSON.parse(await readFile(join(repo2, '.tp', 'plugins.json'), 'utf8'))).toEqual({plugins: {}})
    expect(JSON.parse(await readFile(join(repo2, '.tp', 'plugins.lock'), 'utf8')).plugins).toEqual({})
    const after = await extensions(repo2, env)
    expect(after.exitCode).toBe(0)
    expect(after.json.handlers.map((h) => h.name)).not.toContain('acme')
  })

  it('says what was wrong and what to do for bad input, and creates nothing', async () => {
    const env = fresh()
    const repo = await gitRepo('repo-bad')
    const cases: Array<{args: string[]; message: string; next: string}> = [
      {args: ['plugins', 'pin', './missing-0.1.0.tgz'], message: `no such tarball: ${join(repo, 'missing-0.1.0.tgz')}`, next: '`npm pack`'},
      {args: ['plugins', 'pin', `${tarballs['0.1.0']}@^0.3.0`], message: `is ${PLUGIN}@0.1.0, which ^0.3.0 does not allow`, next: 'pin it without a range'},
      {args: ['plugins', 'pin', `${PLUGIN}@not-a-range!`], message: '"not-a-range!" is not a semver range', next: `${PLUGIN}@^1.0.0`},
      {args: ['plugins', 'pin', 'Not A Name'], message: 'is neither an npm package name nor a path', next: 'write a package'},
      {
        args: ['plugins', 'pin', '@tp/plugin-handler-docker-run'],
        message: '@tp/plugin-handler-docker-run is bundled with tp: tp plugins pin cannot pin it',
        next: 'pin third-party plugins only',
      },
      {args: ['plugins', 'unpin', PLUGIN], message: `no .tp/plugins.json in ${repo} or above it`, next: '`tp plugins pin <plugin>`'},
      {args: ['plugins', 'sync'], message: `no .tp/plugins.json in ${repo} or above it`, next: '`tp plugins pin <plugin>`'},
    ]
    for (const c of cases) {
      const result = await tp(repo, c.args, env)
      expect(result.exitCode, c.args.join(' ')).toBe(1)
      expect(result.stderr).toContain(c.message)
      expect(result.stderr).toContain('→ ')
      expect(result.stderr).toContain(c.next)
      expect(existsSync(join(repo, '.tp'))).toBe(false)
    }
    const notPinned = await tp(repo1, ['plugins', 'unpin', 'tpt-other'], env)
    expect(notPinned.exitCode).toBe(1)
    expect(notPinned.stderr).toContain(`tpt-other is not pinned in ${repo1}/.tp/plugins.json`)
    expect(notPinned.stderr).toContain(`pinned there: ${PLUGIN}`)

    await mkdir(join(repo, '.tp'))
    await writeFile(join(repo, '.tp', 'plugins.json'), '{"plugins": {"x": {"version": "one"}}}')
    const badFile = await tp(repo, ['plugins', 'sync'], env)
    expect(badFile.exitCode).toBe(1)
    expect(badFile.stderr).toContain(`${join(repo, '.tp', 'plugins.json')}: plugin x has version "one", which is not a semver range`)

    await writeFile(join(repo, '.tp', 'plugins.json'), '{"plugins": {"@tp/plugin-volume-telemount": "^0.1.0"}}')
    const bundled = await tp(repo, ['plugins', 'sync'], env)
    expect(bundled.exitCode).toBe(1)
    expect(bundled.stderr).toContain(`@tp/plugin-volume-telemount is bundled with tp: ${repo}/.tp/plugins.json cannot pin it`)
    expect(existsSync(join(repo, '.tp', 'plugins.lock'))).toBe(false)
  })
})
