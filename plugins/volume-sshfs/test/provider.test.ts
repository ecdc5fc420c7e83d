import {type ChildProcess, spawn} from 'node:child_process'
import {existsSync} from 'node:fs'
import {mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile} from 'node:fs/promises'
import {createServer} from 'node:net'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {afterAll, afterEach, beforeAll, beforeEach, describe, expect, it} from 'vitest'
import type {ProvidedVolumes, RemoteMount} from '@tp/sdk'
import {SshfsProvider, type SshfsProviderOptions, sshfsDescriptor, sweepMounts} from '@tp/plugin-volume-sshfs'
import hook from '../dist/hooks/providers.js'
import {
  CHILD_FILE,
  SftpServer,
  context,
  eventually,
  execFileAsync,
  forceCleanup,
  freePort,
  mountsUnder,
  session,
  sshfsMountsUnder,
  sshfsPidsUnder,
  tree,
} from './fixture.js'

// Real sshfs against a real sftp-server over plain TCP on 127.0.0.1 (the agent's SFTP export in
// miniature), no Docker. Each test looks at what a user would: files through the mounts, the
// kernel's mount table, the directory tree, the processes.

let work: string
let source: string
let cacheDir: string
let tmp: string
let sftp: SftpServer
const provided: ProvidedVolumes[] = []
const children: ChildProcess[] = []
const cleanups: Array<() => Promise<void>> = []

const volume = (path: string, dir: string, readOnly = false): RemoteMount => ({path, readOnly, sftp: {host: '127.0.0.1', port: sftp.port, dir}})

function provider(options: SshfsProviderOptions = {}, lines: string[] = []): SshfsProvider {
  return new SshfsProvider(context(cacheDir, lines), {tmpDir: tmp, ...options})
}

async function provide(p: SshfsProvider, ...args: Parameters<SshfsProvider['provide']>): Promise<ProvidedVolumes> {
  const volumes = await p.provide(...args)
  provided.push(volumes)
  return volumes
}

/** What the tests compare before and after: the mount table and the tree under the work directory. */
function snapshot(): {mounts: string[]; tree: string[]} {
  return {mounts: mountsUnder(work), tree: tree(work, [source, cacheDir])}
}

async function rejection(promise: Promise<unknown>): Promise<any> {
  return promise.then(
    (value) => ({kind: 'resolved', value}),
    (error: unknown) => error,
  )
}

/** Runs provide() in another node process (see provide-child.mjs); resolves with what it mounted. */
async function provideInChild(
  name: string,
  mounts: RemoteMount[],
  extra: {afterProvide?: 'exit'; root?: string; uid?: number} = {},
): Promise<{child: ChildProcess; root: string; pid: number; exited: Promise<unknown>; error?: {kind: string; message: string; next?: string}}> {
  const {uid, ...rest} = extra
  const child = spawn(process.execPath, [CHILD_FILE, JSON.stringify({cacheDir, tmpDir: tmp, session: session(name, mounts), ...rest})], {
    stdio: ['ignore', 'pipe', 'pipe'],
    ...(uid === undefined ? {} : {uid, gid: uid}),
  })
  children.push(child)
  const exited = new Promise((resolve) => child.once('exit', resolve))
  let output = ''
  let errors = ''
  child.stdout!.on('data', (c: Buffer) => (output += c.toString()))
  child.stderr!.on('data', (c: Buffer) => (errors += c.toString()))
  await eventually(
    () => output,
    (o) => o.includes('\n') || child.exitCode !== null,
    20_000,
  )
  expect(output, errors).toContain('\n')
  return {child, exited, ...(JSON.parse(output) as {root: string; pid: number})}
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'tpt-sshfs-'))
  source = join(work, 'source')
  cacheDir = join(work, 'cache')
  tmp = join(work, 'tmp')
  await mkdir(join(source, 'data'), {recursive: true})
  await mkdir(join(source, 'config'), {recursive: true})
  await mkdir(tmp)
  sftp = new SftpServer(await freePort())
  await sftp.start()
})

