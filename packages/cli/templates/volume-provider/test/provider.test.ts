import assert from 'node:assert/strict'
import {existsSync} from 'node:fs'
import {mkdir, mkdtemp, readFile, rm, stat, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {after, before, describe, it} from 'node:test'
import {isUserError, type RemoteMount} from '@tp/sdk'
import {fakeSession} from '@tp/sdk/testing'
import {SeedProvider} from '../src/provider.js'
import hook from '../src/hooks/volume-providers.js'

const sftp = {host: '172.18.0.2', port: 2222, dir: '/'}
const mounts: RemoteMount[] = [
  {path: '/data', readOnly: false, sftp},
  {path: '/etc/frontend', readOnly: true, sftp},
]
let scratch: string
let seed: string

before(async () => {
  scratch = await mkdtemp(join(tmpdir(), '__NAME__-test-'))
  seed = join(scratch, 'seed')
  await mkdir(join(seed, 'data'), {recursive: true})
  await writeFile(join(seed, 'data', 'config.txt'), 'from the seed\n')
})
after(() => rm(scratch, {recursive: true, force: true}))

describe('the __NAME__ volume provider', () => {
  it('makes each volume a directory under a fresh root, filled from the seed; read-only ones read-only; release removes it all, twice', async () => {
    const provided = await new SeedProvider(seed).provide(fakeSession({mounts}), {form: 'directory'})
    const root = provided.root!
    assert.deepEqual(provided.dockerRunArgs, [])
    assert.equal(await readFile(join(root, 'data', 'config.txt'), 'utf8'), 'from the seed\n')
    assert.equal((await stat(join(root, 'etc', 'frontend'))).mode & 0o777, 0o555)
    await provided.release()
    assert.equal(existsSync(root), false)
    await provided.release() // idempotent
  })

  it('uses the root it is given, leaves that directory itself, and makes empty volumes without a seed', async () => {
    const root = join(scratch, 'given')
    const provided = await new SeedProvider(undefined).provide(fakeSession({mounts}), {form: 'directory', root})
    assert.equal(provided.root, root)
    assert.equal((await stat(join(root, 'data'))).isDirectory(), true)
    await provided.release()
    assert.equal(existsSync(join(root, 'data')), false)
    assert.equal(existsSync(root), true)
  })

  it('refuses Docker volumes, a seed that is not a directory, and a root that is not empty', async () => {
    const notEmpty = join(scratch, 'not-empty')
    await mkdir(notEmpty, {recursive: true})
    await writeFile(join(notEmpty, 'keep.txt'), 'mine\n')
    for (const [provider, request, message] of [
      [new SeedProvider(seed), {form: 'docker-volumes'}, /not as docker-volumes/],
      [new SeedProvider(join(scratch, 'nothing-here')), {form: 'directory'}, /is not a directory/],
      [new SeedProvider(seed), {form: 'directory', root: notEmpty}, /is not empty/],
    ] as const) {
      const error = await provider.provide(fakeSession({mounts}), request).catch((e: unknown) => e)
      assert.ok(isUserError(error), String(error))
      assert.match((error as Error).message, message)
    }
    assert.equal(await readFile(join(notEmpty, 'keep.txt'), 'utf8'), 'mine\n')
  })

  it('its descriptor is what tp checks: a name, the forms it gives, where it fits, and a loader', async () => {
    const [descriptor] = await hook.call(undefined, {})
    assert.equal(descriptor.name, '__NAME__')
    assert.deepEqual([descriptor.forms, descriptor.requires], [['directory'], {}])
    assert.equal(typeof (await descriptor.load()).default, 'function')
  })
})
