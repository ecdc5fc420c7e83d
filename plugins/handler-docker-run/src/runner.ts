import {type ChildProcess, spawn} from 'node:child_process'
import {readFile} from 'node:fs/promises'
import {join, resolve} from 'node:path'
import type Dockerode from 'dockerode'
import {
  dockerMessage,
  dockerStatusCode,
  type HandlerIO,
  type InterceptSession,
  type Logger,
  type RunExtras,
  SubprocessError,
  sleep,
  waitUntilGone,
  debugLog,
  swallow,
} from '@tp/sdk'
import {composeDockerRun} from './compose.js'
import {handlerEnvironment, removeEnvDir, splitEnvironment, writeEnvFile} from './environment.js'
import type {ResolvedImage} from './image.js'
import type {DockerRunPlan} from './plan.js'

const trace = debugLog('tp:plugin:handler-docker-run')

/** Docker's grace period before it kills the container (the reference's 2 s). */
const STOP_GRACE_SECONDS = 2
/** How long stop() waits for the container to appear (docker run may still be creating it). */
const STOP_FIND_TIMEOUT_MS = 10_000
/** How long stop() waits for `docker run` to return once the container is stopped. */
const CLIENT_EXIT_TIMEOUT_MS = 5_000
const STDERR_TAIL_BYTES = 8 * 1024
const STOP_POLL_MS = 250
const REMOVE_TIMEOUT_MS = 10_000

export interface RunnerOptions {
  docker: Dockerode
  log: Logger
  cacheDir: string
  /** Directory `docker run` runs in: relative paths in the user's options (-v ./x:/y, --env-file) resolve there. */
  cwd: string
  /** The docker CLI to run (tests may point at a wrapper). */
  dockerCommand?: string
}

/** Keeps the last bytes of a stream that is also passed through. */
class Tail {
  private text = ''
  push(chunk: Buffer | string): void {
    this.text = (this.text + chunk.toString()).slice(-STDERR_TAIL_BYTES)
  }
  toString(): string {
    return this.text
  }
}

/** What docker prints when the daemon could not start a created container (as opposed to the container's own output). */
const DOCKER_FAILURE = /^docker: Error response from daemon/m

/**
 * One `docker run` in the foreground: the env file, the composed arguments, stdin/TTY passed
 * through, docker's stderr passed through and its tail kept for errors, and stop() that ends the
 * container within a few seconds from any state.
 */
export class DockerRunner {
  private state: 'prepared' | 'running' | 'done' = 'prepared'
  private stopRequested?: string
  private subprocess?: ChildProcess
  private exited?: Promise<unknown>
  private containerName?: string
  private cidFile?: string
  private labels?: {intercept: string; connection: string}
  private stopping?: Promise<void>

  constructor(
    private readonly plan: DockerRunPlan,
    private readonly image: ResolvedImage,
    private readonly options: RunnerOptions,
  ) {}

