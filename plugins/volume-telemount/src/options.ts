import {isIP} from 'node:net'
import {posix} from 'node:path'

/**
 * The driver options of a telemount volume (`docker volume create -d tp-telemount:<v> -o k=v`).
 * Shared by the plugin server (which validates what Docker hands it) and the provider (which
 * writes them). Pure: no Node APIs beyond path/net helpers, so it bundles into the server.
 */
export interface VolumeOptions {
  /** IP address of the SFTP server (the workload's agent). */
  host: string
  port: number
  /** Absolute path on the SFTP server. */
  dir: string
  readOnly: boolean
}

export const OPTION_NAMES = ['host', 'port', 'dir', 'ro'] as const

/** Parses and checks driver options; throws an Error whose message is fit for Docker's `Err`. */
export function parseVolumeOptions(opts: Record<string, unknown> | null | undefined): VolumeOptions {
  const given = opts ?? {}
  const unknown = Object.keys(given).filter((k) => !(OPTION_NAMES as readonly string[]).includes(k))
  if (unknown.length > 0) {
    throw new Error(
      `unknown option${unknown.length > 1 ? 's' : ''} ${unknown.map((k) => JSON.stringify(k)).join(', ')}; telemount takes only ${OPTION_NAMES.join(', ')}`,
    )
  }
  const text = (key: string): string | undefined => {
    const value = given[key]
    if (value === undefined) return undefined
    if (typeof value !== 'string') throw new Error(`option ${key} must be a string, got ${JSON.stringify(value)}`)
    return value
  }

  const host = text('host')
  if (host === undefined || host === '') throw new Error('option host is required: the IP address of the SFTP server')
  if (isIP(host) === 0) throw new Error(`option host must be an IP address, got ${JSON.stringify(host)}`)

  const portText = text('port')
  if (portText === undefined) throw new Error('option port is required: the TCP port of the SFTP server')
  const port = /^\d{1,5}$/.test(portText) ? Number(portText) : Number.NaN
  if (!(port >= 1 && port <= 65_535)) throw new Error(`option port must be a whole number from 1 to 65535, got ${JSON.stringify(portText)}`)

  const dir = text('dir') ?? '/'
  if (!dir.startsWith('/')) throw new Error(`option dir must be an absolute path, got ${JSON.stringify(dir)}`)
  if (dir.includes('\0') || dir.split('/').includes('..')) throw new Error(`option dir must not contain ".." or NUL, got ${JSON.stringify(dir)}`)

  const roText = text('ro') ?? 'false'
  if (roText !== 'true' && roText !== 'false') throw new Error(`option ro must be true or false, got ${JSON.stringify(roText)}`)

  return {host, port, dir: posix.normalize(dir), readOnly: roText === 'true'}
}

/** The driver options for a volume, as strings (what Docker's API carries). */
export function volumeDriverOptions(options: VolumeOptions): Record<string, string> {
  return {host: options.host, port: String(options.port), dir: options.dir, ro: String(options.readOnly)}
}
