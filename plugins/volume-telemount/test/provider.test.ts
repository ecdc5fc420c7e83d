import {spawn} from 'node:child_process'
import {mkdtemp, mkdir, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {type VolumeProvider, isUserError} from '@tp/sdk'
import telemountHook, {telemountDescriptor} from '@tp/plugin-volume-telemount'
import {pluginConfig, pluginRef} from '@tp/plugin-volume-telemount/plugin'
import {
  type SftpSource,
  SFTP_PORT,
  busyboxImage,
  context,
  docker,
  dockerRun,
  ensureNetwork,
  execFileAsync,
  removePlugin,
  session,
  sftpSourceImage,
  startSftpSource,
  volumesOf,
} from './fixture.js'

// Everything here runs against the real engine: a real managed plugin (under a test name, so the
// `tp-telemount` plugin other tests or users rely on is never touched), real sshfs, a real
// sftp-server in a container standing in for the agent.
const PLUGIN = 'tpt-tm-plugin'
const VERSION = '0.1.0-tmtest'
const CONNECTION = 'tpt-tm-conn'

let busybox: string
let sftpImage: string
let source: SftpSource
let provider: VolumeProvider
const sources: SftpSource[] = []
const tempDirs: string[] = []
const pluginsMade = new Set<string>([pluginRef({name: PLUGIN, version: VERSION})])

async function makeProvider(tpVersion = VERSION): Promise<VolumeProvider> {
  const module = await telemountDescriptor.load()
  return module.default(context(tpVersion))
}

function mountOf(src: SftpSource, path = '/data', readOnly = false) {
  return {path, readOnly, sftp: {host: src.ip, port: SFTP_PORT, dir: '/data'}}
}

beforeAll(async () => {
  process.env.TP_TELEMOUNT_PLUGIN = PLUGIN
  delete process.env.TP_TELEMOUNT_ROOTFS
  await ensureNetwork()
  ;[busybox, sftpImage] = await Promise.all([busyboxImage(), sftpSourceImage()])
  source = await startSftpSource(sftpImage, 'config of workload A')
  sources.push(source)
  provider = await makeProvider()
})

afterAll(async () => {
  for (const src of sources) await src.remove()
  for (const ref of pluginsMade) await removePlugin(ref)
  await docker
    .getNetwork('tpt-tm-net')
    .remove()
    .catch(() => undefined)
  for (const dir of tempDirs) await rm(dir, {recursive: true, force: true})
  for (const image of [busybox, sftpImage])
    if (image)
      await docker
        .getImage(image)
        .remove({force: true})
        .catch(() => undefined)
  delete process.env.TP_TELEMOUNT_PLUGIN
  delete process.env.TP_TELEMOUNT_ROOTFS
})

describe('telemount descriptor', () => {
  it('registers one volume provider that fits every placement on tp:volume-providers', async () => {
    const descriptors = await telemountHook.call(undefined, {})
    expect(descriptors.map((d) => [d.name, d.requires, d.apiVersion])).toEqual([['telemount', {}, 1]])
  })
})

describe('telemount volumes (real engine)', () => {
  it('creates the plugin when missing, mounts the workload volume, writes through, and leaves nothing behind', async () => {
    const s = session({connection: CONNECTION, name: 'tm-web', mounts: [mountOf(source)]})
    const provided = await provider.provide(s)
    const [flag, spec] = provided.dockerRunArgs
    expect(flag).toBe('-v')
    expect(spec).toMatch(new RegExp(`^tp-${CONNECTION}-tm-web-${s.id}-0-data:/data$`))
    const plugin = await docker.getPlugin(pluginRef({name: PLUGIN, version: VERSION}), undefined).inspect()
    expect(plugin.Enabled).toBe(true)

    const read = await dockerRun([...provided.dockerRunArgs, busybox, 'cat', '/data/config.txt'])
    expect(read.stderr).toBe('')
    expect(read.stdout).toBe('config of workload A\n')

    const write = await dockerRun([...provided.dockerRunArgs, busybox, 'sh', '-c', 'echo from the handler > /data/handler.txt'])
    expect(write.code).toBe(0)
    expect(await source.sh('cat /data/handler.txt')).toBe('from the handler\n')

    expect(await volumesOf('tm-web')).toHaveLength(1)
    await provided.release()
    await provided.release() // idempotent
    expect(await volumesOf('tm-web')).toEqual([])
  })

  it('mounts a volume of a workload on this engine straight from it, and the rest over SFTP', async () => {
    const engine = {engine: ((await docker.info()) as {ID: string}).ID, type: 'volume' as const, source: source.dataVolume}
    // the driver names no engine mount for the second (a tmpfs, a mount with another inside): it goes over SFTP
    const mounts = [{...mountOf(source), engine}, mountOf(source, '/cfg', true)]
    const s = session({connection: CONNECTION, name: 'tm-direct', mounts})
    const provided = await provider.provide(s)
    expect(provided.dockerRunArgs.slice(0, 2)).toEqual(['-v', `${source.dataVolume}:/data`])
    expect(provided.dockerRunArgs[2]).toBe('-v')
    expect(provided.dockerRunArgs[3]).toMatch(new RegExp(`^tp-${CONNECTION}-tm-direct-${s.id}-1-cfg:/cfg:ro$`))
    const read = await dockerRun([...provided.dockerRunArgs, busybox, 'sh', '-c', 'cat /data/config.txt /cfg/config.txt'])
    expect(read.stderr).toBe('')
    expect(read.stdout).toBe('config of workload A\nconfig of workload A\n')
    const write = await dockerRun([...provided.dockerRunArgs, busybox, 'sh', '-c', 'echo straight from the handler > /data/direct.txt'])
    expect(write.code).toBe(0)
    expect(await source.sh('cat /data/direct.txt')).toBe('straight from the handler\n')
    expect(await volumesOf('tm-direct')).toHaveLength(1) // only the one over SFTP
    await provided.release()
    expect(await volumesOf('tm-direct')).toEqual([])
    // the workload's own volume is the workload's: release leaves it
    expect((await docker.getVolume(source.dataVolume).inspect()).Name).toBe(source.dataVolume)
  })

  it('goes over SFTP when the workload is on another engine, or with TP_TELEMOUNT_DIRECT=0', async () => {
    const id = ((await docker.info()) as {ID: string}).ID
    const elsewhere = session({
      connection: CONNECTION,
      name: 'tm-elsewhere',
      mounts: [{...mountOf(source), engine: {engine: 'ANOTHER:ENGINE:ID', type: 'volume' as const, source: source.dataVolume}}],
    })
    const other = await provider.provide(elsewhere)
    expect(other.dockerRunArgs[1]).toMatch(/-0-data:\/data$/)
    await other.release()
    process.env.TP_TELEMOUNT_DIRECT = '0'
    try {
      const told = session({
        connection: CONNECTION,
        name: 'tm-told',
        mounts: [{...mountOf(source), engine: {engine: id, type: 'volume' as const, source: source.dataVolume}}],
      })
      const provided = await (await makeProvider()).provide(told)
      expect(provided.dockerRunArgs[1]).toMatch(/-0-data:\/data$/)
      expect(await volumesOf('tm-told')).toHaveLength(1)
      await provided.release()
    } finally {
      delete process.env.TP_TELEMOUNT_DIRECT
    }
  })

  it('refuses writes on a read-only mount, both through :ro and in the plugin itself', async () => {
    const s = session({connection: CONNECTION, name: 'tm-ro', mounts: [mountOf(source, '/data', true)]})
    const provided = await provider.provide(s)
    try {
      expect(provided.dockerRunArgs[1]).toMatch(/:\/data:ro$/)
      const read = await dockerRun([...provided.dockerRunArgs, busybox, 'cat', '/data/config.txt'])
      expect(read.stdout).toBe('config of workload A\n')
      const write = await dockerRun([...provided.dockerRunArgs, busybox, 'sh', '-c', 'echo nope > /data/ro.txt'])
      expect(write.code).not.toBe(0)
      expect(write.stderr).toMatch(/read-only/i)

      // without :ro on docker run, the plugin's read-only sshfs still refuses the write
      const volume = provided.dockerRunArgs[1].split(':')[0]
      const bare = await dockerRun(['-v', `${volume}:/data`, busybox, 'sh', '-c', 'echo nope > /data/ro.txt'])
      expect(bare.code).not.toBe(0)
      expect(bare.stderr).toMatch(/read-only/i)
      expect(await source.sh('ls /data')).not.toMatch(/ro\.txt/)
    } finally {
      await provided.release()
    }
    expect(await volumesOf('tm-ro')).toEqual([])
  })

  it('mounts again after the previous run was interrupted with Ctrl-C', async () => {
    for (let run = 1; run <= 2; run++) {
      const s = session({connection: CONNECTION, name: 'tm-again', mounts: [mountOf(source)]})
      const provided = await provider.provide(s)
      // a long-running handler, interrupted like Ctrl-C does it (SIGINT to the docker client)
      const child = spawn('docker', ['run', '--rm', '--init', ...provided.dockerRunArgs, busybox, 'sh', '-c', 'cat /data/config.txt; sleep 60'])
      let output = ''
      child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()))
      const exited = new Promise<number | null>((resolve) => child.on('exit', resolve))
      for (let i = 0; i < 100 && !output.includes('\n'); i++) await new Promise((r) => setTimeout(r, 100))
      expect(output, `run ${run}`).toBe('config of workload A\n')
      child.kill('SIGINT')
      await exited
      await provided.release()
      expect(await volumesOf('tm-again'), `run ${run}`).toEqual([])
    }
  })

  it('keeps two concurrent intercepts of two workloads that both mount /data apart', async () => {
    const other = await startSftpSource(sftpImage, 'config of workload B')
    sources.push(other)
    const [a, b] = await Promise.all([
      provider.provide(session({connection: CONNECTION, name: 'tm-a', mounts: [mountOf(source)]})),
      provider.provide(session({connection: CONNECTION, name: 'tm-b', mounts: [mountOf(other)]})),
    ])
    try {
      expect(a.dockerRunArgs[1]).not.toBe(b.dockerRunArgs[1])
      const [readA, readB] = await Promise.all([
        dockerRun([...a.dockerRunArgs, busybox, 'sh', '-c', 'sleep 1; cat /data/config.txt']),
        dockerRun([...b.dockerRunArgs, busybox, 'sh', '-c', 'sleep 1; cat /data/config.txt']),
      ])
      expect(readA.stdout).toBe('config of workload A\n')
      expect(readB.stdout).toBe('config of workload B\n')
    } finally {
      await Promise.all([a.release(), b.release()])
    }
    expect(await volumesOf('tm-a')).toEqual([])
    expect(await volumesOf('tm-b')).toEqual([])
  })

  it('release waits while a container still uses a volume, and removes it once the container is gone', async () => {
    const provided = await provider.provide(session({connection: CONNECTION, name: 'tm-held', mounts: [mountOf(source)]}))
    const holder = `tpt-tm-holder-${Date.now().toString(36)}`
    await execFileAsync('docker', ['run', '-d', '--name', holder, '--label', 'tp.fixture=true', ...provided.dockerRunArgs, busybox, 'sleep', '60'])
    try {
      let released = false
      const releasing = provided.release().then(() => (released = true))
      await new Promise((r) => setTimeout(r, 1500))
      expect(released).toBe(false)
      expect(await volumesOf('tm-held')).toHaveLength(1)
      await docker.getContainer(holder).remove({force: true})
      await releasing
      expect(await volumesOf('tm-held')).toEqual([])
    } finally {
      await docker
        .getContainer(holder)
        .remove({force: true})
        .catch(() => undefined)
      await provided.release().catch(() => undefined)
    }
  })

  it('rejects unknown options and bad values with a clear error', async () => {
    const driver = pluginRef({name: PLUGIN, version: VERSION})
    const base = {host: source.ip, port: String(SFTP_PORT), dir: '/data'}
    const attempt = (opts: Record<string, string>) =>
      docker.createVolume({Name: 'tpt-tm-badopts', Driver: driver, DriverOpts: opts}).then(
        () => 'created',
        (e: Error) => e.message,
      )
    expect(await attempt({...base, container: 'x'})).toMatch(/unknown option "container"; telemount takes only host, port, dir, ro/)
    expect(await attempt({...base, port: '70000'})).toMatch(/option port must be a whole number from 1 to 65535/)
    expect(await attempt({...base, host: 'example.com'})).toMatch(/option host must be an IP address/)
    expect(await attempt({...base, ro: 'yes'})).toMatch(/option ro must be true or false/)
    await docker
      .getVolume('tpt-tm-badopts')
      .remove()
      .catch(() => undefined)
  })

  it('fails clearly when the remote directory does not exist, and leaves the volume removable', async () => {
    const s = session({
      connection: CONNECTION,
      name: 'tm-nodir',
      mounts: [{path: '/data', readOnly: false, sftp: {host: source.ip, port: SFTP_PORT, dir: '/no/such/dir'}}],
    })
    const provided = await provider.provide(s)
    const run = await dockerRun([...provided.dockerRunArgs, busybox, 'true'])
    expect(run.code).not.toBe(0)
    expect(run.stderr).toMatch(/remote directory \/no\/such\/dir on .* does not exist/)
    await provided.release()
    expect(await volumesOf('tm-nodir')).toEqual([])
  })

  it('needs no plugin for a session without mounts', async () => {
    process.env.TP_TELEMOUNT_PLUGIN = 'tpt-tm-never'
    process.env.TP_TELEMOUNT_ROOTFS = '/nonexistent/telemount'
    try {
      const provided = await (await makeProvider()).provide(session({connection: CONNECTION, name: 'tm-none', mounts: []}))
      expect(provided.dockerRunArgs).toEqual([])
      await provided.release()
      const plugins = await docker.listPlugins()
      expect(plugins.map((p) => p.Name).filter((n) => n.startsWith('tpt-tm-never'))).toEqual([])
    } finally {
      process.env.TP_TELEMOUNT_PLUGIN = PLUGIN
      delete process.env.TP_TELEMOUNT_ROOTFS
    }
  })

  it('fails with a clear error, before creating any volume, when the plugin cannot be installed', async () => {
    const broken = await mkdtemp(join(tmpdir(), 'tpt-tm-broken-'))
    tempDirs.push(broken)
    await mkdir(join(broken, 'rootfs'))
    await writeFile(join(broken, 'config.json'), JSON.stringify(pluginConfig('0')))
    process.env.TP_TELEMOUNT_PLUGIN = 'tpt-tm-broken'
    const s = session({connection: CONNECTION, name: 'tm-broken', mounts: [mountOf(source)]})
    try {
      pluginsMade.add(pluginRef({name: 'tpt-tm-broken', version: VERSION}))
      process.env.TP_TELEMOUNT_ROOTFS = broken
      const error = await (await makeProvider()).provide(s).then(
        () => undefined,
        (e: unknown) => e,
      )
      expect(isUserError(error)).toBe(true)
      expect((error as Error).message).toMatch(
        /cannot install the telemount volume plugin tpt-tm-broken:0\.1\.0-tmtest: docker plugin enable failed: .*\/usr\/bin\/node.*no such file/,
      )
      expect((error as {next?: string}).next).toMatch(/--mount=false/)
      // the half-made plugin is gone, so the next attempt starts clean
      expect(
        await docker
          .getPlugin(pluginRef({name: 'tpt-tm-broken', version: VERSION}), undefined)
          .inspect()
          .then(
            () => 'exists',
            () => 'gone',
          ),
      ).toBe('gone')

      process.env.TP_TELEMOUNT_ROOTFS = join(broken, 'missing')
      const missing = await (await makeProvider()).provide(s).then(
        () => undefined,
        (e: unknown) => e,
      )
      expect(isUserError(missing)).toBe(true)
      expect((missing as Error).message).toMatch(/TP_TELEMOUNT_ROOTFS=.*missing is not a plugin directory/)
      expect(await volumesOf('tm-broken')).toEqual([])
    } finally {
      process.env.TP_TELEMOUNT_PLUGIN = PLUGIN
      delete process.env.TP_TELEMOUNT_ROOTFS
    }
  })

  it('installs the plugin again when it was removed, and removes plugins of older tp versions', async () => {
    const oldRef = pluginRef({name: PLUGIN, version: '0.0.9-tmtest'})
    pluginsMade.add(oldRef)
    await (await provider.provide(session({connection: CONNECTION, name: 'tm-v0', mounts: [mountOf(source)]}))).release()
    const older = await (await makeProvider('0.0.9-tmtest')).provide(session({connection: CONNECTION, name: 'tm-v1', mounts: [mountOf(source)]}))
    await older.release()
    expect((await docker.getPlugin(oldRef, undefined).inspect()).Enabled).toBe(true)

    // an older tp leaves the newer plugin alone
    expect((await docker.getPlugin(pluginRef({name: PLUGIN, version: VERSION}), undefined).inspect()).Enabled).toBe(true)
    // the plugin removed behind this process's back is installed again
    await removePlugin(pluginRef({name: PLUGIN, version: VERSION}))
    const newer = await provider.provide(session({connection: CONNECTION, name: 'tm-v2', mounts: [mountOf(source)]}))
    try {
      const read = await dockerRun([...newer.dockerRunArgs, busybox, 'cat', '/data/config.txt'])
      expect(read.stdout).toBe('config of workload A\n')
      const names = (await docker.listPlugins()).map((p) => p.Name).filter((n) => n.startsWith(`${PLUGIN}:`))
      expect(names).toEqual([pluginRef({name: PLUGIN, version: VERSION})])
    } finally {
      await newer.release()
    }
  })
})
