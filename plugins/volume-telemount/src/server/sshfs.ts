import {type ChildProcess, execFile, spawn} from 'node:child_process'
import {mkdir, readFile, rmdir} from 'node:fs/promises'
import {setTimeout as sleep} from 'node:timers/promises'
import {debugLog, probeTcp, swallow} from '@tp/sdk'

const trace = debugLog('tp:plugin:volume-telemount')

/**
 * One sshfs process: the SFTP server at host:port mounted at `dir` (the server's whole `/`),
 * read-only or read-write. sshfs runs in the foreground (`-f`) as our child, so we know the moment
 * it dies; `directport` makes it speak SFTP over a plain TCP connection, without ssh.
 */
export interface SshfsTarget {
  host: string
  port: number
  readOnly: boolean
}

export interface SshfsSettings {
  /** sshfs executable (PATH lookup by default). */
  sshfs?: string
  /** How long to wait for the mount to appear. Docker gives a plugin call about 30 s. */
  mountTimeoutMs?: number
  /** How long a liveness probe may take before the mount counts as dead. */
  probeTimeoutMs?: number
  /**
   * How long a server never reached before may take to answer: tp creates the volumes while the
   * workload's agent (the SFTP server) is still starting. Default SERVER_WAIT_MS.
   */
  serverWaitMs?: number
  log?: (message: string) => void
}

const STDERR_KEEP = 4000
/** The agent comes up in a few hundred ms; its daemon gives up on it after 20 s. */
export const SERVER_WAIT_MS = 15_000
const SERVER_POLL_MS = 20

export class SshfsMount {
  /** Callers using this mount: `<volume>\0<mount id>`. */
  readonly users = new Set<string>()
  private stderr = ''
  private exited: {code: number | null; signal: NodeJS.Signals | null} | undefined
  private readonly exitPromise: Promise<void>
  private stopping: Promise<void> | undefined

  private constructor(
    readonly target: SshfsTarget,
    readonly dir: string,
    private readonly child: ChildProcess,
    private readonly settings: SshfsSettings,
  ) {
    child.stderr?.setEncoding('utf8')
    child.stderr?.on('data', (chunk: string) => {
      this.stderr = (this.stderr + chunk).slice(-STDERR_KEEP)
    })
    this.exitPromise = new Promise((resolve) => {
      child.on('exit', (code, signal) => {
        this.exited = {code, signal}
        resolve()
      })
      child.on('error', (error) => {
        this.stderr += `\n${error.message}`
        this.exited ??= {code: null, signal: null}
        resolve()
      })
    })
  }

  get label(): string {
    return `${hostSpec(this.target.host)}:${this.target.port} (${this.target.readOnly ? 'ro' : 'rw'})`
  }

  get stderrTail(): string {
    return this.stderr.trim().split('\n').slice(-6).join('\n')
  }

  /**
   * Starts sshfs and resolves once the FUSE mount is really there and answers. `serverDeadline`
   * (ms since the epoch): until then, a server that refuses connections is waited for.
   */
  static async start(target: SshfsTarget, dir: string, settings: SshfsSettings = {}, serverDeadline?: number): Promise<SshfsMount> {
    if (serverDeadline !== undefined) await waitForServer(target, serverDeadline)
    await mkdir(dir, {recursive: true})
    const options = [
      `directport=${target.port}`,
      'follow_symlinks',
      // larger read requests: a 100 MB read ~1.4× faster than with the default (checked byte for byte)
      'max_read=1048576',
      // reconnect: a short network blip must not kill every volume of this agent. The ServerAlive
      // options are ssh's and inert with directport (no ssh runs); they matter only if a future
      // transport goes through ssh. Liveness is what our own statfs probe checks before reuse.
      'reconnect',
      'ServerAliveInterval=5',
      'ServerAliveCountMax=3',
      // if this server dies, fusermount removes the mount instead of leaving a dead one behind
      'auto_unmount',
      // containers may run as any user; the mount is made by root inside the plugin
      'allow_other',
      // one SFTP connection (no max_conns): with several, a stopped SFTP server was not seen as
      // dead at the next Mount (it said "does not exist"), and neither it nor kernel_cache (which
      // would also hide the workload's own changes to a read-only volume from the handler) gained
      // beyond the noise of `node bench/run.mjs telemount`
      ...(target.readOnly ? ['ro'] : []),
    ]
    const args = ['-f', '-o', options.join(','), `${hostSpec(target.host)}:/`, dir]
    const child = spawn(settings.sshfs ?? 'sshfs', args, {stdio: ['ignore', 'ignore', 'pipe']})
    const mount = new SshfsMount(target, dir, child, settings)
    settings.log?.(`sshfs ${args.join(' ')} (pid ${child.pid})`)
    try {
      await mount.waitMounted(settings.mountTimeoutMs ?? 15_000)
    } catch (error) {
      await mount.stop()
      throw error
    }
    return mount
  }

