import {mkdtemp, readFile, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {afterAll, describe, expect, it} from 'vitest'
import {ensureRuntimeImage, RUNTIME_PATH} from '@tp/images'
import {Fixtures} from '../../agent/test/fixture.js'

// Real engine. tp-runtime:<version> is tp's own shared image: reused, never removed here.
const fx = new Fixtures()

afterAll(async () => {
  await fx.cleanup()
})

describe('tp runtime image', () => {
  it('is tagged with the package version, labelled as runtime (not tp.managed), and reused', async () => {
    const {version} = JSON.parse(await readFile(new URL('../package.json', import.meta.url), 'utf8')) as {version: string}
    const first = await ensureRuntimeImage(fx.docker, {require: ['agent']})
    expect(first.ref).toBe(`tp-runtime:${process.env.TP_IMAGE_TAG || version}`)
    const info = await fx.docker.getImage(first.ref).inspect()
    expect(info.Config.Labels?.['tp.image']).toBe('runtime')
    expect(info.Config.Labels?.['tp.managed']).toBeUndefined()
    expect(info.Config.Env).toContain(`PATH=${RUNTIME_PATH}`)
    const started = Date.now()
    const second = await ensureRuntimeImage(fx.docker, {require: ['agent']})
    expect(second).toEqual({...first, built: false})
    expect(Date.now() - started).toBeLessThan(5000)
  })

  it('runs node, the agent bundle, sftp-server and iptables with NET_ADMIN', async () => {
    const {ref} = await ensureRuntimeImage(fx.docker, {require: ['agent']})
    const script = [
      'node -e "console.log(process.versions.node.split(\\".\\")[0])"',
      'iptables -t nat -A PREROUTING -p tcp --dport 80 -j REDIRECT --to-ports 8080',
      'iptables-save -t nat | grep -c REDIRECT',
      'test -x /usr/lib/openssh/sftp-server && echo sftp-server',
      'node /opt/tp/agent.cjs; echo agent exit $?',
    ].join(' && ')
    const result = await fx.run(ref, 'none', ['sh', '-c', script], 'tpt-runtime-probe', {CapAdd: ['NET_ADMIN']})
    expect(result.code).toBe(0)
    const lines = result.output.trim().split('\n')
    expect(lines[0]).toBe(process.versions.node.split('.')[0])
    expect(lines[1]).toBe('1')
    expect(lines[2]).toBe('sftp-server')
    // the bundled agent starts and refuses to run without its configuration
    expect(result.output).toContain('TP_AGENT_DAEMON is not set')
    expect(result.output).toContain('agent exit 2')
  })

  it('says how to make a missing bundle', async () => {
    const empty = await mkdtemp(join(tmpdir(), 'tpt-runtime-'))
    try {
      await expect(ensureRuntimeImage(fx.docker, {bundleDir: empty})).rejects.toMatchObject({
        kind: 'user',
        message: expect.stringContaining('agent bundle is missing'),
        next: expect.stringContaining('npm run build'),
      })
    } finally {
      await rm(empty, {recursive: true, force: true})
    }
  })
})
