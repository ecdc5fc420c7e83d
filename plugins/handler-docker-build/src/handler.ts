import Dockerode from 'dockerode'
import {type Factory, type Handler, type HandlerRequest, type PluginContext, type PreparedHandler, UserError, booleanOption, scanDockerRunArgs} from '@tp/sdk'
import {prepareDockerRun} from '@tp/plugin-handler-docker-run'
import {buildImage, buildSummary} from './build.js'
import {resolveBuildContext} from './context.js'
import {parseBuildOptions} from './options.js'

/** The word that stands for the built image in the arguments after `--`. */
export const IMAGE_PLACEHOLDER = 'IMAGE'

const SYNTAX = 'tp intercept <workload> --port <port> --docker-build <context> [--docker-build-opt key=value]... -- [docker run options] IMAGE [command] [args]'

/** Checks the arguments after `--` before anything is built. */
export function checkRunArgs(args: readonly string[]): void {
  if (args.length === 0) {
    throw new UserError('--docker-build needs the docker run arguments after --, with the word IMAGE where the image goes', `write: ${SYNTAX}`)
  }
  const scan = scanDockerRunArgs(args)
  if (scan.errors.length > 0) throw new UserError(`the docker run arguments after -- are not usable: ${scan.errors.join('; ')}`, `write: ${SYNTAX}`)
  if (scan.image !== IMAGE_PLACEHOLDER) {
    const found = scan.image === undefined ? 'there is no image argument' : `the image argument is "${scan.image}"`
    throw new UserError(
      `with --docker-build, the image argument after -- must be the word IMAGE, but ${found}. ` +
        "IMAGE stands for the image tp builds from the context; tp replaces it with the built image's ID, " +
        'which does not exist yet when you type the command',
      `write: ${SYNTAX}`,
    )
  }
  if (booleanOption(scan, 'detach')) {
    throw new UserError(
      '-d/--detach cannot be used: the handler runs in the foreground for as long as the intercept lasts',
      'remove -d/--detach from the docker run options',
    )
  }
}

export interface DockerBuildHandlerOptions {
  docker?: Dockerode
  /** Where the build's output and summary go (stderr unless given). */
  progress?: NodeJS.WritableStream
}

export function createDockerBuildHandler(context: PluginContext, options: DockerBuildHandlerOptions = {}): Handler {
  const docker = options.docker ?? new Dockerode()
  const progress = options.progress ?? process.stderr
  return {
    async prepare(request: HandlerRequest): Promise<PreparedHandler> {
      const contextArg = request.flags['docker-build']
      if (typeof contextArg !== 'string' || contextArg === '') {
        throw new UserError('--docker-build needs a build context', `write: ${SYNTAX}`)
      }
      checkRunArgs(request.args)
      const rawOptions = request.flags['docker-build-opt']
      const buildOptions = parseBuildOptions(Array.isArray(rawOptions) ? rawOptions.map(String) : typeof rawOptions === 'string' ? [rawOptions] : [])
      const buildContext = await resolveBuildContext(contextArg, request.cwd, buildOptions.file)

      context.log.debug(`building ${buildContext.dockerfile} in ${buildContext.dir}`)
      const built = await buildImage(docker, {
        context: buildContext,
        options: buildOptions,
        onProgress: (line) => progress.write(`${line}\n`),
      })
      progress.write(`${buildSummary(built)}\n`)

      const run = await prepareDockerRun(request, {image: built.imageId, docker, context})
      const where = built.tags[0] ?? built.imageId.replace(/^sha256:/, '').slice(0, 12)
      return {
        describe: `${run.describe} — built from ${contextArg} as ${where}`,
        wantsVolumes: run.wantsVolumes,
        run: (session, io, extras) => run.run(session, io, extras),
        stop: (reason) => run.stop(reason),
        // the built image is the user's: it stays, like an image `docker build` made
        dispose: async () => run.dispose?.(),
      }
    },
  }
}

const factory: Factory<Handler> = (context) => createDockerBuildHandler(context)
export default factory
