/** The tarball cache of the pins, addressed by content (sha512): what makes a sync work offline after one sync. */
import {createHash} from 'node:crypto'
import {existsSync} from 'node:fs'
import {mkdir, readFile, rename, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {pinsHome} from './select-data-dir.js'

/** sha512 of the bytes in SRI form, as npm writes `integrity`. */
export function integrityOf(bytes: Buffer): string {
  return `sha512-${createHash('sha512').update(bytes).digest('base64')}`
}

function storePath(integrity: string): string {
  const hex = Buffer.from(integrity.replace(/^sha512-/, ''), 'base64').toString('hex')
  return join(pinsHome(), 'tarballs', `${hex}.tgz`)
}

/** The cached tarball with this integrity, checked again (a damaged copy is as good as none). */
export async function cachedTarball(integrity: string): Promise<string | undefined> {
  const path = storePath(integrity)
  if (!existsSync(path)) return undefined
  return integrityOf(await readFile(path)) === integrity ? path : undefined
}

export async function storeTarball(bytes: Buffer): Promise<string> {
  const integrity = integrityOf(bytes)
  const path = storePath(integrity)
  if (existsSync(path)) return path
  await mkdir(join(pinsHome(), 'tarballs'), {recursive: true})
  const tmp = `${path}.tmp-${process.pid}`
  await writeFile(tmp, bytes)
  await rename(tmp, path)
  return path
}
