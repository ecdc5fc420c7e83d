import {createHash} from 'node:crypto'
import {execFile} from 'node:child_process'
import {chmod, copyFile, cp, lstat, mkdir, mkdtemp, readFile, readlink, rm, stat, symlink, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {dirname, join} from 'node:path'
import {promisify} from 'node:util'
import type Dockerode from 'dockerode'
import {pack} from 'tar-fs'
import {SubprocessError, UserError, debugLog, swallow} from '@tp/sdk'

const trace = debugLog('tp:cli')

const execFileAsync = promisify(execFile)

/**
 * A root filesystem assembled from this machine's own files, for images built with no registry:
 * host executables with the shared libraries they need, busybox with its applets, and our files.
 */
export interface RootfsSpec {
  /** Host executables, copied to the same path, with every shared library `ldd` names. */
  binaries?: string[]
  /** Host files or directories copied as they are (e.g. iptables' xtables modules). */
  hostPaths?: string[]
  /** Files to write in the image: content, or a host file to copy; mode defaults to 0644. */
  files?: Record<string, {content?: string | Buffer; source?: string; mode?: number}>
  /** Path to a static busybox; its applets are linked in /bin. */
  busybox?: string
  /** Empty directories to create (e.g. /tmp, /data). */
  dirs?: string[]
}

/** Instructions applied by `docker import` (ENV, CMD, ENTRYPOINT, WORKDIR, LABEL, EXPOSE). */
export type ImportChanges = string[]

export const STATIC_BUSYBOX = '/bin/busybox'

/** Copies a host file into root, following symlinks but recreating them as links where they are links. */
async function copyHostFile(root: string, hostPath: string): Promise<void> {
  const target = join(root, hostPath)
  await mkdir(dirname(target), {recursive: true})
  const info = await lstat(hostPath)
  if (info.isSymbolicLink()) {
    const link = await readlink(hostPath)
    await rm(target, {force: true})
    await symlink(link, target)
    const resolved = link.startsWith('/') ? link : join(dirname(hostPath), link)
    await copyHostFile(root, resolved)
    return
  }
  if (info.isDirectory()) {
    await cp(hostPath, target, {recursive: true, dereference: false})
    return
  }
  await copyFile(hostPath, target)
  await chmod(target, info.mode & 0o7777)
}

/** Shared libraries of an executable, as absolute paths (from `ldd`). */
export async function sharedLibraries(executable: string): Promise<string[]> {
  let stdout: string
  try {
    ;({stdout} = await execFileAsync('ldd', [executable]))
  } catch (error) {
    // a static executable makes ldd exit 1 ("not a dynamic executable")
    const e = error as {stdout?: string; stderr?: string}
    if (/not a dynamic executable|statically linked/.test(`${e.stdout}${e.stderr}`)) return []
    throw new SubprocessError(`ldd ${executable}`, 1, e.stderr ?? '')
  }
  const libs: string[] = []
  for (const line of stdout.split('\n')) {
    const match = line.match(/(?:=>\s*)?(\/\S+)\s+\(0x/)
    if (match) libs.push(match[1])
  }
  return libs
}

async function requireHostFile(path: string, what: string): Promise<void> {
  try {
    await stat(path)
  } catch {
    throw new UserError(
      `${path} is missing on this machine; tp needs it to build its ${what} image without a registry`,
      'install it (on Debian: apt-get install docker.io iptables busybox-static openssh-sftp-server sshfs)',
    )
  }
}

export async function assembleRootfs(spec: RootfsSpec, root: string, what = 'runtime'): Promise<void> {
  for (const dir of ['tmp', ...(spec.dirs ?? []).map((d) => d.replace(/^\//, ''))]) await mkdir(join(root, dir), {recursive: true})
  await chmod(join(root, 'tmp'), 0o1777)
  const binaries = [...(spec.binaries ?? [])]
  if (spec.busybox) binaries.push(spec.busybox)
  const libs = new Set<string>()
  for (const binary of binaries) {
    await requireHostFile(binary, what)
    await copyHostFile(root, binary)
    for (const lib of await sharedLibraries(binary)) libs.add(lib)
  }
  for (const lib of libs) await copyHostFile(root, lib)
  for (const path of spec.hostPaths ?? []) {
    await requireHostFile(path, what)
    await copyHostFile(root, path)
  }
  if (spec.busybox) {
    const {stdout} = await execFileAsync(spec.busybox, ['--list'])
    await mkdir(join(root, 'bin'), {recursive: true})
    await mkdir(join(root, 'usr/bin'), {recursive: true})
    const busyboxInImage = spec.busybox
    for (const applet of stdout.split('\n').filter(Boolean)) {
      const link = join(root, 'bin', applet)
      try {
        await lstat(link)
      } catch {
        await symlink(busyboxInImage, link)
      }
    }
  }
  for (const [path, file] of Object.entries(spec.files ?? {})) {
    const target = join(root, path)
    await mkdir(dirname(target), {recursive: true})
    if (file.source !== undefined) await copyFile(file.source, target)
    else await writeFile(target, file.content ?? '')
    await chmod(target, file.mode ?? 0o644)
  }
}

/**
 * A hash of everything that goes into an image: the spec, and size+mtime of every host file
 * (a package upgrade changes them) and content of our files. Equal hash → the image can be reused.
 */
export async function inputsHash(spec: RootfsSpec, changes: ImportChanges): Promise<string> {
  const hash = createHash('sha256')
  hash.update(JSON.stringify({...spec, files: Object.keys(spec.files ?? {}).sort()}))
  hash.update(JSON.stringify(changes))
  for (const path of [...(spec.binaries ?? []), ...(spec.hostPaths ?? []), ...(spec.busybox ? [spec.busybox] : [])]) {
    const info = await stat(path).catch(swallow(trace, `stat of rootfs input ${path}`))
    hash.update(`${path}:${info?.size}:${info?.mtimeMs}\n`)
  }
  for (const [path, file] of Object.entries(spec.files ?? {}).sort(([a], [b]) => a.localeCompare(b))) {
    hash.update(path)
    hash.update(file.source !== undefined ? await readFile(file.source) : (file.content ?? ''))
    hash.update(String(file.mode ?? 0o644))
  }
  return hash.digest('hex').slice(0, 16)
}

export const LABEL_INPUTS = 'tp.image-inputs'

export interface ImportedImage {
  /** `repo:tag` */
  ref: string
  id: string
  /** Whether it was built now (false: an image with the same inputs was reused). */
  built: boolean
}

/**
 * Builds (or reuses) an image from a rootfs assembled on this machine. Idempotent: an existing
 * image with the same tag and the same inputs hash is reused without touching anything.
 */
export async function ensureImportedImage(
  docker: Dockerode,
  options: {
    repo: string
    tag: string
    spec: RootfsSpec
    changes?: ImportChanges
    labels?: Record<string, string>
    what?: string
    /** Hears a line when the image has to be built (it takes a few seconds). */
    progress?: (line: string) => void
  },
): Promise<ImportedImage> {
  const ref = `${options.repo}:${options.tag}`
  const changes = options.changes ?? []
  const hash = await inputsHash(options.spec, [...changes, JSON.stringify(options.labels ?? {})])
  const existing = await docker
    .getImage(ref)
    .inspect()
    .catch(swallow(trace, `looking up image ${ref}`))
  if (existing && existing.Config?.Labels?.[LABEL_INPUTS] === hash) return {ref, id: existing.Id, built: false}

  options.progress?.(`building tp's ${options.what ?? ''} image ${ref} from this machine's files (once per version)…`.replace('  ', ' '))
  const root = await mkdtemp(join(tmpdir(), 'tp-rootfs-'))
  try {
    await assembleRootfs(options.spec, root, options.what)
    const labels = {...options.labels, [LABEL_INPUTS]: hash}
    const allChanges = [...changes, ...Object.entries(labels).map(([k, v]) => `LABEL ${JSON.stringify(k)}=${JSON.stringify(v)}`)]
    const stream = (await docker.importImage(
      pack(root) as unknown as NodeJS.ReadableStream,
      {repo: options.repo, tag: options.tag, changes: allChanges} as never,
    )) as unknown as NodeJS.ReadableStream
    await new Promise<void>((resolve, reject) => {
      docker.modem.followProgress(stream as NodeJS.ReadableStream, (error: Error | null, output: Array<{error?: string}>) => {
        const failed = error ?? output.find((o) => o.error)?.error
        if (failed) reject(new SubprocessError(`docker import ${ref}`, undefined, String(failed)))
        else resolve()
      })
    })
    const image = await docker.getImage(ref).inspect()
    if (image.Config?.Labels?.[LABEL_INPUTS] !== hash)
      throw new SubprocessError(`docker import ${ref}`, undefined, 'the imported image lacks its labels (changes were not applied)')
    return {ref, id: image.Id, built: true}
  } finally {
    await rm(root, {recursive: true, force: true})
  }
}
