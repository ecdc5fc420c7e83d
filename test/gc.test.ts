/**
 * `tp gc`: removes the tp-labelled containers and volumes that no live connection owns, keeps those
 * of live connections, and only reports with --dry-run.
 */
import {mkdtemp, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {afterAll, beforeAll, expect, it} from 'vitest'
import {busyboxImage, docker, ensureDemo, tpCli} from './helpers/index.js'

let cacheDir: string
const env = () => ({TP_CACHE_DIR: cacheDir})
const LIVE = 'e2e-gc-live'
const GHOST = 'e2e-gc-ghost'

async function labelled(connection: string) {
  const filters = JSON.stringify({label: ['tp.managed=true', `tp.connection=${connection}`]})
  const containers = await docker.listContainers({all: true, filters})
  const volumes = (await docker.listVolumes({filters})).Volumes ?? []
  return {containers: containers.map((c) => c.Names[0].slice(1)).sort(), volumes: volumes.map((v) => v.Name).sort()}
}

beforeAll(async () => {
  await ensureDemo()
  cacheDir = await mkdtemp(join(tmpdir(), 'tp-e2e-gc-'))
  expect((await tpCli(['connect', '--docker', '--namespace', 'tp-demo', '--name', LIVE], {env: env()})).exitCode).toBe(0)
  // what a crashed connection leaves: a handler container and a volume of a daemon that is gone
  const image = await busyboxImage()
  const labels = {'tp.managed': 'true', 'tp.connection': GHOST, 'tp.intercept': 'frontend-v1', 'tp.role': 'handler'}
  await docker.createContainer({name: 'tpt-gc-ghost-handler', Image: image, Cmd: ['sleep', '300'], Labels: labels})
  await docker.createVolume({Name: 'tpt-gc-ghost-volume', Labels: {...labels, 'tp.role': 'volume'}})
  // and one object that belongs to the live connection
  await docker.createVolume({Name: 'tpt-gc-live-volume', Labels: {...labels, 'tp.connection': LIVE, 'tp.role': 'volume'}})
})

afterAll(async () => {
  await tpCli(['quit'], {env: env()})
  await docker
    .getContainer('tpt-gc-ghost-handler')
    .remove({force: true})
    .catch(() => undefined)
  for (const v of ['tpt-gc-ghost-volume', 'tpt-gc-live-volume'])
    await docker
      .getVolume(v)
      .remove()
      .catch(() => undefined)
  await rm(cacheDir, {recursive: true, force: true})
})

it('--dry-run names what it would remove and removes nothing', async () => {
  const result = await tpCli(['gc', '--dry-run'], {env: env()})
  expect(result.exitCode).toBe(0)
  expect(result.stdout).toContain('would remove container tpt-gc-ghost-handler (handler, connection e2e-gc-ghost)')
  expect(result.stdout).toContain('would remove volume tpt-gc-ghost-volume')
  expect(result.stdout).not.toContain('tpt-gc-live-volume')
  expect(result.stdout).not.toContain(`tp-${LIVE}-cn`)
  expect(await labelled(GHOST)).toEqual({containers: ['tpt-gc-ghost-handler'], volumes: ['tpt-gc-ghost-volume']})
})

it('removes what no live connection owns and keeps the rest', async () => {
  const result = await tpCli(['gc'], {env: env()})
  expect(result.exitCode).toBe(0)
  expect(result.stdout).toContain('removed container tpt-gc-ghost-handler')
  expect(await labelled(GHOST)).toEqual({containers: [], volumes: []})
  expect(await labelled(LIVE)).toEqual({containers: [`tp-${LIVE}-cn`], volumes: ['tpt-gc-live-volume']})
  const again = await tpCli(['gc'], {env: env()})
  expect(again.stdout).not.toContain('tpt-gc')
})

it('keeps the objects of a daemon started from another cache directory', async () => {
  const other = await mkdtemp(join(tmpdir(), 'tp-e2e-gc-other-'))
  try {
    const result = await tpCli(['gc'], {env: {TP_CACHE_DIR: other}})
    expect(result.exitCode).toBe(0)
    expect(await labelled(LIVE)).toEqual({containers: [`tp-${LIVE}-cn`], volumes: ['tpt-gc-live-volume']})
  } finally {
    await rm(other, {recursive: true, force: true})
  }
})
