/** Running `tp` as a user in a second terminal would, and checking what a connection left behind. */
import {setTimeout as sleep} from 'node:timers/promises'
import {execa, type ResultPromise} from 'execa'
import {demoDown} from '@tp/images'
import {docker, ensureDemo, repoRoot, tpBin, tpCli} from './demo.js'

export interface RunningTp {
  child: ResultPromise
  /** stdout and stderr so far, interleaved. */
  output: () => string
  /** Resolves once tp says the traffic goes to the handler; rejects if it exits first. */
  active: Promise<void>
}

/** Starts `tp <args>` in the background (`node --` keeps a later `--env-file` tp's own flag). */
export function startTp(args: string[], options: {env?: Record<string, string | undefined>; cwd?: string; activeTimeoutMs?: number} = {}): RunningTp {
  const child = execa('node', ['--', tpBin, ...args], {
    env: options.env,
    cwd: options.cwd ?? repoRoot,
    reject: false,
    buffer: false,
    stdin: 'ignore',
    all: true,
  })
  let output = ''
  child.all?.on('data', (c: Buffer) => (output += c.toString()))
  const active = (async () => {
    const deadline = Date.now() + (options.activeTimeoutMs ?? 120_000)
    while (!/now goes to (your handler|port)/.test(output)) {
      if (child.exitCode !== null || Date.now() > deadline) throw new Error(`the intercept did not become active:\n${output}`)
      await sleep(100)
    }
  })()
  active.catch(() => undefined) // a test that never awaits it must not see an unhandled rejection
  return {child, output: () => output, active}
}

/** tp objects of a connection other than its daemon (handler containers, agents, volumes). */
export async function leftovers(connection: string): Promise<string[]> {
  const filters = JSON.stringify({label: [`tp.connection=${connection}`]})
  const [containers, volumes] = await Promise.all([docker.listContainers({all: true, filters}), docker.listVolumes({filters})])
  return [
    ...containers.filter((c) => c.Labels['tp.role'] !== 'daemon').map((c) => `container ${c.Names[0]}`),
    ...(volumes.Volumes ?? []).map((v) => `volume ${v.Name}`),
  ]
}

/** Leftovers of a connection once they had up to 15 s to go (agents stop, volumes unmount). */
export async function nothingLeft(connection: string): Promise<string[]> {
  const deadline = Date.now() + 15_000
  for (;;) {
    const left = await leftovers(connection)
    if (left.length === 0 || Date.now() > deadline) return left
    await sleep(250)
  }
}

/**
 * A demo cluster on a network of its own and a container-daemon connection to it, so a test file
 * does not disturb others on `tp-demo`. `disconnect` quits the connection and removes the cluster.
 */
export async function connectOwnDemo(network: string, connection: string, env: Record<string, string | undefined>): Promise<{disconnect: () => Promise<void>}> {
  await ensureDemo({network})
  const connected = await tpCli(['connect', '--docker', '--name', connection, '--namespace', network], {env})
  if (connected.exitCode !== 0) throw new Error(`tp connect failed (${connected.exitCode}): ${connected.stderr}`)
  return {
    disconnect: async () => {
      await tpCli(['quit', '--name', connection], {env}).catch(() => undefined)
      await demoDown(docker, {network}).catch(() => undefined)
    },
  }
}
