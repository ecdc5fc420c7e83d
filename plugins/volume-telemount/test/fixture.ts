import {execFile} from 'node:child_process'
import {readFileSync} from 'node:fs'
import {fileURLToPath} from 'node:url'
import {randomBytes} from 'node:crypto'
import {connect} from 'node:net'
import {promisify} from 'node:util'
import Docker from 'dockerode'
import {STATIC_BUSYBOX, ensureImportedImage} from '@tp/images'
import type {InterceptSession, Logger, PluginContext, RemoteMount} from '@tp/sdk'
import {fakePlacement} from '@tp/sdk/testing'

export const execFileAsync = promisify(execFile)
export const docker = new Docker()
export const NETWORK = 'tpt-tm-net'
export const FIXTURE_LABELS = {'tp.fixture': 'true', 'tpt.area': 'telemount'}
export const SFTP_PORT = 2222

/** The stand-in SFTP source (what the agent does for its volumes, in miniature): see sftp-spawner.cjs. */
export const SPAWNER_FILE = fileURLToPath(new URL('../../../test/helpers/sftp-spawner.cjs', import.meta.url))
export const SPAWNER = readFileSync(SPAWNER_FILE, 'utf8')

export async function sftpSourceImage(): Promise<string> {
  const image = await ensureImportedImage(docker, {
    repo: 'tpt-tm-sftp',
    tag: 'test',
    spec: {
      binaries: ['/usr/bin/node', '/usr/lib/openssh/sftp-server'],
      busybox: STATIC_BUSYBOX,
      files: {'/spawner.cjs': {content: SPAWNER}, '/etc/passwd': {content: 'root:x:0:0:root:/root:/bin/sh\n'}, '/etc/group': {content: 'root:x:0:\n'}},
      dirs: ['/data', '/root'],
    },
    changes: ['CMD ["/usr/bin/node", "/spawner.cjs"]', 'ENV PATH=/usr/bin:/bin'],
    labels: FIXTURE_LABELS,
    what: 'test SFTP source',
  })
  return image.ref
}

export async function busyboxImage(): Promise<string> {
  const image = await ensureImportedImage(docker, {
    repo: 'tpt-tm-busybox',
    tag: 'test',
    spec: {busybox: STATIC_BUSYBOX},
    changes: ['ENV PATH=/bin'],
    labels: FIXTURE_LABELS,
    what: 'test busybox',
  })
  return image.ref
}

export async function ensureNetwork(): Promise<void> {
  const existing = await docker
    .getNetwork(NETWORK)
    .inspect()
    .catch(() => undefined)
  if (!existing)
    await docker.createNetwork({Name: NETWORK, Labels: FIXTURE_LABELS}).catch((e: Error) => {
      if (!/already exists/.test(e.message)) throw e
    })
}

export interface SftpSource {
  container: string
  dataVolume: string
  ip: string
  /** Runs a shell command in the source (the "workload"). */
  sh(command: string): Promise<string>
  remove(): Promise<void>
}

/** A workload stand-in: a container on tpt-tm-net with a volume at /data holding config.txt. */
export async function startSftpSource(image: string, config: string): Promise<SftpSource> {
  const id = randomBytes(3).toString('hex')
  const container = `tpt-tm-src-${id}`
  const dataVolume = `tpt-tm-data-${id}`
  await docker.createVolume({Name: dataVolume, Labels: FIXTURE_LABELS})
  const created = await docker.createContainer({
    name: container,
    Image: image,
    Labels: FIXTURE_LABELS,
    HostConfig: {NetworkMode: NETWORK, Binds: [`${dataVolume}:/data`]},
  })
  await created.start()
  const sh = async (command: string): Promise<string> => (await execFileAsync('docker', ['exec', container, 'sh', '-c', command])).stdout
  await sh(`printf '%s\\n' '${config}' > /data/config.txt`)
  const info = await created.inspect()
  const ip = info.NetworkSettings.Networks[NETWORK]?.IPAddress
  if (!ip) throw new Error(`${container} has no address on ${NETWORK}`)
  // wait until the spawner listens
  await waitListening(ip, SFTP_PORT)
  return {
    container,
    dataVolume,
    ip,
    sh,
    async remove() {
      await docker
        .getContainer(container)
        .remove({force: true})
        .catch(() => undefined)
      await docker
        .getVolume(dataVolume)
        .remove()
        .catch(() => undefined)
    },
  }
}

export async function waitListening(host: string, port: number, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = connect({host, port}, () => {
        socket.destroy()
        resolve(true)
      })
      socket.on('error', () => resolve(false))
    })
    if (ok) return
    if (Date.now() > deadline) throw new Error(`nothing listens on ${host}:${port}`)
    await new Promise((r) => setTimeout(r, 100))
  }
}

export function session(fields: {connection: string; name: string; mounts: RemoteMount[]}): InterceptSession {
  return {
    id: randomBytes(4).toString('hex'),
    name: fields.name,
    workload: fields.name,
    namespace: NETWORK,
    ports: {local: 8080, container: 8080, service: 80, protocol: 'tcp'},
    environment: {},
    mounts: fields.mounts,
    placement: fakePlacement('shared', fields.connection, {containerArgs: []}),
    daemon: {connection: fields.connection, id: 'tmtest', backend: 'container', where: 'tp-tmtest-cn'},
  }
}

export function context(tpVersion: string, lines: string[] = []): PluginContext {
  const log: Logger = {info: (m) => lines.push(m), warn: (m) => lines.push(m), debug: (m) => lines.push(m)}
  return {tpVersion, cacheDir: '/tmp', log}
}

/** `docker run --rm <args>`; resolves with exit code and output. */
export async function dockerRun(args: string[]): Promise<{code: number; stdout: string; stderr: string}> {
  try {
    const {stdout, stderr} = await execFileAsync('docker', ['run', '--rm', ...args])
    return {code: 0, stdout, stderr}
  } catch (error) {
    const e = error as {code?: number; stdout?: string; stderr?: string}
    return {code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout ?? '', stderr: e.stderr ?? ''}
  }
}

/** Names of the volumes carrying this intercept's label. */
export async function volumesOf(intercept: string): Promise<string[]> {
  const {Volumes} = await docker.listVolumes({filters: JSON.stringify({label: [`tp.intercept=${intercept}`]})})
  return (Volumes ?? []).map((v) => v.Name)
}

export async function removePlugin(ref: string): Promise<void> {
  await docker
    .getPlugin(ref, undefined)
    .remove({force: true})
    .catch(() => undefined)
}
