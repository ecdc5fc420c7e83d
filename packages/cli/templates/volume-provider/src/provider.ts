import {existsSync} from 'node:fs'
import {chmod, cp, mkdir, mkdtemp, readdir, rm, stat} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import type {Factory, InterceptSession, ProvidedVolumes, VolumeProvider, VolumeRequest} from '@tp/sdk'
import {UserError} from '@tp/sdk'

/** The variable that names the seed directory: `<seed>/data` becomes the handler's `$TP_ROOT/data`. */
export const SEED_ENV = 'TP___ENV___SEED'

async function isDirectory(path: string): Promise<boolean> {
  return stat(path).then(
    (s) => s.isDirectory(),
    () => false,
  )
}

/**
 * Each of the workload's volumes becomes a directory under the handler's root (`<root>/data` for
 * `/data`), copied from the seed directory where it has that path, else empty; a read-only volume
 * is a read-only directory. `release` removes what `provide` made, on every path, and may run twice.
 */
export class SeedProvider implements VolumeProvider {
  constructor(private readonly seed: string | undefined) {}

  async provide(session: InterceptSession, request: VolumeRequest = {form: 'directory'}): Promise<ProvidedVolumes> {
    if (request.form !== 'directory') {
      throw new UserError(
        `__NAME__ gives volumes as directories, not as ${request.form}`,
        'use it with a handler that runs on this machine, or choose another --volume-provider',
      )
    }
    if (this.seed !== undefined && !(await isDirectory(this.seed))) {
      throw new UserError(
        `${SEED_ENV}=${this.seed} is not a directory`,
        `point ${SEED_ENV} at the directory that holds your volumes' data, or unset it for empty ones`,
      )
    }
    const ownRoot = request.root === undefined
    const root = request.root ?? (await mkdtemp(join(tmpdir(), 'tp-__NAME__-')))
    if (!ownRoot && existsSync(root) && (await readdir(root)).length > 0) {
      throw new UserError(`${root} is not empty`, 'give an empty directory or one that does not exist yet')
    }
    const made: string[] = []
    const release = async () => {
      for (const dir of made.reverse()) {
        await chmod(dir, 0o755).catch(() => undefined) // a read-only directory must be writable to go
        await rm(dir, {recursive: true, force: true})
      }
      made.length = 0
      if (ownRoot) await rm(root, {recursive: true, force: true})
    }
    try {
      await mkdir(root, {recursive: true})
      for (const mount of session.mounts) {
        const target = join(root, mount.path)
        const source = this.seed === undefined ? undefined : join(this.seed, mount.path)
        made.push(target)
        if (source && (await isDirectory(source))) await cp(source, target, {recursive: true})
        else await mkdir(target, {recursive: true})
        if (mount.readOnly) await chmod(target, 0o555)
      }
    } catch (error) {
      await release()
      throw error
    }
    return {dockerRunArgs: [], root, release}
  }
}

const factory: Factory<VolumeProvider> = () => new SeedProvider(process.env[SEED_ENV] || undefined)
export default factory
