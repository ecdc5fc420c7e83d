/**
 * The seed documentation's example exactly as a user types it, on a machine with no connection:
 * `tp intercept --docker frontend-v1 --port 8000 --docker-run -- frontend-v2` connects implicitly
 * with a container daemon, and the client on the cluster's network gets frontend-v2's answer with
 * frontend-v1's environment, volumes and the cluster's catalog service.
 */
import {mkdtemp, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {execa} from 'execa'
import {afterAll, beforeAll, expect, it} from 'vitest'
import {CATALOG_JSON, DEMO_CONFIG_TXT, DEMO_GREETING} from '@tp/images'
import {docker, ensureDemo, httpGet, repoRoot, tpBin, tpCli} from './helpers/index.js'

let cacheDir: string
// the configured default namespace: other test networks may exist on a shared engine
const env = () => ({TP_CACHE_DIR: cacheDir, TP_NAMESPACE: 'tp-demo'})

beforeAll(async () => {
  await ensureDemo()
  cacheDir = await mkdtemp(join(tmpdir(), 'tp-e2e-seed-'))
})

afterAll(async () => {
  await tpCli(['quit'], {env: env()})
  await rm(cacheDir, {recursive: true, force: true})
})

it('runs the seed example with an implicit connect, and gives everything back on Ctrl-C', async () => {
  expect((await tpCli(['status'], {env: env()})).stdout).toMatch(/Not connected/)
  const child = execa('node', ['--', tpBin, 'intercept', '--docker', 'frontend-v1', '--port', '8000', '--docker-run', '--', 'frontend-v2'], {
    env: env(),
    cwd: repoRoot,
    reject: false,
    stdin: 'ignore',
  })
  let stderr = ''
  child.stderr!.on('data', (c: Buffer) => (stderr += c))
  const deadline = Date.now() + 60_000
  while (!stderr.includes('now goes to your handler')) {
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`not active:\n${stderr}`)
    await new Promise((r) => setTimeout(r, 100))
  }
  const reply = (await httpGet('http://frontend-v1/')).body
  expect(reply).toContain('frontend-v2')
  expect(reply).toContain(`GREETING=${DEMO_GREETING}`)
  expect(reply).toContain('DEMO_NOTES=first line\nsecond line')
  expect(reply).toContain(`catalog=${CATALOG_JSON}`)
  expect((await httpGet('http://frontend-v1/config')).body).toBe(DEMO_CONFIG_TXT)
  const status = JSON.parse((await tpCli(['status', '--json'], {env: env()})).stdout)
  expect(status.connections).toEqual([expect.objectContaining({name: 'default', backend: 'container', namespace: 'tp-demo'})])

  child.kill('SIGINT')
  const result = await child
  expect(result.exitCode, stderr).toBe(0)
  expect((await httpGet('http://frontend-v1/')).body).toContain(DEMO_GREETING)
  const filters = JSON.stringify({label: ['tp.managed=true', 'tp.connection=default']})
  const containers = await docker.listContainers({all: true, filters})
  expect(containers.map((c) => c.Labels['tp.role'])).toEqual(['daemon'])
  expect((await docker.listVolumes({filters})).Volumes ?? []).toEqual([])
})
