/**
 * `tp version` and `tp --help` answered without loading oclif (bin/run.js asks here first), from
 * what the build took from oclif itself (dist/fast-start.json, scripts/fast-start-snapshot.mjs):
 * the core plugins, their versions and init hooks, the root help's topics and commands.
 * oclif's Config.load, its 355 KiB chunk and the sdk were most of these commands' start-up.
 *
 * The snapshot is used only when nothing it was made from differs; otherwise oclif answers, as
 * before, so any user-visible difference falls back rather than shows:
 * - every file it was made from (package.json and oclif.manifest.json of tp and of each core
 *   plugin, the sdk's package.json), found where oclif finds them, has the same length and hash;
 * - the user's data directory lists no plugins (`tp plugins install` / `link` add them to its
 *   package.json: oclif loads those, and a linked plugin's commands from its sources);
 * - no repository's pins chose the plugins (bin/run.js ran selectDataDir), no oclif theme file,
 *   no DEBUG / TP_DEBUG output asked for, not Windows; `TP_FAST_START=0` turns it off.
 * The core plugins' init hooks run as oclif runs them (all at once, their errors ignored), with a
 * context that has no `config`: none of tp's uses it (a hook that needs it must not be a core
 * plugin's `init` hook, or this must fall back).
 */
import {existsSync, readFileSync} from 'node:fs'
import {homedir} from 'node:os'
import {dirname, join} from 'node:path'
import {fileURLToPath, pathToFileURL} from 'node:url'
import {format} from 'node:util'
import {contentHash} from './content-hash.js'
import {dockerEngineInfo} from './engine-info.js'
import {type FastCommand, fastCommand} from './fast-command.js'
import {REPO_ENV, userDataDir} from './pins/select-data-dir.js'
import type {RootHelpText} from './root-help.js'
import {platformAndArch, userAgent} from './version-flag.js'
import {type PluginInfo, versionReport} from './version-report.js'

/** Where the build writes the snapshot, from the CLI's root. */
export const SNAPSHOT_FILE = 'dist/fast-start.json'
export const SNAPSHOT_FORMAT = 1

export interface SnapshotFile {
  /** from the package's root */
  path: string
  size: number
  /** contentHash of its bytes */
  hash: string
}

export interface FastStartSnapshot {
  format: number
  cli: {name: string; version: string}
  /** the packages the snapshot was made from (tp first), and their files */
  packages: {name: string; files: SnapshotFile[]}[]
  /** as oclif's getPluginsList() had them */
  plugins: {name: string; version: string; type: string}[]
  /** the init hooks of every plugin, in oclif's order: the hook's file from its plugin's root */
  initHooks: {plugin: string; target: string; identifier: string}[]
  sdk: {version: string; extensionApi: {min: number; max: number}}
  help: RootHelpText
}

/** The node_modules directories from the CLI's root up, where oclif looks for a core plugin (the first that has it). */
function nodeModulesDirs(cliRoot: string): string[] {
  const dirs: string[] = []
  for (let dir = cliRoot; ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'node_modules'))) dirs.push(join(dir, 'node_modules'))
    if (dirname(dir) === dir) return dirs
  }
}

function readOrUndefined(path: string): Buffer | undefined {
  try {
    return readFileSync(path)
  } catch {
    return undefined
  }
}

/** The user's data directory lists plugins (or cannot be read as oclif would): oclif must load them. */
function userPluginsListed(env: NodeJS.ProcessEnv): boolean {
  const pjson = readOrUndefined(join(userDataDir(env), 'package.json'))
  if (!pjson) return false
  try {
    const plugins = (JSON.parse(pjson.toString()) as {oclif?: {plugins?: unknown[]}}).oclif?.plugins
    return Array.isArray(plugins) ? plugins.length > 0 : plugins !== undefined
  } catch {
    return true
  }
}

/** oclif's `<configDir>/theme.json` (colours of the help) exists. */
function themeFile(env: NodeJS.ProcessEnv): boolean {
  if (env.TP_DISABLE_THEME === '1' || env.TP_DISABLE_THEME === 'true') return false
  const dir = env.TP_CONFIG_DIR || join(env.XDG_CONFIG_HOME || join(env.HOME || homedir(), '.config'), 'tp')
  return existsSync(join(dir, 'theme.json'))
}

