/**
 * A second machine on this host, for tests of clusters on another machine's Docker engine: a network
 * namespace joined to this host by a veth pair, with its own `dockerd` (TLS Engine API on 2376), its
 * own `sshd` (22, `docker system dial-stdio` works through it) and a firewall that lets in only those
 * two. Its engine deliberately uses the local engine's default subnets (172.17/16, 172.18/16), and
 * this host never routes them to it: a request that bypasses tp's tunnel reaches the local twin or a
 * blackhole here, never the remote container and never the outside world.
 *
 * Everything it makes is recorded in a state file before it is made, so `stop()` and
 * `sweepStaleRemoteMachines()` (after a `kill -9` of the test run) remove exactly that.
 */
import {spawn} from 'node:child_process'
import {closeSync, existsSync, openSync} from 'node:fs'
import {chmod, mkdir, readdir, readFile, rm, rmdir, writeFile} from 'node:fs/promises'
import {request} from 'node:http'
import {connect} from 'node:net'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {setTimeout as sleep} from 'node:timers/promises'
import {execa} from 'execa'

/** State files, one per machine (`<name>.json`), and the engines' exec roots (short: socket paths). */
const RUN_ROOT = '/run/tp-remote'
/** TLS and ssh material, the engine's data root and the logs of each machine. */
const BASE_ROOT = join(tmpdir(), 'tp-remote')
const NETNS_DIR = '/var/run/netns'
/** Veth subnets are 10.203.<k>.0/30: the host side is .1, the namespace .2. */
const VETH_NET = '10.203'
/** Blackhole routes get metric 4000 + k: one per machine (two machines may blackhole one subnet), and
 * a local network on the same subnet (metric 0) still wins, so the local twin stays reachable. */
const BLACKHOLE_METRIC = 4000
const TLS_PORT = 2376
const SSH_PORT = 22
/** The ns-side end of the veth, renamed: the namespace looks like a machine with one NIC. */
const NS_IFACE = 'eth0'

export interface RemoteMachineOptions {
  /** The remote engine's default bridge (`--bip`). Default `172.17.0.1/16`, the local engine's own. */
  bip?: string
  /** `--default-address-pool` entries. Default 172.18.0.0/16 in /24s: its networks overlap the local ones. */
  addressPools?: Array<{base: string; size: number}>
  /** Other subnets the machine's engine uses (a swarm's overlay address pool): blackholed on this host too. */
  extraSubnets?: string[]
  /** The engine's host name (`docker info`'s Name, a swarm node's name); default this host's. */
  hostname?: string
  /** Whether the namespace may open connections towards this host (default false: like a laptop behind NAT). */
  allowOutbound?: boolean
  /** Bound for start (default 60 s); on expiry everything made so far is removed and start rejects. */
  timeoutMs?: number
  /** Hears one line per step (e.g. console.log while debugging). */
  log?: (line: string) => void
}

export interface CommandResult {
  exitCode: number
  stdout: string
  stderr: string
}

export interface ListeningSocket {
  protocol: 'tcp' | 'udp'
  /** Local address as ss prints it (`0.0.0.0`, `10.203.7.2`, `[::]`, `*`). */
  address: string
  port: number
  /** The owning process's name, when ss knows it. */
  process?: string
}

export interface RemoteMachine {
  name: string
  /** The namespace's address (its end of the veth): what ssh and TLS clients connect to. */
  address: string
  /** This host's end of the veth. */
  hostAddress: string
  /** This host's end of the veth (`tprm<k>`). */
  hostInterface: string
  /** The remote engine's unix socket, for the test's own direct control of it (not how tp reaches it). */
  socket: string
  /** Subnets the remote engine uses (default bridge and pools), all blackholed on this host. */
  subnets: string[]
  /** The blackhole routes added on this host, as `ip route` prints them (`blackhole 172.17.0.0/16 metric 4007`). */
  blackholes: string[]
  /** The remote engine's and sshd's processes (to kill them in fault tests). */
  pids: {dockerd: number; sshd: number}
  tls: {
    /** `tcp://<address>:2376` */
    host: string
    ca: string
    cert: string
    key: string
    /** Laid out as DOCKER_CERT_PATH expects: ca.pem, cert.pem, key.pem (the client's). */
    certDir: string
    /** DOCKER_HOST, DOCKER_TLS_VERIFY and DOCKER_CERT_PATH for a docker CLI (or tp) on this host. */
    env: Record<string, string>
  }
  ssh: {
    /** `ssh://root@<name>`: resolved by `config` (the wrapper on `pathDir` passes it to ssh). */
    url: string
    /** An ssh client config with `Host <name> <address>`, its key and its known host key. */
    config: string
    /** A directory whose `ssh` runs the system ssh with `-F config`: put it first on PATH, since the
     * docker CLI's ssh helper runs plain `ssh`. */
    pathDir: string
    /** DOCKER_HOST=url and PATH with pathDir first. */
    env: Record<string, string>
    /**
     * A home directory as a user's looks: `.ssh/` with a config for this machine that names its key
     * and known hosts as `~/.ssh/…` (what a program that borrows a user's ~/.ssh finds there).
     */
    home: string
  }
  /** Runs the docker CLI against the remote engine's unix socket; rejects on a non-zero exit unless `reject: false`. */
  docker(args: string[], options?: {reject?: boolean; input?: string; timeoutMs?: number}): Promise<CommandResult>
  /**
   * Restarts the engine as a machine's engine restarts: SIGTERM (its containers stop), then the
   * same dockerd again; resolves once it answers on its socket and TLS port. `whileDown` runs
   * between the two.
   */
  restartEngine(options?: {timeoutMs?: number; whileDown?: () => Promise<void>}): Promise<void>
  /** Runs a command inside the namespace (`nsenter --net`); never rejects. */
  exec(argv: string[], options?: {timeoutMs?: number}): Promise<CommandResult>
  /** What listens in the namespace (TCP and UDP), from `ss -ltunpH` run there. */
  listeningSockets(): Promise<ListeningSocket[]>
  /** Removes everything the machine made, on this host and in the namespace. Idempotent. */
  stop(): Promise<void>
}

