/**
 * Faults during an intercept, with a client calling the workload every 40 ms from the cluster's
 * network: how many of its requests fail while the intercept ends, what tp says, its exit code, and
 * that nothing is left. A planned end (Ctrl-C, SIGTERM, SIGHUP, tp leave, tp quit, kill -9 of tp,
 * the daemon killed) loses no request; the handler dying, the agent killed or the workload
 * restarted lose at most one. Runs on a demo cluster of its own with a container daemon.
 */
import {mkdtemp, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {setTimeout as sleep} from 'node:timers/promises'
import {execa, type ResultPromise} from 'execa'
import {afterAll, afterEach, beforeAll, describe, expect, it} from 'vitest'
import {demoDown, demoNames} from '@tp/images'
import {type ClientLoopResult, docker, ensureDemo, namespaceState, nothingLeft, repoRoot, startClientLoop, tpBin, tpCli, waitFor} from '../helpers/index.js'

const NETWORK = `tpt-fault-${process.pid}`
const CONN = 'e2e-fault'
const names = demoNames({network: NETWORK})
let cacheDir: string
let env: Record<string, string>
let namespaceBefore: string
const tp = (args: string[]) => tpCli(args, {env})

async function connect(): Promise<void> {
  const connected = await tp(['connect', '--docker', '--name', CONN, '--namespace', NETWORK])
  if (connected.exitCode !== 0) throw new Error(`tp connect failed: ${connected.stderr}`)
}

/** `tp intercept … --docker-run -- frontend-v2` in a process group of its own, as a shell runs a command. */
function startIntercept(): {child: ResultPromise; output: () => string} {
  const child = execa('node', ['--', tpBin, 'intercept', '--use', CONN, 'frontend-v1', '--name', 'fe', '--port', '8000', '--docker-run', '--', 'frontend-v2'], {
    env,
    cwd: repoRoot,
    reject: false,
    stdin: 'ignore',
    all: true,
    buffer: false,
    detached: true,
  })
  let output = ''
  child.all?.on('data', (c: Buffer) => (output += c.toString()))
  return {child, output: () => output}
}

/** Polls often: a fault case watches the client loop closely. */
const until = (what: string, probe: () => Promise<boolean> | boolean) => waitFor(what, probe, 30_000, 50)

const answeredBy = (result: ClientLoopResult, marker: RegExp) => result.bodies.filter((b) => marker.test(b)).length

interface Outcome {
  result: ClientLoopResult
  exitCode: number | undefined
  output: string
}

/**
 * Intercepts frontend-v1 with frontend-v2, lets the client see the handler for a while, applies
 * `fault`, and waits until the workload answers again and tp has exited.
 */
async function throughFault(fault: (run: {child: ResultPromise}) => Promise<void>): Promise<Outcome> {
  const run = startIntercept()
  await until('the intercept to become active', () => run.output().includes('now goes to your handler') || run.child.exitCode !== null)
  if (run.child.exitCode !== null) throw new Error(`tp exited before the intercept was active:\n${run.output()}`)
  const client = await startClientLoop('http://frontend-v1/', {network: NETWORK, intervalMs: 40})
  try {
    await until('the client to reach the handler', async () => answeredBy(await client.peek(), /^frontend-v2$/m) >= 10)
    // the kernel carries the connections to the handler (the agent's DNAT rule), not the agent's process
    expect(await namespaceState(names.frontend)).toMatch(/-j DNAT --to-destination/)
    await fault(run)
    const exited = await Promise.race([run.child, sleep(40_000).then(() => undefined)])
    if (!exited) throw new Error(`tp did not exit after the fault:\n${run.output()}`)
    // the workload has its traffic back, and keeps it for a while
    await until('the workload to answer again', async () => /hello from frontend-v1/.test((await client.peek()).bodies.at(-1) ?? ''))
    const seen = (await client.peek()).ok
    await until('more requests after the fault', async () => (await client.peek()).ok >= seen + 10)
    const result = await client.stop()
    return {result, exitCode: exited.exitCode, output: run.output()}
  } finally {
    await client.stop().catch(() => undefined)
    if (run.child.exitCode === null && run.child.signalCode === null && run.child.pid) process.kill(-run.child.pid, 'SIGKILL')
  }
}

const containerOf = async (role: string) =>
  (await docker.listContainers({filters: JSON.stringify({label: [`tp.connection=${CONN}`, `tp.role=${role}`]})}))[0]?.Id

beforeAll(async () => {
  await ensureDemo({network: NETWORK})
  cacheDir = await mkdtemp(join(tmpdir(), 'tp-e2e-fault-'))
  env = {TP_CACHE_DIR: cacheDir}
  await connect()
  namespaceBefore = await namespaceState(names.frontend)
})

// the workload's NAT rules and forwarding as before, after every test (the agent's rules all gone)
afterEach(async () => {
  expect(await namespaceState(names.frontend)).toBe(namespaceBefore)
})

afterAll(async () => {
  await tp(['quit', '--name', CONN])
  await demoDown(docker, {network: NETWORK}).catch(() => undefined)
  await rm(cacheDir, {recursive: true, force: true})
})

describe('a planned end loses no request', () => {
  it.each([
    ['Ctrl-C (SIGINT to the process group)', (child: ResultPromise) => void process.kill(-child.pid!, 'SIGINT')],
    ['SIGTERM', (child: ResultPromise) => void child.kill('SIGTERM')],
    ['SIGHUP (the terminal closed)', (child: ResultPromise) => void child.kill('SIGHUP')],
  ])('%s: exit 0', async (_title, send) => {
    const {result, exitCode, output} = await throughFault(async ({child}) => {
      send(child)
    })
    expect(result.failures, output).toEqual([])
    expect(exitCode, output).toBe(0)
    expect(await nothingLeft(CONN)).toEqual([])
  })

  it('tp leave from another terminal: exit 0, says so', async () => {
    const {result, exitCode, output} = await throughFault(async () => {
      expect((await tp(['leave', '--use', CONN, 'fe'])).exitCode).toBe(0)
    })
    expect(result.failures, output).toEqual([])
    expect(exitCode, output).toBe(0)
    expect(output).toContain('The intercept ended: ended by tp leave')
    expect(await nothingLeft(CONN)).toEqual([])
  })

  it('kill -9 of tp: the daemon ends the intercept', async () => {
    const {result, output} = await throughFault(async ({child}) => void child.kill('SIGKILL'))
    expect(result.failures, output).toEqual([])
    expect(await nothingLeft(CONN)).toEqual([])
  })

  it('tp quit: exit 0, says the daemon is quitting', async () => {
    const {result, exitCode, output} = await throughFault(async () => {
      expect((await tp(['quit', '--name', CONN])).exitCode).toBe(0)
    })
    expect(result.failures, output).toEqual([])
    expect(exitCode, output).toBe(0)
    expect(output).toMatch(/the daemon is quitting/)
    expect(await nothingLeft(CONN)).toEqual([])
    await connect()
  })

  it('the daemon killed: the agent gives the traffic back by itself; tp says the daemon went away', async () => {
    const {result, exitCode, output} = await throughFault(async () => {
      await docker.getContainer(`tp-${CONN}-cn`).kill()
    })
    expect(result.failures, output).toEqual([])
    expect(exitCode, output).toBe(1)
    expect(output).toMatch(/the tp daemon went away/)
    // the next tp command finds the daemon gone and sweeps what it left
    await tp(['status'])
    expect(await nothingLeft(CONN)).toEqual([])
    await connect()
  })
})

describe('a fault loses at most one request, and tp says what happened', () => {
  it('the handler container killed: tp exits with its code and says the handler exited', async () => {
    const {result, exitCode, output} = await throughFault(async () => {
      await docker.getContainer((await containerOf('handler'))!).kill()
    })
    expect(result.failed, output).toBeLessThanOrEqual(1)
    expect(exitCode, output).toBe(137)
    expect(output).toContain('The handler exited by itself with code 137')
    expect(await nothingLeft(CONN)).toEqual([])
  })

  it('the agent killed: its guard restores the traffic; tp exits 1 saying the agent was killed', async () => {
    const {result, exitCode, output} = await throughFault(async () => {
      // the guard starts 1.5 s after its agent is ready (before that the daemon restores the traffic)
      await until("the agent's guard to run", async () => (await containerOf('agent-guard')) !== undefined)
      await docker.getContainer((await containerOf('agent'))!).kill()
    })
    expect(result.failed, output).toBeLessThanOrEqual(1)
    expect(exitCode, output).toBe(1)
    expect(output).toMatch(/the traffic agent of \S*frontend-v1 was killed/)
    expect(await nothingLeft(CONN)).toEqual([])
  })

  it('the workload restarted: tp exits 1 saying so, losing at most one request more than a restart without tp', async () => {
    const restart = () => docker.getContainer(names.frontend).restart({t: 1})
    // the workload itself is down while it restarts: what a client loses then is the baseline
    const client = await startClientLoop('http://frontend-v1/', {network: NETWORK, intervalMs: 40})
    await until('the client to reach the workload', async () => (await client.peek()).ok >= 10)
    await restart()
    await until('the workload to answer again', async () => /hello from frontend-v1/.test((await client.peek()).bodies.at(-1) ?? ''))
    const seen = (await client.peek()).ok
    await until('more requests after the restart', async () => (await client.peek()).ok >= seen + 10)
    const baseline = await client.stop()
    const {result, exitCode, output} = await throughFault(restart)
    expect(result.failed, `${output}\nwithout tp: ${baseline.failed} failed`).toBeLessThanOrEqual(baseline.failed + 1)
    expect(exitCode, output).toBe(1)
    expect(output).toMatch(/the workload \S*frontend-v1 restarted/)
    expect(await nothingLeft(CONN)).toEqual([])
  })
})