beforeEach(async () => {
  await writeFile(join(source, 'data', 'config.txt'), 'greeting=hello from the workload\n')
  await writeFile(join(source, 'config', 'app.yaml'), 'mode: read-only\n')
  await sftp.start()
})

afterEach(async () => {
  // whatever a test did or failed to do: nothing of it may stay
  for (const child of children.splice(0)) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  for (const volumes of provided.splice(0)) await volumes.release().catch(() => undefined)
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => undefined)
  await forceCleanup(work)
  await rm(join(cacheDir, 'mounts'), {recursive: true, force: true})
  for (const name of await readdir(tmp)) await rm(join(tmp, name), {recursive: true, force: true})
})

afterAll(async () => {
  await sftp?.stop()
  if (work) {
    await forceCleanup(work)
    await rm(work, {recursive: true, force: true})
  }
})

describe('descriptor', () => {
  it('is the sshfs provider, giving a directory, for placements where this host reaches the cluster', async () => {
    expect(sshfsDescriptor).toMatchObject({name: 'sshfs', apiVersion: 1, forms: ['directory'], requires: {hostReachesCluster: true}})
    expect(sshfsDescriptor.summary).toMatch(/sshfs/)
    expect(await hook.call(undefined, {})).toEqual([sshfsDescriptor])
    const factory = (await sshfsDescriptor.load()).default
    expect(typeof (await factory(context(cacheDir))).provide).toBe('function')
  })
})

