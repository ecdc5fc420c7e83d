import {type ChildProcess, spawn} from 'node:child_process'
import {SubprocessError} from '@tp/sdk'
import {isSshfsMounted, unmount} from './mounts.js'
import {run, sleep} from './run.js'

export interface SshfsSource {
  host: string
  port: number
  /** Directory on the SFTP server. */
  dir: string
  readOnly: boolean
}

export interface SshfsSettings {
  /** The sshfs executable, as it is spawned (and found again in /proc/<pid>/cmdline). */
  command: string
  /** `-o allow_other`: other users (Docker's daemon, a container's user) may use the mount. */
  allowOther: boolean
  /** How long to wait for the mount to appear. */
  mountTimeoutMs: number
  debug: (message: string) => void
}

const STDERR_KEEP = 4000

export function hostSpec(host: string): string {
  return host.includes(':') ? `[${host}]` : host
}

/** The sshfs command line for one mount (exported for tests and `--output json` style reports). */
export function sshfsArgs(source: SshfsSource, mountPoint: string, allowOther: boolean): string[] {
  const options = [
    // plain SFTP over TCP to the agent, no ssh
    `directport=${source.port}`,
    'follow_symlinks',
    // larger reads: fewer round trips for big files
    'max_read=1048576',
    // ssh's keep-alives; inert with directport (no ssh runs), kept so a transport through ssh gets them
    'ServerAliveInterval=5',
    'ServerAliveCountMax=3',
    // when sshfs dies (the agent went away, kill -9), its fusermount helper removes the mount
    'auto_unmount',
    // no `reconnect`: when the agent goes away at the end of the intercept, sshfs must exit
    ...(source.readOnly ? ['ro'] : []),
    ...(allowOther ? ['allow_other'] : []),
  ]
  return ['-f', '-o', options.join(','), `${hostSpec(source.host)}:${source.dir}`, mountPoint]
}

/**
 * One sshfs process mounting one remote directory. It runs in the foreground (`-f`) as our child,
 * so its exit is seen at once, in its own process group (`detached`), so a Ctrl-C meant for the
 * handler does not take the mounts away before the handler is gone: tp unmounts them afterwards.
 */
export class SshfsMount {
  private stderr = ''
  private exitInfo: {code: number | null; signal: NodeJS.Signals | null} | undefined
  private readonly exited: Promise<void>
  private stopping: Promise<string | undefined> | undefined
  private mounted = false

  private constructor(
    readonly source: SshfsSource,
    readonly mountPoint: string,
    private readonly child: ChildProcess,
    private readonly settings: SshfsSettings,
  ) {
    child.stderr?.setEncoding('utf8')
    child.stderr?.on('data', (chunk: string) => (this.stderr = (this.stderr + chunk).slice(-STDERR_KEEP)))
    this.exited = new Promise((resolve) => {
      child.on('exit', (code, signal) => {
        this.exitInfo = {code, signal}
        resolve()
      })
      child.on('error', (error) => {
        this.stderr += `\n${error.message}`
        this.exitInfo ??= {code: null, signal: null}
        resolve()
      })
    })
    // the mount must not keep tp alive by itself; release() (or the exit hook) ends it
    child.unref()
    ;(child.stderr as unknown as {unref?: () => void} | null)?.unref?.()
  }

  get pid(): number | undefined {
    return this.child.pid
  }

  get label(): string {
    return `${hostSpec(this.source.host)}:${this.source.port}${this.source.dir}`
  }

  get stderrTail(): string {
    return this.stderr.trim().split('\n').slice(-8).join('\n')
  }

  get running(): boolean {
    return this.exitInfo === undefined
  }