/** Everything a machine made, written before each thing is made (so a crash mid-start is swept too). */
interface MachineState {
  name: string
  /** The process that owns the machine; sweeps leave machines of live owners alone. */
  owner: {pid: number; startTime: string}
  k: number
  hostVeth: string
  /** `ip route` arguments after add/del, e.g. `blackhole 172.17.0.0/16 metric 4007`. No iptables rule
   * is needed on this host: it is an end of the veth, so nothing is forwarded through its FORWARD chain. */
  routes: string[][]
  pids: {dockerd?: number; sshd?: number}
}

interface Paths {
  state: string
  netns: string
  base: string
  execRoot: string
  dataRoot: string
  socket: string
  tls: string
  certDir: string
  ssh: string
  bin: string
  home: string
  dockerdLog: string
  sshdLog: string
}

function pathsOf(name: string): Paths {
  const base = join(BASE_ROOT, name)
  return {
    state: join(RUN_ROOT, `${name}.json`),
    netns: join(NETNS_DIR, name),
    base,
    execRoot: join(RUN_ROOT, name),
    dataRoot: join(base, 'docker'),
    socket: `/run/${name}.sock`,
    tls: join(base, 'tls'),
    certDir: join(base, 'tls', 'client'),
    ssh: join(base, 'ssh'),
    bin: join(base, 'bin'),
    home: join(base, 'home'),
    dockerdLog: join(base, 'dockerd.log'),
    sshdLog: join(base, 'sshd.log'),
  }
}

const NAME_PATTERN = /^[a-z0-9][a-z0-9-]{0,30}$/

// ---------------------------------------------------------------------------------------------
// subprocesses

/** Runs a command; rejects with the command, its exit code and stderr when it fails. */
export async function run(argv: string[], options: {input?: string; timeoutMs?: number} = {}): Promise<string> {
  const result = await runQuiet(argv, options)
  if (result.exitCode !== 0) throw new Error(`${argv.join(' ')} failed (exit ${result.exitCode}): ${(result.stderr || result.stdout).trim()}`)
  return result.stdout
}

/** Runs a command and never rejects (clean-up and probes, where failing is an answer). */
export async function runQuiet(argv: string[], options: {input?: string; timeoutMs?: number; env?: Record<string, string>} = {}): Promise<CommandResult> {
  const result = await execa(argv[0], argv.slice(1), {
    reject: false,
    input: options.input,
    timeout: options.timeoutMs ?? 30_000,
    // a given env replaces this process's (it is this process's, filtered)
    ...(options.env ? {env: options.env, extendEnv: false} : {}),
  })
  return {exitCode: result.exitCode ?? -1, stdout: result.stdout, stderr: result.stderr || (result.timedOut ? 'timed out' : '')}
}

function dockerArgv(socket: string, args: string[]): string[] {
  return ['docker', '-H', `unix://${socket}`, ...args]
}

/** This process's environment without DOCKER_*: the local settings must not redirect or re-configure
 * calls meant for the remote engine. */
function dockerEnv(): Record<string, string> {
  return Object.fromEntries(Object.entries(process.env).filter(([key, value]) => !key.startsWith('DOCKER_') && value !== undefined)) as Record<string, string>
}

/** The argv that runs `argv` in the namespace's network only: `ip netns exec` would also remount
 * /sys, and dockerd then fails ("Devices cgroup isn't mounted"). */
export function inNamespace(name: string, argv: string[]): string[] {
  return ['nsenter', `--net=${join(NETNS_DIR, name)}`, ...argv]
}

