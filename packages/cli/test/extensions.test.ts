import {existsSync} from 'node:fs'
import {join} from 'node:path'
import {afterAll, afterEach, beforeAll, describe, expect, it} from 'vitest'
import {type ExtensionsJson, handlersHook, link, makeSandbox, type Sandbox, writePlugin} from './helpers.js'

/**
 * `tp extensions` with throw-away plugins linked into a sandboxed HOME. The bundled plugins are
 * whatever this checkout has built; every assertion is relative to a baseline taken without any
 * linked plugin, so these tests do not depend on what the bundled plugins register.
 */

/** An implementation module that leaves a mark when imported: tp must not import it to list it. */
const markingImpl = (marker: string) =>
  `import {writeFileSync} from 'node:fs'\nwriteFileSync(${JSON.stringify(marker)}, 'imported')\nexport default () => ({prepare: async () => { throw new Error('not for use') }})\n`

function parseJson(stdout: string): ExtensionsJson {
  return JSON.parse(stdout) as ExtensionsJson
}

let baseline: {json: ExtensionsJson; exitCode: number | undefined}
const sandboxes: Sandbox[] = []

async function sandbox(label: string): Promise<Sandbox> {
  const s = await makeSandbox(label)
  sandboxes.push(s)
  return s
}

beforeAll(async () => {
  const s = await sandbox('baseline')
  const result = await s.tp(['extensions', '--json'])
  baseline = {json: parseJson(result.stdout), exitCode: result.exitCode}
  // without problems in the bundled plugins, the baseline must succeed
  expect(result.exitCode).toBe(baseline.json.problems.length === 0 ? 0 : 1)
})

afterAll(async () => {
  await Promise.all(sandboxes.map((s) => s.remove()))
})

