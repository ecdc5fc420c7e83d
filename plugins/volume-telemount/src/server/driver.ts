import {mkdir, readFile, readdir, rename, rmdir, stat, writeFile} from 'node:fs/promises'
import {dirname, join, posix} from 'node:path'
import {debugLog, swallow} from '@tp/sdk'
import {type VolumeOptions, parseVolumeOptions} from '../options.js'
import {KeyedLock} from './keyed-lock.js'
import {SERVER_WAIT_MS, SshfsMount, type SshfsSettings, type SshfsTarget} from './sshfs.js'

const trace = debugLog('tp:plugin:volume-telemount')

/**
 * The volume driver's state and rules, independent of HTTP.
 *
 * Sharing: ONE sshfs per (host, port, access mode), mounting the server's `/`; each volume is a
 * subdirectory of it. An agent serves all of its workload's volumes on one port, so an intercept
 * with several mounts opens one SFTP session instead of one per volume, and volumes of the same
 * agent see each other's writes through one attribute cache. The access mode is part of the key
 * because read-only must be enforced by the kernel (`-o ro`), not only by `:ro` on `docker run`.
 *
 * A mount is reused only after a liveness probe: a dead sshfs (process gone, mount gone, or the
 * server no longer answering — the reference's "second mount after Ctrl-C fails") is stopped and a
 * new one started in a fresh directory, so containers still bound to the old one are not disturbed.
 *
 * Warm start: Create already starts the sshfs its volume will need, in the background. Docker
 * calls Mount only once the container is being started, and one volume after the other; started at
 * Create, the sshfs of an intercept's volumes come up side by side while `docker run` is still
 * starting, and Mount finds them ready. A warm sshfs that nobody mounts is stopped when the last
 * volume that needs it is removed, or after WARM_IDLE_MS.
 */
export interface VolumeRecord {
  name: string
  options: VolumeOptions
  createdAt: string
}

/** How long a warm sshfs waits for its first Mount before it is stopped. */
const WARM_IDLE_MS = 60_000

export interface DriverSettings extends SshfsSettings {
  /** Where mounts are made: the plugin's propagated mount (/mnt/volumes). */
  mountRoot: string
  /** File that keeps the volume list across plugin restarts; undefined keeps it in memory. */
  stateFile?: string
  /** How long a warm sshfs waits for its first Mount (default WARM_IDLE_MS). */
  warmIdleMs?: number
}

export class VolumeDriver {
  private readonly volumes = new Map<string, VolumeRecord>()
  /** Which sshfs serves each (volume, caller id). */
  private readonly callers = new Map<string, Map<string, SshfsMount>>()
  /** The current sshfs per host:port:mode. */
  private readonly mounts = new Map<string, SshfsMount>()
  private readonly lock = new KeyedLock()
  /** Servers that have answered once: one that refuses after that is gone, not starting. */
  private readonly answered = new Set<string>()
  /** Until when a server not reached yet is waited for (from its first volume's Create or Mount). */
  private readonly serverDeadlines = new Map<string, number>()
  private generation = 0

  constructor(private readonly settings: DriverSettings) {}

  /** Loads saved volumes and removes empty mount directories a previous run left. */
  async init(): Promise<void> {
    await mkdir(this.settings.mountRoot, {recursive: true})
    for (const entry of (await readdir(this.settings.mountRoot).catch(swallow(trace, `listing ${this.settings.mountRoot}`))) ?? []) {
      await rmdir(join(this.settings.mountRoot, entry)).catch(swallow(trace, `removing mount directory ${entry} (not empty: in use)`))
    }
    if (!this.settings.stateFile) return
    const saved = await readFile(this.settings.stateFile, 'utf8').catch(swallow(trace, `reading the state file ${this.settings.stateFile}`))
    if (!saved) return
    try {
      for (const record of JSON.parse(saved) as VolumeRecord[]) this.volumes.set(record.name, record)
    } catch {
      this.log(`ignoring unreadable state file ${this.settings.stateFile}`)
    }
  }

