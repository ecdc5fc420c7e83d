import {UserError} from '@tp/sdk'

/** What `--docker-build-opt key=value` options become for the Engine API's `POST /build`. */
export interface BuildOptions {
  /** `t`: repository:tag names to apply (repeatable). */
  tags: string[]
  /** Dockerfile path as given (`file=`/`dockerfile=`), resolved against the context later. */
  file?: string
  buildArgs: Record<string, string>
  target?: string
  labels: Record<string, string>
  platform?: string
  noCache: boolean
  pull: boolean
}

/** The keys `--docker-build-opt` accepts, with the value each expects (for help and errors). */
export const SUPPORTED_BUILD_OPTIONS: Record<string, string> = {
  tag: 'name[:tag] (repeatable)',
  file: 'path of the Dockerfile, relative to the context',
  dockerfile: 'same as file',
  'build-arg': 'NAME=value (repeatable)',
  target: 'stage name',
  label: 'key=value (repeatable)',
  platform: 'os/arch[/variant]',
  'no-cache': 'true|false (a bare key means true)',
  pull: 'true|false (a bare key means true)',
}

const TRUE = new Set(['1', 't', 'T', 'true', 'TRUE', 'True'])
const FALSE = new Set(['0', 'f', 'F', 'false', 'FALSE', 'False'])

function supportedKeysList(): string {
  return Object.keys(SUPPORTED_BUILD_OPTIONS).join(', ')
}

function boolValue(key: string, value: string | undefined): boolean {
  if (value === undefined || TRUE.has(value)) return true
  if (FALSE.has(value)) return false
  throw new UserError(`--docker-build-opt ${key}=${value}: ${key} takes true or false`, `write --docker-build-opt ${key} (or ${key}=false)`)
}

function requireValue(key: string, value: string | undefined): string {
  if (value === undefined || value === '') {
    throw new UserError(`--docker-build-opt ${key} needs a value`, `write --docker-build-opt ${key}=<${SUPPORTED_BUILD_OPTIONS[key]}>`)
  }
  return value
}

/** `NAME=value` (or a bare `NAME`, which docker takes from the environment for build args). */
function keyValue(key: string, value: string, env: NodeJS.ProcessEnv): [string, string] {
  const eq = value.indexOf('=')
  if (eq === 0) throw new UserError(`--docker-build-opt ${key}=${value}: the name before "=" is empty`, `write --docker-build-opt ${key}=NAME=value`)
  if (eq === -1) {
    // docker build --build-arg NAME takes NAME's value from the environment; a label needs a value
    const fromEnv = key === 'build-arg' ? env[value] : undefined
    if (fromEnv === undefined) throw new UserError(`--docker-build-opt ${key}=${value} has no value`, `write --docker-build-opt ${key}=${value}=<value>`)
    return [value, fromEnv]
  }
  return [value.slice(0, eq), value.slice(eq + 1)]
}

/**
 * Parses the `--docker-build-opt` values. Keys are `docker build` flags without dashes; a bare key
 * is a boolean set to true. Unknown keys are rejected with the list of supported ones.
 */
export function parseBuildOptions(raw: readonly string[], env: NodeJS.ProcessEnv = process.env): BuildOptions {
  const options: BuildOptions = {tags: [], buildArgs: {}, labels: {}, noCache: false, pull: false}
  for (const item of raw) {
    const eq = item.indexOf('=')
    const key = (eq === -1 ? item : item.slice(0, eq)).replace(/^--?/, '').trim()
    const value = eq === -1 ? undefined : item.slice(eq + 1)
    switch (key) {
      case 'tag':
        options.tags.push(requireValue('tag', value))
        break
      case 'file':
      case 'dockerfile':
        options.file = requireValue(key === 'dockerfile' ? 'dockerfile' : 'file', value)
        break
      case 'build-arg': {
        const [name, v] = keyValue(key, requireValue(key, value), env)
        options.buildArgs[name] = v
        break
      }
      case 'target':
        options.target = requireValue(key, value)
        break
      case 'label': {
        const [name, v] = keyValue(key, requireValue(key, value), env)
        options.labels[name] = v
        break
      }
      case 'platform':
        options.platform = requireValue(key, value)
        break
      case 'no-cache':
        options.noCache = boolValue(key, value)
        break
      case 'pull':
        options.pull = boolValue(key, value)
        break
      default:
        throw new UserError(
          key === '' ? `--docker-build-opt "${item}" has no key` : `--docker-build-opt ${key} is not a build option tp knows`,
          `use one of: ${supportedKeysList()} (as --docker-build-opt key=value)`,
        )
    }
  }
  return options
}
