import {type ChildProcess, spawn} from 'node:child_process'
import {createRequire} from 'node:module'
import {mkdtemp, readFile, readdir, rm, writeFile} from 'node:fs/promises'
import {request} from 'node:http'
import {createServer} from 'node:net'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {afterAll, afterEach, beforeAll, describe, expect, it} from 'vitest'
import {SPAWNER, execFileAsync, waitListening} from './fixture.js'

// The plugin server exactly as it is bundled into the plugin, run on this machine against a real
// sftp-server and real sshfs (no Docker): checks sharing, reference counting and dead-mount
// handling, which are hard to observe from outside the plugin.
const serverBundle = createRequire(import.meta.url).resolve('@tp/plugin-volume-telemount/server.cjs')

let work: string
let mountRoot: string
let socket: string
let server: ChildProcess
let serverLog = ''
let port: number
let sftp: ChildProcess | undefined

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const probe = createServer().listen(0, '127.0.0.1', () => {
      const {port} = probe.address() as {port: number}
      probe.close(() => resolve(port))
    })
  })
}

/** An SFTP server (the agent's stand-in) on the given port, by default the one most tests use. */
async function startSftp(on = port): Promise<ChildProcess> {
  // a process group of its own: the spawner's sftp-servers hold the connections, and stopping the
  // "server" must end them too, as removing an agent container ends its sftp-servers
  const started = spawn(process.execPath, ['-e', SPAWNER], {env: {...process.env, SFTP_PORT: String(on)}, stdio: 'ignore', detached: true})
  if (on === port) sftp = started
  await waitListening('127.0.0.1', on)
  return started
}

async function stopSftp(which = sftp): Promise<void> {
  if (!which || which.exitCode !== null || which.signalCode !== null) return
  const exited = new Promise((resolve) => which.once('exit', resolve))
  try {
    process.kill(-which.pid!, 'SIGKILL')
  } catch (error) {
    // the group is gone already (its exit is on the way): nothing left to stop
    if ((error as NodeJS.ErrnoException).code !== 'ESRCH') throw error
  }
  await exited
}

// biome-ignore lint/suspicious/noExplicitAny: the tests read arbitrary fields of the driver's JSON answers
function call(path: string, body: Record<string, unknown> = {}): Promise<Record<string, any>> {
  return new Promise((resolve, reject) => {
    const req = request({socketPath: socket, path: `/${path}`, method: 'POST', headers: {'Content-Type': 'application/json'}}, (res) => {
      let text = ''
      res.on('data', (c: Buffer) => (text += c.toString()))
      res.on('end', () => resolve(JSON.parse(text)))
    })
    req.on('error', reject)
    req.end(JSON.stringify(body))
  })
}

/** FUSE mounts under our mount root, from the kernel's own table. */
async function fuseMounts(): Promise<string[]> {
  const mounts = await readFile('/proc/self/mounts', 'utf8')
  return mounts
    .split('\n')
    .map((l) => l.split(' '))
    .filter((f) => f[1]?.startsWith(`${mountRoot}/`) && f[2]?.startsWith('fuse'))
    .map((f) => f[1])
}

/** Polls read() until done(value) holds or timeoutMs passes; returns the last value. */
async function eventually<T>(read: () => Promise<T>, done: (value: T) => boolean, timeoutMs = 5000): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = await read()
    if (done(value) || Date.now() > deadline) return value
    await new Promise((r) => setTimeout(r, 20))
  }
}

