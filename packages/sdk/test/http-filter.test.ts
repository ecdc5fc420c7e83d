/** --http-header and --http-path-prefix, and when two personal intercepts' filters overlap. */
import {describe, expect, it} from 'vitest'
import {describeFilter, filtersOverlap, httpFilterOf, isUserError, parseHttpFilter} from '@tp/sdk'

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

  it('the check behind the flags and spec files: every problem, where it is, in words naming neither', () => {
    const spelling = {headers: 'entry of headers', pathPrefix: 'pathPrefix:'}
    expect(httpFilterOf([{name: 'X-Dev', value: 'alice'}], '/api', spelling)).toEqual({filter: {headers: {'x-dev': 'alice'}, pathPrefix: '/api'}, problems: []})
    expect(httpFilterOf([], undefined, spelling)).toEqual({problems: []})
    const {filter, problems} = httpFilterOf(
      [
        {name: 'bad name', value: 'x'},
        {name: 'X-Dev', value: 'a'},
        {name: 'x-dev', value: 'b'},
        {name: 'X-Line', value: 'a\nb'},
      ],
      'api',
      spelling,
    )
    expect(filter).toBeUndefined()
    expect(problems.map((p) => [p.at, p.kind, p.message])).toEqual([
      [0, 'name', '"bad name" is not an HTTP header name'],
      [2, 'twice', 'gives x-dev twice with different values'],
      [3, 'value', 'the value of X-Line has a line break or a NUL character, which no request can carry'],
      ['pathPrefix', 'pathPrefix', '"api" does not start with /'],
    ])
    expect(problems[3].hint).toBe('write pathPrefix: /api')
    expect(userError(() => parseHttpFilter(['X-Dev=a\nb'], undefined))).toBe(
      '--http-header the value of X-Dev has a line break or a NUL character, which no request can carry',
    )
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
