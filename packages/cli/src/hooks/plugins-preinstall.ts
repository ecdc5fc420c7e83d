import {existsSync} from 'node:fs'
import {mkdir, readFile, writeFile} from 'node:fs/promises'
import {join, resolve} from 'node:path'
import type {Hook} from '@oclif/core'
import {packageDir} from '@tp/sdk/paths'

/**
 * Before `tp plugins install`: what plugin-plugins does not do for tp.
 * - A path to a packed plugin (`/abs/plugin-0.1.0.tgz`, `./plugin.tgz`) or to a plugin's directory
 *   is installed from there; plugin-plugins would take `a/b` for a GitHub repository.
 * - `@tp/sdk` is no registry's: the user's plugin directory gets the sdk tp itself runs as a
 *   dependency (`file:`), so a plugin that imports it, or names it as a peer, installs and loads
 *   with tp's own copy, and npm checks the plugin's range against tp's version.
 */
const hook: Hook<'plugins:preinstall'> = async ({plugin, config}) => {
  const target = plugin as {type: string; url?: string}
  const asGiven = target.type === 'repo' && target.url?.startsWith('https://github.com/') ? target.url.slice('https://github.com/'.length) : undefined
  if (asGiven && /^(\/|\.\.?\/)|\.(tgz|tar\.gz)$/.test(asGiven) && existsSync(resolve(asGiven))) target.url = `file:${resolve(asGiven)}`

  const sdk = packageDir('@tp/sdk', import.meta.url)
  const pjsonPath = join(config.dataDir, 'package.json')
  await mkdir(config.dataDir, {recursive: true})
  const pjson: {dependencies?: Record<string, string>; [key: string]: unknown} = existsSync(pjsonPath)
    ? JSON.parse(await readFile(pjsonPath, 'utf8'))
    : {private: true, oclif: {plugins: [], schema: 1}}
  const wanted = `file:${sdk}`
  if (pjson.dependencies?.['@tp/sdk'] !== wanted) {
    pjson.dependencies = {...pjson.dependencies, '@tp/sdk': wanted}
    await writeFile(pjsonPath, `${JSON.stringify(pjson, null, 2)}\n`)
  }
}

export default hook