async function create(name: string, opts: Record<string, string>, on = port) {
  const reply = await call('VolumeDriver.Create', {Name: name, Opts: {host: '127.0.0.1', port: String(on), ...opts}})
  expect(reply.Err).toBe('')
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'tpt-tm-server-'))
  mountRoot = join(work, 'volumes')
  socket = join(work, 'telemount.sock')
  await writeFile(join(work, 'config.txt'), 'served over sftp\n')
  port = await freePort()
  await startSftp()
  server = spawn(process.execPath, [serverBundle], {
    env: {
      ...process.env,
      TELEMOUNT_SOCKET: socket,
      TELEMOUNT_MOUNT_ROOT: mountRoot,
      TELEMOUNT_STATE: join(work, 'state.json'),
      TELEMOUNT_WARM_IDLE_MS: '3000',
      TELEMOUNT_SERVER_WAIT_MS: '3000',
    },
    stdio: ['ignore', 'ignore', 'pipe'],
  })
  server.stderr!.on('data', (c: Buffer) => (serverLog += c.toString()))
  for (let i = 0; i < 100 && !serverLog.includes('listening'); i++) await new Promise((r) => setTimeout(r, 50))
  expect(serverLog).toContain('listening')
})

afterEach(async () => {
  // every test must leave no mount behind; clean up for the next one regardless
  const list = await call('VolumeDriver.List')
  for (const volume of list.Volumes) {
    for (const id of ['a', 'b', 'c', 'd']) await call('VolumeDriver.Unmount', {Name: volume.Name, ID: id})
    await call('VolumeDriver.Remove', {Name: volume.Name})
  }
  if (!sftp || sftp.exitCode !== null) await startSftp()
})

afterAll(async () => {
  server?.kill('SIGTERM')
  await new Promise((r) => setTimeout(r, 500))
  await stopSftp()
  for (const dir of await fuseMounts().catch(() => [])) await execFileAsync('fusermount3', ['-u', '-z', dir]).catch(() => undefined)
  await rm(work, {recursive: true, force: true})
})

