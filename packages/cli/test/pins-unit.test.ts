import {mkdir, mkdtemp, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {lockProblems} from '../dist/pins/files.js'
import {parsePinArg} from '../dist/pins/resolve.js'
import {lockKey, selectDataDir, userDataDir} from '../dist/pins/select-data-dir.js'

let dir: string
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tpt-pins-unit-'))
  for (const [repo, lock] of [
    ['a', '{"lockfileVersion": 1, "plugins": {"x": {"version": "0.1.0"}}}'],
    ['b', '{"lockfileVersion": 1, "plugins": {"x": {"version": "0.2.0"}}}'],
  ]) {
    await mkdir(join(dir, repo, '.tp'), {recursive: true})
    await mkdir(join(dir, repo, 'deep', 'er'), {recursive: true})
    await writeFile(join(dir, repo, '.tp', 'plugins.json'), '{"plugins": {}}')
    await writeFile(join(dir, repo, '.tp', 'plugins.lock'), lock)
  }
  await mkdir(join(dir, 'plain'))
})
afterAll(() => rm(dir, {recursive: true, force: true}))

describe('selectDataDir (bin/run.js, before oclif starts)', () => {
  it('outside any repository with pins changes nothing', () => {
    const env: NodeJS.ProcessEnv = {XDG_DATA_HOME: '/x/data'}
    expect(selectDataDir(env, join(dir, 'plain'))).toBeUndefined()
    expect(env).toEqual({XDG_DATA_HOME: '/x/data'})
  })

  it('inside one, from any depth, points TP_DATA_DIR at the set of its lock; another lock, another set', () => {
    const a: NodeJS.ProcessEnv = {XDG_DATA_HOME: '/x/data'}
    const b: NodeJS.ProcessEnv = {XDG_DATA_HOME: '/x/data'}
    expect(selectDataDir(a, join(dir, 'a', 'deep', 'er'))).toBe(join(dir, 'a'))
    expect(selectDataDir(b, join(dir, 'b'))).toBe(join(dir, 'b'))
    expect(a.TP_DATA_DIR).toMatch(/^\/x\/data\/tp\/pins\/sets\/[0-9a-f]{14}-[0-9a-f]+$/)
    expect(b.TP_DATA_DIR).not.toBe(a.TP_DATA_DIR)
    // the user's own data directory is still known, for the tarball cache and the sets
    expect(userDataDir(a)).toBe('/x/data/tp')
  })

  it('a tp started by a pinned tp (a handler, a spec script) decides again from its own directory', () => {
    const env: NodeJS.ProcessEnv = {TP_DATA_DIR: '/mine'}
    selectDataDir(env, join(dir, 'a'))
    expect(env.TP_DATA_DIR).toMatch(/^\/mine\/pins\/sets\//)
    const child = {...env}
    expect(selectDataDir(child, join(dir, 'plain'))).toBeUndefined()
    expect(child).toEqual({TP_DATA_DIR: '/mine'})
    const unset: NodeJS.ProcessEnv = {XDG_DATA_HOME: '/x'}
    selectDataDir(unset, join(dir, 'a'))
    const child2 = {...unset}
    selectDataDir(child2, join(dir, 'plain'))
    expect(child2).toEqual({XDG_DATA_HOME: '/x'})
  })

  it('TP_NO_PINS=1 ignores .tp/', () => {
    const env: NodeJS.ProcessEnv = {TP_NO_PINS: '1'}
    expect(selectDataDir(env, join(dir, 'a'))).toBeUndefined()
    expect(env.TP_DATA_DIR).toBeUndefined()
  })

  it('lockKey tells locks apart by every byte', () => {
    expect(lockKey('{"a": 1}')).toBe(lockKey(Buffer.from('{"a": 1}')))
    expect(lockKey('{"a": 1}')).not.toBe(lockKey('{"a": 2}'))
    expect(lockKey('')).not.toBe(lockKey(' '))
  })
})

describe('pins: arguments and the lock against plugins.json', () => {
  it('reads a package with a range, a scoped one, and paths to packed plugins', () => {
    expect(parsePinArg('acme')).toEqual({kind: 'registry', name: 'acme', range: undefined})
    expect(parsePinArg('acme@^1.2.0')).toEqual({kind: 'registry', name: 'acme', range: '^1.2.0'})
    expect(parsePinArg('@scope/acme@~1.2')).toEqual({kind: 'registry', name: '@scope/acme', range: '~1.2'})
    expect(parsePinArg('./vendor/acme-1.0.0.tgz')).toEqual({kind: 'tarball', path: './vendor/acme-1.0.0.tgz', range: undefined})
    expect(parsePinArg('/abs/acme-1.0.0.tgz@^1.0.0')).toEqual({kind: 'tarball', path: '/abs/acme-1.0.0.tgz', range: '^1.0.0'})
    expect(parsePinArg('../x.tar.gz')).toEqual({kind: 'tarball', path: '../x.tar.gz', range: undefined})
  })

  it('names every way a lock does not satisfy plugins.json', () => {
    const lock = {
      lockfileVersion: 1 as const,
      plugins: {
        a: {version: '1.2.0', resolved: 'http://r/a/-/a-1.2.0.tgz', integrity: 'sha512-x', registry: 'http://r/'},
        b: {version: '2.0.0', resolved: 'file:vendor/b.tgz', integrity: 'sha512-y'},
        gone: {version: '1.0.0', resolved: 'file:g.tgz', integrity: 'sha512-z'},
      },
    }
    expect(lockProblems({plugins: {a: {version: '^1.0.0'}, b: {version: '2.0.0', tarball: 'vendor/b.tgz'}, gone: {version: '1'}}}, lock)).toEqual([
      'gone: plugins.json wants it from a registry, the lock has file:g.tgz',
    ])
    expect(lockProblems({plugins: {a: {version: '^2.0.0'}, b: {version: '2.0.0', tarball: 'vendor/other.tgz'}, c: {version: '1'}}}, lock)).toEqual([
      'a: the lock has 1.2.0, plugins.json wants ^2.0.0',
      'b: plugins.json wants the tarball vendor/other.tgz, the lock has file:vendor/b.tgz',
      'c is in plugins.json but not in the lock',
      'gone is in the lock but no longer in plugins.json',
    ])
    expect(lockProblems({plugins: {a: {version: '^1.0.0', registry: 'http://other/'}}}, {lockfileVersion: 1, plugins: {a: lock.plugins.a}})).toEqual([
      'a: plugins.json wants registry http://other/, the lock has http://r/',
    ])
  })
})
