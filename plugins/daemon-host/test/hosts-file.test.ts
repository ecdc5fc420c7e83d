import {mkdtempSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {afterEach, beforeEach, describe, expect, it} from 'vitest'
import {blockConnections, mayHaveBlocks, removeBlock, removeDeadBlocks, renderBlock, writeBlock} from '@tp/plugin-daemon-host'

/** The host daemon's blocks of a hosts file, on a copy: the rest of the file is left byte for byte. */

const ORIGINAL = '127.0.0.1 localhost\n# a comment the user wrote\n::1 ip6-localhost\n'
let dir: string
let file: string

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'tpt-hosts-'))
  file = join(dir, 'hosts')
  writeFileSync(file, ORIGINAL)
})
afterEach(() => rmSync(dir, {recursive: true, force: true}))

describe('hosts file blocks', () => {
  it('adds a block per connection, updates it in place, and removing every block gives the file back as it was', () => {
    writeBlock(file, 'one', 11, [{address: '10.0.0.2', names: ['catalog', 'catalog.ns']}])
    writeBlock(file, 'two', 22, [{address: '10.1.0.2', names: ['web']}])
    writeBlock(file, 'one', 11, [{address: '10.0.0.3', names: ['catalog']}])
    const text = readFileSync(file, 'utf8')
    expect(text.startsWith(ORIGINAL)).toBe(true)
    // in place: one's block still comes first
    expect(text.indexOf('# tp begin one')).toBeLessThan(text.indexOf('# tp begin two'))
    expect(text).toContain('10.0.0.3\tcatalog\n')
    expect(text).not.toContain('10.0.0.2')
    expect(blockConnections(file)).toEqual([
      {connection: 'one', pid: 11},
      {connection: 'two', pid: 22},
    ])
    expect(removeBlock(file, 'two')).toBe(true)
    expect(removeBlock(file, 'one')).toBe(true)
    expect(removeBlock(file, 'one')).toBe(false)
    expect(readFileSync(file, 'utf8')).toBe(ORIGINAL)
  })

  it('leaves out names that are not host names, and a name already given to an earlier workload', () => {
    const block = renderBlock('c', 1, [
      {address: '10.0.0.2', names: ['good', 'Bad_Name', 'good.ns']},
      {address: '10.0.0.3', names: ['GOOD', 'other']},
    ])
    expect(block.split('\n').slice(1, -1)).toEqual(['10.0.0.2\tgood good.ns', '10.0.0.3\tother'])
  })

  it('gives a name several addresses when entries with the very same names have it (every replica of a workload)', () => {
    const block = renderBlock('c', 1, [
      {address: '10.0.0.2', names: ['web']},
      {address: '10.0.0.3', names: ['tasks.web', 'tasks.web.shop']},
      {address: '10.0.0.4', names: ['tasks.web', 'tasks.web.shop']},
      {address: '10.0.0.5', names: ['tasks.web', 'web']},
    ])
    expect(block.split('\n').slice(1, -1)).toEqual(['10.0.0.2\tweb', '10.0.0.3\ttasks.web tasks.web.shop', '10.0.0.4\ttasks.web tasks.web.shop'])
  })

  it('removes the blocks of daemons that no longer run, and only those', () => {
    writeBlock(file, 'dead', 1, [{address: '10.0.0.2', names: ['a']}])
    writeBlock(file, 'alive', 2, [{address: '10.0.0.3', names: ['b']}])
    expect(removeDeadBlocks(file, (pid) => pid === 2)).toEqual(['dead'])
    expect(blockConnections(file)).toEqual([{connection: 'alive', pid: 2}])
  })

  it("tells a file without tp's blocks (the repair hook run before every command stops there)", () => {
    expect(mayHaveBlocks(file)).toBe(false)
    expect(mayHaveBlocks(join(dir, 'missing'))).toBe(false)
    writeBlock(file, 'c', 1, [{address: '10.0.0.2', names: ['a']}])
    expect(mayHaveBlocks(file)).toBe(true)
  })
})