describe('tp extensions', () => {
  it('lists a linked handler with its plugin, version and summary, without importing it', async () => {
    const s = await sandbox('good')
    const marker = join(s.dir, 'impl-was-imported')
    const dir = await writePlugin(s, {
      name: 'tpt-cli-good',
      version: '1.2.3',
      hooks: {'tp:handlers': handlersHook([{name: 'tpt-good', summary: 'a throw-away handler'}])},
      files: {'impl.js': markingImpl(marker)},
    })
    await link(s, dir)

    const human = await s.tp(['extensions'])
    expect(human.stdout).toMatch(/^\s+tpt-good\s+tpt-cli-good@1\.2\.3\s+link\s+a throw-away handler$/m)
    expect(human.exitCode).toBe(baseline.exitCode)

    const result = await s.tp(['extensions', '--json'])
    expect(result.exitCode).toBe(baseline.exitCode)
    const json = parseJson(result.stdout)
    expect(json.handlers).toContainEqual(
      expect.objectContaining({name: 'tpt-good', plugin: 'tpt-cli-good', pluginVersion: '1.2.3', pluginType: 'link', summary: 'a throw-away handler'}),
    )
    expect(json.handlers.map((h) => h.name).sort()).toEqual([...baseline.json.handlers.map((h) => h.name), 'tpt-good'].sort())
    expect(json.problems).toEqual(baseline.json.problems)
    expect(existsSync(marker)).toBe(false)

    // and `tp plugins uninstall` takes it away again
    expect((await s.tp(['plugins'])).stdout).toMatch(/tpt-cli-good 1\.2\.3 \(link\)/)
    const uninstall = await s.tp(['plugins', 'uninstall', 'tpt-cli-good'])
    expect(uninstall.exitCode, uninstall.stderr).toBe(0)
    const after = parseJson((await s.tp(['extensions', '--json'])).stdout)
    expect(after.handlers.map((h) => h.name)).not.toContain('tpt-good')
    expect((await s.tp(['plugins'])).stdout).not.toContain('tpt-cli-good')
  })

  it('exits 1 naming both plugins when two linked plugins register the same handler name', async () => {
    const s = await sandbox('dup')
    await link(
      s,
      await writePlugin(s, {name: 'tpt-cli-dup-a', version: '1.0.0', hooks: {'tp:handlers': handlersHook([{name: 'tpt-same'}, {name: 'tpt-only-a'}])}}),
    )
    await link(
      s,
      await writePlugin(s, {name: 'tpt-cli-dup-b', version: '2.0.0', hooks: {'tp:handlers': handlersHook([{name: 'tpt-same'}, {name: 'tpt-only-b'}])}}),
    )

    const human = await s.tp(['extensions'])
    expect(human.exitCode).toBe(1)
    const line = human.stderr.split('\n').find((l) => l.includes('"tpt-same"'))
    expect(line).toBeDefined()
    expect(line).toContain('tpt-cli-dup-a@1.0.0')
    expect(line).toContain('tpt-cli-dup-b@2.0.0')
    // everything else is still printed
    expect(human.stdout).toMatch(/^\s+tpt-only-a\s+tpt-cli-dup-a@1\.0\.0/m)
    expect(human.stdout).toMatch(/^\s+tpt-only-b\s+tpt-cli-dup-b@2\.0\.0/m)
    expect(human.stdout).not.toMatch(/^\s+tpt-same\s/m)

    const result = await s.tp(['extensions', '--json'])
    expect(result.exitCode).toBe(1)
    const json = parseJson(result.stdout)
    expect(json.problems).toContainEqual(expect.objectContaining({reason: 'duplicate', name: 'tpt-same', point: 'handlers'}))
    expect(json.handlers.map((h) => h.name)).not.toContain('tpt-same')
  })

  it('exits 1 naming both plugins when a linked plugin claims the name of a bundled handler', async (context) => {
    const bundled = baseline.json.handlers.find((h) => h.pluginType === 'core')
    if (!bundled) return context.skip('no bundled handler is registered in this build yet')
    const s = await sandbox('dup-bundled')
    await link(s, await writePlugin(s, {name: 'tpt-cli-impostor', version: '6.6.6', hooks: {'tp:handlers': handlersHook([{name: bundled.name}])}}))

    const result = await s.tp(['extensions'])
    expect(result.exitCode).toBe(1)
    const line = result.stderr.split('\n').find((l) => l.includes(`"${bundled.name}"`))
    expect(line).toContain(`${bundled.plugin}@${bundled.pluginVersion}`)
    expect(line).toContain('tpt-cli-impostor@6.6.6')
    // tp's own keeps working
    const json = parseJson((await s.tp(['extensions', '--json'])).stdout)
    expect(json.handlers.filter((h) => h.name === bundled.name).map((h) => h.plugin)).toEqual([bundled.plugin])
  })

  it('tp intercept says why a handler flag is missing, instead of "Nonexistent flag"', async () => {
    const s = await sandbox('why-missing')
    for (const name of ['tpt-cli-twin-a', 'tpt-cli-twin-b'])
      await link(s, await writePlugin(s, {name, hooks: {'tp:handlers': handlersHook([{name: 'tpt-twin'}])}}))
    const result = await s.tp(['intercept', 'frontend-v1', '--tpt-twin'])
    expect(result.exitCode).toBe(1)
    expect(result.stderr).toMatch(
      /^tp: --tpt-twin is not available: handlers "tpt-twin" is provided by more than one plugin: tpt-cli-twin-a@1\.0\.0 and tpt-cli-twin-b@1\.0\.0/,
    )
    expect(result.stderr).toContain('→ see `tp extensions`')
  })

  it('when several volume providers fit, tp intercept asks which one, before anything exists', async () => {
    const s = await sandbox('two-providers')
    const provider = `export default async function () { return [{name: 'tpt-vol', apiVersion: 1, summary: 'docker volumes too', requires: {}, load: () => import('./nope.js')}] }\n`
    await link(s, await writePlugin(s, {name: 'tpt-cli-vol', hooks: {'tp:volume-providers': provider}}))
    const result = await s.tp(['intercept', 'frontend-v1', '--docker', '--docker-run', '--', 'frontend-v2'])
    expect(result.exitCode).toBe(1)
    expect(result.stderr).toMatch(/several volume providers give volumes as Docker volumes: .*telemount.*tpt-vol \(tpt-cli-vol@1\.0\.0\)/)
    expect(result.stderr).toContain('--volume-provider <name>')
    // nothing was connected
    expect((await s.tp(['status', '--json'])).stdout).toContain('"connections": []')
  })

  it('a hook that never answers is reported and skipped: the command goes on within the time limit', async () => {
    const s = await sandbox('hang')
    await link(s, await writePlugin(s, {name: 'tpt-cli-hangs', hooks: {'tp:handlers': 'export default () => new Promise(() => {})\n'}}))
    const started = Date.now()
    const result = await s.tp(['extensions', '--json'], {TP_HOOK_TIMEOUT_MS: '1000'})
    expect(Date.now() - started).toBeLessThan(10_000)
    const json = parseJson(result.stdout)
    expect(json.handlers.map((h) => h.name)).toContain('docker-run')
    expect(json.problems).toContainEqual(expect.objectContaining({reason: 'hook-timeout', plugin: expect.objectContaining({name: 'tpt-cli-hangs'})}))
  })

  it('refuses a descriptor for extension API 99, naming the plugin and the supported range', async () => {
    const s = await sandbox('api')
    const hook = handlersHook([
      {name: 'tpt-future', apiVersion: 99},
      {name: 'tpt-present', apiVersion: 1},
    ])
    await link(s, await writePlugin(s, {name: 'tpt-cli-future', version: '3.0.0', hooks: {'tp:handlers': hook}}))

    const result = await s.tp(['extensions'])
    expect(result.exitCode).toBe(1)
    const line = result.stderr.split('\n').find((l) => l.includes('tpt-future'))
    expect(line).toContain('tpt-cli-future@3.0.0')
    expect(line).toContain('API 99')
    expect(line).toMatch(/supports API 1\b/)
    expect(result.stdout).not.toMatch(/^\s+tpt-future\s/m)
    expect(result.stdout).toMatch(/^\s+tpt-present\s+tpt-cli-future@3\.0\.0/m)
  })

  it("lists the cluster drivers, tp's docker driver among them; a linked driver without its module, or named docker, is refused", async () => {
    expect(baseline.json['cluster-drivers']).toContainEqual(expect.objectContaining({name: 'docker', plugin: '@tp/plugin-cluster-docker', pluginType: 'core'}))
    const s = await sandbox('drivers')
    const driver = (name: string, extra: string) => `{name: '${name}', apiVersion: 1, summary: 'a throw-away driver'${extra}, load: () => import('./nope.js')}`
    const hook = `export default async function () { return [${[
      driver('tpt-inventory', ", module: '/opt/tpt/driver.mjs'"),
      driver('tpt-moduleless', ''),
      driver('docker', ", module: '/opt/tpt/docker.mjs'"),
    ].join(', ')}] }\n`
    await link(s, await writePlugin(s, {name: 'tpt-cli-drivers', hooks: {'tp:cluster-drivers': hook}}))

    const result = await s.tp(['extensions', '--json'])
    expect(result.exitCode).toBe(1)
    const json = parseJson(result.stdout)
    expect(json['cluster-drivers'].map((d) => [d.name, d.plugin])).toEqual([
      ...baseline.json['cluster-drivers'].map((d) => [d.name, d.plugin]),
      ['tpt-inventory', 'tpt-cli-drivers'],
    ])
    expect(json.problems).toContainEqual(expect.objectContaining({point: 'cluster-drivers', reason: 'malformed', name: 'tpt-moduleless'}))
    expect(json.problems).toContainEqual(expect.objectContaining({point: 'cluster-drivers', reason: 'shadows-core', name: 'docker'}))
    const human = await s.tp(['extensions'])
    expect(human.stdout).toMatch(/^Cluster drivers:\n\s+docker\s+@tp\/plugin-cluster-docker@\S+\s+core\s/m)
    expect(human.stderr).toMatch(/tpt-moduleless.*no module/)
  })

  it('reports a plugin whose hook throws, and still lists everything else', async () => {
    const s = await sandbox('throws')
    await link(s, await writePlugin(s, {name: 'tpt-cli-good2', hooks: {'tp:handlers': handlersHook([{name: 'tpt-still-here'}])}}))
    await link(
      s,
      await writePlugin(s, {
        name: 'tpt-cli-throws',
        version: '0.0.1',
        hooks: {
          'tp:handlers': `export default async function () { throw new Error('tpt boom: config missing') }\n`,
          // its other extension point still registers
          'tp:volume-providers': `export default async function () { return [{name: 'tpt-vol', apiVersion: 1, summary: 'vol', requires: {hostReachesCluster: true}, load: () => import('./nope.js')}] }\n`,
        },
      }),
    )
    await link(
      s,
      await writePlugin(s, {name: 'tpt-cli-malformed', hooks: {'tp:handlers': `export default async function () { return [{name: 'tpt-shapeless'}] }\n`}}),
    )

    const result = await s.tp(['extensions', '--json'])
    expect(result.exitCode).toBe(1)
    const json = parseJson(result.stdout)
    expect(json.handlers.map((h) => h.name)).toContain('tpt-still-here')
    expect(json['volume-providers'].map((v) => [v.name, v.plugin])).toContainEqual(['tpt-vol', 'tpt-cli-throws'])
    expect(json.problems).toContainEqual(
      expect.objectContaining({reason: 'hook-failed', point: 'handlers', plugin: {name: 'tpt-cli-throws', version: '0.0.1', type: 'link'}}),
    )
    expect(json.problems).toContainEqual(expect.objectContaining({reason: 'malformed', name: 'tpt-shapeless'}))
    expect(result.stderr).toMatch(/tpt-cli-throws@0\.0\.1.*tpt boom: config missing/)
    expect(result.stderr).toMatch(/tpt-cli-malformed@1\.0\.0.*load is not a function/)
    // the baseline's problems are still there, nothing more than ours was added
    expect(json.problems.length).toBe(baseline.json.problems.length + 2)
  })
})

describe('tp plugins install', () => {
  let s: Sandbox
  afterEach(async () => s?.remove())

  it('expands a short name to @tp/plugin-<name>', async () => {
    s = await makeSandbox('install')
    // offline: the lookup fails at once instead of reaching a registry; the debug log shows the name asked for
    const result = await s.tp(['plugins', 'install', 'handler-foo'], {
      npm_config_offline: 'true',
      npm_config_cache: join(s.dir, 'npm-cache'),
      DEBUG: '@oclif/plugin-plugins',
    })
    expect(result.exitCode).not.toBe(0)
    expect(result.stderr).toContain('checking registry for expanded package name @tp/plugin-handler-foo')
  })
})
