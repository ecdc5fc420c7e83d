import {readFile} from 'node:fs/promises'
import {join, posix} from 'node:path'
import dockerignore from '@balena/dockerignore'
import {UserError} from '@tp/sdk'

/**
 * `.dockerignore` handling, following the docker CLI's legacy-builder path step by step:
 * read the patterns like moby's `dockerignore.ReadAll`, keep the Dockerfile and .dockerignore
 * (`TrimBuildFilesFromExcludes`), match with @balena/dockerignore (a port of moby's matcher), and
 * decide whether an excluded directory must still be walked like `archive.TarWithOptions`.
 */
export interface IgnoreRules {
  /** Whether a path relative to the context (forward slashes) is left out. */
  ignores(path: string): boolean
  /** For an excluded directory: whether a `!` pattern could re-include something under it. */
  mustDescend(dir: string): boolean
  /** The patterns in effect (after adding the Dockerfile's and .dockerignore's exceptions). */
  patterns: string[]
}

/** Cleans one pattern as moby does: trims, `path.Clean`, drops a leading `/`. */
function cleanPattern(raw: string): string | undefined {
  let pattern = raw.trim()
  if (pattern === '') return undefined
  const invert = pattern.startsWith('!')
  if (invert) pattern = pattern.slice(1).trim()
  if (pattern.length > 0) {
    pattern = posix.normalize(pattern)
    if (pattern.length > 1 && pattern.endsWith('/')) pattern = pattern.slice(0, -1) // Go's Clean drops it
    if (pattern.length > 1 && pattern.startsWith('/')) pattern = pattern.slice(1)
  }
  return invert ? `!${pattern}` : pattern
}

/** Patterns of a .dockerignore file's text (comments start a line with `#`; a BOM is dropped). */
export function parseDockerignore(text: string): string[] {
  const patterns: string[] = []
  for (const line of text.replace(/^\uFEFF/, '').split(/\r?\n/)) {
    if (line.startsWith('#')) continue
    const pattern = cleanPattern(line)
    if (pattern !== undefined) patterns.push(pattern)
  }
  return patterns
}

// a CommonJS module whose types declare an ES default export: at run time the import is the function
type IgnoreFactory = typeof dockerignore.default
const ignore: IgnoreFactory = ((dockerignore as unknown as {default?: IgnoreFactory}).default ?? dockerignore) as unknown as IgnoreFactory

export function ignoreRules(patterns: readonly string[], dockerfile: string): IgnoreRules {
  for (const p of patterns) {
    if (p === '!') throw new UserError('.dockerignore has a line with only "!"', 'a "!" must be followed by the pattern to re-include')
  }
  const matcher = (all: readonly string[]) => ignore({ignorecase: false}).add([...all])
  // The docker CLI always sends .dockerignore and the Dockerfile, by adding exceptions for them.
  const effective = [...patterns]
  if (matcher(effective).ignores('.dockerignore')) effective.push('!.dockerignore')
  if (matcher(effective).ignores(dockerfile)) effective.push(`!${dockerfile}`)
  const ig = matcher(effective)
  const exceptions = effective.filter((p) => p.startsWith('!')).map((p) => p.slice(1))
  return {
    patterns: effective,
    ignores: (path) => ig.ignores(path),
    // moby: an excluded directory is walked only if some exception pattern starts with "<dir>/"
    mustDescend: (dir) => exceptions.some((p) => `${p}/`.startsWith(`${dir}/`)),
  }
}

/** Reads `<context>/.dockerignore` (none → no patterns). */
export async function readDockerignore(contextDir: string): Promise<string[]> {
  try {
    return parseDockerignore(await readFile(join(contextDir, '.dockerignore'), 'utf8'))
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return []
    throw error
  }
}