  create(name: string, opts: Record<string, unknown> | null | undefined): Promise<void> {
    const options = parseVolumeOptions(opts)
    if (!name) throw new Error('a volume needs a name')
    return this.lock.run(`volume:${name}`, async () => {
      if (this.inUse(name)) throw new Error(`volume ${name} already exists and is in use`)
      this.volumes.set(name, {name, options, createdAt: new Date().toISOString()})
      await this.save()
      this.warm(targetOf(options))
    })
  }

  /** Starts the sshfs for target unless one exists; never fails (Mount reports a failure properly). */
  private warm(target: SshfsTarget): void {
    const key = keyOf(target)
    void this.lock
      .run(`sshfs:${key}`, async () => {
        if (this.mounts.has(key)) return // running, or in use: Mount checks it is alive
        const mount = await this.startSshfs(target)
        this.mounts.set(key, mount)
        setTimeout(() => void this.stopUnused(key, mount), this.settings.warmIdleMs ?? WARM_IDLE_MS).unref()
      })
      .catch((error: Error) => this.log(`could not start sshfs ahead of Mount: ${error.message}`))
  }

  /**
   * A new sshfs for target. A server never reached is waited for, within one deadline shared by
   * the warm start at Create and the Mount after it; one that has answered before is not: it went
   * away, and Mount says so at once.
   */
  private async startSshfs(target: SshfsTarget): Promise<SshfsMount> {
    const key = `${target.host}|${target.port}` // the server, whatever the access mode
    let deadline: number | undefined
    if (!this.answered.has(key)) {
      deadline = this.serverDeadlines.get(key) ?? Date.now() + (this.settings.serverWaitMs ?? SERVER_WAIT_MS)
      this.serverDeadlines.set(key, deadline)
    }
    const mount = await SshfsMount.start(target, this.newMountDir(target), this.settings, deadline)
    this.answered.add(key)
    this.serverDeadlines.delete(key)
    return mount
  }

  /** Stops the sshfs of key if nobody mounted it (a warm one whose volumes went away unused). */
  private stopUnused(key: string, mount?: SshfsMount): Promise<void> {
    return this.lock.run(`sshfs:${key}`, async () => {
      const current = this.mounts.get(key)
      if (!current || (mount && current !== mount) || current.users.size > 0) return
      this.mounts.delete(key)
      await current.stop()
    })
  }

  remove(name: string): Promise<void> {
    return this.lock.run(`volume:${name}`, async () => {
      if (!this.volumes.has(name)) return // already gone: removal is idempotent
      const users = this.callers.get(name)?.size ?? 0
      if (users > 0) throw new Error(`volume ${name} is in use by ${users} container${users > 1 ? 's' : ''}; stop ${users > 1 ? 'them' : 'it'} first`)
      const key = keyOf(targetOf(this.volumes.get(name)!.options))
      this.volumes.delete(name)
      this.callers.delete(name)
      await this.save()
      const needed = [...this.volumes.values()].some((v) => keyOf(targetOf(v.options)) === key)
      if (!needed) await this.stopUnused(key)
    })
  }

  mount(name: string, id: string): Promise<string> {
    return this.lock.run(`volume:${name}`, async () => {
      const record = this.require(name)
      const existing = this.callers.get(name)?.get(id)
      if (existing && (await existing.alive())) return this.mountpointOf(existing, record)
      if (existing) await this.release(name, id)

      const target = targetOf(record.options)
      for (let attempt = 1; ; attempt++) {
        const mount = await this.acquire(target, name, id)
        const mountpoint = this.mountpointOf(mount, record)
        const info = await stat(mountpoint).catch((error: NodeJS.ErrnoException) => error)
        if (!(info instanceof Error) && info.isDirectory()) return mountpoint
        await this.release(name, id)
        // the shared sshfs may have died between its liveness check and this look: once more, fresh
        if (attempt === 1 && !(await mount.alive())) continue
        const why = info instanceof Error ? (info.code === 'ENOENT' ? 'does not exist' : info.message) : 'is not a directory'
        throw new Error(`remote directory ${record.options.dir} on ${mount.label} ${why}`)
      }
    })
  }

