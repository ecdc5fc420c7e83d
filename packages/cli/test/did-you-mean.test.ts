/** What an unknown flag probably meant (the message of `tp <command> --prot 8000`). */
import {describe, expect, it} from 'vitest'
import {didYouMean} from '../dist/base-command.js'

const flags = {
  port: {type: 'option', char: 'p'},
  name: {type: 'option'},
  namespace: {type: 'option', char: 'n'},
  docker: {type: 'boolean'},
  'docker-run': {type: 'boolean'},
  'dry-run': {type: 'boolean'},
  json: {type: 'boolean'},
}

describe('didYouMean', () => {
  it.each([
    ['--port8000', '`--port 8000`'],
    ['--port8000:80', '`--port 8000:80`'],
    ['--namebi-c', '`--name bi-c`'],
    ['--namespacetp-demo', '`--namespace tp-demo`'],
    ['--prot', '`--port`'],
    ['--jsno', '`--json`'],
    ['--dokcer', '`--docker`'],
    ['--dry', '`--dry-run`'],
    ['--docker-rnu', '`--docker-run`'],
  ])('%s → %s', (written, meant) => {
    expect(didYouMean(written, flags)).toBe(meant)
  })

  it('suggests nothing when nothing is close, and never glues a value onto a boolean flag', () => {
    expect(didYouMean('--frobnicate', flags)).toBeUndefined()
    expect(didYouMean('--dockerx', flags)).toBe('`--docker`')
    expect(didYouMean('--jsonly', flags)).toBeUndefined()
  })
})
