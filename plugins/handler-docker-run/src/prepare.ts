import {isAbsolute} from 'node:path'
import Dockerode from 'dockerode'
import {type HandlerRequest, type Logger, type PluginContext, type PreparedHandler, UserError, cacheDir as defaultCacheDir} from '@tp/sdk'
import {type PullImage, resolveImage} from './image.js'
import {planDockerRun} from './plan.js'
import {DockerRunner} from './runner.js'

export interface PrepareDockerRunOptions {
  /** Replaces the image argument (docker-build passes the built image for `IMAGE`). */
  image?: string
  docker?: Dockerode
  /** The plugin context: cache directory for the env file, and the logger. */
  context?: Pick<PluginContext, 'cacheDir' | 'log'>
  /** How a missing image is pulled (the docker CLI unless given). */
  pull?: PullImage
  /** The docker CLI to run. */
  dockerCommand?: string
  /** Whether the terminal run() will hand to docker is a TTY (default: this process's stdin). */
  stdinIsTTY?: boolean
}

const silent: Logger = {info: () => {}, warn: () => {}, debug: () => {}}

function shortId(id: string): string {
  return id.replace(/^sha256:/, '').slice(0, 12)
}

/**
 * Checks the `docker run` arguments and resolves the image (pulling it only if it is missing),
 * before the intercept exists. Creates nothing: the env file and the container come in run().
 */
export async function prepareDockerRun(request: HandlerRequest, options: PrepareDockerRunOptions = {}): Promise<PreparedHandler> {
  if (request.flags['docker-mount'] !== undefined && !request.capabilities.hostReachesCluster) {
    throw new UserError(
      "--docker-mount is for a daemon on this host; with this daemon the workload's volumes are mounted into the handler container by a volume plugin, at the same paths",
      'drop --docker-mount (use --mount=false to run without the volumes)',
    )
  }
  const dockerMount = request.flags['docker-mount'] as string | undefined
  if (dockerMount !== undefined && !isAbsolute(dockerMount)) {
    throw new UserError(
      `--docker-mount ${dockerMount} is not an absolute path`,
      'give the directory inside the container where the volumes go, e.g. --docker-mount /tp',
    )
  }
  const plan = planDockerRun(request.args, {capabilities: request.capabilities, localPort: request.localPort, image: options.image})
  if (plan.tty && plan.interactive && !(options.stdinIsTTY ?? process.stdin.isTTY === true)) {
    throw new UserError(
      '-it needs a terminal, but tp\'s input is not one (docker would fail with "the input device is not a TTY")',
      'run tp from a terminal, or drop -t (keep -i to pass input through a pipe)',
    )
  }
  const docker = options.docker ?? new Dockerode()
  const log = options.context?.log ?? silent
  const image = await resolveImage(docker, plan.image, {pull: options.pull, onPull: (ref) => log.info(`image ${ref} is not here; pulling it…`)})
  if (plan.name !== undefined) {
    const existing = await docker
      .getContainer(plan.name)
      .inspect()
      .catch(() => undefined)
    if (existing) {
      throw new UserError(
        `a container named ${plan.name} already exists (${existing.State?.Status ?? 'unknown state'})`,
        `remove it (docker rm -f ${plan.name}) or choose another --name`,
      )
    }
  }
  const runner = new DockerRunner({...plan, dockerMount}, image, {
    docker,
    log,
    cacheDir: options.context?.cacheDir ?? defaultCacheDir(),
    cwd: request.cwd,
    dockerCommand: options.dockerCommand,
  })
  const shown = image.ref === image.id ? shortId(image.id) : `${image.ref} (${shortId(image.id)})`
  return {
    describe: `docker run ${shown}${plan.containerArgs.length > 0 ? ` ${plan.containerArgs.join(' ')}` : ''}`,
    wantsVolumes: true,
    // --docker-mount: the volumes are mounted on this machine, and that directory bound into the container
    volumeForm: dockerMount === undefined ? 'docker-volumes' : 'directory',
    run: (session, io, extras) => runner.run(session, io, extras),
    stop: (reason) => runner.stop(reason),
  }
}