  async run(session: InterceptSession, io: HandlerIO, extras: RunExtras): Promise<number> {
    if (this.state !== 'prepared') throw new Error('this docker run handler has already run')
    const {log} = this.options
    if (this.stopRequested) {
      this.state = 'done'
      log.debug(`not starting the handler container: ${this.stopRequested}`)
      return 0
    }
    this.state = 'running'
    const split = splitEnvironment(handlerEnvironment(session))
    for (const {key, reason} of split.dropped) log.warn(`variable ${key} is not passed to the handler container: ${reason}`)
    const envDir = await writeEnvFile(this.options.cacheDir, split.file)
    const ownCidFile = join(envDir.dir, 'container.id')
    let cid: string | undefined
    let tpRemoves = false
    try {
      const composed = composeDockerRun({
        plan: this.plan,
        session,
        extras,
        envFile: envDir.file,
        clientEnvKeys: Object.keys(split.client),
        image: this.image.id,
        cidFile: ownCidFile,
      })
      this.containerName = composed.name
      this.cidFile = this.plan.cidFile ? resolve(this.options.cwd, this.plan.cidFile) : ownCidFile
      this.labels = {intercept: session.name, connection: session.daemon.connection}
      tpRemoves = composed.tpRemoves
      log.debug(`docker ${composed.args.join(' ')}`)
      const stderrTail = new Tail()
      const inheritStdin = io.stdin === process.stdin
      const inheritStdout = io.stdout === process.stdout
      // node's own spawn, not execa: loading execa (~280 KB) came before every handler's start
      const subprocess = spawn(this.options.dockerCommand ?? 'docker', composed.args, {
        cwd: this.options.cwd,
        env: {...process.env, ...split.client},
        // the process's own terminal is handed over as it is, so `-it` gets a real TTY
        stdio: [inheritStdin ? 'inherit' : 'pipe', inheritStdout ? 'inherit' : 'pipe', 'pipe'],
        // its own process group: a Ctrl-C meant for tp must not stop the container before the
        // traffic is given back (tp stops it then); only an interactive run on a terminal keeps
        // the terminal's foreground group, which it needs to read from it
        detached: !(inheritStdin && process.stdin.isTTY === true && (this.plan.interactive || this.plan.tty)),
      })
      this.subprocess = subprocess
      const result = new Promise<{code: number | null; signal: NodeJS.Signals | null; error?: Error}>((done) => {
        let failed: Error | undefined
        subprocess.once('error', (error) => {
          failed = error
          // never started (ENOENT, EACCES): no 'exit' follows
          if (subprocess.pid === undefined) done({code: null, signal: null, error})
        })
        subprocess.once('close', (code, signal) => done({code, signal, error: failed}))
      })
      if (!inheritStdin && subprocess.stdin) {
        subprocess.stdin.on('error', () => {}) // docker may exit without reading its input
        io.stdin.pipe(subprocess.stdin)
      }
      if (!inheritStdout) subprocess.stdout?.on('data', (chunk: Buffer) => io.stdout.write(chunk))
      subprocess.stderr?.on('data', (chunk: Buffer) => {
        stderrTail.push(chunk)
        io.stderr.write(chunk)
      })
      this.exited = result.then(() => undefined)
      if (this.stopRequested) void this.stop(this.stopRequested)
      const ended = await result
      if (!inheritStdin && subprocess.stdin) io.stdin.unpipe(subprocess.stdin)
      if (ended.code === null && !ended.signal) {
        // docker could not be run at all (not installed, not executable)
        const message = ended.error?.message ?? 'it did not start'
        throw new SubprocessError('docker run', undefined, message, `could not run the docker CLI: ${message}`)
      }
      const code = ended.code ?? 128 + signalNumber(ended.signal!)
      cid = await readCid(this.cidFile)
      const dockerSaid = stderrTail.toString()
      const neverCreated = cid === undefined && code !== 0
      const couldNotStart = cid !== undefined && [125, 126, 127].includes(code) && DOCKER_FAILURE.test(dockerSaid)
      if (!this.stopRequested && (neverCreated || couldNotStart)) {
        const error = new SubprocessError(
          'docker run',
          code,
          dockerSaid.trim(),
          neverCreated
            ? `docker run failed before the handler container was created (exit code ${code})`
            : `the handler container ${composed.name} was created but could not start (docker run exited with ${code})`,
        )
        error.exitCode = code
        throw error
      }
      if (this.stopRequested) log.debug(`handler container ${composed.name} ended with ${code} after: ${this.stopRequested}`)
      return code
    } finally {
      this.state = 'done'
      // only what docker run itself created (its id): a container of the same name may be another's
      if (tpRemoves) await this.removeLeftover(cid)
      await removeEnvDir(envDir.dir)
    }
  }

