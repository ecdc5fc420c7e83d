import {createHash} from 'node:crypto'
import {mkdir, mkdtemp, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {currentDockerContext, dockerContexts, isUserError, parseSshUrl, resolveEngine} from '@tp/sdk'

/** Engines named as the docker CLI names them, against a context store of the test's own. */
let config: string

async function context(name: string, host: string, options: {tls?: boolean; skipVerify?: boolean} = {}): Promise<string> {
  const id = createHash('sha256').update(name).digest('hex')
  await mkdir(join(config, 'contexts', 'meta', id), {recursive: true})
  await writeFile(
    join(config, 'contexts', 'meta', id, 'meta.json'),
    JSON.stringify({Name: name, Metadata: {}, Endpoints: {docker: {Host: host, SkipTLSVerify: options.skipVerify === true}}}),
  )
  const tls = join(config, 'contexts', 'tls', id, 'docker')
  if (options.tls) {
    await mkdir(tls, {recursive: true})
    for (const file of ['ca.pem', 'cert.pem', 'key.pem']) await writeFile(join(tls, file), file)
  }
  return tls
}

beforeAll(async () => {
  config = await mkdtemp(join(tmpdir(), 'tpt-engines-'))
})
afterAll(() => rm(config, {recursive: true, force: true}))

describe('resolveEngine', () => {
  it('takes engine URLs as they are; tcp:// with TLS files from DOCKER_CERT_PATH when DOCKER_TLS_VERIFY is set', () => {
    const env = {DOCKER_CONFIG: config}
    expect(resolveEngine('unix:///run/other.sock', env)).toEqual({url: 'unix:///run/other.sock'})
    expect(resolveEngine('ssh://dev@box:2222', env)).toEqual({url: 'ssh://dev@box:2222'})
    expect(resolveEngine('tcp://10.0.0.5:2376', {...env, DOCKER_TLS_VERIFY: '1', DOCKER_CERT_PATH: '/certs'})).toEqual({
      url: 'tcp://10.0.0.5:2376',
      tls: {ca: '/certs/ca.pem', cert: '/certs/cert.pem', key: '/certs/key.pem', verify: true},
    })
  })

  it('reads a Docker context from the context store, with its TLS files and SkipTLSVerify', async () => {
    const tls = await context('lab', 'tcp://lab.example:2376', {tls: true, skipVerify: true})
    await context('ssh-box', 'ssh://root@box')
    const env = {DOCKER_CONFIG: config}
    expect(resolveEngine('lab', env)).toEqual({
      url: 'tcp://lab.example:2376',
      tls: {ca: join(tls, 'ca.pem'), cert: join(tls, 'cert.pem'), key: join(tls, 'key.pem'), verify: false},
      context: 'lab',
    })
    expect(resolveEngine('ssh-box', env)).toEqual({url: 'ssh://root@box', context: 'ssh-box'})
    expect(dockerContexts(env)).toEqual(['lab', 'ssh-box'])
  })

  it('nothing given: DOCKER_HOST, else the current context (unless contexts are not wanted), else the local socket', async () => {
    await context('lab', 'tcp://lab.example:2376')
    await writeFile(join(config, 'config.json'), JSON.stringify({currentContext: 'lab'}))
    const env = {DOCKER_CONFIG: config}
    expect(currentDockerContext(env)).toBe('lab')
    expect(resolveEngine(undefined, env).url).toBe('tcp://lab.example:2376')
    expect(resolveEngine(undefined, env, {contexts: false}).url).toBe('unix:///var/run/docker.sock')
    expect(resolveEngine(undefined, {...env, DOCKER_HOST: 'tcp://other:2375'}).url).toBe('tcp://other:2375')
    expect(resolveEngine(undefined, {...env, DOCKER_CONTEXT: 'default'}).url).toBe('unix:///var/run/docker.sock')
  })

  it('an unknown name says it is neither a URL nor a context, and lists the contexts', () => {
    try {
      resolveEngine('nope', {DOCKER_CONFIG: config})
      throw new Error('expected a user error')
    } catch (error) {
      expect(isUserError(error)).toBe(true)
      expect((error as Error).message).toBe('"nope" is neither an engine URL (unix://, tcp://, ssh://) nor a Docker context')
      expect((error as {next: string}).next).toContain('lab')
    }
  })
})

describe('parseSshUrl', () => {
  it('takes user, host, port and a socket path as the docker CLI does', () => {
    expect(parseSshUrl('ssh://dev@box:2222')).toEqual({user: 'dev', host: 'box', port: 2222})
    expect(parseSshUrl('ssh://box')).toEqual({host: 'box'})
    expect(parseSshUrl('ssh://root@box/run/user/1000/docker.sock')).toEqual({user: 'root', host: 'box', socket: '/run/user/1000/docker.sock'})
  })
})
