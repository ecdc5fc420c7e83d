/** Running `tp` as a user in a second terminal would, and checking what a connection left behind. */
import {setTimeout as sleep} from 'node:timers/promises'
import {execa, type ResultPromise} from 'execa'
import {demoDown, ensureRuntimeImage} from '@tp/images'
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

/**
 * The NAT rules and the IPv4 forwarding switch of a container's network namespace (what an agent
 * changes there): to compare before and after a test. Docker's own rules (its DNS, DOCKER_*) are
 * left out: they change when the container restarts.
 */
export async function namespaceState(container: string): Promise<string> {
  const {ref} = await ensureRuntimeImage(docker, {require: ['agent']})
  const created = await docker.createContainer({
    Image: ref,
    Cmd: ['sh', '-c', 'iptables -w -t nat -S | grep -v DOCKER_ && echo ip_forward=$(cat /proc/sys/net/ipv4/ip_forward)'],
    Labels: {'tp.fixture': 'true'},
    HostConfig: {NetworkMode: `container:${container}`, CapAdd: ['NET_ADMIN']},
  })
  try {
    await created.start()
    const {StatusCode} = (await created.wait()) as {StatusCode: number}
    const logs = await created.logs({stdout: true, stderr: true})
    const text = demuxText(logs as unknown as Buffer)
    if (StatusCode !== 0) throw new Error(`reading the namespace of ${container} failed (${StatusCode}): ${text}`)
    return text.trim()
  } finally {
    await created.remove({force: true}).catch(() => undefined)
  }
}

function demuxText(buffer: Buffer): string {
  let out = ''
  for (let at = 0; at + 8 <= buffer.length; ) {
    const size = buffer.readUInt32BE(at + 4)
    out += buffer.subarray(at + 8, at + 8 + size).toString('utf8')
    at += 8 + size
  }
  return out
}

/**
 * What tp said on stderr but its progress lines about building its own images, which only a
 * machine that does not have them yet sees (a fresh engine, a new version).
 */
export function withoutImageProgress(stderr: string): string {
  return stderr
    .split('\n')
    .filter((line) => !/^(building tp's .* image |adding cluster driver .* to tp's daemon image )/.test(line))
    .join('\n')
}
