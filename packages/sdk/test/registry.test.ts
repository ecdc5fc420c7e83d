import {describe, expect, it} from 'vitest'
import {type Descriptor, ExtensionRegistry, type HookOutcome, isTpError, type PluginContext, SUPPORTED_API_VERSIONS} from '@tp/sdk'

/** A thing an extension builds: records which factory made it. */
interface Greeter {
  greet(): string
}

const context: PluginContext = {
  tpVersion: '0.0.0-test',
  cacheDir: '/nonexistent',
  log: {info() {}, warn() {}, debug() {}},
}

function descriptor(name: string, extra: Partial<Descriptor<Greeter>> = {}): Descriptor<Greeter> & {loads: () => number; flags?: unknown; selectedBy?: string} {
  let loads = 0
  return {
    name,
    apiVersion: 1,
    summary: `greets as ${name}`,
    // what a handler descriptor needs (other extension points ignore it)
    flags: {[name]: {type: 'boolean', description: `use ${name}`}},
    selectedBy: name,
    load: async () => {
      loads++
      return {default: (ctx: PluginContext) => ({greet: () => `${name} from tp ${ctx.tpVersion}`})}
    },
    loads: () => loads,
    ...extra,
  }
}

const alpha = {name: '@tp/plugin-alpha', version: '1.2.3'}
const beta = {name: 'tp-plugin-beta', version: '0.4.0'}
const gamma = {name: '@acme/gamma', version: '9.9.9'}

function outcome(successes: HookOutcome['successes'], failures: HookOutcome['failures'] = []): HookOutcome {
  return {successes, failures}
}

