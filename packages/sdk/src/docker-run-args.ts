/**
 * Scans the arguments a user gives after `--` for `docker run`: options, then the image, then the
 * container's own command and arguments. Only options *before* the image are docker's; whatever
 * follows the image belongs to the container (the reference scans those too — a bug we avoid).
 */

/** Long options of `docker run` that take no value (they may still be written `--opt=false`). */
const BOOLEAN_LONG = new Set([
  'rm',
  'init',
  'interactive',
  'privileged',
  'publish-all',
  'quiet',
  'read-only',
  'sig-proxy',
  'tty',
  'detach',
  'no-healthcheck',
  'oom-kill-disable',
  'disable-content-trust',
  'help',
  'use-api-socket',
])
/**
 * Long options of `docker run` that take a value (docker 20.10 to 28, hidden and platform-specific
 * ones included). Anything else before the image is not a docker run option: named, never guessed
 * at (`--bogus-opt img` would otherwise take the image for its value).
 */
const VALUE_LONG = new Set([
  'add-host',
  'annotation',
  'attach',
  'blkio-weight',
  'blkio-weight-device',
  'cap-add',
  'cap-drop',
  'cgroup-parent',
  'cgroupns',
  'cidfile',
  'cpu-count',
  'cpu-percent',
  'cpu-period',
  'cpu-quota',
  'cpu-rt-period',
  'cpu-rt-runtime',
  'cpu-shares',
  'cpus',
  'cpuset-cpus',
  'cpuset-mems',
  'credentialspec',
  'detach-keys',
  'device',
  'device-cgroup-rule',
  'device-read-bps',
  'device-read-iops',
  'device-write-bps',
  'device-write-iops',
  'dns',
  'dns-opt',
  'dns-option',
  'dns-search',
  'domainname',
  'entrypoint',
  'env',
  'env-file',
  'expose',
  'gpus',
  'group-add',
  'health-cmd',
  'health-interval',
  'health-retries',
  'health-start-interval',
  'health-start-period',
  'health-timeout',
  'hostname',
  'io-maxbandwidth',
  'io-maxiops',
  'ip',
  'ip6',
  'ipc',
  'isolation',
  'kernel-memory',
  'label',
  'label-file',
  'link',
  'link-local-ip',
  'log-driver',
  'log-opt',
  'mac-address',
  'memory',
  'memory-reservation',
  'memory-swap',
  'memory-swappiness',
  'mount',
  'name',
  'network',
  'network-alias',
  'oom-score-adj',
  'pid',
  'pids-limit',
  'platform',
  'publish',
  'pull',
  'restart',
  'runtime',
  'security-opt',
  'shm-size',
  'stop-signal',
  'stop-timeout',
  'storage-opt',
  'sysctl',
  'tmpfs',
  'ulimit',
  'user',
  'userns',
  'uts',
  'volume',
  'volume-driver',
  'volumes-from',
  'workdir',
])
/** The spellings docker (Go's strconv.ParseBool) accepts for a boolean option's value. */
const BOOLEAN_VALUES = new Set(['1', 't', 'T', 'TRUE', 'true', 'True', '0', 'f', 'F', 'FALSE', 'false', 'False'])
const FALSE_VALUES = new Set(['0', 'f', 'F', 'FALSE', 'false', 'False'])
/** Short options that take no value. */
const BOOLEAN_SHORT = new Set(['d', 'i', 't', 'P', 'q'])
/** Short options that take a value: -a attach, -c cpu-shares, -e env, -h hostname, -l label, -m memory, -p publish, -u user, -v volume, -w workdir. */
const VALUE_SHORT = new Set(['a', 'c', 'e', 'h', 'l', 'm', 'p', 'u', 'v', 'w'])
const SHORT_TO_LONG: Record<string, string> = {
  a: 'attach',
  c: 'cpu-shares',
  d: 'detach',
  e: 'env',
  h: 'hostname',
  i: 'interactive',
  l: 'label',
  m: 'memory',
  p: 'publish',
  P: 'publish-all',
  q: 'quiet',
  t: 'tty',
  u: 'user',
  v: 'volume',
  w: 'workdir',
}

/** Old spellings docker still accepts (hidden), reported under the current name. */
const LONG_ALIASES: Record<string, string> = {net: 'network', 'net-alias': 'network-alias'}

/** One option as docker will see it. */
export interface ScannedOption {
  /** Long name without dashes (`-e` is reported as `env`). */
  name: string
  /** The value: the given one for value options; 'true'/'false' for booleans. */
  value: string
  /** Index in the scanned argument list where the option starts. */
  index: number
}