describe('sshfs volume provider', () => {
  it('mounts each remote volume at <root><path>: reads see the source, writes land in it, a read-only volume refuses writes; release leaves the mount table and the tree as before', async () => {
    const before = snapshot()
    const lines: string[] = []
    const volumes = await provide(
      provider({}, lines),
      session('web', [volume('/data', join(source, 'data')), volume('/etc/app', join(source, 'config'), true)]),
      {form: 'directory'},
    )
    const root = volumes.root!
    // side by side: both sshfs were started before the first mount was there
    expect(lines.filter((l) => /^sshfs: (sshfs -f|mounted)/.test(l)).map((l) => l.split(' ')[1])).toEqual(['sshfs', 'sshfs', 'mounted', 'mounted'])
    expect(volumes.dockerRunArgs).toEqual([])
    expect(root).toMatch(new RegExp(`^${tmp}/tp-web-\\w{6}$`))
    expect((await stat(root)).mode & 0o777).toBe(0o700)
    expect(sshfsMountsUnder(root).sort()).toEqual([join(root, 'data'), join(root, 'etc/app')])

    expect(await readFile(join(root, 'data/config.txt'), 'utf8')).toBe('greeting=hello from the workload\n')
    await writeFile(join(root, 'data/written.txt'), 'from the handler\n')
    expect(await readFile(join(source, 'data/written.txt'), 'utf8')).toBe('from the handler\n')
    expect(await readFile(join(root, 'etc/app/app.yaml'), 'utf8')).toBe('mode: read-only\n')
    const refused = await writeFile(join(root, 'etc/app/x.txt'), 'x').then(
      () => 'written',
      (e: NodeJS.ErrnoException) => e.code,
    )
    expect(refused).toBe('EROFS')
    expect(existsSync(join(source, 'config/x.txt'))).toBe(false)

    // the crash record lists what this process mounted and created
    const record = JSON.parse(await readFile(join(cacheDir, 'mounts', `${process.pid}.json`), 'utf8'))
    expect(record.provisions[0].mounts.map((m: {dir: string}) => m.dir).sort()).toEqual([join(root, 'data'), join(root, 'etc/app')])

    await volumes.release()
    expect(snapshot()).toEqual(before)
    expect(sshfsPidsUnder(work)).toEqual([])
    expect(existsSync(join(cacheDir, 'mounts', `${process.pid}.json`))).toBe(false)
    await volumes.release() // idempotent
    expect(snapshot()).toEqual(before)
    await rm(join(source, 'data/written.txt'))
  })

  it('uses a --mount directory that does not exist yet (creating its missing parents) and removes exactly what it created', async () => {
    const before = snapshot()
    const root = join(work, 'given', 'deeper', 'root')
    const volumes = await provide(provider(), session('api', [volume('/data', join(source, 'data'))]), {form: 'directory', root})
    expect(volumes.root).toBe(root)
    expect(await readFile(join(root, 'data/config.txt'), 'utf8')).toBe('greeting=hello from the workload\n')
    await volumes.release()
    expect(snapshot()).toEqual(before)
    expect(existsSync(join(work, 'given'))).toBe(false)
  })

  it('keeps an existing empty --mount directory (only the mount points it made go)', async () => {
    const root = join(work, 'mine')
    await mkdir(root, {mode: 0o755})
    cleanups.push(() => rm(root, {recursive: true, force: true}))
    const before = snapshot()
    const volumes = await provide(provider(), session('api', [volume('/data', join(source, 'data')), volume('/var/cache/app', join(source, 'config'))]), {
      form: 'directory',
      root,
    })
    expect(await readdir(root)).toEqual(['data', 'var'])
    await volumes.release()
    expect(snapshot()).toEqual(before)
    expect(await readdir(root)).toEqual([])
  })

  it("mounts a volume nested in another one after its parent, on the parent's directory, and unmounts it first", async () => {
    // as Docker leaves it in a workload: the nested volume's mount point exists in the parent volume
    await mkdir(join(source, 'data', 'cache'), {recursive: true})
    cleanups.push(() => rm(join(source, 'data', 'cache'), {recursive: true, force: true}))
    const before = snapshot()
    const volumes = await provide(provider(), session('nested', [volume('/data/cache', join(source, 'config'), true), volume('/data', join(source, 'data'))]), {
      form: 'directory',
    })
    const root = volumes.root!
    expect(await readFile(join(root, 'data/config.txt'), 'utf8')).toBe('greeting=hello from the workload\n')
    expect(await readFile(join(root, 'data/cache/app.yaml'), 'utf8')).toBe('mode: read-only\n')
    expect(sshfsMountsUnder(root).sort()).toEqual([join(root, 'data'), join(root, 'data/cache')])
    await volumes.release()
    expect(snapshot()).toEqual(before)
    expect(await readdir(join(source, 'data', 'cache'))).toEqual([])
  })

  it('without remote mounts still gives an empty root, and removes it', async () => {
    const before = snapshot()
    const volumes = await provide(provider(), session('plain', []), {form: 'directory'})
    expect(await readdir(volumes.root!)).toEqual([])
    await volumes.release()
    expect(snapshot()).toEqual(before)
  })

  describe('refuses a --mount directory it cannot use, before mounting or creating anything', () => {
    const mounts = () => [volume('/data', join(source, 'data'))]

    async function refused(root: string, message: RegExp): Promise<void> {
      const before = snapshot()
      const error = await rejection(provide(provider(), session('bad', mounts()), {form: 'directory', root}))
      expect(error.kind, String(error)).toBe('user')
      expect(error.message).toMatch(message)
      expect(error.next).toMatch(/--mount=<dir>.*--mount=false/)
      expect(snapshot()).toEqual(before)
      expect(sshfsPidsUnder(work)).toEqual([])
      expect(existsSync(join(cacheDir, 'mounts', `${process.pid}.json`))).toBe(false)
    }

    it('not empty', async () => {
      const root = join(work, 'full')
      await mkdir(root)
      await writeFile(join(root, 'notes.txt'), 'mine\n')
      cleanups.push(() => rm(root, {recursive: true, force: true}))
      await refused(root, /full: it is not empty \(notes\.txt\)/)
      expect(await readFile(join(root, 'notes.txt'), 'utf8')).toBe('mine\n')
    })

    it('a file', async () => {
      const file = join(work, 'a-file')
      await writeFile(file, 'x')
      cleanups.push(() => rm(file, {force: true}))
      await refused(file, /a-file: it is not a directory/)
    })

    it('a path under a file', async () => {
      const file = join(work, 'a-file')
      await writeFile(file, 'x')
      cleanups.push(() => rm(file, {force: true}))
      await refused(join(file, 'root'), /a-file\/root: a part of that path is a file/)
    })

    it('on a read-only file system, existing or to be created', async () => {
      const ro = join(work, 'read-only')
      await mkdir(ro)
      await execFileAsync('mount', ['--bind', ro, ro])
      cleanups.push(async () => {
        await execFileAsync('umount', [ro]).catch(() => execFileAsync('umount', ['-l', ro]))
        await rm(ro, {recursive: true, force: true})
      })
      await execFileAsync('mount', ['-o', 'remount,bind,ro', ro])
      await refused(ro, /read-only: it is not writable \(it is on a read-only file system\)/)
      await refused(join(ro, 'sub'), /cannot create .*read-only\/sub for the volumes: it is on a read-only file system/)
    })
  })

  it('refuses a --mount directory the user tp runs as cannot write to (permission denied), existing or to be made', async () => {
    // tp as user nobody; the work directory is root's, so open it up for this test only
    await execFileAsync('chmod', ['0711', work])
    const parent = join(work, 'roots-of-root')
    await mkdir(join(parent, 'existing'), {recursive: true, mode: 0o755})
    cleanups.push(async () => {
      await execFileAsync('chmod', ['0700', work])
      await rm(parent, {recursive: true, force: true})
    })
    const before = snapshot()
    const existing = await provideInChild('nobody', [], {root: join(parent, 'existing'), uid: 65534})
    expect(existing.error).toMatchObject({
      kind: 'user',
      message: expect.stringMatching(/existing: it is not writable \(permission denied\)/),
      next: expect.stringMatching(/--mount=false/),
    })
    const toMake = await provideInChild('nobody', [], {root: join(parent, 'new', 'root'), uid: 65534})
    expect(toMake.error).toMatchObject({kind: 'user', message: expect.stringMatching(/cannot create .*new\/root for the volumes: permission denied/)})
    expect(snapshot()).toEqual(before)
  })

  it("a mount that fails gives sshfs's error and leaves nothing mounted or created, the mounts that worked included", async () => {
    const before = snapshot()
    const error = await rejection(
      provide(provider(), session('broken', [volume('/data', join(source, 'data')), volume('/missing', join(source, 'no-such-dir'))]), {form: 'directory'}),
    )
    expect(error.kind, String(error)).toBe('subprocess')
    expect(error.message).toMatch(/sshfs could not mount 127\.0\.0\.1:\d+\/.*no-such-dir at .*\/missing: it exited with code \d+/)
    expect(error.stderrTail).toMatch(/No such file or directory/i)
    expect(snapshot()).toEqual(before)
    expect(sshfsPidsUnder(work)).toEqual([])
    expect(existsSync(join(cacheDir, 'mounts', `${process.pid}.json`))).toBe(false)
  })

  it('an agent port that accepts but never answers fails after the timeout, with the sshfs process ended and nothing left', async () => {
    // reads and drops what sshfs says, answers nothing (and closes when sshfs does)
    const silent = createServer((socket) => socket.on('error', () => undefined).resume())
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve))
    cleanups.push(() => new Promise((resolve) => silent.close(() => resolve())))
    const port = (silent.address() as {port: number}).port
    const before = snapshot()
    const started = Date.now()
    const error = await rejection(
      provide(
        provider({mountTimeoutMs: 1500}),
        session('silent', [{path: '/data', readOnly: false, sftp: {host: '127.0.0.1', port, dir: join(source, 'data')}}]),
        {form: 'directory'},
      ),
    )
    expect(error.kind, String(error)).toBe('subprocess')
    expect(error.message).toMatch(/sshfs did not mount 127\.0\.0\.1:\d+\/.* within 2 s/)
    expect(Date.now() - started).toBeLessThan(6000)
    expect(sshfsPidsUnder(work)).toEqual([])
    expect(snapshot()).toEqual(before)
  })

  it('refuses when it cannot keep its crash record (the cache directory is a file), before mounting, and removes the root it made', async () => {
    const file = join(work, 'cache-is-a-file')
    await writeFile(file, 'x')
    cleanups.push(() => rm(file, {force: true}))
    const before = snapshot()
    const p = new SshfsProvider(context(file), {tmpDir: tmp})
    const error = await rejection(provide(p, session('web', [volume('/data', join(source, 'data'))]), {form: 'directory'}))
    expect(error.kind, String(error)).toBe('user')
    expect(error.message).toMatch(/cannot keep the record of the mounts in .*cache-is-a-file\/mounts\/\d+\.json/)
    expect(snapshot()).toEqual(before)
    expect(sshfsPidsUnder(work)).toEqual([])
  })

  it('without sshfs says to install it, and changes nothing', async () => {
    const before = snapshot()
    const error = await rejection(
      provide(provider({sshfs: join(work, 'no-sshfs-here')}), session('web', [volume('/data', join(source, 'data'))]), {form: 'directory'}),
    )
    expect(error.kind).toBe('user')
    expect(error.message).toMatch(/sshfs is not installed/)
    expect(error.next).toMatch(/apt-get install sshfs/)
    expect(snapshot()).toEqual(before)
  })

  it('when the SFTP server goes away (the intercept ended), sshfs exits and its mount goes within seconds', async () => {
    const before = snapshot()
    const volumes = await provide(provider(), session('web', [volume('/data', join(source, 'data'))]), {form: 'directory'})
    const root = volumes.root!
    expect(sshfsMountsUnder(root)).toEqual([join(root, 'data')])
    expect(sshfsPidsUnder(root)).toHaveLength(1)
    await sftp.stop()
    // nobody touches the mount: sshfs sees the connection close by itself, and without reconnect it exits
    expect(
      await eventually(
        () => sshfsMountsUnder(root),
        (m) => m.length === 0,
        5000,
      ),
    ).toEqual([])
    expect(
      await eventually(
        () => sshfsPidsUnder(root),
        (p) => p.length === 0,
        5000,
      ),
    ).toEqual([])
    await volumes.release()
    expect(snapshot()).toEqual(before)
  })

  it('after kill -9 of the tp process that mounted, the next provide (another process) unmounts and removes what it left', async () => {
    const before = snapshot()
    const {child, exited, root, pid} = await provideInChild('crashed', [volume('/data', join(source, 'data')), volume('/conf', join(source, 'config'), true)])
    expect(sshfsMountsUnder(root).sort()).toEqual([join(root, 'conf'), join(root, 'data')])
    expect(existsSync(join(cacheDir, 'mounts', `${pid}.json`))).toBe(true)

    // while that process runs, a sweep leaves its mounts alone
    expect(await sweepMounts({cacheDir})).toEqual([])
    expect(sshfsMountsUnder(root)).toHaveLength(2)

    child.kill('SIGKILL')
    await exited
    // the agent still serves (the daemon did not end the intercept yet): the mounts outlive the process
    expect(sshfsMountsUnder(root)).toHaveLength(2)

    const lines: string[] = []
    const volumes = await provide(provider({}, lines), session('next', []), {form: 'directory'})
    expect(sshfsMountsUnder(root)).toEqual([])
    expect(existsSync(root)).toBe(false)
    expect(sshfsPidsUnder(root)).toEqual([])
    expect(existsSync(join(cacheDir, 'mounts', `${pid}.json`))).toBe(false)
    expect(lines.join('\n')).toMatch(new RegExp(`unmounted ${root}/data \\(left by tp process ${pid}, intercept crashed\\)`))
    await volumes.release()
    expect(snapshot()).toEqual(before)
  })

  it('a tp process that exits without release() (process.exit, an uncaught error) takes its mounts and directories with it', async () => {
    const before = snapshot()
    const {exited, root, pid} = await provideInChild('exiting', [volume('/data', join(source, 'data'))], {afterProvide: 'exit'})
    await exited
    expect(sshfsMountsUnder(root)).toEqual([])
    expect(
      await eventually(
        () => sshfsPidsUnder(root),
        (p) => p.length === 0,
        5000,
      ),
    ).toEqual([])
    expect(existsSync(root)).toBe(false)
    expect(existsSync(join(cacheDir, 'mounts', `${pid}.json`))).toBe(false)
    expect(snapshot()).toEqual(before)
  })
})

