import {type ChildProcess, spawn} from 'node:child_process'
import {constants} from 'node:fs'
import {access, stat} from 'node:fs/promises'
import {delimiter, isAbsolute, join, resolve} from 'node:path'
import {
  type Factory,
  type Handler,
  type HandlerIO,
  type HandlerRequest,
  type InterceptSession,
  type PlacementCapabilities,
  type PreparedHandler,
  type RunExtras,
  SubprocessError,
  UserError,
} from '@tp/sdk'

/** How long the command gets to exit after SIGTERM before it is killed. */
const STOP_GRACE_MS = 2000

async function executable(path: string): Promise<boolean> {
  try {
    await access(path, constants.X_OK)
    return (await stat(path)).isFile()
  } catch {
    return false
  }
}

/** The command's path: as given when it has a slash (relative to cwd), else the first match on PATH. */
export async function findCommand(command: string, cwd: string, path = process.env.PATH ?? ''): Promise<string | undefined> {
  if (command.includes('/')) {
    const full = isAbsolute(command) ? command : resolve(cwd, command)
    return (await executable(full)) ? full : undefined
  }
  for (const dir of path.split(delimiter).filter(Boolean)) {
    const full = join(dir, command)
    if (await executable(full)) return full
  }
  return undefined
}

/** What the placement cannot give a process on this machine, said before it runs. */
export function processNotes(capabilities: PlacementCapabilities, localPort: number): string[] {
  if (capabilities.hostReachesCluster) return []
  return [
    `This daemon runs in a container, so a process on this machine gets the traffic and the workload's environment, but not the cluster's names (http://<workload>/ does not resolve here) nor its volumes; for those, connect with a daemon on this host: \`tp connect\` (without --docker).`,
    `The daemon reaches your process through this machine's address on the namespace's network: listen on all addresses (0.0.0.0:${localPort}), not only on 127.0.0.1.`,
  ]
}

function signalNumber(signal: NodeJS.Signals): number {
  const numbers: Partial<Record<NodeJS.Signals, number>> = {SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGKILL: 9, SIGTERM: 15, SIGPIPE: 13}
  return numbers[signal] ?? 0
}

/** Runs the command after `--` in the foreground, with the intercepted environment and TP_ROOT. */
export class ProcessHandler implements PreparedHandler {
  /** Mounted on this machine only where it reaches the cluster (the notes say so otherwise). */
  readonly wantsVolumes: boolean
  readonly volumeForm = 'directory' as const
  readonly runsAs = 'process' as const
  readonly describe: string
  readonly notes: string[]
  private child?: ChildProcess
  private exited?: Promise<void>
  private stopRequested?: string

  constructor(
    private readonly path: string,
    private readonly args: string[],
    private readonly request: HandlerRequest,
  ) {
    this.describe = [request.args[0], ...args].join(' ')
    this.notes = processNotes(request.capabilities, request.localPort)
    this.wantsVolumes = request.capabilities.hostReachesCluster
  }

  run(session: InterceptSession, io: HandlerIO, extras: RunExtras): Promise<number> {
    if (this.stopRequested) return Promise.resolve(0)
    // this machine's own variables (PATH, HOME, TERM…) stay; the workload's come on top (the
    // daemon left out its HOME, PATH and HOSTNAME). Values go in the environment, never in argv.
    const env: NodeJS.ProcessEnv = {...process.env, ...session.environment}
    if (extras.root) env.TP_ROOT = extras.root
    else delete env.TP_ROOT
    const inherit = io.stdin === process.stdin && io.stdout === process.stdout && io.stderr === process.stderr
    // its own process group, so that a Ctrl-C meant for tp does not stop it before the traffic is
    // given back (tp stops it then, forwarding the signal); on a terminal it stays in the
    // foreground group, which an interactive command needs to read from it
    const detached = !(inherit && process.stdin.isTTY === true)
    const child = spawn(this.path, this.args, {cwd: this.request.cwd, env, stdio: inherit ? 'inherit' : 'pipe', detached})
    this.child = child
    if (!inherit) {
      child.stdin?.on('error', () => undefined) // the command may exit without reading its input
      if (child.stdin) io.stdin.pipe(child.stdin)
      child.stdout?.on('data', (c: Buffer) => io.stdout.write(c))
      child.stderr?.on('data', (c: Buffer) => io.stderr.write(c))
    }
    const result = new Promise<number>((resolvePromise, reject) => {
      child.once('error', (error) => reject(new SubprocessError(this.describe, undefined, '', `could not run ${this.request.args[0]}: ${error.message}`)))
      child.once('exit', (code, signal) => resolvePromise(code ?? 128 + signalNumber(signal ?? 'SIGTERM')))
    })
    this.exited = result.then(
      () => undefined,
      () => undefined,
    )
    return result
  }

  async stop(reason: string): Promise<void> {
    this.stopRequested ??= reason
    const child = this.child
    if (!child || child.exitCode !== null || child.signalCode !== null) return
    child.kill('SIGTERM')
    let timer: NodeJS.Timeout | undefined
    const killed = new Promise<void>((resolvePromise) => {
      timer = setTimeout(() => {
        child.kill('SIGKILL')
        resolvePromise()
      }, STOP_GRACE_MS)
    })
    await Promise.race([this.exited, killed])
    clearTimeout(timer)
    await this.exited
  }
}

export function createProcessHandler(): Handler {
  return {
    async prepare(request: HandlerRequest): Promise<PreparedHandler> {
      const [command, ...args] = request.args
      if (!command)
        throw new UserError(
          'the command to run as the handler is missing after --',
          'e.g. `tp intercept <workload> --port 8000 -- python3 -m http.server 8000`',
        )
      const path = await findCommand(command, request.cwd)
      if (!path) {
        throw new UserError(
          `the command "${command}" was not found ${command.includes('/') ? `(or is not executable)` : 'on PATH'}`,
          'check its name, or give its path; to run a container instead, add --docker-run before --',
        )
      }
      return new ProcessHandler(path, args, request)
    },
  }
}

const factory: Factory<Handler> = () => createProcessHandler()
export default factory
