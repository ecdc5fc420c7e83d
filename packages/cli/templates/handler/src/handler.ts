import {type ChildProcess, spawn} from 'node:child_process'
import {constants} from 'node:fs'
import {constants as os} from 'node:os'
import {access} from 'node:fs/promises'
import {delimiter, isAbsolute, join, resolve} from 'node:path'
import type {Factory, Handler, HandlerIO, HandlerRequest, InterceptSession, PreparedHandler, RunExtras} from '@tp/sdk'
import {UserError} from '@tp/sdk'

/** How long the command gets to exit after SIGTERM before it is killed. */
const STOP_GRACE_MS = 2000
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/

/** The command's path: as given when it has a slash (relative to cwd), else the first match on PATH. */
export async function findCommand(command: string, cwd: string, path = process.env.PATH ?? ''): Promise<string | undefined> {
  const candidates = command.includes('/') ? [isAbsolute(command) ? command : resolve(cwd, command)] : path.split(delimiter).map((dir) => join(dir, command))
  for (const candidate of candidates) {
    if (
      await access(candidate, constants.X_OK).then(
        () => true,
        () => false,
      )
    )
      return candidate
  }
  return undefined
}

/** Signals the command and every process it started (its process group). */
function signalGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  try {
    if (child.pid) process.kill(-child.pid, signal)
  } catch {
    // the group is gone already
  }
}

/** Runs one command in the foreground with the intercepted environment; its exit code is tp's. */
export class CommandHandler implements PreparedHandler {
  readonly runsAs = 'process' as const
  readonly volumeForm = 'directory' as const
  readonly wantsVolumes: boolean
  readonly describe: string
  readonly notes: string[] = []
  private child?: ChildProcess
  private stopped = false

  constructor(
    private readonly path: string,
    private readonly args: string[],
    private readonly portEnv: string,
    private readonly request: HandlerRequest,
  ) {
    this.describe = `${[path, ...args].join(' ')} (${portEnv}=${request.localPort})`
    // volumes are mounted on this machine only where it reaches the cluster (a daemon on this host)
    this.wantsVolumes = request.capabilities.hostReachesCluster
    if (!request.capabilities.hostReachesCluster) {
      this.notes.push(`the daemon reaches this command through this machine's address: listen on 0.0.0.0:${request.localPort}, not only on 127.0.0.1`)
    }
  }

  run(session: InterceptSession, io: HandlerIO, extras: RunExtras): Promise<number> {
    if (this.stopped) return Promise.resolve(0)
    // this machine's variables (PATH, HOME…) stay; the workload's come on top, then the port
    const env: NodeJS.ProcessEnv = {...process.env, ...session.environment, [this.portEnv]: String(session.ports.local)}
    if (extras.root) env.TP_ROOT = extras.root
    // a process group of its own: a Ctrl-C meant for tp does not stop it before tp has given the
    // traffic back (tp then calls stop()), and stop() reaches what it started (`npm start` → node)
    const child = spawn(this.path, this.args, {cwd: this.request.cwd, env, stdio: 'pipe', detached: true})
    this.child = child
    child.stdin.on('error', () => undefined) // the command may exit without reading its input
    io.stdin.pipe(child.stdin)
    child.stdout.pipe(io.stdout, {end: false})
    child.stderr.pipe(io.stderr, {end: false})
    return new Promise((resolvePromise, reject) => {
      child.once('error', reject)
      child.once('close', (code, signal) => {
        io.stdin.unpipe(child.stdin)
        // killed by a signal: 128 + its number, as a shell says it
        resolvePromise(code ?? 128 + (signal ? os.signals[signal] : 0))
      })
    })
  }

  async stop(_reason?: string): Promise<void> {
    this.stopped = true
    const child = this.child
    if (!child || child.exitCode !== null || child.signalCode !== null) return
    const exited = new Promise((resolvePromise) => child.once('close', resolvePromise))
    signalGroup(child, 'SIGTERM')
    const timer = setTimeout(() => signalGroup(child, 'SIGKILL'), STOP_GRACE_MS)
    await exited
    clearTimeout(timer)
    signalGroup(child, 'SIGKILL') // what it started and left behind
  }
}

/** Everything that can fail is checked here, before tp creates the intercept. */
export async function prepare(request: HandlerRequest): Promise<CommandHandler> {
  const [command, ...args] = request.args
  if (!command) throw new UserError('--__NAME__ needs the command to run after --', 'e.g. `tp intercept <workload> --port 8000 --__NAME__ -- npm start`')
  const portEnv = String(request.flags['__NAME__-port-env'] ?? 'PORT')
  if (!ENV_NAME.test(portEnv))
    throw new UserError(`--__NAME__-port-env ${portEnv} is not a variable name`, 'give letters, digits and _, e.g. --__NAME__-port-env HTTP_PORT')
  const path = await findCommand(command, request.cwd)
  if (!path)
    throw new UserError(
      `the command "${command}" was not found${command.includes('/') ? ' (or is not executable)' : ' on PATH'}`,
      'check its name, or give its path',
    )
  return new CommandHandler(path, args, portEnv, request)
}

const factory: Factory<Handler> = () => ({prepare})
export default factory
