import {
  CONTAINER_NAME_PATTERN,
  type DockerRunScan,
  type PlacementCapabilities,
  type ScannedOption,
  UserError,
  booleanOption,
  lastOption,
  scanDockerRunArgs,
} from '@tp/sdk'
import {WRITE_IT_AS} from './syntax.js'

/**
 * What the user asked `docker run` to do, checked before anything exists. Pure: no Docker calls.
 */
export interface DockerRunPlan {
  /** The image argument as written (after the IMAGE substitution, when there was one). */
  image: string
  /** Options before the image, verbatim (the user's; they go after tp's own). */
  optionArgs: string[]
  /** The container's command and arguments, verbatim. */
  containerArgs: string[]
  /** The user's `--name`, if given before the image. */
  name?: string
  /** The user's `--rm` setting, if given before the image (true for `--rm`/`--rm=true`). */
  rm?: boolean
  /** Whether the user asked for a TTY (`-t`): the docker client then needs the terminal itself. */
  tty: boolean
  interactive: boolean
  /** The user's `--cidfile`, if given (docker then writes the id there, not where tp asks). */
  cidFile?: string
  /** `--docker-mount <dir>`: where the volumes' local directory is bound in the container. */
  dockerMount?: string
}

export interface PlanOptions {
  /** What works where the container will run (from the connection's placement). */
  capabilities: PlacementCapabilities
  /** The port the handler will listen on (for messages). */
  localPort: number
  /** Replaces the image argument (docker-build passes the built image's id for `IMAGE`). */
  image?: string
}

/** Why an option cannot be used when the container joins the daemon's network namespace, and what to do. */
function containerNetworkRefusal(option: ScannedOption, written: string, localPort: number): UserError | undefined {
  const shared = "the handler container shares the daemon's network namespace (--network container:…)"
  switch (option.name) {
    case 'publish':
      return new UserError(
        `${written} cannot work: ${shared}, where Docker cannot publish ports`,
        `remove ${written}: the intercepted traffic reaches your container on port ${localPort} without publishing`,
      )
    case 'publish-all':
      if (option.value === 'false' || /^(0|f|false)$/i.test(option.value)) return undefined
      return new UserError(
        `${written} cannot work: ${shared}, where Docker cannot publish ports`,
        `remove ${written}: the intercepted traffic reaches your container on port ${localPort} without publishing`,
      )
    case 'expose':
      return new UserError(
        `${written} cannot work: ${shared}, where Docker cannot expose ports`,
        `remove ${written}: the container listens on port ${localPort} in that namespace as it is`,
      )
    case 'network':
    case 'net':
      return new UserError(
        `${written} cannot be used: ${shared}, which is how it reaches the cluster; it cannot join another network too`,
        `remove ${written}: the cluster's services are reachable by name from inside the container`,
      )
    case 'dns':
    case 'dns-search':
    case 'dns-option':
    case 'dns-opt':
      return new UserError(
        `${written} cannot be used: ${shared}, whose name resolution already answers the cluster's names (Docker refuses --dns there and ignores the other DNS options)`,
        `remove ${written}`,
      )
    case 'hostname':
      return new UserError(`${written} cannot be used: ${shared}, and with it the daemon's hostname`, `remove ${written}`)
    case 'add-host':
      return new UserError(
        `${written} cannot be used: ${shared}, and Docker cannot add host entries there`,
        `remove ${written}; the cluster's names resolve through the daemon`,
      )
    case 'mac-address':
    case 'link':
    case 'network-alias':
    case 'net-alias':
    case 'ip':
    case 'ip6':
    case 'link-local-ip':
      return new UserError(`${written} cannot be used: ${shared}, which has its own addresses and links`, `remove ${written}`)
    default:
      return undefined
  }
}

/** How the user wrote an option, for messages (`-p 8080:80`, `--network=x`). */
function written(args: readonly string[], option: ScannedOption): string {
  const arg = args[option.index]
  if (arg.includes('=') || (!arg.startsWith('--') && arg.length > 2)) return arg
  const next = args[option.index + 1]
  const takesNext = next !== undefined && option.value === next && !['true', 'false'].includes(option.value)
  return takesNext ? `${arg} ${next}` : arg
}

/** Checks the arguments after `--` and says what the user asked for, or why it cannot work. */
export function planDockerRun(args: readonly string[], options: PlanOptions): DockerRunPlan {
  if (args.length === 0) {
    throw new UserError('--docker-run needs the image to run after --', WRITE_IT_AS)
  }
  const scan: DockerRunScan = scanDockerRunArgs(args)
  if (scan.errors.length > 0) {
    const unknown = scan.errors.some((e) => e.startsWith('unknown docker run option'))
    throw new UserError(
      `the docker run arguments after -- are not usable: ${scan.errors.join('; ')}`,
      unknown ? `\`docker run --help\` lists its options; they go before the image. ${WRITE_IT_AS}` : WRITE_IT_AS,
    )
  }
  if (scan.image === undefined) {
    throw new UserError(`no image found after -- (only docker run options: ${args.join(' ')})`, WRITE_IT_AS)
  }
  if (booleanOption(scan, 'detach')) {
    throw new UserError(
      '-d/--detach cannot be used: the handler runs in the foreground for as long as the intercept lasts, and the intercept ends when it exits',
      'remove -d/--detach from the docker run options',
    )
  }
  const nameOption = lastOption(scan, 'name')
  if (nameOption) {
    if (nameOption.value === '')
      throw new UserError('--name needs a container name', 'write --name <name>, or leave it out and tp names the container intercept-<intercept>-<port>')
    if (!CONTAINER_NAME_PATTERN.test(nameOption.value)) {
      throw new UserError(
        `"${nameOption.value}" is not a valid container name`,
        'a container name is letters, digits, "_", "." and "-", starting with a letter or digit',
      )
    }
  }
  const rm = booleanOption(scan, 'rm')
  if (options.capabilities.sharesDaemonNetwork) {
    if (rm === false) {
      throw new UserError(
        '--rm=false cannot be used with a daemon whose network the container shares: the remote volumes mounted into the container cannot be removed while the container exists',
        'remove --rm=false; the container is removed when it stops',
      )
    }
    for (const option of scan.options) {
      const refusal = containerNetworkRefusal(option, written(args, option), options.localPort)
      if (refusal) throw refusal
    }
  }
  return {
    image: options.image ?? scan.image,
    optionArgs: scan.optionArgs,
    containerArgs: scan.containerArgs,
    name: nameOption?.value,
    rm,
    tty: booleanOption(scan, 'tty') === true,
    interactive: booleanOption(scan, 'interactive') === true,
    cidFile: lastOption(scan, 'cidfile')?.value,
  }
}
