import type {InterceptSession} from '@tp/sdk'

/** A piece of a Docker object name: [a-zA-Z0-9_.-], no leading punctuation, bounded length. */
export function nameSlug(text: string, max = 40): string {
  const slug = text
    .replace(/[^A-Za-z0-9_.-]+/g, '-')
    .replace(/^[-_.]+|[-_.]+$/g, '')
    .slice(0, max)
    .replace(/[-_.]+$/, '')
  return slug || 'x'
}

/**
 * `tp-<connection>-<intercept>-<intercept id>-<index>-<path>`: the connection and intercept name
 * keep concurrent intercepts apart and say whose volume it is; the intercept id (new for every
 * intercept) keeps a leftover of a crashed run from being picked up again with a stale agent
 * address (Docker returns an existing volume of the same name and ignores new options); the index
 * keeps paths apart that slug to the same text (`/a-b`, `/a/b`).
 */
export function volumeName(session: Pick<InterceptSession, 'id' | 'name' | 'daemon'>, index: number, path: string): string {
  return ['tp', nameSlug(session.daemon.connection, 30), nameSlug(session.name, 60), nameSlug(session.id, 16), String(index), nameSlug(path)].join('-')
}
