#!/usr/bin/env node
/**
 * Writes dist/fast-start.json (`npm run build`, after `oclif manifest`): what `tp version` and
 * `tp --help` need to be answered without oclif (src/fast-start.ts), taken from oclif itself:
 * Config.load of this CLI with no user plugins, no pins and no theme, oclif's Help for the root
 * page's lists, each plugin's init hooks; and the length and hash of every file that went into it,
 * which the CLI checks at each start before it trusts the snapshot.
 */
import {existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import {createRequire} from 'node:module'
import {tmpdir} from 'node:os'
import {dirname, join, relative} from 'node:path'
import {fileURLToPath, pathToFileURL} from 'node:url'

const cli = dirname(dirname(fileURLToPath(import.meta.url)))
const {SNAPSHOT_FILE, SNAPSHOT_FORMAT} = await import(pathToFileURL(join(cli, 'dist/fast-start.js')).href)
const {contentHash} = await import(pathToFileURL(join(cli, 'dist/content-hash.js')).href)

// oclif as a user without plugins, pins or theme would have it
const empty = mkdtempSync(join(tmpdir(), 'tp-fast-start-'))
for (const name of ['TP_PINS_REPO', 'TP_PINS_OUTER_DATA_DIR', 'TP_DISABLE_THEME', 'DEBUG', 'TP_DEBUG']) delete process.env[name]
Object.assign(process.env, {TP_DATA_DIR: join(empty, 'data'), TP_CONFIG_DIR: join(empty, 'config'), TP_CACHE_DIR: join(empty, 'cache')})

try {
  const {Config, Help} = await import('@oclif/core')
  const config = await Config.load({root: cli})
  const oclif = config.pjson.oclif
  // what the CLI's fast path does not reproduce: change src/fast-start.ts and root-help.ts first
  for (const key of ['state', 'helpOptions', 'additionalHelpFlags', 'additionalVersionFlags', 'theme', 'jitPlugins', 'devPlugins']) {
    if (oclif[key] !== undefined) throw new Error(`fast-start: package.json's oclif.${key} is not handled by src/fast-start.ts`)
  }
  if (config.isSingleCommandCLI || config.topicSeparator !== ' ') throw new Error('fast-start: expects a multi-command CLI with topics separated by spaces')

  // the lists oclif's root help renders, exactly as its formatTopics / formatCommands give them
  const lists = {}
  let current
  class Capture extends Help {
    formatTopics(topics) {
      current = 'topics'
      return super.formatTopics(topics)
    }
    formatCommands(commands) {
      current = 'commands'
      return super.formatCommands(commands)
    }
    renderList(input) {
      lists[current] = input.map(([left, right]) => [left, right || undefined])
      return ''
    }
    log() {}
  }
  const help = new Capture(config)
  await help.showRootHelp()
  const description = help.render(oclif.description || config.pjson.description || '')
  const texts = [description, ...Object.values(lists).flat(2)].filter(Boolean)
  if (texts.some((t) => t.includes('<%') || t.includes('\u001b'))) throw new Error('fast-start: the root help has templates or colours')

  const plugins = config.getPluginsList()
  const fileOf = (root, path) => {
    const bytes = readFileSync(join(root, path))
    return {path, size: bytes.length, hash: contentHash(bytes)}
  }
  const sdkRoot = dirname(createRequire(join(cli, 'package.json')).resolve('@tp/sdk/package.json'))
  const sdkPjson = JSON.parse(readFileSync(join(sdkRoot, 'package.json'), 'utf8'))
  const {SUPPORTED_API_VERSIONS} = await import('@tp/sdk')
  // package.json first: the CLI finds a package's root by where that file reads
  const packages = [
    ...plugins.map((p) => ({
      name: p.name,
      files: ['package.json', 'oclif.manifest.json'].filter((f) => existsSync(join(p.root, f))).map((f) => fileOf(p.root, f)),
    })),
    {name: '@tp/sdk', files: [fileOf(sdkRoot, 'package.json')]},
  ]
  const initHooks = []
  for (const p of plugins) {
    for (const hook of p.hooks.init ?? []) {
      const target = typeof hook === 'string' ? hook : hook.target
      if (!existsSync(join(p.root, target))) throw new Error(`fast-start: ${p.name}'s init hook ${target} is not a file`)
      initHooks.push({plugin: p.name, target: relative(p.root, join(p.root, target)), identifier: hook.identifier ?? 'default'})
    }
  }
  const snapshot = {
    format: SNAPSHOT_FORMAT,
    cli: {name: config.pjson.name, version: config.version},
    packages: [packages.find((p) => p.name === config.pjson.name), ...packages.filter((p) => p.name !== config.pjson.name)],
    plugins: plugins.map((p) => ({name: p.name, version: p.version, type: p.type})),
    initHooks,
    sdk: {version: sdkPjson.version, extensionApi: {min: SUPPORTED_API_VERSIONS.min, max: SUPPORTED_API_VERSIONS.max}},
    help: {description, bin: config.bin, topics: lists.topics ?? [], commands: lists.commands ?? []},
  }
  writeFileSync(join(cli, SNAPSHOT_FILE), `${JSON.stringify(snapshot, null, 1)}\n`)
} finally {
  rmSync(empty, {recursive: true, force: true})
}
