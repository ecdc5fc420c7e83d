/**
 * A Docker Swarm on this host, for tests of the swarm cluster driver: three machines of
 * test/helpers/remote-machine.ts (a manager and two workers, each a network namespace with its own
 * engine; the manager's answers over TLS and ssh as a remote engine does), joined into one swarm, and
 * a registry (Debian's `docker-registry`, TLS from a throwaway CA) inside the manager's namespace,
 * from which every node pulls.
 *
 * The nodes reach each other through this host, which routes between their veths (their /30s): a
 * route to each peer in each namespace, the namespaces' firewalls opened to their peers only, and a
 * FORWARD rule per pair here (the engine's FORWARD policy is DROP). Overlay networks use an address
 * pool of the swarm's own, blackholed here as the engines' other subnets are. IPVS is missing from
 * this kernel: services must use `endpoint_mode: dnsrr`.
 *
 * What the swarm adds beyond its machines (FORWARD rules, the CA in /etc/docker/certs.d, its files)
 * is written to a state file before it is made, so `stop()` and `sweepStaleSwarms()` remove exactly that.
 */
import {mkdir, readdir, readFile, rm, rmdir, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {setTimeout as sleep} from 'node:timers/promises'
import {
  inNamespace,
  makeTls,
  type RemoteMachine,
  run,
  runQuiet,
  spawnDaemon,
  startRemoteMachine,
  startTime,
  sweepStaleRemoteMachines,
  tail,
  terminate,
} from './remote-machine.js'

const RUN_ROOT = '/run/tp-swarm'
const BASE_ROOT = join(tmpdir(), 'tp-swarm')
const CERTS_D = '/etc/docker/certs.d'
const REGISTRY_PORT = 5000
/** Overlay networks' addresses (`swarm init --default-addr-pool`): nobody else's on this host. */
const DEFAULT_OVERLAY_POOL = '10.79.0.0/16'

export interface SwarmOptions {
  /** Workers besides the manager (default 2). */
  workers?: number
  /** The swarm's overlay address pool (default 10.79.0.0/16), blackholed on this host. */
  overlayPool?: string
  /** Bound for start (default 120 s); on expiry everything made so far is removed and start rejects. */
  timeoutMs?: number
  log?: (line: string) => void
}

export interface SwarmNode {
  machine: RemoteMachine
  /** The node's id in the swarm. */
  id: string
  /** Its name in the swarm (its machine's name: each engine has a host name of its own). */
  hostname: string
  role: 'manager' | 'worker'
}

export interface SwarmMachine {
  name: string
  /** The manager first, then the workers. */
  nodes: SwarmNode[]
  manager: RemoteMachine
  /** `host:port` of the registry every node pulls from (TLS, its CA in /etc/docker/certs.d). */
  registry: string
  /** The CA of the registry's certificate. */
  registryCa: string
  /** Tags `image` (on the manager's engine) into the registry, pushes it, and resolves with the pushed reference. */
  push(image: string, as: string): Promise<string>
  /** Deploys a compose file as a stack through the manager (`docker stack deploy`, digests not resolved here). */
  deployStack(stack: string, compose: string): Promise<void>
  /** Until every service of the stack runs all its tasks (bounded). */
  waitForStack(stack: string, timeoutMs?: number): Promise<void>
  /** Removes everything: the machines, the registry, the rules and files here. Idempotent. */
  stop(): Promise<void>
}

interface SwarmState {
  name: string
  owner: {pid: number; startTime: string}
  machines: string[]
  /** iptables arguments after -I/-D (`FORWARD -i tprm1 -o tprm2 -j ACCEPT -m comment --comment …`). */
  rules: string[][]
  /** Directories made under /etc/docker/certs.d. */
  certsDirs: string[]
  registryPid?: number
}

const statePath = (name: string) => join(RUN_ROOT, `${name}.json`)

async function readState(name: string): Promise<SwarmState | undefined> {
  const text = await readFile(statePath(name), 'utf8').catch(() => undefined)
  return text === undefined ? undefined : (JSON.parse(text) as SwarmState)
}

async function writeState(state: SwarmState): Promise<void> {
  await mkdir(RUN_ROOT, {recursive: true})
  await writeFile(statePath(state.name), `${JSON.stringify(state, null, 2)}\n`)
}

/** Removes what the state says the swarm made here, then its machines. Every step runs whatever the others did. */
async function teardown(name: string, state: SwarmState | undefined, machines: RemoteMachine[]): Promise<void> {
  const problems: string[] = []
  const step = async (what: string, action: () => Promise<unknown>) => {
    try {
      await action()
    } catch (error) {
      problems.push(`${what}: ${(error as Error).message}`)
    }
  }
  if (state?.registryPid) {
    const pid = state.registryPid
    await step('stopping the registry', async () => {
      const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')
      if (cmdline.includes(join(BASE_ROOT, name))) await terminate(pid, 5_000)
    })
  }
  // the machines: those started by this process by their handles, others (a killed run's) by the sweep
  await step('stopping the machines', async () => {
    await Promise.all(machines.map((m) => m.stop()))
  })
  if (machines.length === 0) await step('sweeping the machines', () => sweepStaleRemoteMachines(`${name}-`))
  for (const rule of state?.rules ?? []) {
    await step(`removing iptables ${rule.join(' ')}`, async () => {
      const removed = await runQuiet(['iptables', '-D', ...rule])
      if (removed.exitCode !== 0 && !/does a matching rule exist|No chain|Bad rule/.test(removed.stderr)) throw new Error(removed.stderr.trim())
    })
  }
  for (const dir of state?.certsDirs ?? []) await step(`removing ${dir}`, () => rm(dir, {recursive: true, force: true}))
  // certs.d itself, when nothing else is in it (it did not exist on this host before)
  if (state?.certsDirs.length) await rmdir(CERTS_D).catch(() => undefined)
  await step('removing files', () => rm(join(BASE_ROOT, name), {recursive: true, force: true}))
  if (problems.length > 0) throw new Error(`swarm ${name}: clean-up left things behind:\n  ${problems.join('\n  ')}`)
  await rm(statePath(name), {force: true})
}

/** Removes the swarms named `<prefix>…` that a killed test run left (their owner is gone). */
export async function sweepStaleSwarms(prefix: string): Promise<string[]> {
  const swept: string[] = []
  for (const entry of await readdir(RUN_ROOT).catch(() => [])) {
    if (!entry.startsWith(prefix) || !entry.endsWith('.json')) continue
    const name = entry.slice(0, -5)
    const state = await readState(name)
    if (state && (await startTime(state.owner.pid)) === state.owner.startTime) continue
    await teardown(name, state, [])
    swept.push(name)
  }
  // machines whose swarm state is gone (removed by hand)
  swept.push(...(await sweepStaleRemoteMachines(prefix)))
  return swept
}

/**
 * Starts a swarm named `name` (1-20 lowercase letters, digits, dashes; its machines are `<name>-m`,
 * `<name>-w1`, …): its machines in parallel, the registry, `swarm init` and the joins. Bounded by
 * `timeoutMs`; on failure everything made so far is removed.
 */
export async function startSwarm(name: string, options: SwarmOptions = {}): Promise<SwarmMachine> {
  if (!/^[a-z0-9][a-z0-9-]{0,19}$/.test(name)) throw new Error(`swarm name ${JSON.stringify(name)}: use 1-20 lowercase letters, digits and dashes`)
  const log = options.log ?? (() => undefined)
  const timeoutMs = options.timeoutMs ?? 120_000
  const deadline = Date.now() + timeoutMs
  const left = () => Math.max(1_000, deadline - Date.now())
  const overlayPool = options.overlayPool ?? DEFAULT_OVERLAY_POOL
  const base = join(BASE_ROOT, name)

  const previous = await readState(name)
  if (previous && previous.owner.pid !== process.pid && (await startTime(previous.owner.pid)) === previous.owner.startTime)
    throw new Error(`swarm ${name} is in use by process ${previous.owner.pid}; pick another name`)
  if (previous) await teardown(name, previous, [])

  const names = [`${name}-m`, ...Array.from({length: options.workers ?? 2}, (_, i) => `${name}-w${i + 1}`)]
  const state: SwarmState = {name, owner: {pid: process.pid, startTime: (await startTime(process.pid)) ?? ''}, machines: names, rules: [], certsDirs: []}
  await writeState(state)
  const machines: RemoteMachine[] = []
  const started = Date.now()
  let stepName = 'starting'
  const step = async <T>(what: string, action: () => Promise<T>): Promise<T> => {
    stepName = what
    if (Date.now() > deadline) throw new Error(`its ${timeoutMs / 1000} s ran out`)
    log(`${name}: ${what}`)
    return action()
  }

  try {
    await step('starting the machines', async () => {
      const results = await Promise.allSettled(
        names.map((machine, i) =>
          // the overlay pool is blackholed once, with the manager's subnets; nobody needs to reach this host
          startRemoteMachine(machine, {timeoutMs: left(), log, hostname: machine, ...(i === 0 ? {extraSubnets: [overlayPool]} : {})}),
        ),
      )
      for (const r of results) if (r.status === 'fulfilled') machines.push(r.value)
      const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected')
      if (failed) throw failed.reason
    })
    await step('linking the machines through this host', async () => {
      for (const a of machines) {
        for (const b of machines) {
          if (a === b) continue
          // this host forwards between their veths (its FORWARD policy is DROP)
          const rule = ['FORWARD', '-i', a.hostInterface, '-o', b.hostInterface, '-j', 'ACCEPT', '-m', 'comment', '--comment', `tp-swarm ${name}`]
          state.rules.push(rule)
          await writeState(state)
          await run(['iptables', '-I', ...rule])
          // a route to the peer, and its firewall open to that peer only (before its own rules)
          await run(['ip', '-n', a.name, 'route', 'add', `${b.address}/32`, 'via', a.hostAddress])
          await run(inNamespace(a.name, ['iptables', '-t', 'mangle', '-I', 'TP-FIREWALL', '1', '-s', `${b.address}/32`, '-j', 'ACCEPT']))
          await run(inNamespace(a.name, ['iptables', '-t', 'mangle', '-I', 'POSTROUTING', '1', '-o', 'eth0', '-d', `${b.address}/32`, '-j', 'ACCEPT']))
        }
      }
    })
    const manager = machines[0]
    const registry = `${manager.address}:${REGISTRY_PORT}`
    const tls = join(base, 'registry-tls')
    await step('starting the registry', async () => {
      await mkdir(base, {recursive: true})
      await makeTls(tls, `${name}-registry`, manager.address, left())
      const certsDir = join(CERTS_D, registry)
      state.certsDirs.push(certsDir)
      await writeState(state)
      await mkdir(certsDir, {recursive: true})
      await writeFile(join(certsDir, 'ca.crt'), await readFile(join(tls, 'ca.pem')))
      const config = join(base, 'registry.yml')
      await writeFile(
        config,
        [
          'version: 0.1',
          'log: {level: warn}',
          'storage:',
          `  filesystem: {rootdirectory: ${join(base, 'registry')}}`,
          'http:',
          `  addr: ${registry}`,
          `  tls: {certificate: ${join(tls, 'server', 'cert.pem')}, key: ${join(tls, 'server', 'key.pem')}}`,
          '',
        ].join('\n'),
      )
      const logFile = join(base, 'registry.log')
      const daemon = spawnDaemon(inNamespace(manager.name, ['docker-registry', 'serve', config]), logFile)
      state.registryPid = daemon.pid
      await writeState(state)
      while (!(await registryListens(manager))) {
        const exit = daemon.exited()
        if (exit) throw new Error(`docker-registry ended (${exit}): ${await tail(logFile)}`)
        if (Date.now() > deadline) throw new Error(`docker-registry did not answer: ${await tail(logFile)}`)
        await sleep(200)
      }
    })
    const nodes: SwarmNode[] = []
    await step('swarm init and join', async () => {
      await manager.docker(['swarm', 'init', '--advertise-addr', manager.address, '--default-addr-pool', overlayPool, '--default-addr-pool-mask-length', '24'])
      const token = (await manager.docker(['swarm', 'join-token', '-q', 'worker'])).stdout.trim()
      await Promise.all(
        machines.slice(1).map((worker) => worker.docker(['swarm', 'join', '--advertise-addr', worker.address, '--token', token, `${manager.address}:2377`])),
      )
      for (const machine of machines) {
        const id = (await machine.docker(['info', '--format', '{{.Swarm.NodeID}}'])).stdout.trim()
        nodes.push({machine, id, hostname: machine.name, role: machine === manager ? 'manager' : 'worker'})
      }
      // every node ready, as the manager sees it
      for (;;) {
        const listed = (await manager.docker(['node', 'ls', '--format', '{{.ID}} {{.Status}}'])).stdout
        if (nodes.every((n) => listed.includes(`${n.id} Ready`))) break
        if (Date.now() > deadline) throw new Error(`nodes not ready: ${listed}`)
        await sleep(250)
      }
    })
    log(`${name}: up after ${((Date.now() - started) / 1000).toFixed(1)} s (registry ${registry})`)
    let stopping: Promise<void> | undefined
    return {
      name,
      nodes,
      manager,
      registry,
      registryCa: join(tls, 'ca.pem'),
      async push(image, as) {
        const ref = `${registry}/${as}`
        await manager.docker(['tag', image, ref])
        await manager.docker(['push', ref], {timeoutMs: 120_000})
        return ref
      },
      async deployStack(stack, compose) {
        await manager.docker(['stack', 'deploy', '--resolve-image', 'never', '-c', '-', stack], {input: compose, timeoutMs: 60_000})
      },
      async waitForStack(stack, waitMs = 60_000) {
        const until = Date.now() + waitMs
        for (;;) {
          const listed = (await manager.docker(['stack', 'services', stack, '--format', '{{.Name}} {{.Replicas}}'])).stdout.trim().split('\n').filter(Boolean)
          const notReady = listed.filter((line) => {
            const [running, wanted] = (line.split(' ')[1] ?? '').split('/')
            return running !== wanted
          })
          if (listed.length > 0 && notReady.length === 0) return
          if (Date.now() > until) {
            const tasks = await manager.docker(['stack', 'ps', stack, '--no-trunc', '--format', '{{.Name}} {{.Node}} {{.CurrentState}} {{.Error}}'], {
              reject: false,
            })
            throw new Error(`stack ${stack} not running after ${waitMs / 1000} s: ${notReady.join(', ')}\n${tasks.stdout}`)
          }
          await sleep(500)
        }
      },
      stop() {
        stopping ??= teardown(name, state, machines)
        return stopping
      },
    }
  } catch (error) {
    const message = `swarm ${name} did not start (${stepName}, after ${((Date.now() - started) / 1000).toFixed(1)} s): ${(error as Error).message}`
    await teardown(name, state, machines).catch((cleanup: Error) => log(cleanup.message))
    throw new Error(message)
  }
}

/** Whether the registry listens in the manager's namespace (this host cannot connect to it: the namespace's firewall). */
async function registryListens(manager: RemoteMachine): Promise<boolean> {
  return (await manager.listeningSockets()).some((s) => s.protocol === 'tcp' && s.port === REGISTRY_PORT)
}