  /** The live sshfs for the target (started, or a dead one replaced), with this caller counted. */
  private async acquire(target: SshfsTarget, name: string, id: string): Promise<SshfsMount> {
    const key = keyOf(target)
    const mount = await this.lock.run(`sshfs:${key}`, async () => {
      let current = this.mounts.get(key)
      if (current && !(await current.alive())) {
        this.log(`sshfs for ${current.label} is dead; starting a new one`)
        this.mounts.delete(key)
        await current.stop()
        current = undefined
      }
      if (!current) {
        current = await this.startSshfs(target)
        this.mounts.set(key, current)
      }
      current.users.add(callerKey(name, id))
      return current
    })
    let callers = this.callers.get(name)
    if (!callers) {
      callers = new Map()
      this.callers.set(name, callers)
    }
    callers.set(id, mount)
    return mount
  }

  unmount(name: string, id: string): Promise<void> {
    return this.lock.run(`volume:${name}`, () => this.release(name, id))
  }

  /** Where the volume is mounted now, or undefined when no container uses it. */
  path(name: string): string | undefined {
    const record = this.require(name)
    const mounts = [...(this.callers.get(name)?.values() ?? [])]
    const latest = mounts.at(-1)
    return latest ? this.mountpointOf(latest, record) : undefined
  }

  get(name: string): {record: VolumeRecord; mountpoint?: string; users: number} {
    const record = this.require(name)
    return {record, mountpoint: this.path(name), users: this.callers.get(name)?.size ?? 0}
  }

  list(): Array<{name: string; mountpoint?: string}> {
    return [...this.volumes.keys()].sort().map((name) => ({name, mountpoint: this.path(name)}))
  }

  /** Stops every sshfs (plugin shutdown). */
  async shutdown(): Promise<void> {
    await Promise.all([...new Set([...this.mounts.values(), ...[...this.callers.values()].flatMap((m) => [...m.values()])])].map((m) => m.stop()))
  }

  private async release(name: string, id: string): Promise<void> {
    const callers = this.callers.get(name)
    const mount = callers?.get(id)
    if (!callers || !mount) return // unknown caller: Unmount is idempotent
    callers.delete(id)
    if (callers.size === 0) this.callers.delete(name)
    const key = keyOf(mount.target)
    await this.lock.run(`sshfs:${key}`, async () => {
      mount.users.delete(callerKey(name, id))
      if (mount.users.size > 0) return
      if (this.mounts.get(key) === mount) this.mounts.delete(key)
      await mount.stop()
    })
  }

  private require(name: string): VolumeRecord {
    const record = this.volumes.get(name)
    if (!record) throw new Error(`no such volume: ${name}`)
    return record
  }

  private inUse(name: string): boolean {
    return (this.callers.get(name)?.size ?? 0) > 0
  }

  private mountpointOf(mount: SshfsMount, record: VolumeRecord): string {
    return posix.join(mount.dir, record.options.dir)
  }

  private newMountDir(target: SshfsTarget): string {
    const host = target.host.replace(/[^0-9A-Za-z.]/g, '_')
    // a fresh directory per sshfs: a replaced dead mount never shares a path with its successor
    const unique = `${Date.now().toString(36)}${(this.generation++).toString(36)}`
    return join(this.settings.mountRoot, `${host}_${target.port}_${target.readOnly ? 'ro' : 'rw'}_${unique}`)
  }

  private async save(): Promise<void> {
    const file = this.settings.stateFile
    if (!file) return
    try {
      await mkdir(dirname(file), {recursive: true})
      await writeFile(`${file}.tmp`, JSON.stringify([...this.volumes.values()], null, 1))
      await rename(`${file}.tmp`, file)
    } catch (error) {
      this.log(`could not save the volume list to ${file}: ${(error as Error).message}`)
    }
  }

  private log(message: string): void {
    this.settings.log?.(message)
  }
}

function targetOf(options: VolumeOptions): SshfsTarget {
  return {host: options.host, port: options.port, readOnly: options.readOnly}
}

/** One sshfs per host, port and access mode. */
function keyOf(target: SshfsTarget): string {
  return `${target.host}|${target.port}|${target.readOnly ? 'ro' : 'rw'}`
}

function callerKey(name: string, id: string): string {
  return `${name}\0${id}`
}
