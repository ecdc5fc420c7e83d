import type {Dirent} from 'node:fs'
import {readdir} from 'node:fs/promises'
import {join} from 'node:path'
import {type Readable, Transform} from 'node:stream'
import {type Headers, type PackOptions, pack} from 'tar-fs'
import type {IgnoreRules} from './dockerignore.js'

/**
 * The paths (relative, forward slashes, parents before children, lexical order like Go's
 * filepath.Walk) that go into the build context. An excluded directory is not even read unless an
 * exception could re-include something under it, so a huge ignored node_modules costs nothing.
 */
export async function listContext(dir: string, rules: IgnoreRules): Promise<string[]> {
  const included: string[] = []
  async function walk(relDir: string): Promise<void> {
    const entries: Dirent[] = await readdir(relDir === '' ? dir : join(dir, relDir), {withFileTypes: true})
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
    for (const entry of entries) {
      const rel = relDir === '' ? entry.name : `${relDir}/${entry.name}`
      if (entry.isSocket()) continue // tar cannot hold sockets
      if (!rules.ignores(rel)) {
        included.push(rel)
        if (entry.isDirectory()) await walk(rel)
      } else if (entry.isDirectory() && rules.mustDescend(rel)) {
        // the directory itself is left out; re-included files below it bring their parents along
        await walk(rel)
      }
    }
  }
  await walk('')
  return included
}

export interface PackedContext {
  /** The tar stream to send. */
  stream: Readable
  /** Bytes that have gone through `stream` so far (final once it has ended). */
  bytes(): number
  /** Number of entries (files, directories, links) in the tar. */
  entries: number
  /** Why packing failed (a file that could not be read), once it has. */
  error(): Error | undefined
}

/**
 * Packs exactly the listed paths with tar-fs, owned by root like the docker CLI's context
 * (ChownOpts 0:0), modes kept as they are on disk.
 */
export function packContext(dir: string, paths: string[]): PackedContext {
  // every path is listed explicitly; `ignore` stops tar-fs from adding a directory's children again
  const options = {
    entries: paths,
    ignore: () => true,
    umask: 0, // keep modes as they are on disk (tar-fs applies the process umask otherwise)
    strict: false, // skip FIFOs and devices instead of failing (tar-fs cannot pack them)
    map: (header: Headers) => ({...header, uid: 0, gid: 0, uname: '', gname: ''}),
  }
  const tar = pack(dir, options as PackOptions)
  let bytes = 0
  const counted = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      bytes += chunk.length
      done(null, chunk)
    },
  })
  let failure: Error | undefined
  tar.on('error', (error: Error) => {
    failure = error
    counted.destroy(error)
  })
  tar.pipe(counted)
  return {stream: counted, bytes: () => bytes, entries: paths.length, error: () => failure}
}