export interface DockerRunScan {
  /** Options before the image, in order. */
  options: ScannedOption[]
  /** Index of the image in the argument list, or -1 when there is none. */
  imageIndex: number
  image?: string
  /** Arguments before the image (docker's options), verbatim. */
  optionArgs: string[]
  /** The container's command and arguments, verbatim. */
  containerArgs: string[]
  /** Problems that make the arguments unusable, in words a user understands. */
  errors: string[]
}

export function scanDockerRunArgs(args: readonly string[]): DockerRunScan {
  const options: ScannedOption[] = []
  const errors: string[] = []
  let i = 0
  while (i < args.length) {
    const arg = args[i]
    if (arg === '--') {
      // end of docker's options: the next argument is the image
      i++
      break
    }
    if (arg.startsWith('--')) {
      const eq = arg.indexOf('=')
      const spelled = eq === -1 ? arg.slice(2) : arg.slice(2, eq)
      const name = LONG_ALIASES[spelled] ?? spelled
      if (BOOLEAN_LONG.has(name)) {
        const value = eq === -1 ? 'true' : arg.slice(eq + 1)
        if (!BOOLEAN_VALUES.has(value)) errors.push(`docker run option --${spelled} takes true or false, not "${value}"`)
        options.push({name, value, index: i})
        i++
      } else if (!VALUE_LONG.has(name)) {
        errors.push(`unknown docker run option --${spelled}`)
        i++
      } else if (eq !== -1) {
        options.push({name, value: arg.slice(eq + 1), index: i})
        i++
      } else if (i + 1 < args.length) {
        options.push({name, value: args[i + 1], index: i})
        i += 2
      } else {
        errors.push(`docker run option --${spelled} needs a value`)
        options.push({name, value: '', index: i})
        i++
      }
      continue
    }
    if (arg.startsWith('-') && arg.length > 1) {
      // a cluster of short options, e.g. -it, -e=X, -eX, -ite X
      let consumedNext = false
      for (let k = 1; k < arg.length; k++) {
        const letter = arg[k]
        const name = SHORT_TO_LONG[letter] ?? letter
        if (BOOLEAN_SHORT.has(letter)) {
          if (arg[k + 1] === '=') {
            // -d=false, -it=false: the rest of the cluster is this flag's value (docker accepts it)
            const value = arg.slice(k + 2)
            if (!BOOLEAN_VALUES.has(value)) errors.push(`docker run option -${letter} takes true or false, not "${value}"`)
            options.push({name, value, index: i})
            break
          }
          options.push({name, value: 'true', index: i})
          continue
        }
        if (VALUE_SHORT.has(letter)) {
          let rest = arg.slice(k + 1)
          if (rest.startsWith('=')) rest = rest.slice(1)
          if (rest.length > 0 || arg[k + 1] === '=') {
            options.push({name, value: rest, index: i})
          } else if (i + 1 < args.length) {
            options.push({name, value: args[i + 1], index: i})
            consumedNext = true
          } else {
            errors.push(`docker run option -${letter} needs a value`)
            options.push({name, value: '', index: i})
          }
          break
        }
        errors.push(`unknown docker run option -${letter} in ${arg}`)
        break
      }
      i += consumedNext ? 2 : 1
      continue
    }
    break // the first argument that is not an option is the image
  }
  const imageIndex = i < args.length ? i : -1
  return {
    options,
    imageIndex,
    image: imageIndex === -1 ? undefined : args[imageIndex],
    optionArgs: args.slice(0, imageIndex === -1 ? args.length : imageIndex),
    containerArgs: imageIndex === -1 ? [] : args.slice(imageIndex + 1),
    errors,
  }
}

/** The last value given for an option (docker's rule for single-valued options), if any. */
export function lastOption(scan: DockerRunScan, name: string): ScannedOption | undefined {
  for (let k = scan.options.length - 1; k >= 0; k--) if (scan.options[k].name === name) return scan.options[k]
  return undefined
}

/** Every value given for a repeatable option. */
export function allOptions(scan: DockerRunScan, name: string): ScannedOption[] {
  return scan.options.filter((o) => o.name === name)
}

/** Whether a boolean option is on (`--rm`, `--rm=true`), off (`--rm=false`), or not given. */
export function booleanOption(scan: DockerRunScan, name: string): boolean | undefined {
  const option = lastOption(scan, name)
  if (!option) return undefined
  return !FALSE_VALUES.has(option.value)
}

/** Docker's rule for container names. */
export const CONTAINER_NAME_PATTERN = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/