/** Starts a daemon that outlives this process (a killed test run leaves it to the sweep), logging to `log`. */
export function spawnDaemon(argv: string[], log: string): {pid: number; exited: () => string | undefined} {
  const fd = openSync(log, 'a')
  try {
    const child = spawn(argv[0], argv.slice(1), {detached: true, stdio: ['ignore', fd, fd]})
    let exit: string | undefined
    child.on('exit', (code, signal) => (exit = signal ? `killed by ${signal}` : `exit ${code}`))
    child.on('error', (error) => (exit = error.message))
    child.unref()
    if (child.pid === undefined) throw new Error(`could not start ${argv.join(' ')}`)
    return {pid: child.pid, exited: () => exit}
  } finally {
    closeSync(fd)
  }
}

/** GET /_ping on the engine's unix socket. */
function ping(socket: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request({socketPath: socket, path: '/_ping', timeout: 2_000}, (res) => {
      res.resume()
      resolve(res.statusCode === 200)
    })
    req.on('error', () => resolve(false))
    req.on('timeout', () => {
      req.destroy()
      resolve(false)
    })
    req.end()
  })
}

/** Whether a TCP connection to host:port is accepted within `timeoutMs`. */
export function tcpConnects(host: string, port: number, timeoutMs = 2_000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({host, port})
    const done = (ok: boolean) => {
      socket.destroy()
      resolve(ok)
    }
    socket.setTimeout(timeoutMs, () => done(false))
    socket.on('connect', () => done(true))
    socket.on('error', () => done(false))
  })
}

export async function tail(file: string, lines = 30): Promise<string> {
  const text = await readFile(file, 'utf8').catch(() => '')
  return text.trimEnd().split('\n').slice(-lines).join('\n')
}

// ---------------------------------------------------------------------------------------------
// processes

/** Field 22 of /proc/<pid>/stat (start time in ticks): tells a live owner from a reused pid. */
export async function startTime(pid: number): Promise<string | undefined> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => undefined)
  // the command name (field 2) may hold spaces; it ends at the last ')'
  return stat?.slice(stat.lastIndexOf(')') + 2).split(' ')[19]
}

/** Whether `pid` runs a command line that mentions `marker` (a pid in an old state file may be reused). */
async function runs(pid: number, marker: string): Promise<boolean> {
  const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')
  return cmdline.includes(marker)
}

async function alive(pid: number): Promise<boolean> {
  return (await startTime(pid)) !== undefined
}

async function ownerAlive(owner: MachineState['owner']): Promise<boolean> {
  return (await startTime(owner.pid)) === owner.startTime
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig)
  } catch {
    // already gone
  }
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves once the process is gone. */
export async function terminate(pid: number, graceMs: number): Promise<void> {
  if (!(await alive(pid))) return
  signal(pid, 'SIGTERM')
  const deadline = Date.now() + graceMs
  while ((await alive(pid)) && Date.now() < deadline) await sleep(100)
  if (!(await alive(pid))) return
  signal(pid, 'SIGKILL')
  while (await alive(pid)) await sleep(50)
}

// ---------------------------------------------------------------------------------------------
// state

async function readState(name: string): Promise<MachineState | undefined> {
  const text = await readFile(pathsOf(name).state, 'utf8').catch(() => undefined)
  return text === undefined ? undefined : (JSON.parse(text) as MachineState)
}

async function writeState(state: MachineState): Promise<void> {
  await mkdir(RUN_ROOT, {recursive: true})
  await writeFile(pathsOf(state.name).state, `${JSON.stringify(state, null, 2)}\n`)
}

// ---------------------------------------------------------------------------------------------
// tear-down (shared by stop, a failed start and the sweep)

/** Mount points under `roots` (overlay layers, shm, the engine's netns bind mounts), deepest first. */
async function mountsUnder(roots: string[]): Promise<string[]> {
  const info = await readFile('/proc/self/mountinfo', 'utf8')
  const points = info
    .split('\n')
    .map((line) => line.split(' ')[4]?.replace(/\\040/g, ' '))
    .filter((point): point is string => point !== undefined && roots.some((root) => point === root || point.startsWith(`${root}/`)))
  return [...new Set(points)].sort((a, b) => b.length - a.length)
}

/** Container ids the remote engine knows (from its data root). */
async function containerIds(dataRoot: string): Promise<string[]> {
  const entries = await readdir(join(dataRoot, 'containers')).catch(() => [])
  return entries.filter((entry) => /^[0-9a-f]{64}$/.test(entry))
}

/** Processes in the cgroup of one of `ids` (`/docker/<id>`): what is left of containers whose engine was killed. */
async function containerProcesses(ids: string[]): Promise<number[]> {
  if (ids.length === 0) return []
  const pids: number[] = []
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    const cgroups = await readFile(`/proc/${entry}/cgroup`, 'utf8').catch(() => '')
    if (ids.some((id) => cgroups.includes(id))) pids.push(Number(entry))
  }
  return pids
}

/**
 * Removes what `state` (or, without one, the name alone) says a machine made. Every step is
 * idempotent and independent: one that fails does not keep the others from running.
 */
