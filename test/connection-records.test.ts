/**
 * Honest state after faults of the connection itself, with both daemon kinds, on a demo cluster of
 * its own: a daemon that died is reported once by `tp status` (what the connection was, what was
 * cleaned up, exit 1), then "Not connected"; `--use` never makes a connection, not even after its
 * daemon died; a damaged, truncated or foreign connection record is reported by name, and the
 * daemon it belonged to is still found (Docker labels, its process), shown, listed by `tp gc
 * --dry-run` and stopped by `tp quit --name`, leaving nothing behind.
 */
import {readFileSync} from 'node:fs'
import {mkdtemp, readFile, rm, stat, truncate, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {demoDown} from '@tp/images'
import {docker, ensureDemo, nothingLeft, startTp, tpCli, waitFor} from './helpers/index.js'

const NETWORK = `tpt-conrec-${process.pid}`
const CONTAINER = 'cr-c'
const HOST = 'cr-h'
const NAMES = [CONTAINER, HOST, 'cr-c2', 'cr-f']
let cacheDir: string
let env: Record<string, string>
const tp = (args: string[]) => tpCli(args, {env})
const record = (name: string) => join(cacheDir, 'connections', `${name}.json`)

async function connect(name: string, docker: boolean): Promise<void> {
  const result = await tp(['connect', ...(docker ? ['--docker'] : []), '--name', name, '--namespace', NETWORK])
  if (result.exitCode !== 0) throw new Error(`tp connect ${name} failed (${result.exitCode}): ${result.stderr}`)
}

async function daemonContainerRuns(name: string): Promise<boolean> {
  const info = await docker
    .getContainer(`tp-${name}-cn`)
    .inspect()
    .catch(() => undefined)
  return info?.State.Running === true
}

/** Whether the process runs: a zombie (ended, not reaped yet by whoever adopted it) has an empty command line. */
function processRuns(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').length > 0
  } catch {
    return false
  }
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  )
}

beforeAll(async () => {
  await ensureDemo({network: NETWORK})
  cacheDir = await mkdtemp(join(tmpdir(), 'tp-e2e-conrec-'))
  env = {TP_CACHE_DIR: cacheDir, TP_NAMESPACE: NETWORK}
}, 180_000)

afterAll(async () => {
  await tp(['quit']).catch(() => undefined)
  for (const name of NAMES) {
    await docker
      .getContainer(`tp-${name}-cn`)
      .remove({force: true})
      .catch(() => undefined)
  }
  await demoDown(docker, {network: NETWORK}).catch(() => undefined)
  if (cacheDir) await rm(cacheDir, {recursive: true, force: true})
}, 120_000)

