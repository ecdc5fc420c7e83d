import {mkdirSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import {writeFile} from 'node:fs/promises'
import {join, resolve} from 'node:path'
import {fileURLToPath, pathToFileURL} from 'node:url'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {contentHash} from '../src/content-hash.js'
import {currentSnapshot, type FastStartSnapshot, SNAPSHOT_FILE, SNAPSHOT_FORMAT} from '../src/fast-start.js'
import {link, makeSandbox, type Sandbox, writePlugin} from './helpers.js'

const cliRoot = resolve(fileURLToPath(import.meta.url), '../..')
const OFF = {TP_FAST_START: '0'}

/** The files of tp's bundle that carry @oclif/core's own code (scripts/bundle.mjs's meta.json says which output holds which input). */
function oclifFiles(): string[] {
  const meta = JSON.parse(readFileSync(join(cliRoot, 'dist/bundle/meta.json'), 'utf8')) as {outputs: Record<string, {inputs: Record<string, unknown>}>}
  return Object.entries(meta.outputs)
    .filter(([, output]) => Object.keys(output.inputs).some((input) => /node_modules\/@oclif\/core\/lib\//.test(input)))
    .map(([file]) => pathToFileURL(join(cliRoot, file)).href)
}

describe('`tp version` and `tp --help` without oclif (src/fast-start.ts)', () => {
  let s: Sandbox
  let nodeOptions: string
  let log: string

  beforeAll(async () => {
    s = await makeSandbox('fast-start')
    log = join(s.dir, 'loaded.txt')
    const hooks = join(s.dir, 'hooks.mjs')
    const register = join(s.dir, 'register.mjs')
    await writeFile(
      hooks,
      `import {appendFileSync} from 'node:fs'\nexport async function load(url, context, next) {\n  appendFileSync(process.env.TP_TEST_LOADED, url + '\\n')\n  return next(url, context)\n}\n`,
    )
    await writeFile(register, `import {register} from 'node:module'\nregister(${JSON.stringify(pathToFileURL(hooks).href)})\n`)
    nodeOptions = `--import ${pathToFileURL(register).href}`
  })
  afterAll(async () => s?.remove())

  /** `tp <args>`: its output, and whether it loaded @oclif/core. */
  async function run(args: string[], env: Record<string, string> = {}): Promise<{stdout: string; stderr: string; oclif: boolean}> {
    await writeFile(log, '')
    const result = await s.tp(args, {...env, NODE_OPTIONS: nodeOptions, TP_TEST_LOADED: log})
    expect(result.exitCode, `tp ${args.join(' ')}: ${result.stderr}`).toBe(0)
    const loaded = new Set(readFileSync(log, 'utf8').split('\n'))
    return {stdout: result.stdout, stderr: result.stderr, oclif: oclifFiles().some((url) => loaded.has(url))}
  }

  it('print what oclif prints, without loading it', async () => {
    for (const args of [['--help'], ['help'], [], ['version']]) {
      const fast = await run(args)
      const oclif = await run(args, OFF)
      expect(fast.oclif, `tp ${args.join(' ')} loaded oclif`).toBe(false)
      expect(oclif.oclif, 'TP_FAST_START=0 is oclif').toBe(true)
      expect(fast.stdout, `tp ${args.join(' ')}`).toBe(oclif.stdout)
      expect(fast.stderr).toBe(oclif.stderr)
    }
    // the root help wraps at the terminal's width, and colours its headers as oclif would
    const envs: Record<string, string>[] = [{OCLIF_COLUMNS: '40'}, {OCLIF_COLUMNS: '57'}, {OCLIF_COLUMNS: '132'}, {FORCE_COLOR: '1', NO_COLOR: ''}]
    for (const env of envs) {
      expect((await run(['--help'], env)).stdout, JSON.stringify(env)).toBe((await run(['--help'], {...env, ...OFF})).stdout)
    }
  })

  it('`tp version` on an engine that is not there says so as oclif does', async () => {
    for (const host of [`unix://${join(s.dir, 'no-dockerd.sock')}`, 'tcp://127.0.0.1:1']) {
      const fast = await run(['version'], {DOCKER_HOST: host})
      expect(fast.oclif).toBe(false)
      expect(fast.stdout).toMatch(/^docker\s+unreachable at /m)
      expect(fast.stdout).toBe((await run(['version'], {DOCKER_HOST: host, ...OFF})).stdout)
    }
  })

  it("runs the core plugins' init hooks (daemon-host's hosts file repair), as oclif does", async () => {
    const hosts = join(s.dir, 'hosts')
    const dead = 4_194_000 // above Linux's largest pid
    const block = `# tp begin gone pid=${dead} (added by tp while connected; removed when the connection ends)\n10.9.9.9\tweb\n# tp end gone\n`
    for (const env of [{}, OFF]) {
      writeFileSync(hosts, `127.0.0.1 localhost\n${block}`)
      expect((await run(['--help'], {...env, TP_HOSTS_FILE: hosts})).oclif).toBe(env === OFF)
      expect(readFileSync(hosts, 'utf8'), JSON.stringify(env)).toBe('127.0.0.1 localhost\n')
    }
  })

  it('a plugin the user links shows in `tp --help` and `tp version` (oclif answers), and the fast path is back once it is gone', async () => {
    // a command oclif lists from the plugin's sources (a linked plugin's manifest is not read)
    mkdirSync(join(s.dir, 'plugins', 'tpt-fast-linked', 'commands'), {recursive: true})
    const dir = await writePlugin(s, {
      name: 'tpt-fast-linked',
      version: '7.8.9',
      hooks: {},
      files: {'commands/hello.js': "export default class Hello {\n  static summary = 'Say hello from a linked plugin'\n  static async run() {}\n}\n"},
    })
    const pjson = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as {oclif: Record<string, unknown>}
    pjson.oclif.commands = './commands'
    writeFileSync(join(dir, 'package.json'), JSON.stringify(pjson))
    await link(s, dir)
    try {
      const help = await run(['--help'])
      expect(help.oclif).toBe(true)
      expect(help.stdout).toMatch(/^\s+hello\s+Say hello from a linked plugin$/m)
      const version = await run(['version'])
      expect(version.oclif).toBe(true)
      expect(version.stdout).toMatch(/^\s+tpt-fast-linked\s+7\.8\.9\s+link$/m)
    } finally {
      expect((await s.tp(['plugins', 'unlink', 'tpt-fast-linked'])).exitCode).toBe(0)
    }
    const after = await run(['--help'])
    expect(after.oclif).toBe(false)
    expect(after.stdout).not.toContain('hello')
  })

  it('an oclif theme, DEBUG or TP_FAST_START=0 leave it to oclif', async () => {
    expect((await run(['--help'], {DEBUG: 'nothing-that-matches'})).oclif).toBe(true)
    const config = join(s.env.XDG_CONFIG_HOME, 'tp')
    mkdirSync(config, {recursive: true})
    writeFileSync(join(config, 'theme.json'), '{}\n')
    try {
      expect((await run(['--help'])).oclif).toBe(true)
    } finally {
      rmSync(join(config, 'theme.json'))
    }
    expect((await run(['--help'])).oclif).toBe(false)
  })
})

describe('the snapshot is used only while it describes what oclif would load', () => {
  let s: Sandbox
  let root: string
  let env: Record<string, string>

  /** A CLI `@x/cli` with one core plugin `x-plugin` beside it in node_modules, and its snapshot. */
  function writeCli(): void {
    root = join(s.dir, 'app', 'cli')
    const plugin = join(s.dir, 'app', 'node_modules', 'x-plugin')
    mkdirSync(join(root, 'dist'), {recursive: true})
    mkdirSync(plugin, {recursive: true})
    const file = (dir: string, path: string, content: string) => {
      writeFileSync(join(dir, path), content)
      const bytes = readFileSync(join(dir, path))
      return {path, size: bytes.length, hash: contentHash(bytes)}
    }
    const snapshot: FastStartSnapshot = {
      format: SNAPSHOT_FORMAT,
      cli: {name: '@x/cli', version: '1.0.0'},
      packages: [
        {name: '@x/cli', files: [file(root, 'package.json', '{"name":"@x/cli","version":"1.0.0"}'), file(root, 'oclif.manifest.json', '{"commands":{}}')]},
        {name: 'x-plugin', files: [file(plugin, 'package.json', '{"name":"x-plugin","version":"2.0.0"}')]},
      ],
      plugins: [],
      initHooks: [],
      sdk: {version: '1.0.0', extensionApi: {min: 1, max: 1}},
      help: {description: 'x', bin: 'x', topics: [], commands: []},
    }
    writeFileSync(join(root, SNAPSHOT_FILE), JSON.stringify(snapshot))
  }

  beforeAll(async () => {
    s = await makeSandbox('fast-start-snapshot')
    env = {HOME: s.env.HOME, XDG_DATA_HOME: s.env.XDG_DATA_HOME, XDG_CONFIG_HOME: s.env.XDG_CONFIG_HOME}
  })
  afterAll(async () => s?.remove())

  it('as built', () => {
    writeCli()
    expect(currentSnapshot(root, env)?.roots.get('x-plugin')).toBe(join(s.dir, 'app', 'node_modules', 'x-plugin'))
  })

  it('not once a file it was made from changed, even to the same length', () => {
    writeCli()
    writeFileSync(join(s.dir, 'app', 'node_modules', 'x-plugin', 'package.json'), '{"name":"x-plugin","version":"2.0.1"}')
    expect(currentSnapshot(root, env)).toBeUndefined()
    writeCli()
    writeFileSync(join(root, 'oclif.manifest.json'), '{"commands":{"a":1}}')
    expect(currentSnapshot(root, env)).toBeUndefined()
  })

  it('not when a core plugin is not found, or the snapshot is missing, unreadable or of another format', () => {
    writeCli()
    writeFileSync(join(root, SNAPSHOT_FILE), '{')
    expect(currentSnapshot(root, env)).toBeUndefined()
    writeCli()
    const snapshot = JSON.parse(readFileSync(join(root, SNAPSHOT_FILE), 'utf8')) as FastStartSnapshot
    writeFileSync(join(root, SNAPSHOT_FILE), JSON.stringify({...snapshot, format: SNAPSHOT_FORMAT + 1}))
    expect(currentSnapshot(root, env)).toBeUndefined()
    writeCli()
    writeFileSync(
      join(root, SNAPSHOT_FILE),
      JSON.stringify({...snapshot, packages: [...snapshot.packages, {name: 'x-gone', files: snapshot.packages[1].files}]}),
    )
    expect(currentSnapshot(root, env)).toBeUndefined()
  })

  it('not when the user has plugins, pins chose them, or it is turned off', () => {
    writeCli()
    const data = join(s.env.XDG_DATA_HOME, 'tp')
    mkdirSync(data, {recursive: true})
    writeFileSync(join(data, 'package.json'), JSON.stringify({oclif: {plugins: [{name: 'p', type: 'user'}]}}))
    expect(currentSnapshot(root, env)).toBeUndefined()
    // what `tp plugins uninstall` of the last one leaves
    writeFileSync(join(data, 'package.json'), JSON.stringify({oclif: {plugins: [], schema: 1}}))
    expect(currentSnapshot(root, env)).toBeDefined()
    expect(currentSnapshot(root, {...env, TP_DATA_DIR: join(s.dir, 'elsewhere')})).toBeDefined()
    writeFileSync(join(data, 'package.json'), 'not json')
    expect(currentSnapshot(root, env)).toBeUndefined()
    writeFileSync(join(data, 'package.json'), '{}')
    expect(currentSnapshot(root, {...env, TP_PINS_REPO: s.dir})).toBeUndefined()
    expect(currentSnapshot(root, {...env, TP_FAST_START: '0'})).toBeUndefined()
    expect(currentSnapshot(root, {...env, TP_DEBUG: '1'})).toBeUndefined()
  })
})
