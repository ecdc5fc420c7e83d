import {mkdtemp, mkdir, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {dirname, join, resolve} from 'node:path'
import {fileURLToPath} from 'node:url'
import {execa, type Result} from 'execa'

export const TP_BIN = resolve(dirname(fileURLToPath(import.meta.url)), '../bin/run.js')

/** How the sandbox runs tp: its result type follows from these options (stdout is a string). */
const TP_RUN_OPTIONS = {reject: false, stdin: 'ignore', timeout: 60_000} as const

/**
 * A throw-away user environment: HOME and the XDG directories point into a temp dir, so
 * `tp plugins link` writes its plugin list there and never into the real user's.
 */
export interface Sandbox {
  dir: string
  env: Record<string, string>
  /** Runs the real `tp` binary in this sandbox; never throws on a non-zero exit. */
  tp(args: string[], env?: Record<string, string>): Promise<Result<typeof TP_RUN_OPTIONS>>
  remove(): Promise<void>
}

export async function makeSandbox(label: string): Promise<Sandbox> {
  const dir = await mkdtemp(join(tmpdir(), `tpt-cli-${label}-`))
  const home = join(dir, 'home')
  const env = {
    HOME: home,
    XDG_DATA_HOME: join(home, '.local/share'),
    XDG_CONFIG_HOME: join(home, '.config'),
    XDG_CACHE_HOME: join(home, '.cache'),
    TP_CACHE_DIR: join(home, '.cache/tp-connections'),
    // nothing from the caller's environment that changes what tp prints
    DEBUG: '',
    TP_DEBUG: '',
    NO_COLOR: '1',
  }
  await mkdir(home, {recursive: true})
  return {
    dir,
    env,
    tp: (args, extra = {}) => execa('node', [TP_BIN, ...args], {...TP_RUN_OPTIONS, env: {...env, ...extra}}),
    remove: () => rm(dir, {recursive: true, force: true}),
  }
}

export interface ThrowAwayPlugin {
  name: string
  version?: string
  /** Hook name (e.g. `tp:handlers`) → body of the hook module (an ES module with a default export). */
  hooks: Record<string, string>
  /** Extra files, path → content. */
  files?: Record<string, string>
}

/** Writes an oclif plugin into `<sandbox>/plugins/<name>` and returns its directory. */
export async function writePlugin(sandbox: Sandbox, plugin: ThrowAwayPlugin): Promise<string> {
  const root = join(sandbox.dir, 'plugins', plugin.name)
  await mkdir(root, {recursive: true})
  const hooks: Record<string, string> = {}
  let k = 0
  for (const [hook, source] of Object.entries(plugin.hooks)) {
    const file = `hook-${k++}.js`
    hooks[hook] = `./${file}`
    await writeFile(join(root, file), source)
  }
  const pjson = {name: plugin.name, version: plugin.version ?? '1.0.0', type: 'module', oclif: {hooks}}
  await writeFile(join(root, 'package.json'), `${JSON.stringify(pjson, null, 2)}\n`)
  for (const [path, content] of Object.entries(plugin.files ?? {})) await writeFile(join(root, path), content)
  return root
}

/** A hook module that returns handler descriptors (plain objects: no sdk needed). */
export function handlersHook(descriptors: Array<{name: string; apiVersion?: number; summary?: string; load?: string}>): string {
  const items = descriptors.map(
    (d) =>
      `  {name: ${JSON.stringify(d.name)}, apiVersion: ${d.apiVersion ?? 1}, summary: ${JSON.stringify(d.summary ?? `throw-away handler ${d.name}`)}, selectedBy: ${JSON.stringify(d.name)}, flags: {${JSON.stringify(d.name)}: {type: 'boolean', description: 'use it'}}, load: ${d.load ?? "() => import('./impl.js')"}},`,
  )
  return `export default async function () {\n  return [\n${items.join('\n')}\n  ]\n}\n`
}

/** Links a plugin directory into the sandbox's tp and fails loudly if that does not work. */
export async function link(sandbox: Sandbox, dir: string): Promise<void> {
  const result = await sandbox.tp(['plugins', 'link', '--no-install', dir])
  if (result.exitCode !== 0) throw new Error(`tp plugins link ${dir} failed (${result.exitCode}):\n${result.stderr}`)
}

export interface ExtensionsJson {
  handlers: Array<{name: string; plugin: string; pluginVersion: string; pluginType: string; summary: string}>
  'volume-providers': Array<{name: string; plugin: string}>
  'daemon-backends': Array<{name: string; plugin: string}>
  'cluster-drivers': Array<{name: string; plugin: string; pluginVersion: string; pluginType: string; summary: string}>
  problems: Array<{point: string; reason: string; message: string; name?: string; plugin: {name: string; version: string}}>
}

/** Another user of this machine, inside the sandbox: a HOME, XDG dirs, tp's cache and npm's own config and cache. */
export function freshUser(sandbox: Sandbox, label: string): Record<string, string> {
  const home = join(sandbox.dir, `home-${label}`)
  return {
    ...sandbox.env,
    HOME: home,
    XDG_DATA_HOME: join(home, '.local/share'),
    XDG_CONFIG_HOME: join(home, '.config'),
    XDG_CACHE_HOME: join(home, '.cache'),
    TP_CACHE_DIR: join(home, '.cache/tp-connections'),
    // npm's own config and cache too (npx and npm run set npm_config_cache for their children)
    npm_config_userconfig: join(home, '.npmrc'),
    npm_config_cache: join(home, '.npm'),
  }
}
