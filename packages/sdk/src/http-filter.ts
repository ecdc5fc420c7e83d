import {UserError} from './errors.js'

/**
 * A personal intercept's filter: only HTTP requests with every one of these headers (names without
 * case, values exactly) and a path starting with `pathPrefix` go to the handler.
 */
export interface HttpFilter {
  /** Lower-case header names → values. */
  headers: Record<string, string>
  pathPrefix?: string
}

/** An HTTP header name (RFC 9110 token). */
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/

/**
 * `--http-header NAME=VALUE` (repeatable) and `--http-path-prefix P` as a filter; undefined when
 * neither is given. A user error says what is wrong and what to write.
 */
export function parseHttpFilter(headers: readonly string[] | undefined, pathPrefix: string | undefined): HttpFilter | undefined {
  if ((headers ?? []).length === 0 && pathPrefix === undefined) return undefined
  const filter: HttpFilter = {headers: {}}
  for (const given of headers ?? []) {
    const at = given.indexOf('=')
    const name = at < 0 ? given : given.slice(0, at)
    if (at <= 0 || !TOKEN.test(name)) {
      throw new UserError(`--http-header "${given}" is not NAME=VALUE`, 'e.g. --http-header X-Dev=alice (repeat it: a request must carry every one)')
    }
    const key = name.toLowerCase()
    const value = given.slice(at + 1)
    if (key in filter.headers && filter.headers[key] !== value) {
      throw new UserError(`--http-header gives ${name} twice with different values`, 'a request must match every --http-header: give each header once')
    }
    filter.headers[key] = value
  }
  if (pathPrefix !== undefined) {
    if (!pathPrefix.startsWith('/')) throw new UserError(`--http-path-prefix "${pathPrefix}" does not start with /`, `write --http-path-prefix /${pathPrefix}`)
    filter.pathPrefix = pathPrefix
  }
  return filter
}

/**
 * Whether one request could match both filters: not when they want different values of one
 * header, nor when their path prefixes diverge.
 */
export function filtersOverlap(a: HttpFilter, b: HttpFilter): boolean {
  for (const [name, value] of Object.entries(a.headers)) if (name in b.headers && b.headers[name] !== value) return false
  if (a.pathPrefix !== undefined && b.pathPrefix !== undefined && !a.pathPrefix.startsWith(b.pathPrefix) && !b.pathPrefix.startsWith(a.pathPrefix)) return false
  return true
}

/** A filter in words: `x-dev=alice, path /api*`. */
export function describeFilter(filter: HttpFilter): string {
  const parts = Object.entries(filter.headers).map(([name, value]) => `${name}=${value}`)
  if (filter.pathPrefix !== undefined) parts.push(`path ${filter.pathPrefix}*`)
  return parts.join(', ')
}
