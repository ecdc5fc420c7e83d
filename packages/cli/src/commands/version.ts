import {createRequire} from 'node:module'
import {SUPPORTED_API_VERSIONS} from '@tp/sdk'
import {TpCommand} from '../base-command.js'
import {dockerEngineInfo} from '../engine-info.js'
import {type PluginOrigin, originOf, pinsSummary} from '../pins/origin.js'
import {pinStatus} from '../pins/state.js'
import {type VersionInfo, versionReport} from '../version-report.js'

export {dockerEndpoint, dockerEngineInfo} from '../engine-info.js'
export type {EngineInfo, PluginInfo, VersionInfo} from '../version-report.js'

export default class Version extends TpCommand {
  static override summary = "Show tp's version, its plugins and the Docker engine it talks to"
  static override description =
    "Lists every loaded plugin with its version and where it comes from (core: bundled, pinned by a repository's .tp and whether it matches the lock, user: installed with `tp plugins install`, link: `tp plugins link`), and asks the Docker engine for its version. Include this output in bug reports."
  static override enableJsonFlag = true

  async run(): Promise<VersionInfo> {
    await this.parse(Version)
    const require = createRequire(import.meta.url)
    const pins = pinStatus()
    const origins = new Map<string, PluginOrigin>()
    const info: VersionInfo = {
      tp: this.config.version,
      sdk: (require('@tp/sdk/package.json') as {version: string}).version,
      extensionApi: {...SUPPORTED_API_VERSIONS},
      node: process.version,
      platform: `${this.config.platform}-${this.config.arch}`,
      plugins: this.config
        .getPluginsList()
        .map((p) => {
          const {label, ...origin} = originOf(p, pins)
          origins.set(p.name, {label, ...origin})
          return {name: p.name, version: p.version, type: p.type, root: p.root, ...origin}
        })
        .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)), // npm names; localeCompare's first call costs 10-25 ms
      ...(pins ? {pins: {dir: pins.pinsDir, problems: pins.problems}} : {}),
      docker: await dockerEngineInfo(),
    }
    for (const line of versionReport(info, (name) => origins.get(name)?.label, pinsSummary(pins))) this.log(line)
    return info
  }
}