describe('sweepMounts', () => {
  it('takes a record whose pid now belongs to another process (pid reused) for a dead one, and removes only the directories it lists', async () => {
    const left = join(work, 'left-behind')
    const kept = join(work, 'not-ours')
    await mkdir(join(left, 'data'), {recursive: true})
    await mkdir(kept)
    cleanups.push(
      () => rm(left, {recursive: true, force: true}),
      () => rm(kept, {recursive: true, force: true}),
    )
    await mkdir(join(cacheDir, 'mounts'), {recursive: true})
    // pid 1 runs, but it is not the process that wrote this record (another start time)
    const record = {
      pid: 1,
      startTime: '1',
      provisions: [{id: 'x', intercept: 'old', root: left, createdDirs: [left, join(left, 'data')], mounts: [{dir: join(left, 'data')}]}],
    }
    await writeFile(join(cacheDir, 'mounts', '1.json'), JSON.stringify(record))
    expect(await sweepMounts({cacheDir, dryRun: true})).toEqual([
      `would remove ${join(left, 'data')} (left by tp process 1, intercept old)`,
      `would remove ${left} (left by tp process 1, intercept old)`,
    ])
    expect(existsSync(join(left, 'data'))).toBe(true)
    expect(await sweepMounts({cacheDir})).toEqual([
      `removed ${join(left, 'data')} (left by tp process 1, intercept old)`,
      `removed ${left} (left by tp process 1, intercept old)`,
    ])
    expect(existsSync(left)).toBe(false)
    expect(existsSync(kept)).toBe(true)
    expect(await readdir(join(cacheDir, 'mounts'))).toEqual([])
  })

  it('leaves a directory that holds files tp did not create, and says so', async () => {
    const left = join(work, 'left-with-files')
    await mkdir(left)
    await writeFile(join(left, 'user-notes.txt'), 'mine\n')
    cleanups.push(() => rm(left, {recursive: true, force: true}))
    await mkdir(join(cacheDir, 'mounts'), {recursive: true})
    await writeFile(
      join(cacheDir, 'mounts', '1.json'),
      JSON.stringify({pid: 1, startTime: '1', provisions: [{id: 'y', intercept: 'old', root: left, createdDirs: [left], mounts: []}]}),
    )
    const warnings: string[] = []
    expect(await sweepMounts({cacheDir, log: {info() {}, debug() {}, warn: (m) => warnings.push(m)}})).toEqual([])
    expect(await readFile(join(left, 'user-notes.txt'), 'utf8')).toBe('mine\n')
    expect(warnings.join('\n')).toMatch(/left-with-files was not removed \(it holds files tp did not create\)/)
    // still recorded, under the dead process's name, for the next sweep
    expect(await readdir(join(cacheDir, 'mounts'))).toEqual(['1.json'])
  })
})