/** The snapshot, and each package's root, when the snapshot still describes what oclif would load. */
export function currentSnapshot(cliRoot: string, env: NodeJS.ProcessEnv = process.env): {snapshot: FastStartSnapshot; roots: Map<string, string>} | undefined {
  if (env.TP_FAST_START === '0' || env[REPO_ENV] !== undefined || env.DEBUG || env.TP_DEBUG || process.platform === 'win32') return undefined
  if (themeFile(env) || userPluginsListed(env)) return undefined
  let snapshot: FastStartSnapshot
  try {
    snapshot = JSON.parse(readFileSync(join(cliRoot, SNAPSHOT_FILE), 'utf8')) as FastStartSnapshot
  } catch {
    return undefined
  }
  if (snapshot.format !== SNAPSHOT_FORMAT) return undefined
  const roots = new Map<string, string>()
  const nodeModules = nodeModulesDirs(cliRoot)
  for (const {name, files} of snapshot.packages) {
    const candidates = name === snapshot.cli.name ? [cliRoot] : nodeModules.map((dir) => join(dir, name))
    // the first file is the package's package.json: where it reads is the package's root
    let root: string | undefined
    for (const [k, file] of files.entries()) {
      let bytes: Buffer | undefined
      if (k === 0) {
        for (const candidate of candidates) {
          bytes = readOrUndefined(join(candidate, file.path))
          if (bytes) {
            root = candidate
            break
          }
        }
      } else if (root) {
        bytes = readOrUndefined(join(root, file.path))
      }
      if (!bytes || bytes.length !== file.size || contentHash(bytes) !== file.hash) return undefined
    }
    if (!root) return undefined
    roots.set(name, root)
  }
  return {snapshot, roots}
}

/** oclif's runHook('init'): every plugin's hooks at once, a failure ignored. */
async function runInitHooks(snapshot: FastStartSnapshot, roots: Map<string, string>, argv: string[]): Promise<void> {
  const [id, ...rest] = argv
  const context = {
    config: undefined,
    debug: () => {},
    log: (message: string, ...args: unknown[]) => console.log(format(message, ...args)),
    warn: (message: string) => process.stderr.write(`Warning: ${message}\n`),
    error: (message: string) => {
      throw new Error(message)
    },
    exit: (code = 0) => process.exit(code),
  }
  await Promise.all(
    snapshot.initHooks.map(async ({plugin, target, identifier}) => {
      try {
        const root = roots.get(plugin)
        if (!root) return
        const module = (await import(pathToFileURL(join(root, target)).href)) as Record<string, unknown>
        const hook = module[identifier] ?? (identifier === 'default' ? Object.values(module).find((v) => typeof v === 'function') : undefined)
        if (typeof hook === 'function') await hook.call(context, {argv: rest, id, config: undefined, context})
      } catch {
        // as oclif: an init hook that fails does not stop the command
      }
    }),
  )
}

async function printVersion(snapshot: FastStartSnapshot, roots: Map<string, string>): Promise<void> {
  const {platform, arch} = await platformAndArch()
  const plugins: PluginInfo[] = snapshot.plugins
    .map((p) => ({...p, root: roots.get(p.name) ?? '', origin: p.type}))
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
  const info = {
    tp: snapshot.cli.version,
    sdk: snapshot.sdk.version,
    extensionApi: {...snapshot.sdk.extensionApi},
    node: process.version,
    platform: `${platform}-${arch}`,
    plugins,
    docker: await dockerEngineInfo(),
  }
  // as oclif's this.log: console.log of util.format of the line
  for (const line of versionReport(info, () => undefined)) console.log(format(line))
}

/** True when `tp <argv>` was answered here; false: nothing was printed or run, oclif answers. */
export async function answered(argv: string[], cliRootUrl: URL): Promise<boolean> {
  const command: FastCommand | undefined = fastCommand(argv)
  if (!command) return false
  const current = currentSnapshot(fileURLToPath(cliRootUrl))
  if (!current) return false
  const {snapshot, roots} = current
  await runInitHooks(snapshot, roots, argv)
  if (command === 'version') {
    await printVersion(snapshot, roots)
  } else {
    const {rootHelp} = await import('./root-help.js')
    process.stdout.write(rootHelp(snapshot.help, await userAgent(snapshot.cli)))
  }
  return true
}
