import type Dockerode from 'dockerode'
import {extract} from 'tar-stream'

/** A container's user as numbers; undefined: root. */
export type NumericUser = {uid: number; gid: number} | undefined

/** `Config.User` split into its user and group parts (`app`, `app:staff`, `1000:1000`). */
export function userParts(user: string): {user: string; group?: string} {
  const [name, group] = user.split(':', 2)
  return {user: name, ...(group ? {group} : {})}
}

/** Whether `Config.User` names its user or group by name, which only the container's own files turn into numbers. */
export function namesUser(user: string | undefined): boolean {
  if (!user) return false
  const parts = userParts(user)
  return !/^\d+$/.test(parts.user) || (parts.group !== undefined && !/^\d+$/.test(parts.group))
}

/** Entries of /etc/passwd or /etc/group: name → [third field, fourth field] (uid and gid, or gid). */
function entries(text: string): Map<string, string[]> {
  const map = new Map<string, string[]>()
  for (const line of text.split('\n')) {
    const fields = line.split(':')
    if (fields.length >= 3 && fields[0] && !map.has(fields[0])) map.set(fields[0], fields.slice(2))
  }
  return map
}

/**
 * The numbers of a user given by name, as the engine resolved them when it started the container:
 * from the container's /etc/passwd (its primary group there) and /etc/group. Undefined: root, or a
 * name its files do not have.
 */
export function resolveUser(user: string, files: {passwd: string; group: string}): NumericUser {
  const parts = userParts(user)
  let uid: number | undefined
  let gid: number | undefined
  if (/^\d+$/.test(parts.user)) uid = Number(parts.user)
  else {
    const entry = entries(files.passwd).get(parts.user)
    if (!entry) return undefined
    uid = Number(entry[0])
    gid = Number(entry[1])
  }
  if (parts.group !== undefined) {
    if (/^\d+$/.test(parts.group)) gid = Number(parts.group)
    else {
      const entry = entries(files.group).get(parts.group)
      if (!entry) return undefined
      gid = Number(entry[0])
    }
  }
  gid ??= uid
  if (!Number.isInteger(uid) || !Number.isInteger(gid)) return undefined
  return uid === 0 && gid === 0 ? undefined : {uid, gid}
}

/** A file of a running container, through the Engine API's archive endpoint ('' when it has none). */
export async function readContainerFile(container: Dockerode.Container, path: string): Promise<string> {
  let archive: NodeJS.ReadableStream
  try {
    archive = (await container.getArchive({path})) as NodeJS.ReadableStream
  } catch {
    return ''
  }
  return new Promise((resolve, reject) => {
    const tar = extract()
    let text = ''
    tar.on('entry', (_header, stream, next) => {
      const chunks: Buffer[] = []
      stream.on('data', (c: Buffer) => chunks.push(c))
      stream.on('end', () => {
        text ||= Buffer.concat(chunks).toString('utf8')
        next()
      })
      stream.resume()
    })
    tar.on('finish', () => resolve(text))
    tar.on('error', reject)
    archive.pipe(tar)
  })
}