  private async waitMounted(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      if (this.exited) {
        const how = this.exited.code === null ? `was killed (${this.exited.signal ?? 'unknown'})` : `exited with code ${this.exited.code}`
        throw new Error(`sshfs for ${this.label} ${how} before the mount appeared: ${this.stderrTail || 'no output'}`)
      }
      if ((await isFuseMounted(this.dir)) && (await this.probe())) return
      if (Date.now() > deadline) {
        throw new Error(
          `sshfs for ${this.label} did not mount within ${Math.round(timeoutMs / 1000)} s${this.stderrTail ? `: ${this.stderrTail}` : ' (no output; is the SFTP server reachable?)'}`,
        )
      }
      await sleep(20) // a mount takes tens of ms to appear; the wait is part of every intercept's start
    }
  }

  /**
   * Whether the mount still reaches its server. statfs goes to the server every time (attributes
   * are cached, statfs is not); it runs in a child process so a hung FUSE call can be abandoned
   * without blocking one of Node's few threadpool threads.
   */
  private probe(): Promise<boolean> {
    return new Promise((resolve) => {
      execFile('stat', ['-f', '-c', '%b', this.dir], {timeout: this.settings.probeTimeoutMs ?? 3000, killSignal: 'SIGKILL'}, (error) => resolve(!error))
    })
  }

  /** A mount is reusable only while sshfs runs, the mount is listed and the server answers. */
  async alive(): Promise<boolean> {
    if (this.exited || this.stopping) return false
    return (await isFuseMounted(this.dir)) && (await this.probe())
  }

  /** Ends sshfs and removes the mount and its directory; idempotent. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      if (!this.exited) {
        this.child.kill('SIGTERM')
        const killed = await Promise.race([this.exitPromise.then(() => true), sleep(3000).then(() => false)])
        if (!killed) {
          this.child.kill('SIGKILL')
          await this.exitPromise
        }
      }
      // auto_unmount normally removes it; a lazy unmount covers the rest (a hung server)
      if (await isFuseMounted(this.dir)) {
        await new Promise<void>((resolve) => execFile('fusermount3', ['-u', '-z', this.dir], () => resolve()))
      }
      await rmdir(this.dir).catch(swallow(trace, `removing mount directory ${this.dir}`))
      this.settings.log?.(`sshfs for ${this.label} at ${this.dir} stopped`)
    })()
    return this.stopping
  }
}

/** Until the deadline, retries a TCP connect to the server while it refuses (not up yet). */
export async function waitForServer(target: SshfsTarget, deadline: number): Promise<void> {
  const label = `${hostSpec(target.host)}:${target.port}`
  for (;;) {
    const error = await probeTcp(target.host, target.port, Math.max(100, Math.min(3000, deadline - Date.now())))
    if (!error) return
    const outcome = error.code ?? error.message
    if (Date.now() >= deadline) {
      throw new Error(`the SFTP server at ${label} did not answer in time (${outcome}); is the workload's agent running?`)
    }
    trace(`SFTP server at ${label} not answering yet (${outcome})`)
    await sleep(SERVER_POLL_MS)
  }
}

export function hostSpec(host: string): string {
  return host.includes(':') ? `[${host}]` : host
}

/** Whether a FUSE file system is mounted exactly at dir (from /proc/self/mountinfo). */
export async function isFuseMounted(dir: string): Promise<boolean> {
  const info = await readFile('/proc/self/mountinfo', 'utf8')
  for (const line of info.split('\n')) {
    const [left, right] = line.split(' - ')
    if (!right) continue
    const mountPoint = unescapeMountPath(left.split(' ')[4] ?? '')
    const fsType = right.split(' ')[0] ?? ''
    if (mountPoint === dir && fsType.startsWith('fuse')) return true
  }
  return false
}

function unescapeMountPath(path: string): string {
  return path.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(Number.parseInt(octal, 8)))
}