  /**
   * With `--rm`, docker removes the container itself once it has stopped; if docker run was killed
   * before it could, tp does. Waits until the container is really gone.
   */
  private async removeLeftover(idOrName: string | undefined): Promise<void> {
    if (!idOrName) return
    const container = this.options.docker.getContainer(idOrName)
    const info = await container.inspect().catch(swallow(trace, `inspecting container ${idOrName} before removing it`))
    if (info?.Config?.Labels?.['tp.managed'] !== 'true') return
    if (info.State?.Status !== 'removing') {
      await container.remove({force: true}).catch((error: unknown) => {
        if (![404, 409].includes(dockerStatusCode(error) ?? 0)) this.options.log.warn(`could not remove container ${idOrName}: ${dockerMessage(error)}`)
      })
    }
    // an engine that stops answering (undefined) cannot say it is still there: nothing more to wait for
    const gone = await waitUntilGone(() => container.inspect(), {timeoutMs: REMOVE_TIMEOUT_MS}).catch(
      swallow(trace, `waiting until container ${idOrName} is gone`),
    )
    if (gone === false) this.options.log.warn(`container ${idOrName} is still being removed`)
  }

  /**
   * The id of the container this run created: from the cid file once docker wrote it, else the
   * container of that name if it carries this intercept's labels (a container of the same name
   * may be somebody else's). Undefined while it does not exist yet.
   */
  private async ownContainer(): Promise<string | undefined> {
    const cid = this.cidFile ? await readCid(this.cidFile) : undefined
    if (cid) return cid
    const info = await this.options.docker
      .getContainer(this.containerName!)
      .inspect()
      .catch(swallow(trace, `looking for container ${this.containerName}`))
    const labels = info?.Config?.Labels ?? {}
    if (info && labels['tp.intercept'] === this.labels?.intercept && labels['tp.connection'] === this.labels?.connection) return info.Id
    return undefined
  }

  async stop(reason: string): Promise<void> {
    this.stopRequested ??= reason
    if (this.state !== 'running' || !this.subprocess) return
    this.stopping ??= this.stopContainer(reason)
    return this.stopping
  }

  /**
   * Stops the container this run created, until docker run returns. The container may not exist yet, or be
   * created but not started (a stop then does nothing and docker run starts it a moment later),
   * so this repeats until docker run has returned, then kills what is left.
   */
  private async stopContainer(reason: string): Promise<void> {
    const {docker, log} = this.options
    const name = this.containerName!
    const exited = this.exited!.then(() => true)
    log.debug(`stopping handler container ${name}: ${reason}`)
    const deadline = Date.now() + STOP_FIND_TIMEOUT_MS
    for (;;) {
      const target = await this.ownContainer()
      if (target) {
        try {
          await docker.getContainer(target).stop({t: STOP_GRACE_SECONDS})
        } catch (error) {
          const code = dockerStatusCode(error)
          // 404: already removed; 304: not running (created and not started yet, or already stopped)
          if (code !== 404 && code !== 304) log.warn(`could not stop container ${name}: ${(error as Error).message}`)
        }
      }
      if (await Promise.race([exited, sleep(STOP_POLL_MS).then(() => false)])) return
      if (Date.now() > deadline) break
    }
    const clientExited = await Promise.race([exited, sleep(CLIENT_EXIT_TIMEOUT_MS).then(() => false)])
    if (clientExited) return
    log.warn('docker run did not return after the container was stopped; killing it')
    const target = await this.ownContainer()
    if (target)
      await docker
        .getContainer(target)
        .kill()
        .catch(swallow(trace, `killing container ${target}`))
    this.subprocess?.kill('SIGKILL')
    await exited
  }
}

/** Reads the id docker wrote once it created the container. */
async function readCid(file: string): Promise<string | undefined> {
  try {
    const text = (await readFile(file, 'utf8')).trim()
    return text === '' ? undefined : text
  } catch {
    return undefined
  }
}

function signalNumber(signal: string): number {
  const numbers: Record<string, number> = {SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGKILL: 9, SIGTERM: 15, SIGPIPE: 13}
  return numbers[signal] ?? 0
}