describe('a daemon that died', () => {
  it('container daemon: tp status says so once (what it was, what was cleaned up, exit 1), then "Not connected"', async () => {
    await connect(CONTAINER, true)
    const intercept = startTp(['intercept', 'frontend-v1', '--use', CONTAINER, '--port', '8089'], {env})
    try {
      await waitFor('the intercept', async () => {
        const status = await tp(['status', '--json'])
        const report = JSON.parse(status.stdout || '{"connections":[]}') as {connections: Array<{intercepts: unknown[]}>}
        return report.connections.some((c) => c.intercepts.length > 0) ? true : undefined
      })
      await docker.getContainer(`tp-${CONTAINER}-cn`).kill()
      await waitFor('the daemon to be gone', async () => ((await daemonContainerRuns(CONTAINER)) ? undefined : true), 30_000)
      const first = await tp(['status', '--json'])
      expect(first.exitCode, first.stderr).toBe(1)
      const report = JSON.parse(first.stdout) as {connections: unknown[]; died: Array<{name: string; backend: string; namespace: string; cleanedUp: string[]}>}
      expect(report.connections).toEqual([])
      expect(report.died).toHaveLength(1)
      expect(report.died[0]).toMatchObject({name: CONTAINER, backend: 'container', namespace: NETWORK})
      expect(Array.isArray(report.died[0].cleanedUp)).toBe(true)
      const second = await tp(['status'])
      expect(second.exitCode).toBe(0)
      expect(second.stdout).toMatch(/^Not connected/)
      expect(await nothingLeft(CONTAINER)).toEqual([])
    } finally {
      intercept.child.kill('SIGINT')
      await intercept.child
    }
  }, 120_000)

  it('host daemon (kill -9): tp status names it, its process and namespace and what was undone, exit 1; then "Not connected"', async () => {
    await connect(HOST, false)
    const {pid} = JSON.parse(await readFile(record(HOST), 'utf8')) as {pid: number}
    process.kill(pid, 'SIGKILL')
    await waitFor('the daemon to be gone', async () => (processRuns(pid) ? undefined : true), 30_000)
    const first = await tp(['status'])
    expect(first.exitCode, first.stderr).toBe(1)
    expect(first.stdout).toMatch(
      new RegExp(`Connection ${HOST}: DAEMON DIED — the host daemon of connection ${HOST} \\(namespace ${NETWORK}, process ${pid}\\) had died; cleaned up: .+`),
    )
    // and what is true now
    expect(first.stdout).toMatch(/\nNot connected any more\./)
    const second = await tp(['status'])
    expect(second.exitCode).toBe(0)
    expect(second.stdout).toMatch(/^Not connected\. /)
    expect(await readFile('/etc/hosts', 'utf8')).not.toContain(`# tp begin ${HOST} `)
    expect(await nothingLeft(HOST)).toEqual([])
  }, 120_000)

  it('--use names the connection whose daemon died: an error that says so, and no connection is made', async () => {
    await connect('cr-c2', true)
    await docker.getContainer('tp-cr-c2-cn').kill()
    await waitFor('the daemon to be gone', async () => ((await daemonContainerRuns('cr-c2')) ? undefined : true), 30_000)
    const result = await tp(['intercept', 'frontend-v1', '--use', 'cr-c2', '--docker'])
    expect(result.exitCode, result.stderr).toBe(1)
    expect(result.stderr).toMatch(/the daemon of connection "cr-c2" had died/)
    expect(result.stderr).toMatch(/→ `tp connect --name cr-c2`/)
    const again = await tp(['intercept', 'frontend-v1', '--use', 'cr-c2'])
    expect(again.exitCode).toBe(1)
    expect(again.stderr).toMatch(/there is no connection named "cr-c2" \(--use never creates one\)/)
    expect(await exists(record('cr-c2'))).toBe(false)
    expect(await daemonContainerRuns('cr-c2')).toBe(false)
  }, 120_000)
})

