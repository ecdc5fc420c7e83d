import {createRequire} from 'node:module'
import {dockerMessage, dockerStatusCode, SUPPORTED_API_VERSIONS} from '@tp/sdk'
import {TpCommand} from '../base-command.js'
import {ENGINE_TIMEOUT_MS, takePrefetchedEngineVersion} from '../engine-prefetch.js'
import {type PluginOrigin, originOf, pinsSummary} from '../pins/origin.js'
import {pinStatus} from '../pins/state.js'

/** How long `tp version` waits for the Docker engine before saying it is unreachable. */
const DOCKER_TIMEOUT_MS = ENGINE_TIMEOUT_MS

export interface PluginInfo {
  name: string
  version: string
  /** core: bundled with tp; user: `tp plugins install`; link: `tp plugins link`; dev: tp's own dev plugins. */
  type: string
  root: string
  /** core, pinned (by a repository's .tp: `pinnedBy`, and `lock`: matches or what differs), user, link, dev */
  origin: string
  pinnedBy?: string
  lock?: string
}

export type EngineInfo =
  | {reachable: true; where: string; version: string; apiVersion: string; os: string; arch: string}
  | {reachable: false; where: string; reason: string}

export interface VersionInfo {
  tp: string
  sdk: string
  extensionApi: {min: number; max: number}
  node: string
  platform: string
  plugins: PluginInfo[]
  /** the pins of the repository tp runs in, when there is one: its .tp and what keeps its set from being ready */
  pins?: {dir: string; problems: string[]}
  docker: EngineInfo
}

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
    const api = info.extensionApi.min === info.extensionApi.max ? `${info.extensionApi.min}` : `${info.extensionApi.min}–${info.extensionApi.max}`
    this.log(`tp      ${info.tp}`)
    this.log(`sdk     ${info.sdk} (extension API ${api})`)
    this.log(`node    ${info.node} ${info.platform}`)
    this.log(
      info.docker.reachable
        ? `docker  engine ${info.docker.version} (API ${info.docker.apiVersion}, ${info.docker.os}/${info.docker.arch}) at ${info.docker.where}`
        : `docker  unreachable at ${info.docker.where}: ${info.docker.reason}`,
    )
    this.log('plugins')
    const width = Math.max(...info.plugins.map((p) => p.name.length))
    for (const p of info.plugins) this.log(`  ${p.name.padEnd(width)}  ${p.version.padEnd(8)}  ${origins.get(p.name)?.label ?? p.type}`)
    const summary = pinsSummary(pins)
    if (summary) this.log(`pins    ${summary}`)
    return info
  }
}

/** Where dockerode (like the docker client) will look for the engine. */
export function dockerEndpoint(): string {
  return process.env.DOCKER_HOST || 'unix:///var/run/docker.sock'
}

/** Asks the engine for its version; never throws: an unreachable engine is described instead. */
export async function dockerEngineInfo(timeoutMs = DOCKER_TIMEOUT_MS): Promise<EngineInfo> {
  const where = dockerEndpoint()
  let started = Date.now()
  // `tp version` on a unix socket: bin/run.js asked as tp started (engine-prefetch.ts)
  const prefetched = takePrefetchedEngineVersion()
  if (prefetched) started = prefetched.started
  try {
    let version = await prefetched?.version
    if (!version) {
      // imported here so that commands which never talk to Docker do not pay for loading it
      const {default: Docker} = await import('dockerode')
      started = Date.now()
      version = await new Docker({timeout: timeoutMs}).version()
    }
    return {reachable: true, where, version: version.Version, apiVersion: version.ApiVersion, os: version.Os, arch: version.Arch}
  } catch (error) {
    // docker-modem ends a request that timed out with a bare "socket hang up": tell it by the clock
    const timedOut = Date.now() - started >= timeoutMs * 0.9
    return {reachable: false, where, reason: explainDockerError(error as NodeJS.ErrnoException, timeoutMs, timedOut)}
  }
}

function explainDockerError(error: NodeJS.ErrnoException, timeoutMs: number, timedOut: boolean): string {
  const source = process.env.DOCKER_HOST ? 'DOCKER_HOST' : 'the default socket; set DOCKER_HOST to use another engine'
  switch (error.code) {
    case 'ENOENT':
      return `no socket there — is dockerd running? (${source})`
    case 'ECONNREFUSED':
      return `connection refused — is dockerd running and listening there? (${source})`
    case 'EACCES':
    case 'EPERM':
      return 'permission denied on the socket — run as a user in the docker group, or as root'
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return `host name not found (${source})`
  }
  if (timedOut || /timeout/i.test(error.message ?? '') || error.code === 'ETIMEDOUT') return `no answer within ${timeoutMs / 1000} s (${source})`
  const status = dockerStatusCode(error)
  if (status) return `the engine answered HTTP ${status}: ${dockerMessage(error)}`
  return `${error.message ?? String(error)} (${source})`
}