describe('ExtensionRegistry', () => {
  it('lists extensions of every plugin, sorted, with the plugin that provides each', () => {
    const registry = new ExtensionRegistry<Greeter>(
      'handlers',
      outcome([
        {plugin: beta, result: [descriptor('zulu')]},
        {plugin: alpha, result: [descriptor('docker-run'), descriptor('alpha-b')]},
        {plugin: gamma, result: undefined}, // a plugin that does not extend this point
      ]),
    )
    expect(registry.problems).toEqual([])
    expect(registry.list().map((e) => [e.descriptor.name, e.plugin.name, e.plugin.version])).toEqual([
      ['alpha-b', alpha.name, alpha.version],
      ['docker-run', alpha.name, alpha.version],
      ['zulu', beta.name, beta.version],
    ])
    expect(registry.has('zulu')).toBe(true)
    expect(registry.has('nope')).toBe(false)
  })

  it('accepts a hook that returns a single descriptor instead of an array', () => {
    const registry = new ExtensionRegistry<Greeter>('volume-providers', outcome([{plugin: alpha, result: descriptor('solo')}]))
    expect(registry.list().map((e) => e.descriptor.name)).toEqual(['solo'])
  })

  it('rejects a duplicate name, naming both plugins, and refuses to hand out either', async () => {
    const registry = new ExtensionRegistry<Greeter>(
      'handlers',
      outcome([
        {plugin: alpha, result: [descriptor('docker-run'), descriptor('other')]},
        {plugin: beta, result: [descriptor('docker-run')]},
      ]),
    )
    expect(registry.problems).toHaveLength(1)
    const [problem] = registry.problems
    expect(problem.reason).toBe('duplicate')
    expect(problem.name).toBe('docker-run')
    expect(problem.message).toContain('@tp/plugin-alpha@1.2.3')
    expect(problem.message).toContain('tp-plugin-beta@0.4.0')
    expect(registry.list().map((e) => e.descriptor.name)).toEqual(['other'])
    expect(registry.has('docker-run')).toBe(false)

    let thrown: unknown
    try {
      registry.get('docker-run')
    } catch (error) {
      thrown = error
    }
    expect(isTpError(thrown) && thrown.kind).toBe('user')
    expect((thrown as Error).message).toContain('@tp/plugin-alpha@1.2.3')
    expect((thrown as Error).message).toContain('tp-plugin-beta@0.4.0')
    expect((thrown as {next?: string}).next).toMatch(/tp plugins uninstall/)
    await expect(registry.load('docker-run', context)).rejects.toMatchObject({kind: 'user'})
  })

  it('names every plugin when three claim the same name', () => {
    const capabilities = {canPublishPorts: false, sharesDaemonNetwork: true, hostReachesCluster: false}
    const backend = () => descriptor('container', {capabilities} as Partial<Descriptor<Greeter>>)
    const registry = new ExtensionRegistry<Greeter>(
      'daemon-backends',
      outcome([
        {plugin: alpha, result: [backend()]},
        {plugin: beta, result: [backend()]},
        {plugin: gamma, result: [backend()]},
      ]),
    )
    expect(() => registry.get('container')).toThrow(/@acme\/gamma@9\.9\.9 and @tp\/plugin-alpha@1\.2\.3 and tp-plugin-beta@0\.4\.0/)
    expect(registry.list()).toEqual([])
  })

  it('reports a plugin that registers the same name twice as its own bug, and keeps the first', () => {
    const first = descriptor('twice', {summary: 'first'})
    const registry = new ExtensionRegistry<Greeter>('handlers', outcome([{plugin: alpha, result: [first, descriptor('twice', {summary: 'second'})]}]))
    expect(registry.problems.map((p) => p.reason)).toEqual(['duplicate'])
    expect(registry.problems[0].message).toContain('twice')
    expect(registry.get('twice').descriptor.summary).toBe('first')
  })

  it('refuses apiVersion 99, naming the plugin and the supported range', () => {
    const registry = new ExtensionRegistry<Greeter>(
      'handlers',
      outcome([{plugin: beta, result: [descriptor('future', {apiVersion: 99}), descriptor('current')]}]),
    )
    expect(registry.problems).toHaveLength(1)
    const [problem] = registry.problems
    expect(problem.reason).toBe('api-version')
    expect(problem.name).toBe('future')
    expect(problem.plugin).toEqual(beta)
    expect(problem.message).toContain('tp-plugin-beta@0.4.0')
    expect(problem.message).toContain('99')
    const {min, max} = SUPPORTED_API_VERSIONS
    expect(problem.message).toContain(min === max ? `API ${min}` : `${min}–${max}`)
    expect(registry.has('future')).toBe(false)
    expect(registry.list().map((e) => e.descriptor.name)).toEqual(['current'])
  })

  it('refuses apiVersion 0 and fractional versions', () => {
    const registry = new ExtensionRegistry<Greeter>(
      'handlers',
      outcome([{plugin: alpha, result: [descriptor('old', {apiVersion: 0}), descriptor('odd', {apiVersion: 1.5})]}]),
    )
    expect(registry.problems.map((p) => [p.reason, p.name])).toEqual([
      ['api-version', 'old'],
      ['api-version', 'odd'],
    ])
  })

  it('reports a hook that failed while the other plugins still register', () => {
    const registry = new ExtensionRegistry<Greeter>(
      'handlers',
      outcome(
        [
          {plugin: alpha, result: [descriptor('docker-run')]},
          {plugin: gamma, result: [descriptor('gamma-h')]},
        ],
        [{plugin: beta, error: new Error('cannot read config.yaml')}],
      ),
    )
    expect(registry.problems).toHaveLength(1)
    expect(registry.problems[0]).toMatchObject({reason: 'hook-failed', plugin: beta})
    expect(registry.problems[0].message).toContain('tp-plugin-beta@0.4.0')
    expect(registry.problems[0].message).toContain('cannot read config.yaml')
    expect(registry.list().map((e) => e.descriptor.name)).toEqual(['docker-run', 'gamma-h'])
  })

  it('reports malformed descriptors and says what is wrong, keeping the good ones', () => {
    const registry = new ExtensionRegistry<Greeter>(
      'volume-providers',
      outcome([
        {
          plugin: gamma,
          result: [
            {name: 'no-load', apiVersion: 1, summary: 'forgot load'},
            {name: '', apiVersion: 1, summary: 'empty name', load: async () => ({})},
            {name: 'string-version', apiVersion: '1', summary: 'x', load: async () => ({})},
            'telemount',
            null,
            descriptor('good'),
          ],
        },
      ]),
    )
    expect(registry.problems.map((p) => p.reason)).toEqual(['malformed', 'malformed', 'malformed', 'malformed', 'malformed'])
    expect(registry.problems.every((p) => p.message.includes('@acme/gamma@9.9.9'))).toBe(true)
    expect(registry.problems[0].message).toContain('load is not a function')
    expect(registry.problems[0].name).toBe('no-load')
    expect(registry.problems[1].message).toContain('name is not a non-empty string')
    expect(registry.problems[2].message).toContain('apiVersion is not a number')
    expect(registry.problems[3].message).toContain('got string')
    expect(registry.list().map((e) => e.descriptor.name)).toEqual(['good'])
  })

  it('imports an implementation only when it is chosen, and only that one', async () => {
    const chosen = descriptor('chosen')
    const other = descriptor('other')
    const registry = new ExtensionRegistry<Greeter>('handlers', outcome([{plugin: alpha, result: [chosen, other]}]))
    registry.list()
    registry.get('chosen')
    expect(chosen.loads()).toBe(0)
    expect(other.loads()).toBe(0)
    const greeter = await registry.load('chosen', context)
    expect(greeter.greet()).toBe('chosen from tp 0.0.0-test')
    expect(chosen.loads()).toBe(1)
    expect(other.loads()).toBe(0)
  })

  it('turns an implementation that cannot be imported into a bug naming the plugin', async () => {
    const registry = new ExtensionRegistry<Greeter>(
      'handlers',
      outcome([
        {
          plugin: beta,
          result: [
            descriptor('broken', {load: async () => Promise.reject(new Error("Cannot find module './impl.js'"))}),
            descriptor('no-factory', {load: async () => ({default: 42 as never})}),
          ],
        },
      ]),
    )
    await expect(registry.load('broken', context)).rejects.toMatchObject({kind: 'bug', message: expect.stringContaining('tp-plugin-beta@0.4.0')})
    await expect(registry.load('broken', context)).rejects.toThrow(/Cannot find module/)
    await expect(registry.load('no-factory', context)).rejects.toMatchObject({kind: 'bug', message: expect.stringContaining('no default export')})
  })

  it('says what is installed when asked for an unknown name', () => {
    const registry = new ExtensionRegistry<Greeter>('handlers', outcome([{plugin: alpha, result: [descriptor('docker-run'), descriptor('docker-build')]}]))
    let thrown: {kind?: string; message: string; next?: string} | undefined
    try {
      registry.get('docker-rnu')
    } catch (error) {
      thrown = error as typeof thrown
    }
    expect(thrown?.kind).toBe('user')
    expect(thrown?.message).toContain('docker-rnu')
    expect(thrown?.next).toContain('docker-build, docker-run')
  })

  it('refuses a daemon backend that does not say what works with it, naming the plugin', () => {
    const registry = new ExtensionRegistry<Greeter>('daemon-backends', outcome([{plugin: beta, result: [descriptor('vague')]}]))
    expect(registry.has('vague')).toBe(false)
    expect(registry.problems).toEqual([
      expect.objectContaining({
        reason: 'malformed',
        name: 'vague',
        message: expect.stringMatching(/tp-plugin-beta@0\.4\.0.*no capabilities \(canPublishPorts/),
      }),
    ])
  })

  it('a core extension cannot be shadowed: the third party is refused and named, the core one keeps working', async () => {
    const core = {name: '@tp/plugin-handler-docker-run', version: '0.1.0', type: 'core'}
    const third = {name: 'tp-plugin-evil', version: '6.6.6', type: 'user'}
    // whichever answers first
    for (const order of [
      [third, core],
      [core, third],
    ]) {
      const registry = new ExtensionRegistry<Greeter>('handlers', outcome(order.map((plugin) => ({plugin, result: [descriptor('docker-run')]}))))
      expect(registry.get('docker-run').plugin).toEqual(core)
      expect(registry.problems).toEqual([
        expect.objectContaining({
          reason: 'shadows-core',
          name: 'docker-run',
          message: expect.stringMatching(/tp-plugin-evil@6\.6\.6 .*"docker-run", which is tp's own/),
        }),
      ])
      expect(await (await registry.load('docker-run', context)).greet()).toContain('docker-run')
    }
  })

  it("a handler cannot take a flag of tp's own, nor one another plugin's handler owns", () => {
    const registry = new ExtensionRegistry<Greeter>(
      'handlers',
      outcome([
        {plugin: alpha, result: [descriptor('first')]},
        {
          plugin: beta,
          result: [descriptor('porty', {flags: {port: {type: 'string', description: 'mine'}}, selectedBy: 'port'} as Partial<Descriptor<Greeter>>)],
        },
        {
          plugin: gamma,
          result: [descriptor('copycat', {flags: {first: {type: 'boolean', description: 'mine too'}}, selectedBy: 'first'} as Partial<Descriptor<Greeter>>)],
        },
      ]),
      {reservedFlags: ['port', 'name']},
    )
    expect(registry.list().map((e) => e.descriptor.name)).toEqual(['first'])
    expect(registry.problems.map((p) => [p.name, p.reason])).toEqual([
      ['porty', 'flag-taken'],
      ['copycat', 'flag-taken'],
    ])
    expect(registry.problemsWith('porty')[0].message).toMatch(/a flag --port, which is tp's own/)
    expect(registry.problemsWith('copycat')[0].message).toMatch(/a flag --first, which @tp\/plugin-alpha@1\.2\.3 already owns/)
  })

  it.each([
    ['no summary', {summary: ''}, /no summary/],
    ['no flags', {flags: undefined}, /no flags/],
    ['no selectedBy', {selectedBy: undefined}, /no selectedBy/],
    ['no selectedBy, only a spec section it could not have', {selectedBy: undefined, specSchema: 'yes'}, /specSchema that is not a JSON Schema object/],
    ['a selectedBy that is not its flag', {selectedBy: 'other'}, /selectedBy "other", which is not one of its own flags/],
    ['a flag of no type', {flags: {x: {description: 'x'}}, selectedBy: 'x'}, /--x whose type is neither/],
    ['a flag with no description', {flags: {x: {type: 'string'}}, selectedBy: 'x'}, /--x without a description/],
    ['a precedence that is not a number', {precedence: 'first'}, /precedence that is not a number/],
    ['a specSchema that is not an object', {specSchema: 'yes'}, /specSchema that is not a JSON Schema object/],
  ])('refuses a handler descriptor with %s, naming the plugin', (_title, change, message) => {
    const registry = new ExtensionRegistry<Greeter>('handlers', outcome([{plugin: beta, result: [descriptor('bad', change as Partial<Descriptor<Greeter>>)]}]))
    expect(registry.has('bad')).toBe(false)
    expect(registry.problems).toEqual([expect.objectContaining({reason: 'malformed', name: 'bad', message: expect.stringMatching(message)})])
    expect(registry.problems[0].message).toContain('tp-plugin-beta@0.4.0')
  })

  it('says a hook that timed out was skipped', () => {
    const registry = new ExtensionRegistry<Greeter>('handlers', {successes: [], failures: [{plugin: beta, error: new Error('Timed out after 3000 ms.')}]})
    expect(registry.problems).toEqual([
      expect.objectContaining({
        reason: 'hook-timeout',
        message: expect.stringMatching(/tp-plugin-beta@0\.4\.0 did not answer for its handlers in time \(Timed out after 3000 ms\); it was skipped/),
      }),
    ])
  })
})
