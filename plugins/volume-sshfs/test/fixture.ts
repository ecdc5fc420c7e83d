import {type ChildProcess, execFile, spawn} from 'node:child_process'
import {randomBytes} from 'node:crypto'
import {lstatSync, readFileSync, readdirSync} from 'node:fs'
import {connect, createServer} from 'node:net'
import {join} from 'node:path'
import {fileURLToPath} from 'node:url'
import {promisify} from 'node:util'
import type {InterceptSession, Logger, PluginContext, RemoteMount} from '@tp/sdk'
import {fakePlacement} from '@tp/sdk/testing'

export const execFileAsync = promisify(execFile)
const SPAWNER_FILE = fileURLToPath(new URL('../../../test/helpers/sftp-spawner.cjs', import.meta.url))
export const CHILD_FILE = fileURLToPath(new URL('provide-child.mjs', import.meta.url))

export function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const probe = createServer().listen(0, '127.0.0.1', () => {
      const {port} = probe.address() as {port: number}
      probe.close(() => resolve(port))
    })
  })
}

async function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({host: '127.0.0.1', port}, () => {
      socket.destroy()
      resolve(true)
    })
    socket.on('error', () => resolve(false))
  })
}

/**
 * The stand-in for the agent's SFTP export: sftp-server over plain TCP on 127.0.0.1, in a process
 * group of its own, so that stopping it ends its sftp-servers (and their connections) too, as
 * removing an agent does.
 */
export class SftpServer {
  private child: ChildProcess | undefined
  constructor(readonly port: number) {}

  get running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null
  }

  async start(): Promise<void> {
    if (this.running) return
    this.child = spawn(process.execPath, [SPAWNER_FILE], {
      env: {...process.env, SFTP_PORT: String(this.port), SFTP_HOST: '127.0.0.1'},
      stdio: 'ignore',
      detached: true,
    })
    for (let i = 0; i < 200 && !(await listening(this.port)); i++) await new Promise((r) => setTimeout(r, 25))
  }

  async stop(): Promise<void> {
    const child = this.child
    if (!child?.pid || !this.running) return
    const exited = new Promise((resolve) => child.once('exit', resolve))
    try {
      process.kill(-child.pid, 'SIGKILL')
    } catch {
      // gone
    }
    await exited
  }
}

export function session(name: string, mounts: RemoteMount[]): InterceptSession {
  return {
    id: randomBytes(4).toString('hex'),
    name,
    workload: name,
    namespace: 'tpt-sshfs',
    ports: {local: 8080, container: 8080, service: 80, protocol: 'tcp'},
    environment: {},
    mounts,
    placement: fakePlacement('host', 'tpt-sshfs'),
    daemon: {connection: 'tpt-sshfs', id: 'tpt-sshfs', backend: 'host', where: 'process 4242 on this host'},
  }
}

export function context(cacheDir: string, lines: string[] = []): PluginContext {
  const log: Logger = {info: (m) => lines.push(m), warn: (m) => lines.push(m), debug: (m) => lines.push(m)}
  return {tpVersion: '0.0.0-test', cacheDir, log}
}

/** Lines of the kernel's mount table whose mount point is under dir (what a user sees with `mount`). */
export function mountsUnder(dir: string): string[] {
  return readFileSync('/proc/self/mounts', 'utf8')
    .split('\n')
    .filter((line) => {
      const point = line.split(' ')[1]?.replace(/\\040/g, ' ')
      return point === dir || point?.startsWith(`${dir}/`)
    })
}

/** fuse.sshfs mount points under dir. */
export function sshfsMountsUnder(dir: string): string[] {
  return mountsUnder(dir)
    .filter((line) => line.split(' ')[2] === 'fuse.sshfs')
    .map((line) => line.split(' ')[1])
}

/**
 * Every directory, file and link under dir with its type and mode, except the skipped names (the
 * SFTP source, whose content the tests change on purpose). Does not descend into mounts.
 */
export function tree(dir: string, skip: string[] = []): string[] {
  const mounted = new Set(mountsUnder(dir).map((line) => line.split(' ')[1]))
  const lines: string[] = []
  const walk = (path: string) => {
    for (const name of readdirSync(path).sort()) {
      const full = join(path, name)
      if (skip.includes(full)) continue
      const info = lstatSync(full)
      lines.push(`${full} ${info.isDirectory() ? 'd' : info.isSymbolicLink() ? 'l' : 'f'} ${(info.mode & 0o7777).toString(8)}`)
      if (info.isDirectory() && !mounted.has(full)) walk(full)
    }
  }
  walk(dir)
  return lines
}

/** Pids of the sshfs processes (not their fusermount helpers) mounting at a path under dir. */
export function sshfsPidsUnder(dir: string): number[] {
  const pids: number[] = []
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    let args: string[]
    try {
      args = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0').filter(Boolean)
    } catch {
      continue
    }
    if (/(^|\/)sshfs$/.test(args[0] ?? '') && args.at(-1)?.startsWith(`${dir}/`)) pids.push(Number(entry))
  }
  return pids
}

/** Polls read() until done(value) holds or timeoutMs passes; returns the last value. */
export async function eventually<T>(read: () => T | Promise<T>, done: (value: T) => boolean, timeoutMs = 5000): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = await read()
    if (done(value) || Date.now() > deadline) return value
    await new Promise((r) => setTimeout(r, 25))
  }
}

/** Takes away every mount under dir and ends every sshfs there (test clean-up, whatever happened). */
export async function forceCleanup(dir: string): Promise<void> {
  for (const pid of sshfsPidsUnder(dir)) {
    try {
      process.kill(pid, 'SIGKILL')
    } catch {
      // gone
    }
  }
  for (const line of mountsUnder(dir).reverse()) {
    const point = line.split(' ')[1]
    await execFileAsync('fusermount3', ['-u', '-z', point]).catch(() => execFileAsync('umount', ['-l', point]).catch(() => undefined))
  }
}