describe('a damaged connection record', () => {
  it('container daemon, {garbage: status names the record and the daemon, intercept --use says so, gc --dry-run lists it, quit --name stops it', async () => {
    await connect(CONTAINER, true)
    await writeFile(record(CONTAINER), '{garbage\n')
    const status = await tp(['status'])
    expect(status.exitCode).toBe(1)
    expect(status.stdout).toContain(`Connection ${CONTAINER}: RECORD DAMAGED — ${record(CONTAINER)}: it is not valid JSON`)
    expect(status.stdout).toContain(`its daemon still runs (container tp-${CONTAINER}-cn)`)
    expect(status.stdout).toContain(`\`tp quit --name ${CONTAINER}\``)

    const intercept = await tp(['intercept', 'frontend-v1', '--use', CONTAINER])
    expect(intercept.exitCode, intercept.stderr).toBe(1)
    expect(intercept.stderr).toMatch(new RegExp(`^tp: the record of connection "${CONTAINER}" is damaged`))
    expect(intercept.stderr).not.toMatch(/internal error|at .*\.js:\d+/)

    // a command that goes on without it says so too
    const leave = await tp(['leave', 'x'])
    expect(leave.exitCode).toBe(1)
    expect(leave.stderr).toContain(`warning: the record of connection ${CONTAINER} is damaged (${record(CONTAINER)}`)

    const gc = await tp(['gc', '--dry-run'])
    expect(gc.exitCode).toBe(0)
    expect(gc.stdout).toContain(`would stop the daemon of connection ${CONTAINER} (container tp-${CONTAINER}-cn), which has no usable record`)
    expect(gc.stdout).toContain(`would remove container tp-${CONTAINER}-cn (daemon, connection ${CONTAINER})`)
    expect(await daemonContainerRuns(CONTAINER)).toBe(true)

    const quit = await tp(['quit', '--name', CONTAINER])
    expect(quit.exitCode, quit.stderr).toBe(0)
    expect(quit.stdout).toContain(`its daemon (container tp-${CONTAINER}-cn), which had no usable record, stopped`)
    expect(await daemonContainerRuns(CONTAINER)).toBe(false)
    expect(await exists(record(CONTAINER))).toBe(false)
    expect(await nothingLeft(CONTAINER)).toEqual([])
    const after = await tp(['status'])
    expect(after.exitCode).toBe(0)
    expect(after.stdout).toMatch(/^Not connected/)
  }, 180_000)

  it('host daemon, a truncated record: status names the record and the daemon process, quit --name stops it and undoes the hosts file', async () => {
    await connect(HOST, false)
    const {pid} = JSON.parse(await readFile(record(HOST), 'utf8')) as {pid: number}
    await truncate(record(HOST), 40)
    const status = await tp(['status', '--json'])
    expect(status.exitCode).toBe(1)
    const report = JSON.parse(status.stdout) as {damagedRecords: Array<{name: string; file: string; daemon?: string}>}
    expect(report.damagedRecords).toEqual([expect.objectContaining({name: HOST, file: record(HOST), daemon: `process ${pid} on this host`})])
    const quit = await tp(['quit', '--name', HOST])
    expect(quit.exitCode, quit.stderr).toBe(0)
    expect(processRuns(pid)).toBe(false)
    expect(await exists(record(HOST))).toBe(false)
    expect(await readFile('/etc/hosts', 'utf8')).not.toContain(`# tp begin ${HOST} `)
    expect(await nothingLeft(HOST)).toEqual([])
  }, 180_000)

  it('host daemon whose record was removed: status shows the daemon that runs without one; plain tp quit stops it', async () => {
    await connect(HOST, false)
    const {pid} = JSON.parse(await readFile(record(HOST), 'utf8')) as {pid: number}
    await rm(record(HOST))
    const status = await tp(['status'])
    expect(status.exitCode).toBe(1)
    expect(status.stdout).toContain(`Connection ${HOST}: NO RECORD — a host daemon runs (process ${pid} on this host, namespace ${NETWORK})`)
    const quit = await tp(['quit'])
    expect(quit.exitCode, quit.stderr).toBe(0)
    expect(processRuns(pid)).toBe(false)
    expect(await nothingLeft(HOST)).toEqual([])
  }, 180_000)

  it('a foreign record (valid JSON of another connection) without a daemon: named, removed by quit --name', async () => {
    await writeFile(
      record('cr-f'),
      `${JSON.stringify({name: 'someone-else', backend: 'container', daemonId: 'x', namespace: NETWORK, api: {url: 'http://127.0.0.1:1', token: 't'}})}\n`,
    )
    const status = await tp(['status'])
    expect(status.exitCode).toBe(1)
    expect(status.stdout).toContain(
      `Connection cr-f: RECORD DAMAGED — ${record('cr-f')}: it is the record of connection "someone-else", not of "cr-f"; no daemon of it runs`,
    )
    const quit = await tp(['quit', '--name', 'cr-f'])
    expect(quit.exitCode).toBe(0)
    expect(quit.stdout).toContain('Removed the damaged record of connection cr-f')
    expect(await exists(record('cr-f'))).toBe(false)
    expect((await tp(['status'])).exitCode).toBe(0)
  }, 60_000)
})
