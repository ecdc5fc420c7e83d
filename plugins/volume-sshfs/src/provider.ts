import {randomBytes} from 'node:crypto'
import {accessSync, constants, readFileSync} from 'node:fs'
import {mkdir, rmdir} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join, posix} from 'node:path'
import {
  BugError,
  type InterceptSession,
  type PluginContext,
  type ProvidedVolumes,
  type RemoteMount,
  UserError,
  type VolumeProvider,
  type VolumeRequest,
} from '@tp/sdk'
import {ProcessRecord, type ProvisionRecord, sweepMounts, undoProvisionSync} from './records.js'
import {type PreparedRoot, freshRoot, prepareGivenRoot} from './root.js'
import {findExecutable} from './run.js'
import {SshfsMount, type SshfsSettings} from './sshfs.js'

export interface SshfsProviderOptions {
  /** The sshfs executable (default: `TP_SSHFS` from the environment, else `sshfs` on PATH). */
  sshfs?: string
  /** How long each mount may take to appear (default: `TP_SSHFS_MOUNT_TIMEOUT` seconds, else 15 s). */
  mountTimeoutMs?: number
  /**
   * `-o allow_other`, so other users (Docker's daemon for `-v <root>/data:/data`, a container's
   * user) may use the mounts. Default: when tp runs as root, or /etc/fuse.conf has user_allow_other.
   */
  allowOther?: boolean
  /** Where a fresh root goes when the request names none (default: os.tmpdir()). */
  tmpDir?: string
}

/** One record per cache directory and process, shared by every provider instance in it. */
const records = new Map<string, ProcessRecord>()

function recordFor(cacheDir: string): ProcessRecord {
  let record = records.get(cacheDir)
  if (!record) {
    record = new ProcessRecord(cacheDir)
    records.set(cacheDir, record)
  }
  if (!exitHookInstalled) {
    exitHookInstalled = true
    // the last path out: tp exits (even by an uncaught error) without having called release()
    process.once('exit', undoAllSync)
  }
  return record
}

let exitHookInstalled = false

function undoAllSync(): void {
  for (const record of records.values()) {
    if (record.provisions.length === 0) continue
    const left = [...record.provisions].reverse().filter((provision) => !undoProvisionSync(provision))
    record.replaceSync(left.reverse())
  }
}

/** Mount paths as the daemon sends them: absolute, normal, below `/`, each once. */
function checkMounts(mounts: RemoteMount[]): void {
  const seen = new Set<string>()
  for (const mount of mounts) {
    const path = mount.path
    if (!path.startsWith('/') || path === '/' || posix.normalize(path) !== path || path.endsWith('/') || seen.has(path)) {
      throw new BugError(`the session's remote mount ${JSON.stringify(path)} is not an absolute path below / given once`)
    }
    seen.add(path)
  }
}

/** Mounts in waves: a mount nested in another one comes after it (its directory is on the parent). */
function waves(mounts: RemoteMount[]): RemoteMount[][] {
  const depth = (m: RemoteMount) => mounts.filter((o) => o !== m && m.path.startsWith(`${o.path}/`)).length
  const result: RemoteMount[][] = []
  for (const mount of mounts) {
    const level = depth(mount)
    result[level] ??= []
    result[level].push(mount)
  }
  return result.filter(Boolean)
}

function fuseConfAllowsOther(): boolean {
  try {
    return /^\s*user_allow_other\b/m.test(readFileSync('/etc/fuse.conf', 'utf8'))
  } catch {
    return false
  }
}

/**
 * Volume provider `sshfs`: each remote mount of the intercept becomes an sshfs mount of the agent's
 * SFTP export at `<root><path>` on this machine (`<root>/data` for `/data`); `root` is the
 * handler's TP_ROOT.
 */
export class SshfsProvider implements VolumeProvider {
  constructor(
    private readonly context: PluginContext,
    private readonly options: SshfsProviderOptions = {},
  ) {}

  private settings(): SshfsSettings {
    const timeout = Number(process.env.TP_SSHFS_MOUNT_TIMEOUT)
    return {
      command: this.options.sshfs ?? (process.env.TP_SSHFS || 'sshfs'),
      allowOther: this.options.allowOther ?? (process.getuid?.() === 0 || fuseConfAllowsOther()),
      mountTimeoutMs: this.options.mountTimeoutMs ?? (timeout > 0 ? timeout * 1000 : 15_000),
      debug: (message) => this.context.log.debug(`sshfs: ${message}`),
    }
  }

  /** What must be on this machine before anything is made; a UserError with the way to get it. */
  private preflight(settings: SshfsSettings): void {
    const skip = 'or go without the volumes with --mount=false'
    if (process.platform !== 'linux') {
      throw new UserError(`the sshfs volume provider needs Linux (this is ${process.platform})`, `run tp on Linux, ${skip}`)
    }
    if (!findExecutable(settings.command)) {
      throw new UserError(
        `sshfs is not installed${settings.command === 'sshfs' ? '' : ` (${settings.command}, from TP_SSHFS)`}: it mounts the workload's volumes on this machine`,
        `install it (Debian/Ubuntu: apt-get install sshfs; Fedora: dnf install fuse-sshfs), ${skip}`,
      )
    }
    try {
      accessSync('/dev/fuse', constants.R_OK | constants.W_OK)
    } catch {
      throw new UserError(
        'FUSE is not available here (/dev/fuse is missing or not usable): sshfs needs it',
        `load the fuse module (modprobe fuse), or in a container give it --device /dev/fuse --cap-add SYS_ADMIN, ${skip}`,
      )
    }
  }

