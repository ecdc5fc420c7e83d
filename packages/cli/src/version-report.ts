/**
 * What `tp version` prints, line by line: shared by the command and by its answer without oclif
 * (fast-start.ts), which must print the same.
 */
import type {EngineInfo} from './engine-info.js'

export type {EngineInfo}

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

/** The lines of `tp version`; `label` says where a plugin comes from (its type when undefined). */
export function versionReport(info: VersionInfo, label: (plugin: string) => string | undefined, pinsLine?: string): string[] {
  const api = info.extensionApi.min === info.extensionApi.max ? `${info.extensionApi.min}` : `${info.extensionApi.min}–${info.extensionApi.max}`
  const lines = [
    `tp      ${info.tp}`,
    `sdk     ${info.sdk} (extension API ${api})`,
    `node    ${info.node} ${info.platform}`,
    info.docker.reachable
      ? `docker  engine ${info.docker.version} (API ${info.docker.apiVersion}, ${info.docker.os}/${info.docker.arch}) at ${info.docker.where}`
      : `docker  unreachable at ${info.docker.where}: ${info.docker.reason}`,
    'plugins',
  ]
  const width = Math.max(...info.plugins.map((p) => p.name.length))
  for (const p of info.plugins) lines.push(`  ${p.name.padEnd(width)}  ${p.version.padEnd(8)}  ${label(p.name) ?? p.type}`)
  if (pinsLine) lines.push(`pins    ${pinsLine}`)
  return lines
}