  /**
   * Starts sshfs; `started(pid)` runs as soon as the process exists (to record it before the mount
   * appears). Resolves once the kernel lists the mount as fuse.sshfs at mountPoint; a failure stops
   * the process, leaves nothing mounted and rejects with a SubprocessError carrying sshfs's stderr.
   */
  static async start(source: SshfsSource, mountPoint: string, settings: SshfsSettings, started: (mount: SshfsMount) => Promise<void>): Promise<SshfsMount> {
    const args = sshfsArgs(source, mountPoint, settings.allowOther)
    const child = spawn(settings.command, args, {stdio: ['ignore', 'ignore', 'pipe'], detached: true})
    const mount = new SshfsMount(source, mountPoint, child, settings)
    settings.debug(`${settings.command} ${args.join(' ')} (pid ${child.pid ?? 'none'})`)
    try {
      if (child.pid !== undefined) await started(mount)
      await mount.waitMounted()
      settings.debug(`mounted ${mount.label} at ${mountPoint}${source.readOnly ? ' (read-only)' : ''}`)
    } catch (error) {
      await mount.stop()
      throw error
    }
    return mount
  }

  private async waitMounted(): Promise<void> {
    const deadline = Date.now() + this.settings.mountTimeoutMs
    for (;;) {
      if (this.exitInfo) {
        const how = this.exitInfo.code === null ? `was ended (${this.exitInfo.signal ?? 'could not start'})` : `exited with code ${this.exitInfo.code}`
        throw new SubprocessError(
          'sshfs',
          this.exitInfo.code ?? undefined,
          this.stderrTail,
          `sshfs could not mount ${this.label} at ${this.mountPoint}: it ${how}`,
        )
      }
      // listed is not enough: sshfs mounts first and checks the remote directory after, so the
      // mount answers a statfs (which always goes to the server) before it counts as there
      if ((await isSshfsMounted(this.mountPoint)) && (await this.answers()) && this.running) {
        this.mounted = true
        return
      }
      if (Date.now() > deadline) {
        throw new SubprocessError(
          'sshfs',
          undefined,
          this.stderrTail,
          `sshfs did not mount ${this.label} at ${this.mountPoint} within ${Math.round(this.settings.mountTimeoutMs / 1000)} s${this.stderrTail ? '' : ' (no output: does the agent answer on that port?)'}`,
        )
      }
      await sleep(20)
    }
  }

  /**
   * Whether the mount answers: `stat -f` and `stat` in child processes, so a hung FUSE call can be abandoned
   * without blocking one of Node's few threadpool threads.
   */
  private async answers(): Promise<boolean> {
    const result = await run('stat', ['-f', '-c', '%b', this.mountPoint], {timeoutMs: 3000})
    if (result.code !== 0) return false
    // and the remote directory is there: a statfs answers before sshfs has checked it (a missing
    // one then ends sshfs a moment later), a getattr of the root asks the server for it
    const root = await run('stat', ['-c', '%i', this.mountPoint], {timeoutMs: 3000})
    return root.code === 0
  }

  /**
   * Unmounts, then ends the process (sshfs exits by itself once its mount is gone; SIGTERM, then
   * SIGKILL if it does not). Idempotent; resolves with what went wrong if the mount is still there.
   */
  stop(): Promise<string | undefined> {
    this.stopping ??= (async () => {
      const problem = await unmount(this.mountPoint)
      // a mount that was there ends its sshfs; one that never came (sshfs stuck talking to a
      // server that does not answer) does not, and sshfs then ignores SIGTERM until it gives up
      const waits: Array<[NodeJS.Signals | undefined, number]> = [
        [undefined, this.mounted ? 2000 : 0],
        ['SIGTERM', 1000],
        ['SIGKILL', 2000],
      ]
      for (const [signal, ms] of waits) {
        if (!this.running) break
        if (signal) this.child.kill(signal)
        await Promise.race([this.exited, sleep(ms)])
      }
      this.settings.debug(`sshfs ${this.label} at ${this.mountPoint} stopped${problem ? ` (still mounted: ${problem})` : ''}`)
      return problem
    })()
    return this.stopping
  }
}
