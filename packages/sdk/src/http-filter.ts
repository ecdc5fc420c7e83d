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
export const HTTP_HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/

/** One header a personal intercept wants: `--http-header NAME=VALUE`, or a spec file's `headers[]` entry. */
export interface HttpHeaderMatch {
  name: string
  value: string
}

/** What is wrong with a part of a filter, in words that name neither the flag nor the spec field. */
export interface HttpFilterProblem {
  /** The header it is about (its index in the list given), or the path prefix. */
  at: number | 'pathPrefix'
  kind: 'name' | 'value' | 'twice' | 'pathPrefix'
  /** e.g. `gives X-Dev twice with different values`; the caller puts the flag or the field before it. */
  message: string
  hint: string
}

/**
 * The filter of headers (all must match) and a path prefix, or every problem with them: the one
 * check behind `--http-header`/`--http-path-prefix` and a spec file's `headers`/`pathPrefix`.
 * `spelling` names the flag or field in the hints. No headers and no prefix: no filter.
 */
export function httpFilterOf(
  headers: readonly HttpHeaderMatch[],
  pathPrefix: string | undefined,
  spelling: {headers: string; pathPrefix: string},
): {filter?: HttpFilter; problems: HttpFilterProblem[]} {
  const problems: HttpFilterProblem[] = []
  if (headers.length === 0 && pathPrefix === undefined) return {problems}
  const filter: HttpFilter = {headers: {}}
  headers.forEach(({name, value}, at) => {
    if (!HTTP_HEADER_NAME.test(name)) {
      problems.push({
        at,
        kind: 'name',
        message: `"${name}" is not an HTTP header name`,
        hint: "a header name is letters, digits and !#$%&'*+.^_`|~- (no spaces, no colon), e.g. X-Dev",
      })
      return
    }
    if (/[\r\n\0]/.test(value)) {
      problems.push({
        at,
        kind: 'value',
        message: `the value of ${name} has a line break or a NUL character, which no request can carry`,
        hint: 'give the value on one line',
      })
      return
    }
    const key = name.toLowerCase()
    if (key in filter.headers && filter.headers[key] !== value) {
      problems.push({
        at,
        kind: 'twice',
        message: `gives ${name} twice with different values`,
        hint: `a request must match every ${spelling.headers}: give each header once`,
      })
      return
    }
    filter.headers[key] = value
  })
  if (pathPrefix !== undefined) {
    if (!pathPrefix.startsWith('/'))
      problems.push({
        at: 'pathPrefix',
        kind: 'pathPrefix',
        message: `"${pathPrefix}" does not start with /`,
        hint: `write ${spelling.pathPrefix} /${pathPrefix}`,
      })
    else filter.pathPrefix = pathPrefix
  }
  return problems.length > 0 ? {problems} : {filter, problems}
}

/**
 * `--http-header NAME=VALUE` (repeatable) and `--http-path-prefix P` as a filter; undefined when
 * neither is given. A user error says what is wrong and what to write.
 */
export function parseHttpFilter(headers: readonly string[] | undefined, pathPrefix: string | undefined): HttpFilter | undefined {
  const given = headers ?? []
  const pairs = given.map((text) => {
    const at = text.indexOf('=')
    if (at <= 0) throw notNameValue(text)
    return {name: text.slice(0, at), value: text.slice(at + 1)}
  })
  const {filter, problems} = httpFilterOf(pairs, pathPrefix, {headers: '--http-header', pathPrefix: '--http-path-prefix'})
  const problem = problems[0]
  if (!problem) return filter
  if (problem.kind === 'name') throw notNameValue(given[problem.at as number])
  throw new UserError(`${problem.at === 'pathPrefix' ? '--http-path-prefix' : '--http-header'} ${problem.message}`, problem.hint)
}

function notNameValue(given: string): UserError {
  return new UserError(`--http-header "${given}" is not NAME=VALUE`, 'e.g. --http-header X-Dev=alice (repeat it: a request must carry every one)')
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