async function teardown(name: string, state: MachineState | undefined): Promise<void> {
  const paths = pathsOf(name)
  const problems: string[] = []
  const step = async (what: string, action: () => Promise<unknown>) => {
    try {
      await action()
    } catch (error) {
      problems.push(`${what}: ${(error as Error).message}`)
    }
  }
  const pidFile = async (file: string) => Number((await readFile(file, 'utf8').catch(() => '')).trim()) || undefined

  // sshd first (no new sessions), then the engine's containers and the engine
  await step('stopping sshd', async () => {
    const pid = state?.pids.sshd ?? (await pidFile(join(paths.execRoot, 'sshd.pid')))
    if (pid && (await runs(pid, paths.ssh))) await terminate(pid, 5_000)
  })
  // dockerd gives each container its own stop timeout (10 s) when it shuts down, whatever
  // --shutdown-timeout says: kill them first, nothing in them is worth a graceful stop
  await step('killing the containers', async () => {
    if (!(await ping(paths.socket))) return
    const running = await runQuiet(dockerArgv(paths.socket, ['ps', '-q']), {env: dockerEnv(), timeoutMs: 10_000})
    const ids = running.stdout.split(/\s+/).filter(Boolean)
    if (ids.length > 0) await runQuiet(dockerArgv(paths.socket, ['kill', ...ids]), {env: dockerEnv(), timeoutMs: 10_000})
  })
  await step('stopping dockerd', async () => {
    const pid = state?.pids.dockerd ?? (await pidFile(join(paths.execRoot, 'dockerd.pid')))
    if (pid && (await runs(pid, paths.dataRoot))) await terminate(pid, 20_000)
  })
  // what a killed engine leaves: its containerd, shims and docker-proxy (in the namespace), and the
  // containers' own processes (in their own namespaces, found by cgroup)
  await step('killing what is left in the namespace', async () => {
    if (!existsSync(paths.netns)) return
    const listed = await runQuiet(['ip', 'netns', 'pids', name])
    for (const pid of listed.stdout.split(/\s+/).filter(Boolean).map(Number)) await terminate(pid, 2_000)
  })
  const ids = await containerIds(paths.dataRoot)
  await step('killing containers', async () => {
    for (const pid of await containerProcesses(ids)) signal(pid, 'SIGKILL')
  })
  await step('removing container cgroups', async () => {
    // a cgroup directory goes with rmdir only (its files cannot be removed); gone already when dockerd stopped
    for (const controller of await readdir('/sys/fs/cgroup').catch(() => []))
      for (const id of ids) await rmdir(join('/sys/fs/cgroup', controller, 'docker', id)).catch(() => undefined)
  })
  await step('unmounting', async () => {
    for (const point of await mountsUnder([paths.base, paths.execRoot])) await run(['umount', '-l', point])
  })
  await step('removing the namespace', async () => {
    if (existsSync(paths.netns)) await run(['ip', 'netns', 'delete', name])
  })
  // deleting the namespace deletes the pair (the host end goes a moment later); it survives only
  // when the peer never moved there
  await step('removing the veth', async () => {
    if (!state) return
    const removed = await runQuiet(['ip', 'link', 'delete', state.hostVeth])
    // the host end may go between the namespace's removal and this: gone either way
    if (removed.exitCode !== 0 && !/Cannot find device|No such device/.test(removed.stderr)) throw new Error(removed.stderr.trim())
  })
  await step('removing routes', async () => {
    for (const route of state?.routes ?? []) {
      const removed = await runQuiet(['ip', 'route', 'del', ...route])
      if (removed.exitCode !== 0 && !removed.stderr.includes('No such process')) throw new Error(`ip route del ${route.join(' ')}: ${removed.stderr.trim()}`)
    }
  })
  await step('removing files', async () => {
    await rm(paths.base, {recursive: true, force: true})
    await rm(paths.execRoot, {recursive: true, force: true})
    await rm(paths.socket, {force: true})
  })
  if (problems.length > 0) throw new Error(`remote machine ${name}: clean-up left things behind:\n  ${problems.join('\n  ')}`)
  await rm(paths.state, {force: true})
}

/**
 * Removes the machines named `<prefix>…` that a killed test run left (its owner process is gone):
 * the engine and its containers, sshd, the namespace, the veth, routes, files. Machines of live
 * processes (this one's, another test run's) are left alone. Returns the names it swept.
 */
export async function sweepStaleRemoteMachines(prefix: string): Promise<string[]> {
  const names = new Set<string>()
  for (const entry of await readdir(RUN_ROOT).catch(() => [])) if (entry.startsWith(prefix) && entry.endsWith('.json')) names.add(entry.slice(0, -5))
  // a namespace or a base dir without a state file: the state is written before either, so this is
  // only a state file removed by hand; sweep what the name alone finds
  for (const entry of await readdir(NETNS_DIR).catch(() => [])) if (entry.startsWith(prefix)) names.add(entry)
  for (const entry of await readdir(BASE_ROOT).catch(() => [])) if (entry.startsWith(prefix)) names.add(entry)
  const swept: string[] = []
  for (const name of names) {
    const state = await readState(name)
    if (state && (await ownerAlive(state.owner))) continue
    await teardown(name, state)
    swept.push(name)
  }
  return swept
}

