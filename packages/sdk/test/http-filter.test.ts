/** --http-header and --http-path-prefix, and when two personal intercepts' filters overlap. */
import {describe, expect, it} from 'vitest'
import {describeFilter, filtersOverlap, isUserError, parseHttpFilter} from '@tp/sdk'

function userError(f: () => unknown): string {
  try {
    f()
  } catch (error) {
    expect(isUserError(error)).toBe(true)
    return (error as Error).message
  }
  throw new Error('no error')
}

describe('personal intercept filters', () => {
  it('parses NAME=VALUE (names lower-cased) and a path prefix; neither: no filter', () => {
    expect(parseHttpFilter(undefined, undefined)).toBeUndefined()
    expect(parseHttpFilter(['X-Dev=alice', 'X-Team=a=b'], '/api')).toEqual({headers: {'x-dev': 'alice', 'x-team': 'a=b'}, pathPrefix: '/api'})
    expect(userError(() => parseHttpFilter(['X-Dev'], undefined))).toBe('--http-header "X-Dev" is not NAME=VALUE')
    expect(userError(() => parseHttpFilter(['bad name=1'], undefined))).toBe('--http-header "bad name=1" is not NAME=VALUE')
    expect(userError(() => parseHttpFilter(['X-Dev=a', 'x-dev=b'], undefined))).toMatch(/twice with different values/)
    expect(userError(() => parseHttpFilter([], 'api'))).toMatch(/does not start with \//)
  })

  it('overlap: unless a header is wanted with different values, or the path prefixes are apart', () => {
    const f = (headers: Record<string, string>, pathPrefix?: string) => ({headers, ...(pathPrefix ? {pathPrefix} : {})})
    expect(filtersOverlap(f({'x-dev': 'alice'}), f({'x-dev': 'bob'}))).toBe(false)
    expect(filtersOverlap(f({'x-dev': 'alice'}), f({'x-dev': 'alice'}))).toBe(true)
    expect(filtersOverlap(f({'x-dev': 'alice'}), f({'x-team': 'a'}))).toBe(true)
    expect(filtersOverlap(f({}, '/api'), f({}, '/web'))).toBe(false)
    expect(filtersOverlap(f({}, '/api'), f({}, '/api/v2'))).toBe(true)
    expect(describeFilter(f({'x-dev': 'alice'}, '/api'))).toBe('x-dev=alice, path /api*')
  })
})