describe('telemount plugin server', () => {
  it('answers the activation and capability handshake', async () => {
    expect(await call('Plugin.Activate')).toEqual({Implements: ['VolumeDriver']})
    expect(await call('VolumeDriver.Capabilities')).toEqual({Capabilities: {Scope: 'local'}})
  })

  it('shares one sshfs per host:port among volumes and callers, counts callers, and refuses Remove while in use', async () => {
    await create('one', {dir: work})
    await create('two', {dir: work})
    const a = await call('VolumeDriver.Mount', {Name: 'one', ID: 'a'})
    const b = await call('VolumeDriver.Mount', {Name: 'one', ID: 'b'})
    const c = await call('VolumeDriver.Mount', {Name: 'two', ID: 'c'})
    expect([a.Err, b.Err, c.Err]).toEqual(['', '', ''])
    expect(await readFile(join(a.Mountpoint, 'config.txt'), 'utf8')).toBe('served over sftp\n')
    expect(b.Mountpoint).toBe(a.Mountpoint)
    expect(await fuseMounts()).toHaveLength(1)
    expect((await call('VolumeDriver.Path', {Name: 'one'})).Mountpoint).toBe(a.Mountpoint)
    expect((await call('VolumeDriver.Get', {Name: 'one'})).Volume).toMatchObject({Name: 'one', Mountpoint: a.Mountpoint, Status: {users: 2}})

    await call('VolumeDriver.Unmount', {Name: 'one', ID: 'a'})
    expect((await call('VolumeDriver.Remove', {Name: 'one'})).Err).toMatch(/volume one is in use by 1 container/)
    expect(await readFile(join(b.Mountpoint, 'config.txt'), 'utf8')).toBe('served over sftp\n')
    await call('VolumeDriver.Unmount', {Name: 'one', ID: 'b'})
    expect(await fuseMounts()).toHaveLength(1) // volume two still uses it
    await call('VolumeDriver.Unmount', {Name: 'two', ID: 'c'})
    expect(await fuseMounts()).toEqual([])
    expect(await readdir(mountRoot)).toEqual([])
    expect((await call('VolumeDriver.Remove', {Name: 'one'})).Err).toBe('')
    expect((await call('VolumeDriver.List')).Volumes.map((v: {Name: string}) => v.Name)).toEqual(['two'])
    expect((await call('VolumeDriver.Get', {Name: 'one'})).Err).toMatch(/no such volume: one/)
  })

  it('mounts a read-only volume with its own read-only sshfs', async () => {
    await create('rw', {dir: work})
    await create('ro', {dir: work, ro: 'true'})
    const rw = await call('VolumeDriver.Mount', {Name: 'rw', ID: 'a'})
    const ro = await call('VolumeDriver.Mount', {Name: 'ro', ID: 'a'})
    expect(ro.Mountpoint).not.toBe(rw.Mountpoint)
    expect(await fuseMounts()).toHaveLength(2)
    const refused = await writeFile(join(ro.Mountpoint, 'x.txt'), 'x').then(
      () => 'written',
      (e: NodeJS.ErrnoException) => e.code,
    )
    expect(refused).toBe('EROFS')
    await writeFile(join(rw.Mountpoint, 'y.txt'), 'through sshfs')
    expect(await readFile(join(work, 'y.txt'), 'utf8')).toBe('through sshfs')
  })

  it('never reuses a dead sshfs: a server that went away fails the next Mount clearly, and a new one is mounted when it is back', async () => {
    await create('vol', {dir: work})
    const first = await call('VolumeDriver.Mount', {Name: 'vol', ID: 'a'})
    expect(first.Err).toBe('')
    await stopSftp()
    const failed = await call('VolumeDriver.Mount', {Name: 'vol', ID: 'b'})
    expect(failed.Err).toMatch(/sshfs for 127\.0\.0\.1:\d+ \(rw\) exited with code \d+ before the mount appeared: .*(Connection refused|failed to connect)/)
    await startSftp()
    const again = await call('VolumeDriver.Mount', {Name: 'vol', ID: 'c'})
    expect(again.Err).toBe('')
    expect(again.Mountpoint).not.toBe(first.Mountpoint)
    expect(await readFile(join(again.Mountpoint, 'config.txt'), 'utf8')).toBe('served over sftp\n')
    expect(await fuseMounts()).toHaveLength(1)
  })

  it('notices an sshfs process that died and mounts a fresh one', async () => {
    await create('vol', {dir: work})
    const first = await call('VolumeDriver.Mount', {Name: 'vol', ID: 'a'})
    const mountDir = (await fuseMounts())[0]
    // our own sshfs, found by its unique mount directory (not the auto_unmount helper, whose
    // command line also names it)
    const {stdout} = await execFileAsync('pgrep', ['-f', `^sshfs -f .* ${mountDir}$`])
    const pids = stdout.trim().split('\n')
    expect(pids).toHaveLength(1)
    process.kill(Number(pids[0]), 'SIGKILL')
    const again = await call('VolumeDriver.Mount', {Name: 'vol', ID: 'b'})
    expect(again.Err, serverLog).toBe('')
    expect(again.Mountpoint).not.toBe(first.Mountpoint)
    expect(await readFile(join(again.Mountpoint, 'config.txt'), 'utf8')).toBe('served over sftp\n')
  })

  it('Create starts the sshfs ahead of Mount, and Mount uses it', async () => {
    await create('warm', {dir: work})
    const warm = await eventually(fuseMounts, (m) => m.length === 1)
    expect(warm).toHaveLength(1)
    const mounted = await call('VolumeDriver.Mount', {Name: 'warm', ID: 'a'})
    expect(mounted.Err).toBe('')
    expect(mounted.Mountpoint).toBe(join(warm[0], work))
    expect(await fuseMounts()).toEqual(warm)
  })

  it('a warm sshfs that nobody mounts stops when its last volume is removed, or after the idle time', async () => {
    await create('unused-1', {dir: work})
    await create('unused-2', {dir: work})
    expect(await eventually(fuseMounts, (m) => m.length === 1)).toHaveLength(1)
    expect((await call('VolumeDriver.Remove', {Name: 'unused-1'})).Err).toBe('')
    expect(await fuseMounts()).toHaveLength(1) // unused-2 still needs it
    expect((await call('VolumeDriver.Remove', {Name: 'unused-2'})).Err).toBe('')
    expect(await fuseMounts()).toEqual([])

    await create('idle', {dir: work})
    expect(await eventually(fuseMounts, (m) => m.length === 1)).toHaveLength(1)
    expect(await eventually(fuseMounts, (m) => m.length === 0, 8000)).toEqual([]) // idle time is 3 s here
    const mounted = await call('VolumeDriver.Mount', {Name: 'idle', ID: 'a'})
    expect(mounted.Err).toBe('')
    expect(await readFile(join(mounted.Mountpoint, 'config.txt'), 'utf8')).toBe('served over sftp\n')
  })

  it('a server that answered before and is down at Create does not fail Create; Mount reports it at once', async () => {
    await create('before', {dir: work})
    expect((await call('VolumeDriver.Mount', {Name: 'before', ID: 'a'})).Err).toBe('')
    await call('VolumeDriver.Unmount', {Name: 'before', ID: 'a'})
    await stopSftp()
    await create('later', {dir: work})
    const started = Date.now()
    const failed = await call('VolumeDriver.Mount', {Name: 'later', ID: 'a'})
    expect(failed.Err).toMatch(/sshfs for 127\.0\.0\.1:\d+ \(rw\) exited with code \d+ before the mount appeared/)
    expect(Date.now() - started).toBeLessThan(2500) // not the 3 s wait for a server that is still starting
    await startSftp()
    expect((await call('VolumeDriver.Mount', {Name: 'later', ID: 'b'})).Err).toBe('')
  })

  it('waits for a server never reached: Create and Mount before the agent is up, mounted once it answers', async () => {
    // tp creates the volumes and starts the handler while the workload's agent is still starting
    const agentPort = await freePort()
    await create('early', {dir: work}, agentPort)
    const mounting = call('VolumeDriver.Mount', {Name: 'early', ID: 'a'})
    await new Promise((r) => setTimeout(r, 700))
    const agent = await startSftp(agentPort)
    try {
      const mounted = await mounting
      expect(mounted.Err, serverLog).toBe('')
      expect(await readFile(join(mounted.Mountpoint, 'config.txt'), 'utf8')).toBe('served over sftp\n')
      expect((await call('VolumeDriver.Unmount', {Name: 'early', ID: 'a'})).Err).toBe('')
      expect((await call('VolumeDriver.Remove', {Name: 'early'})).Err).toBe('')
    } finally {
      await stopSftp(agent)
    }
  })

  it('a server never reached that does not come up fails the Mount after the wait, saying so', async () => {
    const nobody = await freePort()
    await create('never', {dir: work}, nobody)
    const started = Date.now()
    const failed = await call('VolumeDriver.Mount', {Name: 'never', ID: 'a'})
    // one wait shared by the warm start at Create and the Mount: 3 s here, not 6
    expect(failed.Err).toMatch(new RegExp(`the SFTP server at 127\\.0\\.0\\.1:${nobody} did not answer in time \\(ECONNREFUSED\\)`))
    expect(Date.now() - started).toBeGreaterThan(2000)
    expect(Date.now() - started).toBeLessThan(5000)
    expect(await fuseMounts()).toEqual([])
  })

  it('rejects bad options and a missing remote directory with a clear Err', async () => {
    expect((await call('VolumeDriver.Create', {Name: 'bad', Opts: {host: '127.0.0.1', port: '0'}})).Err).toMatch(
      /option port must be a whole number from 1 to 65535/,
    )
    expect((await call('VolumeDriver.Create', {Name: 'bad', Opts: {host: '127.0.0.1', port: '22', dir: 'rel'}})).Err).toMatch(
      /option dir must be an absolute path/,
    )
    expect((await call('VolumeDriver.Create', {Name: 'bad', Opts: {port: '22'}})).Err).toMatch(/option host is required/)
    await create('nodir', {dir: join(work, 'missing')})
    expect((await call('VolumeDriver.Mount', {Name: 'nodir', ID: 'a'})).Err).toMatch(/remote directory .*missing on 127\.0\.0\.1:\d+ \(rw\) does not exist/)
    expect(await fuseMounts()).toEqual([])
  })
})