// ---------------------------------------------------------------------------------------------
// start

/** A free veth subnet: k from the name (stable between runs), else the next one nobody uses. */
async function pickSubnet(name: string): Promise<number> {
  const addresses = (await run(['ip', '-4', '-o', 'addr', 'show'])) + (await run(['ip', '-4', 'route', 'show']))
  const links = await run(['ip', '-o', 'link', 'show'])
  let hash = 0
  for (const char of name) hash = (hash * 31 + char.charCodeAt(0)) >>> 0
  for (let i = 0; i < 254; i++) {
    const k = ((hash + i) % 254) + 1
    if (!addresses.includes(`${VETH_NET}.${k}.`) && !links.includes(` tprm${k}:`) && !links.includes(` tprm${k}@`)) return k
  }
  throw new Error(`no free subnet left in ${VETH_NET}.0.0/16 for a veth pair`)
}

/** The network of `cidr` (`172.17.0.1/16` → `172.17.0.0/16`); rejects what is not an IPv4 CIDR. */
function networkOf(cidr: string): string {
  const match = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/.exec(cidr)
  if (!match || match.slice(1, 5).some((part) => Number(part) > 255) || Number(match[5]) > 32)
    throw new Error(`remote machine: ${JSON.stringify(cidr)} is not an IPv4 subnet (a.b.c.d/n)`)
  const [address, bits] = cidr.split('/')
  const value = address.split('.').reduce((acc, part) => acc * 256 + Number(part), 0)
  const mask = Number(bits) === 0 ? 0 : 2 ** 32 - 2 ** (32 - Number(bits))
  const network = Number(BigInt(value) & BigInt(mask))
  return `${[24, 16, 8, 0].map((shift) => (network >>> shift) & 255).join('.')}/${bits}`
}

/** A throwaway CA, a server certificate for the namespace's address and a client certificate. */
export async function makeTls(dir: string, name: string, address: string, timeoutMs: number): Promise<void> {
  const server = join(dir, 'server')
  const client = join(dir, 'client')
  await mkdir(server, {recursive: true})
  await mkdir(client, {recursive: true})
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes']
  const ca = join(dir, 'ca.pem')
  const caKey = join(dir, 'ca-key.pem')
  await run(['openssl', 'req', '-x509', ...ec, '-keyout', caKey, '-out', ca, '-days', '3', '-subj', `/CN=tp test CA ${name}`], {timeoutMs})
  const sign = async (out: string, cn: string, extensions: string) => {
    const csr = join(out, 'req.csr')
    const ext = join(out, 'ext.cnf')
    await writeFile(ext, extensions)
    await run(['openssl', 'req', '-new', ...ec, '-keyout', join(out, 'key.pem'), '-out', csr, '-subj', `/CN=${cn}`], {timeoutMs})
    await run(
      [
        'openssl',
        'x509',
        '-req',
        '-in',
        csr,
        '-CA',
        ca,
        '-CAkey',
        caKey,
        '-set_serial',
        `0x${Date.now().toString(16)}${cn.length}`,
        '-days',
        '3',
        '-extfile',
        ext,
        '-out',
        join(out, 'cert.pem'),
      ],
      {timeoutMs},
    )
    await rm(csr)
    await rm(ext)
    await writeFile(join(out, 'ca.pem'), await readFile(ca))
  }
  await sign(server, name, `subjectAltName=IP:${address},DNS:${name}\nextendedKeyUsage=serverAuth\n`)
  await sign(client, 'client', 'extendedKeyUsage=clientAuth\n')
  await chmod(join(client, 'key.pem'), 0o600)
}

