import {existsSync, readFileSync} from 'node:fs'
import {readdir, writeFile} from 'node:fs/promises'
import {join, relative, resolve} from 'node:path'
import {fileURLToPath, pathToFileURL} from 'node:url'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {makeSandbox, type Sandbox} from './helpers.js'

/**
 * tp starts fast because oclif reads its commands from oclif.manifest.json (written by
 * `npm run build`) instead of importing every command module at start-up, and loads them from
 * the bundle (dist/bundle/commands, scripts/bundle.mjs): one entry file per command.
 */
const cliRoot = resolve(fileURLToPath(import.meta.url), '../..')
const manifestPath = join(cliRoot, 'oclif.manifest.json')
const pjson = JSON.parse(readFileSync(join(cliRoot, 'package.json'), 'utf8')) as {version: string; oclif: {commands: string}}
/** Where oclif loads tp's commands from. */
const commandsDir = join(cliRoot, pjson.oclif.commands)
/** What tsc made of src/commands: every command there must be in the bundle too. */
const compiledCommandsDir = join(cliRoot, 'dist/commands')

async function commandModules(dir: string): Promise<string[]> {
  const entries = await readdir(dir, {withFileTypes: true, recursive: true})
  return entries.filter((e) => e.isFile() && e.name.endsWith('.js')).map((e) => join(e.parentPath, e.name))
}

/** The ids of the modules under `dir` that export a command class (`spec:run` for spec/run.js). */
async function commandIds(dir: string): Promise<string[]> {
  const ids: string[] = []
  for (const file of await commandModules(dir)) {
    const exported = ((await import(pathToFileURL(file).href)) as {default?: {prototype?: {run?: unknown}}}).default
    if (typeof exported?.prototype?.run !== 'function') continue // a helper module, not a command
    ids.push(relative(dir, file).replace(/\.js$/, '').split('/').join(':'))
  }
  return ids.sort()
}

describe('oclif manifest', () => {
  let s: Sandbox
  beforeAll(async () => {
    s = await makeSandbox('manifest')
  })
  afterAll(async () => s?.remove())

  it('exists and lists every command the build produced', async () => {
    expect(existsSync(manifestPath), `${manifestPath} is missing: run \`npm run build\``).toBe(true)
    const manifest = JSON.parse(readFileSync(manifestPath, 'utf8')) as {version: string; commands: Record<string, unknown>}
    expect(manifest.version).toBe(pjson.version)
    const compiled = await commandIds(compiledCommandsDir)
    const bundled = await commandIds(commandsDir)
    expect(compiled).toContain('version')
    expect(compiled).toContain('extensions')
    expect(
      compiled.filter((id) => !bundled.includes(id)),
      'commands missing from the bundle: run `npm run build`',
    ).toEqual([])
    const missing = compiled.filter((id) => !(id in manifest.commands))
    expect(missing, `stale manifest: run \`npm run build\` (or \`npm run -w @tp/cli manifest\`)`).toEqual([])
  })

  it('lets `tp version` start without importing any other command', async () => {
    // a module loader hook that records every file URL the tp process loads
    const log = join(s.dir, 'loaded.txt')
    const hooks = join(s.dir, 'hooks.mjs')
    const register = join(s.dir, 'register.mjs')
    await writeFile(
      hooks,
      `import {appendFileSync} from 'node:fs'\nexport async function load(url, context, next) {\n  appendFileSync(${JSON.stringify(log)}, url + '\\n')\n  return next(url, context)\n}\n`,
    )
    await writeFile(register, `import {register} from 'node:module'\nregister(${JSON.stringify(pathToFileURL(hooks).href)})\n`)
    const commandsLoaded = async (env: Record<string, string>) => {
      await writeFile(log, '')
      const result = await s.tp(['version'], {...env, NODE_OPTIONS: `--import ${pathToFileURL(register).href}`})
      expect(result.exitCode).toBe(0)
      return readFileSync(log, 'utf8')
        .split('\n')
        .filter((url) => url.startsWith(pathToFileURL(commandsDir).href))
        .map((url) => url.slice(pathToFileURL(commandsDir).href.length + 1))
    }
    // through oclif (as with a user's plugins)
    expect(await commandsLoaded({TP_FAST_START: '0'})).toEqual(['version.js'])
    // answered without oclif (src/fast-start.ts): no command file at all
    expect(await commandsLoaded({})).toEqual([])
  })
})
