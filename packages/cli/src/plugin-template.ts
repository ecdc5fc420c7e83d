import {existsSync} from 'node:fs'
import {mkdir, readFile, readdir, rm, stat, writeFile} from 'node:fs/promises'
import {dirname, join, relative} from 'node:path'
import {EXTENSION_POINTS, EXTENSION_POINT_NAMES, type ExtensionPoint, UserError, packageDir} from '@tp/sdk'
import validateName from 'validate-npm-package-name'

/**
 * `tp plugins new`: a plugin project written from the templates shipped in this package
 * (`templates/<kind>` and `templates/common`), with a package.json made here.
 */

export type PluginKind = (typeof EXTENSION_POINTS)[ExtensionPoint]['kind']

/** Each kind of plugin `tp plugins new` writes: one per extension point (the sdk's table); its hook file is named after the point. */
export const PLUGIN_KINDS = Object.fromEntries(
  EXTENSION_POINT_NAMES.map((point) => {
    const {kind, hook, words} = EXTENSION_POINTS[point]
    return [kind, {point, hook, hookFile: point, words}]
  }),
) as Record<PluginKind, {point: ExtensionPoint; hook: string; hookFile: ExtensionPoint; words: string}>

/** The versions tp itself builds with (checked against the repository's root package.json by a test). */
export const TOOLCHAIN = {typescript: '5.9.3', '@types/node': '20.19.43'} as const

// from the package's root: this module runs from dist/ and from the bundle (dist/bundle/…), at other depths
const TEMPLATES = join(packageDir('@tp/cli', import.meta.url), 'templates')
/** A handler's name is also its flag (`--acme`): lower-case words joined by dashes. */
const EXTENSION_NAME = /^[a-z][a-z0-9]*(-[a-z0-9]+)*$/

export function pluginKind(given: string): PluginKind {
  if (Object.hasOwn(PLUGIN_KINDS, given)) return given as PluginKind
  const kinds = Object.keys(PLUGIN_KINDS)
  throw new UserError(
    `"${given}" is not a kind of plugin tp plugins new makes: ${kinds.join(', ')}`,
    `e.g. \`tp plugins new handler acme\`; \`tp plugins new --help\` says what each kind is`,
  )
}

export interface PluginNames {
  /** The npm package: `tp-plugin-<name>`, or the name as given when it is scoped or already prefixed. */
  packageName: string
  /** The extension's name (and a handler's flag): the package name without scope and `tp-plugin-`. */
  extension: string
  /** The extension name for environment variables: `MY_THING` for `my-thing`. */
  env: string
  /** The directory it goes to by default: the package name without its scope. */
  directory: string
}

export function pluginNames(given: string): PluginNames {
  const packageName = given.startsWith('@') || given.startsWith('tp-plugin-') ? given : `tp-plugin-${given}`
  const check = validateName(packageName)
  if (!check.validForNewPackages) {
    const why = [...(check.errors ?? []), ...(check.warnings ?? [])].join('; ')
    throw new UserError(
      `"${given}" is not a valid npm package name (${why})`,
      'give lower-case letters, digits and dashes, e.g. `acme` or `@my-team/tp-plugin-acme`',
    )
  }
  const unscoped = packageName.replace(/^@[^/]+\//, '')
  const extension = unscoped.replace(/^tp-plugin-/, '')
  if (!EXTENSION_NAME.test(extension)) {
    throw new UserError(
      `the extension would be named "${extension}": tp needs lower-case letters, digits and dashes (it is also a flag, --${extension})`,
      'give a name such as `acme` or `my-handler`',
    )
  }
  return {packageName, extension, env: extension.toUpperCase().replaceAll('-', '_'), directory: unscoped}
}

/** The host's own @tp/sdk: its directory (what the project's devDependency points at) and version. */
export async function hostSdk(): Promise<{dir: string; version: string}> {
  const dir = packageDir('@tp/sdk', import.meta.url)
  const {version} = JSON.parse(await readFile(join(dir, 'package.json'), 'utf8')) as {version: string}
  return {dir, version}
}

function packageJson(kind: PluginKind, names: PluginNames, sdk: {dir: string; version: string}): string {
  const {hook, hookFile, words} = PLUGIN_KINDS[kind]
  const pjson = {
    name: names.packageName,
    version: '0.1.0',
    description: `tp plugin: ${words}, ${names.extension}`,
    type: 'module',
    engines: {node: '>=20.19'},
    files: ['dist/src'],
    scripts: {
      build: 'tsc -p tsconfig.json',
      pretest: 'npm run build',
      test: 'node --test dist/test/*.test.js',
      prepack: 'npm run build',
    },
    // tp's own copy is the one in use: a peer, never a dependency of its own
    peerDependencies: {'@tp/sdk': `^${sdk.version}`},
    // @tp/sdk from this machine's tp, so the project builds with no registry carrying it
    devDependencies: {'@tp/sdk': `file:${sdk.dir}`, '@types/node': TOOLCHAIN['@types/node'], typescript: TOOLCHAIN.typescript},
    oclif: {hooks: {[hook]: `./dist/src/hooks/${hookFile}.js`}},
  }
  return `${JSON.stringify(pjson, null, 2)}\n`
}

async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, {recursive: true, withFileTypes: true})
  return entries.filter((e) => e.isFile()).map((e) => relative(dir, join(e.parentPath, e.name)))
}

/** What `npm pack` names the project's first tarball. */
export function tarballName(names: PluginNames): string {
  return `${names.packageName.replace(/^@/, '').replace('/', '-')}-0.1.0.tgz`
}

/** Every file of the project, path (relative to its directory) → content. */
export async function renderPlugin(kind: PluginKind, names: PluginNames, sdk: {dir: string; version: string}): Promise<Map<string, string>> {
  const tarball = tarballName(names)
  const fill = (text: string) =>
    text
      .replaceAll('__PACKAGE__', names.packageName)
      .replaceAll('__NAME__', names.extension)
      .replaceAll('__ENV__', names.env)
      .replaceAll('__TARBALL__', tarball)
  const files = new Map<string, string>()
  for (const root of [join(TEMPLATES, 'common'), join(TEMPLATES, kind)]) {
    for (const path of await filesUnder(root)) {
      // npm leaves .gitignore out of a package: it is shipped as `gitignore`
      files.set(path === 'gitignore' ? '.gitignore' : path, fill(await readFile(join(root, path), 'utf8')))
    }
  }
  files.set('package.json', packageJson(kind, names, sdk))
  return files
}

/** Refuses a target that exists and is not an empty directory: nothing of the user's is overwritten. */
export async function checkTarget(target: string): Promise<void> {
  if (!existsSync(target)) return
  const info = await stat(target)
  if (!info.isDirectory()) throw new UserError(`${target} exists and is not a directory`, 'give another --dir, or move it away')
  if ((await readdir(target)).length > 0) throw new UserError(`${target} is not empty`, 'give an empty or new directory with --dir, or another name')
}

/** Writes the files; on a failure removes what it wrote (and the directory, if it made it). */
export async function writeProject(target: string, files: Map<string, string>): Promise<void> {
  const made = !existsSync(target)
  const written: string[] = []
  try {
    await mkdir(target, {recursive: true})
    for (const [path, content] of files) {
      const file = join(target, path)
      await mkdir(dirname(file), {recursive: true})
      await writeFile(file, content, {flag: 'wx'})
      written.push(file)
    }
  } catch (error) {
    if (made) await rm(target, {recursive: true, force: true})
    else for (const file of written) await rm(file, {force: true})
    throw error
  }
}