/** sshd's host key and config, a client key it accepts, and a client config and wrapper that use them. */
async function makeSsh(paths: Paths, name: string, address: string, timeoutMs: number): Promise<void> {
  await mkdir(paths.ssh, {recursive: true})
  await mkdir(paths.bin, {recursive: true})
  const hostKey = join(paths.ssh, 'host_ed25519')
  const clientKey = join(paths.ssh, 'id_ed25519')
  await run(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-C', `${name} host`, '-f', hostKey], {timeoutMs})
  await run(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-C', `tp test client of ${name}`, '-f', clientKey], {timeoutMs})
  await writeFile(join(paths.ssh, 'authorized_keys'), await readFile(`${clientKey}.pub`))
  const [keyType, keyData] = (await readFile(`${hostKey}.pub`, 'utf8')).split(' ')
  await writeFile(join(paths.ssh, 'known_hosts'), `${name} ${keyType} ${keyData}\n`)
  await writeFile(
    join(paths.ssh, 'sshd_config'),
    [
      `ListenAddress ${address}:${SSH_PORT}`,
      'AddressFamily inet',
      `HostKey ${hostKey}`,
      `PidFile ${join(paths.execRoot, 'sshd.pid')}`,
      `AuthorizedKeysFile ${join(paths.ssh, 'authorized_keys')}`,
      'PermitRootLogin prohibit-password',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'UsePAM no',
      // the keys sit under /tmp, which StrictModes rejects (world-writable parent)
      'StrictModes no',
      // `docker system dial-stdio` in an ssh session talks to this machine's engine, not the local one
      `SetEnv DOCKER_HOST=unix://${paths.socket}`,
      'Subsystem sftp /usr/lib/openssh/sftp-server',
      '',
    ].join('\n'),
  )
  const config = join(paths.ssh, 'config')
  await writeFile(
    config,
    [
      `Host ${name} ${address}`,
      `  HostName ${address}`,
      `  Port ${SSH_PORT}`,
      '  User root',
      `  IdentityFile ${clientKey}`,
      '  IdentitiesOnly yes',
      // the known host key is filed under the name, whichever of name or address the client used
      `  HostKeyAlias ${name}`,
      `  UserKnownHostsFile ${join(paths.ssh, 'known_hosts')}`,
      '  GlobalKnownHostsFile /dev/null',
      '  StrictHostKeyChecking yes',
      '  CheckHostIP no',
      '  BatchMode yes',
      '  ConnectTimeout 10',
      '  LogLevel ERROR',
      '',
    ].join('\n'),
  )
  // the same, as a user's own ~/.ssh: paths from ~, so it works wherever that directory is mounted
  const homeSsh = join(paths.home, '.ssh')
  await mkdir(homeSsh, {recursive: true, mode: 0o700})
  await writeFile(join(homeSsh, 'id_ed25519'), await readFile(clientKey), {mode: 0o600})
  await writeFile(join(homeSsh, 'known_hosts'), `${name} ${keyType} ${keyData}\n`)
  const userConfig = (await readFile(config, 'utf8')).replace(clientKey, '~/.ssh/id_ed25519').replace(join(paths.ssh, 'known_hosts'), '~/.ssh/known_hosts')
  await writeFile(join(homeSsh, 'config'), userConfig, {mode: 0o600})
  const wrapper = join(paths.bin, 'ssh')
  await writeFile(
    wrapper,
    `#!/bin/sh\n# the docker CLI's ssh helper runs plain ssh: this one adds the config of remote machine ${name}\nexec /usr/bin/ssh -F '${config}' "$@"\n`,
  )
  await chmod(wrapper, 0o755)
}

/**
 * The namespace's firewall, in mangle PREROUTING of the namespace: before routing, so it covers both
 * the namespace's own sockets and forwarding into its containers (published ports included), and in
 * a table dockerd never rewrites. New connections from the veth get in only to ssh and the TLS API.
 */
function firewallRules(address: string, allowOutbound: boolean): string {
  return [
    '*mangle',
    ':TP-FIREWALL - [0:0]',
    '-A TP-FIREWALL -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT',
    `-A TP-FIREWALL -d ${address}/32 -p tcp --dport ${SSH_PORT} -m conntrack --ctstate NEW -j ACCEPT`,
    `-A TP-FIREWALL -d ${address}/32 -p tcp --dport ${TLS_PORT} -m conntrack --ctstate NEW -j ACCEPT`,
    '-A TP-FIREWALL -j DROP',
    `-A PREROUTING -i ${NS_IFACE} -j TP-FIREWALL`,
    // the remote's containers (and the namespace itself) cannot open connections towards this host
    ...(allowOutbound ? [] : [`-A POSTROUTING -o ${NS_IFACE} -m conntrack --ctstate NEW -j DROP`]),
    'COMMIT',
    '',
  ].join('\n')
}

function parseSockets(output: string): ListeningSocket[] {
  return output
    .split('\n')
    .filter((line) => line.trim())
    .map((line) => {
      // udp UNCONN 0 0 0.0.0.0:68 0.0.0.0:* users:(("dhclient",pid=1,fd=6))
      const fields = line.trim().split(/\s+/)
      const local = fields[4]
      const at = local.lastIndexOf(':')
      return {
        protocol: fields[0] === 'udp' ? 'udp' : 'tcp',
        address: local.slice(0, at),
        port: Number(local.slice(at + 1)),
        process: /users:\(\("([^"]+)"/.exec(line)?.[1],
      }
    })
}

/**
 * Makes a second machine named `name` (a netns name, also the ssh host alias; lowercase letters,
 * digits and dashes) and resolves once its engine answers on its socket and its TLS and ssh ports
 * accept connections. Leftovers of an
 * earlier machine of the same name whose owner is gone are removed first. Bounded by
 * `options.timeoutMs`; on failure everything made so far is removed.
 */
export async function startRemoteMachine(name: string, options: RemoteMachineOptions = {}): Promise<RemoteMachine> {
  if (!NAME_PATTERN.test(name)) throw new Error(`remote machine name ${JSON.stringify(name)}: use 1-31 lowercase letters, digits and dashes`)
  if (!existsSync('/usr/sbin/sshd'))
    throw new Error('remote machine: /usr/sbin/sshd is missing; install openssh-server (scripts/setup-host.sh does) to run tests of remote engines')
  const log = options.log ?? (() => undefined)
  const timeoutMs = options.timeoutMs ?? 60_000
  const deadline = Date.now() + timeoutMs
  const left = () => Math.max(1_000, deadline - Date.now())
  const paths = pathsOf(name)

  const previous = await readState(name)
  if (previous && previous.owner.pid !== process.pid && (await ownerAlive(previous.owner)))
    throw new Error(`remote machine ${name} is in use by process ${previous.owner.pid}; pick another name`)
  if (previous || existsSync(paths.netns) || existsSync(paths.base)) {
    log(`${name}: removing what an earlier run left`)
    await teardown(name, previous)
  }

  const bip = options.bip ?? '172.17.0.1/16'
  const pools = options.addressPools ?? [{base: '172.18.0.0/16', size: 24}]
  const subnets = [networkOf(bip), ...pools.map((pool) => networkOf(pool.base)), ...(options.extraSubnets ?? []).map(networkOf)]
  const k = await pickSubnet(name)
  const address = `${VETH_NET}.${k}.2`
  const hostAddress = `${VETH_NET}.${k}.1`
  const state: MachineState = {
    name,
    owner: {pid: process.pid, startTime: (await startTime(process.pid)) ?? ''},
    k,
    hostVeth: `tprm${k}`,
    routes: [],
    pids: {},
  }
  await writeState(state)

  let stepName = 'starting'
  const step = async <T>(what: string, action: () => Promise<T>): Promise<T> => {
    stepName = what
    if (Date.now() > deadline) throw new Error(`its ${timeoutMs / 1000} s ran out`)
    log(`${name}: ${what}`)
    return action()
  }
  let dockerd: ReturnType<typeof spawnDaemon> | undefined
  let sshd: ReturnType<typeof spawnDaemon> | undefined
  const waitFor = async (what: string, ready: () => Promise<boolean>, daemon: ReturnType<typeof spawnDaemon>, logFile: string) => {
    while (!(await ready())) {
      const exit = daemon.exited()
      if (exit) throw new Error(`${what} ended (${exit}); last lines of ${logFile}:\n${await tail(logFile)}`)
      if (Date.now() > deadline) throw new Error(`${what} did not answer within ${timeoutMs / 1000} s; last lines of ${logFile}:\n${await tail(logFile)}`)
      await sleep(200)
    }
  }

  const server = join(paths.tls, 'server')
  // a host name of its own: dockerd in a UTS namespace of its own (unshare and sh exec, so the pid is dockerd's)
  const ownHostname = options.hostname ? ['unshare', '--uts', 'sh', '-c', 'hostname "$0" && exec "$@"', options.hostname] : []
  const dockerdArgv = inNamespace(name, [
    ...ownHostname,
    'dockerd',
    `--data-root=${paths.dataRoot}`,
    `--exec-root=${paths.execRoot}`,
    `--pidfile=${join(paths.execRoot, 'dockerd.pid')}`,
    `--host=unix://${paths.socket}`,
    `--host=tcp://0.0.0.0:${TLS_PORT}`,
    '--tlsverify',
    `--tlscacert=${join(server, 'ca.pem')}`,
    `--tlscert=${join(server, 'cert.pem')}`,
    `--tlskey=${join(server, 'key.pem')}`,
    `--bip=${bip}`,
    ...pools.map((pool) => `--default-address-pool=base=${pool.base},size=${pool.size}`),
    '--iptables=true',
  ])

  const started = Date.now()
  try {
    await step('making the network namespace and its veth', async () => {
      await mkdir(paths.base, {recursive: true})
      await mkdir(paths.execRoot, {recursive: true})
      await run(['ip', 'netns', 'add', name])
      await run(['ip', 'link', 'add', state.hostVeth, 'type', 'veth', 'peer', 'name', NS_IFACE, 'netns', name])
      // IPv6 off on both ends: the firewall is IPv4, and a link-local address would bypass it
      await run(['sysctl', '-q', '-w', `net.ipv6.conf.${state.hostVeth}.disable_ipv6=1`])
      await run(['ip', 'addr', 'add', `${hostAddress}/30`, 'dev', state.hostVeth])
      await run(['ip', 'link', 'set', state.hostVeth, 'up'])
      await run(inNamespace(name, ['sysctl', '-q', '-w', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1']))
      await run(['ip', '-n', name, 'link', 'set', 'lo', 'up'])
      await run(['ip', '-n', name, 'addr', 'add', `${address}/30`, 'dev', NS_IFACE])
      await run(['ip', '-n', name, 'link', 'set', NS_IFACE, 'up'])
      // no default route there: nothing in the namespace can reach beyond this host's veth end
    })
    await step('blackholing the remote engine subnets on this host', async () => {
      // every one, not only those no local network covers: a local network may go away while the
      // machine runs (its route with it); the higher metric keeps the local twin first meanwhile.
      // The local engine skips pool subnets that overlap a route, so a local network created while
      // a machine runs lands elsewhere (an explicit --subnet still works)
      for (const subnet of subnets) {
        const route = ['blackhole', subnet, 'metric', String(BLACKHOLE_METRIC + k)]
        state.routes.push(route)
        await writeState(state)
        await run(['ip', 'route', 'add', ...route])
      }
    })
    await step('installing the firewall in the namespace', () =>
      run(inNamespace(name, ['iptables-restore', '--noflush']), {input: firewallRules(address, options.allowOutbound ?? false)}),
    )
    await step('making TLS material', () => makeTls(paths.tls, name, address, left()))
    await step('making ssh keys and configs', () => makeSsh(paths, name, address, left()))
    await step('starting dockerd', async () => {
      await mkdir(paths.dataRoot, {recursive: true})
      dockerd = spawnDaemon(dockerdArgv, paths.dockerdLog)
      state.pids.dockerd = dockerd.pid
      await writeState(state)
    })
    await step('starting sshd', async () => {
      // sshd's privilege separation directory (Debian's sshd makes it at boot; it stays, empty)
      await mkdir('/run/sshd', {recursive: true, mode: 0o755})
      sshd = spawnDaemon(inNamespace(name, ['/usr/sbin/sshd', '-D', '-e', '-f', join(paths.ssh, 'sshd_config')]), paths.sshdLog)
      state.pids.sshd = sshd.pid
      await writeState(state)
    })
    await step('waiting for dockerd', async () => {
      const daemon = dockerd!
      await waitFor('dockerd', () => ping(paths.socket), daemon, paths.dockerdLog)
      await waitFor('dockerd (TLS)', () => tcpConnects(address, TLS_PORT, 1_000), daemon, paths.dockerdLog)
    })
    await step('waiting for sshd', () => waitFor('sshd', () => tcpConnects(address, SSH_PORT, 1_000), sshd!, paths.sshdLog))
  } catch (error) {
    const message = `remote machine ${name} did not start (${stepName}, after ${((Date.now() - started) / 1000).toFixed(1)} s): ${(error as Error).message}`
    await teardown(name, state).catch((cleanup: Error) => log(cleanup.message))
    throw new Error(message)
  }
  log(`${name}: up at ${address} after ${((Date.now() - started) / 1000).toFixed(1)} s`)

  const certDir = paths.certDir
  const tlsHost = `tcp://${address}:${TLS_PORT}`
  const sshUrl = `ssh://root@${name}`
  let stopping: Promise<void> | undefined
  return {
    name,
    address,
    hostAddress,
    hostInterface: state.hostVeth,
    socket: paths.socket,
    subnets,
    blackholes: state.routes.map((route) => route.join(' ')),
    pids: {dockerd: state.pids.dockerd!, sshd: state.pids.sshd!},
    tls: {
      host: tlsHost,
      ca: join(certDir, 'ca.pem'),
      cert: join(certDir, 'cert.pem'),
      key: join(certDir, 'key.pem'),
      certDir,
      env: {DOCKER_HOST: tlsHost, DOCKER_TLS_VERIFY: '1', DOCKER_CERT_PATH: certDir},
    },
    ssh: {
      url: sshUrl,
      config: join(paths.ssh, 'config'),
      pathDir: paths.bin,
      env: {DOCKER_HOST: sshUrl, PATH: `${paths.bin}:${process.env.PATH ?? '/usr/bin:/bin'}`},
      home: paths.home,
    },
    async docker(args, opts = {}) {
      const out = await runQuiet(dockerArgv(paths.socket, args), {input: opts.input, timeoutMs: opts.timeoutMs ?? 60_000, env: dockerEnv()})
      if (out.exitCode !== 0 && opts.reject !== false)
        throw new Error(`on remote machine ${name}: docker ${args.join(' ')} failed (exit ${out.exitCode}): ${out.stderr.trim()}`)
      return out
    },
    exec: (argv, opts = {}) => runQuiet(inNamespace(name, argv), {timeoutMs: opts.timeoutMs}),
    async restartEngine(options = {}) {
      const limit = Date.now() + (options.timeoutMs ?? 60_000)
      // its containers stop with it (no live-restore), as on a machine whose engine restarts
      await terminate(state.pids.dockerd!, 30_000)
      await options.whileDown?.()
      const again = spawnDaemon(dockerdArgv, paths.dockerdLog)
      state.pids.dockerd = again.pid
      await writeState(state)
      while (!(await ping(paths.socket)) || !(await tcpConnects(address, TLS_PORT, 1_000))) {
        const exit = again.exited()
        if (exit) throw new Error(`dockerd of ${name} ended on restart (${exit}); last lines:\n${await tail(paths.dockerdLog)}`)
        if (Date.now() > limit) throw new Error(`dockerd of ${name} did not come back; last lines:\n${await tail(paths.dockerdLog)}`)
        await sleep(200)
      }
    },
    async listeningSockets() {
      return parseSockets(await run(inNamespace(name, ['ss', '-Hltunp'])))
    },
    stop() {
      stopping ??= teardown(name, state)
      return stopping
    },
  }
}
