import type Dockerode from 'dockerode'
import {BugError, dockerMessage, dockerStatusCode, UserError, dockerUnreachable} from '@tp/sdk'
import type {BuildContext} from './context.js'
import {ignoreRules, readDockerignore} from './dockerignore.js'
import type {BuildOptions} from './options.js'
import {listContext, packContext} from './pack.js'

/** The one label tp adds to an image it builds: the image is the user's, not tp's to clean up. */
export const BUILT_BY_LABEL = {'tp.built-by': 'tp'} as const

export interface BuildRequest {
  context: BuildContext
  options: BuildOptions
  /** Each line of the build's own output, as it arrives (`Step 1/4 : FROM …`, RUN output, …). */
  onProgress?: (line: string) => void
}

export interface BuiltImage {
  /** Full image id, `sha256:…`. */
  imageId: string
  tags: string[]
  seconds: number
  /** Size of the tar stream sent to the engine. */
  contextBytes: number
  /** Number of files, directories and links sent. */
  contextEntries: number
}

/** One JSON message of the legacy builder's response stream. */
interface BuildEvent {
  stream?: string
  status?: string
  id?: string
  progress?: string
  aux?: {ID?: string}
  error?: string
  errorDetail?: {code?: number; message?: string}
}

/** Query parameters of `POST /build` (Engine API 1.41). */
function apiOptions(context: BuildContext, options: BuildOptions): Record<string, unknown> {
  const query: Record<string, unknown> = {
    dockerfile: context.dockerfile,
    t: options.tags,
    labels: {...options.labels, ...BUILT_BY_LABEL},
    rm: true,
    // remove intermediate containers even when a step fails, so a failed build leaves none
    forcerm: true,
  }
  if (Object.keys(options.buildArgs).length > 0) query.buildargs = options.buildArgs
  if (options.target) query.target = options.target
  if (options.platform) query.platform = options.platform
  if (options.noCache) query.nocache = true
  if (options.pull) query.pull = true
  return query
}

/** Splits the builder's text chunks into lines and remembers the step each line belongs to. */
class StepTracker {
  private partial = ''
  step?: string
  readonly lines: string[] = []
  constructor(private readonly onLine?: (line: string) => void) {}

  push(text: string): void {
    const parts = (this.partial + text).split('\n')
    this.partial = parts.pop() ?? ''
    for (const line of parts) this.line(line)
  }

  flush(): void {
    if (this.partial) this.line(this.partial)
    this.partial = ''
  }

  private line(raw: string): void {
    const line = raw.replace(/\r$/, '')
    if (/^Step \d+\/\d+ : /.test(line)) this.step = line
    this.lines.push(line)
    if (this.lines.length > 40) this.lines.shift()
    this.onLine?.(line)
  }
}

/** A file of the context that could not be read stops the build: say which, not "Docker failed". */
function packingError(context: BuildContext, error: Error | undefined): UserError | undefined {
  if (!error) return undefined
  return new UserError(
    `could not send the build context ${context.dir}: ${error.message}`,
    'make every file of the context readable, or list it in .dockerignore',
  )
}

/**
 * Builds an image through the Engine API: packs the context (honouring .dockerignore the way the
 * docker CLI does), streams it to `POST /build`, relays the builder's output line by line, and
 * returns the image id from the stream. Any error event fails the build, naming the Dockerfile step.
 */
export async function buildImage(docker: Dockerode, request: BuildRequest): Promise<BuiltImage> {
  const started = Date.now()
  const {context, options} = request
  const rules = ignoreRules(await readDockerignore(context.dir), context.dockerfile)
  const paths = await listContext(context.dir, rules)
  const packed = packContext(context.dir, paths)

  let response: NodeJS.ReadableStream
  try {
    response = await docker.buildImage(packed.stream as unknown as NodeJS.ReadableStream, apiOptions(context, options) as Dockerode.ImageBuildOptions)
  } catch (error) {
    packed.stream.destroy()
    const packFailure = packingError(context, packed.error())
    if (packFailure) throw packFailure
    if (dockerStatusCode(error) === undefined) throw dockerUnreachable(error) // no answer at all
    throw new UserError(`docker build of ${context.dir} was refused: ${dockerMessage(error)}`, 'check the build options and the Dockerfile')
  }

  const tracker = new StepTracker(request.onProgress)
  let imageId: string | undefined
  let shortId: string | undefined
  let failure: BuildEvent | undefined
  await new Promise<void>((resolve, reject) => {
    docker.modem.followProgress(
      response,
      (error: Error | null) => (error ? reject(error) : resolve()),
      (event: BuildEvent) => {
        if (event.stream !== undefined) {
          tracker.push(event.stream)
          const built = event.stream.match(/Successfully built ([0-9a-f]{12,64})/)
          if (built) shortId = built[1]
        } else if (event.status !== undefined) {
          tracker.push(`${event.id ? `${event.id}: ` : ''}${event.status}${event.progress ? ` ${event.progress}` : ''}\n`)
        }
        if (event.aux?.ID) imageId = event.aux.ID
        if (event.error !== undefined || event.errorDetail !== undefined) failure ??= event
      },
    )
  }).catch((error: unknown) => {
    throw (
      packingError(context, packed.error()) ??
      new UserError(
        `the connection to Docker broke during the build of ${context.dir}: ${dockerMessage(error)}`,
        'check that the Docker engine is running, then retry',
      )
    )
  })
  tracker.flush()

  const packFailure = packingError(context, packed.error())
  if (packFailure) throw packFailure
  if (failure) {
    const message = (failure.errorDetail?.message ?? failure.error ?? 'unknown error').trim()
    const where = tracker.step ? `at ${tracker.step}` : 'before its first step'
    throw new UserError(
      `docker build of ${context.dir} failed ${where}: ${message}`,
      `fix ${context.dockerfile} (the build output is above), then run the command again`,
    )
  }
  if (!imageId && shortId) imageId = (await docker.getImage(shortId).inspect()).Id
  if (!imageId) throw new BugError(`docker build of ${context.dir} ended without reporting an image id (last output: ${tracker.lines.slice(-3).join(' | ')})`)

  return {
    imageId,
    tags: options.tags,
    seconds: (Date.now() - started) / 1000,
    contextBytes: packed.bytes(),
    contextEntries: packed.entries,
  }
}

/** Decimal units, as the docker CLI prints the context size. */
function humanBytes(bytes: number): string {
  if (bytes < 1000) return `${bytes} B`
  if (bytes < 1_000_000) return `${(bytes / 1000).toFixed(1)} kB`
  return `${(bytes / 1_000_000).toFixed(1)} MB`
}

/** The one-line summary printed after a build. */
export function buildSummary(built: BuiltImage): string {
  const tags = built.tags.length > 0 ? `, tagged ${built.tags.join(', ')}` : ''
  return `built image ${built.imageId.replace(/^sha256:/, '').slice(0, 12)}${tags} in ${built.seconds.toFixed(1)} s (context sent: ${humanBytes(built.contextBytes)}, ${built.contextEntries} entries)`
}
