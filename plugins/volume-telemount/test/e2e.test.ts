import {randomBytes} from 'node:crypto'
import {mkdirSync, mkdtempSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {execa} from 'execa'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {type DemoCluster, DEMO_CONFIG_TXT, DEMO_SETTINGS_TXT, demoDown} from '@tp/images'
import {pluginConfig, pluginRef} from '@tp/plugin-volume-telemount/plugin'
import {type RunningTp, docker, ensureDemo, httpGet, nothingLeft, repoRoot, startTp, tpCli} from '../../../test/helpers/index.js'

/**
 * Issue 6's acceptance, as a user runs it: `tp intercept … --docker-run -- frontend-v2` against a
 * demo cluster on its own network, through a container daemon of its own connection; the
 * workload's volumes reach the handler through the telemount plugin (under a test name, so the
 * `tp-telemount` plugin others use is never touched; it starts missing and is created by tp).
 */
const suffix = randomBytes(3).toString('hex')
const NET = `tpt-tm-${suffix}`
const CONN = `tpt-tm-${suffix}`
const PLUGIN = `tpt-tm-e2e-${suffix}`
const BROKEN_PLUGIN = `tpt-tm-e2e-broken-${suffix}`
const cacheDir = mkdtempSync(join(tmpdir(), 'tpt-tm-e2e-'))
const brokenDir = mkdtempSync(join(tmpdir(), 'tpt-tm-e2e-broken-'))
// TP_TELEMOUNT_DIRECT=0: the workload is on this engine, and its volumes would be mounted
// straight from it; these tests are of the way through the plugin (the last one is of the other)
const env = {...process.env, TP_CACHE_DIR: cacheDir, TP_TELEMOUNT_PLUGIN: PLUGIN, TP_TELEMOUNT_ROOTFS: '', TP_TELEMOUNT_DIRECT: '0'}
const BACKOFFICE = `${NET}-backoffice`
const BACKOFFICE_DATA = `${NET}-backoffice-data`
let demo: DemoCluster
let tpVersion: string

function intercept(workload: string, port: number, handlerArgs: string[], extra: string[] = []): string[] {
  return ['intercept', '--docker', '--use', CONN, workload, '--port', String(port), ...extra, '--docker-run', '--', ...handlerArgs]
}

const start = (args: string[], extraEnv: Record<string, string> = {}) => startTp(args, {env: {...env, ...extraEnv}})

type Running = RunningTp

async function stop(run: Running): Promise<number | undefined> {
  run.child.kill('SIGINT')
  const result = await run.child
  return result.exitCode
}

const get = (host: string, path: string) => httpGet(`http://${host}${path}`, {network: NET})

async function inWorkload(container: string, command: string): Promise<string> {
  return (await execa('docker', ['exec', container, 'sh', '-c', command], {reject: false})).stdout
}

beforeAll(async () => {
  tpVersion = JSON.parse((await execa('node', ['-p', 'JSON.stringify(require("./packages/cli/package.json"))'], {cwd: repoRoot})).stdout).version
  demo = await ensureDemo({network: NET})
  // a second workload that mounts /data too, with other content
  await docker.createVolume({Name: BACKOFFICE_DATA, Labels: {'tp.fixture': 'true'}})
  const backoffice = await docker.createContainer({
    name: BACKOFFICE,
    Image: demo.images.workload,
    Env: ['WORKLOAD_NAME=backoffice'],
    Labels: {'tp.fixture': 'true'},
    HostConfig: {Binds: [`${BACKOFFICE_DATA}:/data`], NetworkMode: NET},
    NetworkingConfig: {EndpointsConfig: {[NET]: {Aliases: ['backoffice']}}},
  })
  await backoffice.start()
  await execa('docker', ['exec', BACKOFFICE, 'sh', '-c', 'echo backoffice-config > /data/config.txt'])
  // a plugin directory whose plugin cannot start (no node in its rootfs)
  mkdirSync(join(brokenDir, 'rootfs'))
  writeFileSync(join(brokenDir, 'config.json'), JSON.stringify(pluginConfig('0')))
  const connected = await tpCli(['connect', '--docker', '--name', CONN, '--namespace', NET], {env})
  expect(connected.exitCode, connected.stderr).toBe(0)
})

afterAll(async () => {
  await tpCli(['quit', '--name', CONN], {env}).catch(() => undefined)
  await docker
    .getContainer(BACKOFFICE)
    .remove({force: true})
    .catch(() => undefined)
  await docker
    .getVolume(BACKOFFICE_DATA)
    .remove()
    .catch(() => undefined)
  await demoDown(docker, {network: NET}).catch(() => undefined)
  for (const name of [PLUGIN, BROKEN_PLUGIN])
    await docker
      .getPlugin(pluginRef({name, version: tpVersion}), undefined)
      .remove({force: true})
      .catch(() => undefined)
  rmSync(cacheDir, {recursive: true, force: true})
  rmSync(brokenDir, {recursive: true, force: true})
})

describe('tp intercept --docker-run with remote volumes (issue 6 acceptance)', () => {
  it("the handler reads and writes the workload's /data, a read-only mount refuses writes; Ctrl-C, then again; nothing left", async () => {
    expect(
      await docker
        .getPlugin(pluginRef({name: PLUGIN, version: tpVersion}), undefined)
        .inspect()
        .then(
          () => 'exists',
          () => 'missing',
        ),
    ).toBe('missing')
    for (let round = 1; round <= 2; round++) {
      const run = start(intercept('frontend-v1', 8000, ['frontend-v2']))
      await run.active
      expect((await get('frontend-v1', '/config')).body, `round ${round}\n${run.output()}`).toBe(DEMO_CONFIG_TXT)
      if (round === 1) {
        expect((await get('frontend-v1', '/write?name=from-handler.txt')).body).toBe('ok /data/from-handler.txt\n')
        expect(await inWorkload(demo.frontend, 'cat /data/from-handler.txt')).toBe('written by frontend-v2')
        expect((await get('frontend-v1', '/cat?path=/etc/frontend/settings.txt')).body).toBe(`${DEMO_SETTINGS_TXT}`)
        const refused = await get('frontend-v1', '/write?path=/etc/frontend/x.txt')
        expect(refused.status).toBe(500)
        expect(await inWorkload(demo.frontend, 'ls /etc/frontend')).not.toMatch(/x\.txt/)
      }
      expect(await stop(run), run.output()).toBe(0)
      expect(await nothingLeft(CONN), `round ${round}`).toEqual([])
    }
    expect((await docker.getPlugin(pluginRef({name: PLUGIN, version: tpVersion}), undefined).inspect()).Enabled).toBe(true)
  })

  it('two intercepts of two workloads that both mount /data run at once without sharing volumes', async () => {
    const a = start(intercept('frontend-v1', 8000, ['frontend-v2']))
    const b = start(intercept('backoffice', 8001, ['-e', 'PORT=8001', 'frontend-v2']))
    try {
      await Promise.all([a.active, b.active])
      expect((await get('frontend-v1', '/config')).body).toBe(DEMO_CONFIG_TXT)
      expect((await get('backoffice', '/config')).body).toBe('backoffice-config\n')
      const volumes = (await docker.listVolumes({filters: JSON.stringify({label: [`tp.connection=${CONN}`]})})).Volumes ?? []
      const byIntercept = new Set(volumes.map((v) => v.Labels?.['tp.intercept']))
      expect(byIntercept.size).toBe(2)
    } finally {
      await Promise.all([stop(a), stop(b)])
    }
    expect(await nothingLeft(CONN)).toEqual([])
  })

  it('plugin creation that fails stops tp with a clear error before any container starts', async () => {
    const result = await tpCli(intercept('frontend-v1', 8000, ['frontend-v2']), {
      env: {...env, TP_TELEMOUNT_PLUGIN: BROKEN_PLUGIN, TP_TELEMOUNT_ROOTFS: brokenDir},
    })
    expect(result.exitCode).not.toBe(0)
    expect(result.stderr).toMatch(/cannot install the telemount volume plugin .*docker plugin enable failed/)
    expect(result.stderr).toMatch(/--mount=false/)
    const handlers = await docker.listContainers({all: true, filters: JSON.stringify({label: [`tp.connection=${CONN}`, 'tp.role=handler']})})
    expect(handlers).toEqual([])
    expect(await nothingLeft(CONN)).toEqual([])
  })

  it('needs no plugin with --mount=false or for a workload without volumes', async () => {
    const broken = {TP_TELEMOUNT_PLUGIN: BROKEN_PLUGIN, TP_TELEMOUNT_ROOTFS: brokenDir}
    const noMount = start(intercept('frontend-v1', 8000, ['frontend-v2'], ['--mount=false']), broken)
    await noMount.active
    expect((await get('frontend-v1', '/')).body).toMatch(/^frontend-v2\n/)
    expect((await get('frontend-v1', '/config')).status).toBe(500) // no /data in the handler
    expect(await stop(noMount), noMount.output()).toBe(0)

    // catalog's env makes the router answer its JSON; empty it, so the reply shows who answers
    const catalog = start(intercept('catalog', 8000, ['-e', 'RESPONSE_JSON=', 'frontend-v2']), broken)
    await catalog.active
    expect((await get('catalog', '/')).body).toMatch(/^frontend-v2\n/)
    expect(await stop(catalog), catalog.output()).toBe(0)
    expect(await nothingLeft(CONN)).toEqual([])
  })

  it("with the workload on this engine, its volumes are mounted straight from it: no plugin, no volume of tp's, same files", async () => {
    // a plugin that cannot even be installed: it is never needed
    const run = start(intercept('frontend-v1', 8000, ['frontend-v2']), {
      TP_TELEMOUNT_DIRECT: '',
      TP_TELEMOUNT_PLUGIN: BROKEN_PLUGIN,
      TP_TELEMOUNT_ROOTFS: brokenDir,
    })
    await run.active
    expect((await get('frontend-v1', '/config')).body, run.output()).toBe(DEMO_CONFIG_TXT)
    expect((await get('frontend-v1', '/write?name=straight.txt')).body).toBe('ok /data/straight.txt\n')
    expect(await inWorkload(demo.frontend, 'cat /data/straight.txt')).toBe('written by frontend-v2')
    expect((await get('frontend-v1', '/cat?path=/etc/frontend/settings.txt')).body).toBe(DEMO_SETTINGS_TXT)
    expect((await get('frontend-v1', '/write?path=/etc/frontend/x.txt')).status).toBe(500) // read-only, as in the workload
    const volumes = (await docker.listVolumes({filters: JSON.stringify({label: [`tp.connection=${CONN}`]})})).Volumes ?? []
    expect(volumes).toEqual([])
    expect(await stop(run), run.output()).toBe(0)
    expect(await nothingLeft(CONN)).toEqual([])
    // the workload's own volumes stay, with what the handler wrote
    expect(await inWorkload(demo.frontend, 'cat /data/straight.txt')).toBe('written by frontend-v2')
  })
})
