import {isUserError} from '@tp/sdk'
import {describe, expect, it} from 'vitest'
import {execFileSync} from 'node:child_process'
import {mkdtemp, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {ignoreRules, listContext, packContext, parseBuildOptions, parseDockerignore, SUPPORTED_BUILD_OPTIONS} from '@tp/plugin-handler-docker-build'
import {checkRunArgs} from '../dist/handler.js'

function userError(fn: () => unknown): {message: string; next?: string} {
  try {
    fn()
  } catch (error) {
    expect(isUserError(error)).toBe(true)
    return error as {message: string; next?: string}
  }
  throw new Error('expected a UserError')
}

describe('--docker-build-opt parsing', () => {
  it('maps every supported key to the build API', () => {
    const options = parseBuildOptions([
      'tag=a:1',
      'tag=b',
      'file=sub/Other.Dockerfile',
      'build-arg=GREETING_SUFFIX=x=y',
      'build-arg=EMPTY=',
      'target=final',
      'label=team=web',
      'platform=linux/amd64',
      'no-cache',
      'pull=false',
    ])
    expect(options).toEqual({
      tags: ['a:1', 'b'],
      file: 'sub/Other.Dockerfile',
      buildArgs: {GREETING_SUFFIX: 'x=y', EMPTY: ''},
      target: 'final',
      labels: {team: 'web'},
      platform: 'linux/amd64',
      noCache: true,
      pull: false,
    })
    expect(parseBuildOptions(['dockerfile=D']).file).toBe('D')
  })

  it('takes a bare build-arg from the environment, like docker build', () => {
    expect(parseBuildOptions(['build-arg=FROM_ENV'], {FROM_ENV: 'v'}).buildArgs).toEqual({FROM_ENV: 'v'})
    expect(userError(() => parseBuildOptions(['build-arg=MISSING'], {})).message).toMatch(/MISSING has no value/)
  })

  it('rejects an unknown key and lists the supported ones', () => {
    const error = userError(() => parseBuildOptions(['squash=true']))
    expect(error.message).toMatch(/squash is not a build option/)
    for (const key of Object.keys(SUPPORTED_BUILD_OPTIONS)) expect(error.next).toContain(key)
  })

  it('rejects a value-less tag and a non-boolean no-cache', () => {
    expect(userError(() => parseBuildOptions(['tag'])).message).toMatch(/tag needs a value/)
    expect(userError(() => parseBuildOptions(['no-cache=maybe'])).message).toMatch(/true or false/)
  })
})

describe('arguments after --', () => {
  it('accepts IMAGE as the first non-option argument', () => {
    expect(() => checkRunArgs(['--rm', '-e', 'A=B', '--name=x', 'IMAGE', 'sh', '-c', 'echo IMAGE'])).not.toThrow()
  })

  it('explains a missing IMAGE placeholder', () => {
    const error = userError(() => checkRunArgs(['-e', 'A=B', 'busybox']))
    expect(error.message).toMatch(/must be the word IMAGE, but the image argument is "busybox"/)
    expect(error.message).toMatch(/replaces it with the built image's ID/)
    expect(error.next).toMatch(/-- \[docker run options\] IMAGE/)
    expect(userError(() => checkRunArgs(['--rm'])).message).toMatch(/there is no image argument/)
  })

  it('rejects nothing after --, and -d before the image', () => {
    expect(userError(() => checkRunArgs([])).message).toMatch(/needs the docker run arguments after --/)
    expect(userError(() => checkRunArgs(['-d', 'IMAGE'])).message).toMatch(/detach/)
    expect(() => checkRunArgs(['IMAGE', '-d'])).not.toThrow() // the container's own argument
  })
})

describe('.dockerignore rules (moby semantics)', () => {
  it('reads patterns like docker: comments, blank lines, cleaning, leading slash', () => {
    expect(parseDockerignore('\uFEFF# c\n\n /node_modules/ \n!  keep//x.txt\n./a/../b\n')).toEqual(['node_modules', '!keep/x.txt', 'b'])
  })

  it('always keeps the Dockerfile and .dockerignore, and walks into a directory only for a matching exception', () => {
    const rules = ignoreRules(['*', '!src', 'node_modules', '!node_modules/keep/k.txt'], 'build/Dockerfile')
    expect(rules.ignores('.dockerignore')).toBe(false)
    expect(rules.ignores('build/Dockerfile')).toBe(false)
    expect(rules.ignores('README.md')).toBe(true)
    expect(rules.ignores('src/a.js')).toBe(false)
    expect(rules.ignores('node_modules/keep/k.txt')).toBe(false)
    expect(rules.mustDescend('node_modules')).toBe(true)
    expect(rules.mustDescend('node_modules/keep')).toBe(true)
    expect(rules.mustDescend('node_modules/other')).toBe(false)
    expect(rules.mustDescend('build')).toBe(true)
  })
})

describe('packing the context (real files)', () => {
  it('skips a FIFO and reports a file that vanished before it was packed', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tpt-build-pack-'))
    try {
      await writeFile(join(dir, 'Dockerfile'), 'FROM scratch\n')
      execFileSync('mkfifo', [join(dir, 'pipe')])
      const paths = await listContext(dir, ignoreRules([], 'Dockerfile'))
      expect(paths).toEqual(['Dockerfile', 'pipe'])
      const packed = packContext(dir, paths)
      let size = 0
      for await (const chunk of packed.stream) size += (chunk as Buffer).length
      expect(packed.error()).toBeUndefined()
      expect(size).toBe(packed.bytes())
      expect(size).toBe(2 * 512 + 1024) // the Dockerfile's header and data block, the end-of-archive blocks: nothing for the FIFO

      const missing = packContext(dir, ['Dockerfile', 'gone.txt'])
      await expect(
        (async () => {
          for await (const _ of missing.stream) void _
        })(),
      ).rejects.toThrow(/ENOENT/)
      expect(missing.error()?.message).toMatch(/gone\.txt/)
    } finally {
      await rm(dir, {recursive: true, force: true})
    }
  })
})