  async provide(session: InterceptSession, request: VolumeRequest = {form: 'directory'}): Promise<ProvidedVolumes> {
    if (request.form !== 'directory') throw new BugError(`the sshfs volume provider gives a directory on this machine, not ${request.form}`)
    checkMounts(session.mounts)
    const settings = this.settings()
    if (session.mounts.length > 0) this.preflight(settings)
    // what dead tp processes left (kill -9) goes before anything new is made
    try {
      await sweepMounts({cacheDir: this.context.cacheDir, log: this.context.log})
    } catch (error) {
      this.context.log.warn(`tp: could not sweep the sshfs mounts of earlier tp processes: ${(error as Error).message}`)
    }

    const record = recordFor(this.context.cacheDir)
    const prepared: PreparedRoot =
      request.root === undefined ? await freshRoot(this.options.tmpDir ?? tmpdir(), session.name) : await prepareGivenRoot(request.root)
    const provision: ProvisionRecord = {
      id: randomBytes(6).toString('hex'),
      intercept: session.name,
      root: prepared.root,
      createdDirs: [...prepared.createdDirs],
      mounts: [],
    }
    try {
      await record.update((r) => r.provisions.push(provision))
    } catch (error) {
      await record.update((r) => r.provisions.includes(provision) && r.provisions.splice(r.provisions.indexOf(provision), 1)).catch(() => undefined)
      for (const dir of [...prepared.createdDirs].reverse()) await rmdir(dir).catch(() => undefined)
      throw new UserError(
        `cannot keep the record of the mounts in ${record.file}: ${(error as Error).message}`,
        "make tp's cache directory writable (it is where tp notes what to undo after a crash), or use --mount=false",
        {cause: error},
      )
    }

    const made: SshfsMount[][] = []
    let releasing: Promise<void> | undefined
    const undo = async (): Promise<string[]> => {
      const left: string[] = []
      for (const wave of [...made].reverse()) {
        const problems = await Promise.all(wave.map((m) => m.stop()))
        for (const [i, problem] of problems.entries()) if (problem) left.push(`${wave[i].mountPoint} is still mounted: ${problem}`)
      }
      for (const dir of [...provision.createdDirs].reverse()) {
        await rmdir(dir).catch((error: NodeJS.ErrnoException) => {
          if (error.code !== 'ENOENT') left.push(`${dir} was not removed (${error.code === 'ENOTEMPTY' ? 'it holds files tp did not create' : error.code})`)
        })
      }
      if (left.length === 0) {
        await record.update((r) => {
          const index = r.provisions.indexOf(provision)
          if (index >= 0) r.provisions.splice(index, 1)
        })
      }
      return left
    }
    const release = (): Promise<void> =>
      (releasing ??= undo().then((left) => {
        if (left.length > 0) {
          throw new UserError(
            `tp could not undo everything it mounted for ${session.name}: ${left.join('; ')}`,
            `unmount by hand (fusermount3 -u -z <dir>) once nothing uses it; the next tp command retries after this one exits`,
          )
        }
      }))

    try {
      for (const wave of waves(session.mounts)) {
        // directories first, one after the other (parents before children), then the mounts side by side
        for (const mount of wave) await this.makeMountDir(provision, made.flat(), mount)
        await record.update(() => provision.mounts.push(...wave.map((m) => ({dir: join(prepared.root, m.path)}))))
        const started = await Promise.allSettled(
          wave.map((mount) => {
            const entry = provision.mounts.find((e) => e.dir === join(prepared.root, mount.path))!
            return SshfsMount.start({...mount.sftp, readOnly: mount.readOnly}, entry.dir, settings, (m) =>
              record.update(() => Object.assign(entry, {pid: m.pid, command: settings.command})),
            )
          }),
        )
        made.push(started.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : [])))
        const failed = started.find((s): s is PromiseRejectedResult => s.status === 'rejected')
        if (failed) throw failed.reason
      }
    } catch (error) {
      const left = await undo()
      for (const line of left) this.context.log.warn(`tp: ${line}`)
      throw error
    }
    this.context.log.debug(`sshfs: ${session.mounts.length} volume(s) of ${session.name} mounted under ${prepared.root}`)
    return {dockerRunArgs: [], root: prepared.root, release}
  }

  /** Creates `<root><path>` and whatever of it is missing; records the directories it made on this machine. */
  private async makeMountDir(provision: ProvisionRecord, mounted: SshfsMount[], mount: RemoteMount): Promise<void> {
    let dir = provision.root
    for (const part of mount.path.split('/').filter(Boolean)) {
      dir = join(dir, part)
      // inside a mount made just before (a nested volume) the directory is the workload's, not ours
      const onRemote = mounted.some((m) => dir.startsWith(`${m.mountPoint}/`))
      try {
        await mkdir(dir, {mode: 0o700})
        if (!onRemote) provision.createdDirs.push(dir)
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') {
          throw new UserError(
            `cannot create ${dir} to mount ${mount.path} on: ${(error as Error).message}`,
            'choose an empty, writable directory with --mount=<dir>, or use --mount=false',
            {cause: error},
          )
        }
      }
    }
  }
}

export default function createSshfsProvider(context: PluginContext): VolumeProvider {
  return new SshfsProvider(context)
}
