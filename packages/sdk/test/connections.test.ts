import {mkdir, mkdtemp, readdir, rm, stat, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {afterEach, beforeEach, describe, expect, it} from 'vitest'
import {type ConnectionRecord, ConnectionStore, DamagedRecordError, isUserError} from '../src/index.js'

const record = (name: string, extra: Partial<ConnectionRecord> = {}): ConnectionRecord => ({
  name,
  backend: 'container',
  daemonId: name,
  namespace: 'ns',
  api: {url: 'http://127.0.0.1:1', token: 'x'.repeat(48)},
  details: {padding: 'p'.repeat(20_000)},
  createdAt: new Date().toISOString(),
  ...extra,
})

let dir: string
let store: ConnectionStore

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tp-store-'))
  store = new ConnectionStore(join(dir, 'connections'))
})
afterEach(async () => {
  await rm(dir, {recursive: true, force: true})
})

describe('ConnectionStore', () => {
  it('writes atomically: a reader never sees half a record while it is rewritten, and no temporary file stays', async () => {
    await store.save(record('a'))
    let writing = true
    const writer = (async () => {
      for (let i = 0; i < 200; i++) await store.save(record('a', {daemonId: `a${i}`}))
      writing = false
    })()
    let reads = 0
    while (writing) {
      const read = await store.read('a')
      expect(read.damaged).toBeUndefined()
      expect(read.record?.name).toBe('a')
      reads++
    }
    await writer
    expect(reads).toBeGreaterThan(0)
    expect(await readdir(store.dir)).toEqual(['a.json'])
    expect((await stat(store.file('a'))).mode & 0o777).toBe(0o600)
  })

  it('reports a damaged, truncated, empty or foreign record by name, and keeps the usable ones', async () => {
    await store.save(record('good'))
    await writeFile(store.file('garbage'), '{garbage\n')
    await writeFile(store.file('empty'), '')
    await writeFile(store.file('cut'), JSON.stringify(record('cut')).slice(0, 50))
    await writeFile(store.file('foreign'), JSON.stringify(record('someone-else')))
    await writeFile(store.file('array'), '[]')
    await writeFile(store.file('partial'), JSON.stringify({name: 'partial', backend: 'host'}))
    const {records, damaged} = await store.scan()
    expect(records.map((r) => r.name)).toEqual(['good'])
    const reasons = Object.fromEntries(damaged.map((d) => [d.name, d.reason]))
    expect(reasons).toEqual({
      array: 'it is not a JSON object',
      cut: 'it is not valid JSON (cut short or overwritten?)',
      empty: 'it is empty',
      foreign: 'it is the record of connection "someone-else", not of "foreign"',
      garbage: 'it is not valid JSON (cut short or overwritten?)',
      partial: 'it lacks daemonId, namespace, api.url/api.token',
    })
    expect(damaged.every((d) => d.file === store.file(d.name))).toBe(true)
    expect(await store.list()).toHaveLength(1)
  })

  it('get() of a damaged record is a user error that names it and says how to get out', async () => {
    await mkdir(store.dir, {recursive: true})
    await writeFile(store.file('x'), '{garbage')
    const error = await store.get('x').catch((e: unknown) => e)
    expect(error).toBeInstanceOf(DamagedRecordError)
    expect(isUserError(error)).toBe(true)
    expect((error as DamagedRecordError).message).toContain(`the record of connection "x" is damaged (${store.file('x')}`)
    expect((error as DamagedRecordError).next).toContain('tp quit --name x')
    expect(await store.get('missing')).toBeUndefined()
  })
})
