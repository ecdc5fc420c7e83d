import {stat} from 'node:fs/promises'
import {basename, dirname, isAbsolute, relative, resolve, sep} from 'node:path'
import {UserError, debugLog, swallow} from '@tp/sdk'

const trace = debugLog('tp:plugin:handler-docker-build')

/** A build context on disk: the directory sent to Docker and the Dockerfile inside it. */
export interface BuildContext {
  /** Absolute path of the context directory. */
  dir: string
  /** Dockerfile path relative to `dir`, with forward slashes (what the Engine API expects). */
  dockerfile: string
}

async function statOrUndefined(path: string) {
  return stat(path).catch(swallow(trace, `stat of ${path}`))
}

function toPosix(path: string): string {
  return path.split(sep).join('/')
}

/**
 * Resolves `--docker-build <context>` (relative to cwd) and the optional `file=` option (relative
 * to the context). A context that is a file means "this Dockerfile, with its folder as context".
 */
export async function resolveBuildContext(contextArg: string, cwd: string, file?: string): Promise<BuildContext> {
  if (!contextArg)
    throw new UserError('--docker-build needs a build context', 'write --docker-build <directory with a Dockerfile> (or the path of a Dockerfile)')
  const given = resolve(cwd, contextArg)
  const info = await statOrUndefined(given)
  if (!info) {
    throw new UserError(
      `the build context ${contextArg} was not found${given === contextArg ? '' : ` (looked for ${given})`}`,
      'give --docker-build a directory that holds a Dockerfile, or the path of a Dockerfile',
    )
  }
  if (info.isFile()) {
    if (file !== undefined) {
      throw new UserError(
        `--docker-build ${contextArg} is a Dockerfile, and --docker-build-opt file=${file} names another one`,
        'give either a Dockerfile as the context, or a directory with --docker-build-opt file=<Dockerfile>',
      )
    }
    return {dir: dirname(given), dockerfile: basename(given)}
  }
  if (!info.isDirectory())
    throw new UserError(`the build context ${contextArg} is neither a directory nor a file`, 'give --docker-build a directory or the path of a Dockerfile')

  const dockerfilePath = resolve(given, file ?? 'Dockerfile')
  const inside = relative(given, dockerfilePath)
  if (inside === '' || inside.startsWith('..') || isAbsolute(inside)) {
    throw new UserError(
      `the Dockerfile ${file} is outside the build context ${given}`,
      'tp sends only the context to Docker: move the Dockerfile into the context, or pick a context that contains it (file= is relative to the context)',
    )
  }
  const dockerfileInfo = await statOrUndefined(dockerfilePath)
  if (!dockerfileInfo?.isFile()) {
    throw new UserError(
      `no Dockerfile at ${dockerfilePath}`,
      file === undefined
        ? `add a Dockerfile to ${given}, or name it with --docker-build-opt file=<path relative to the context>`
        : 'file= is relative to the build context; check the path',
    )
  }
  return {dir: given, dockerfile: toPosix(inside)}
}
