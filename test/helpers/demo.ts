/**
 * Helpers for end-to-end tests against the real engine and the demo cluster. They act as a user
 * would: run `tp`, and talk to workloads from a client container on the cluster's network.
 */
import {randomBytes} from 'node:crypto'
import {dirname, join} from 'node:path'
import {fileURLToPath} from 'node:url'
import Docker from 'dockerode'
import {execa} from 'execa'
import {type DemoCluster, type DemoOptions, demoUp, ensureFixtureImages} from '@tp/images'

export const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
export const tpBin = join(repoRoot, 'packages', 'cli', 'bin', 'run.js')

export const docker = new Docker()

let busyboxRef: Promise<string> | undefined
/** The fixture busybox image (built once per process). */
export function busyboxImage(): Promise<string> {
  busyboxRef ??= ensureFixtureImages(docker).then((images) => images.busybox)
  return busyboxRef
}

/** Brings the shared demo cluster (`tp-demo`) up, or reuses it; never takes it down. */
export function ensureDemo(options: DemoOptions = {}): Promise<DemoCluster> {
  return demoUp(docker, options)
}

function uniqueName(prefix: string): string {
  return `${prefix}${randomBytes(4).toString('hex')}`
}

export interface HttpReply {
  /** HTTP status of the last response (after redirects); 0 when no response came at all. */
  status: number
  body: string
  /** wget's stderr (headers and errors), for diagnosis. */
  stderr: string
}

/**
 * GET `url` from a short-lived busybox container on `network` (default `tp-demo`), as a client in
 * the cluster would. Redirects are followed. busybox wget prints no body for non-2xx replies.
 */
export async function httpGet(url: string, options: {network?: string; timeoutSeconds?: number} = {}): Promise<HttpReply> {
  const image = await busyboxImage()
  const name = uniqueName('tpt-httpget-')
  const result = await execa(
    'docker',
    [
      'run',
      '--rm',
      '--name',
      name,
      '--label',
      'tp.fixture=true',
      '--network',
      options.network ?? 'tp-demo',
      image,
      'timeout',
      String(options.timeoutSeconds ?? 5),
      'wget',
      '-q',
      '-S',
      '-O',
      '-',
      url,
    ],
    {reject: false, stripFinalNewline: false},
  )
  const statuses = [...result.stderr.matchAll(/HTTP\/1\.[01] (\d{3})/g)].map((m) => Number(m[1]))
  return {status: statuses.at(-1) ?? 0, body: result.stdout, stderr: result.stderr}
}

export interface ClientLoopResult {
  ok: number
  failed: number
  /** Body of every successful request, in order. */
  bodies: string[]
  /** FAIL lines (wget's error), in order. */
  failures: string[]
}

export interface ClientLoop {
  container: string
  /** Stops the loop and returns what it saw. */
  stop(): Promise<ClientLoopResult>
  /** What it saw so far, without stopping. */
  peek(): Promise<ClientLoopResult>
}

function parseLoopLog(log: string): ClientLoopResult {
  const result: ClientLoopResult = {ok: 0, failed: 0, bodies: [], failures: []}
  for (const line of log.split('\n')) {
    if (line.startsWith('OK ')) {
      result.ok++
      result.bodies.push(Buffer.from(line.slice(3), 'base64').toString())
    } else if (line.startsWith('FAIL')) {
      result.failed++
      result.failures.push(Buffer.from(line.slice(5), 'base64').toString())
    }
  }
  return result
}

/**
 * A long-running client container on `network` that GETs `url` every `intervalMs` and logs one
 * line per request: `OK <body in base64>` or `FAIL <error in base64>`.
 */
export async function startClientLoop(url: string, options: {network?: string; intervalMs?: number} = {}): Promise<ClientLoop> {
  const image = await busyboxImage()
  const name = uniqueName('tpt-client-')
  const interval = (options.intervalMs ?? 100) / 1000
  const script = `trap "exit 0" TERM INT
while true; do
  if out=$(timeout 5 wget -q -O - "$URL" 2>&1); then echo "OK $(printf '%s' "$out" | base64 -w 0)"
  else echo "FAIL $(printf '%s' "$out" | base64 -w 0)"; fi
  sleep ${interval}
done`
  const container = await docker.createContainer({
    name,
    Image: image,
    Cmd: ['sh', '-c', script],
    Env: [`URL=${url}`],
    Labels: {'tp.fixture': 'true'},
    // a TTY keeps the log a plain byte stream (no multiplexing headers to strip)
    Tty: true,
    HostConfig: {NetworkMode: options.network ?? 'tp-demo'},
  })
  await container.start()
  const read = async () => parseLoopLog((await container.logs({stdout: true, stderr: true})).toString().replaceAll('\r', ''))
  return {
    container: name,
    peek: read,
    async stop() {
      await container.stop({t: 1}).catch(() => undefined)
      const result = await read()
      await container.remove({force: true}).catch(() => undefined)
      return result
    },
  }
}

export interface CliResult {
  exitCode: number
  stdout: string
  stderr: string
}

/** Runs the built `tp` CLI (node packages/cli/bin/run.js) and never throws on a non-zero exit. */
export async function tpCli(
  args: string[],
  options: {env?: Record<string, string | undefined>; input?: string; cwd?: string; timeoutMs?: number} = {},
): Promise<CliResult> {
  const result = await execa('node', ['--', tpBin, ...args], {
    reject: false,
    env: options.env,
    input: options.input,
    cwd: options.cwd ?? repoRoot,
    timeout: options.timeoutMs ?? 120_000,
  })
  return {exitCode: result.exitCode ?? -1, stdout: result.stdout, stderr: result.stderr}
}

export interface TpObjects {
  containers: string[]
  volumes: string[]
  networks: string[]
}

/** Every Docker object labelled tp.managed=true (what must be gone after clean-up). */
export async function tpObjects(): Promise<TpObjects> {
  const filters = JSON.stringify({label: ['tp.managed=true']})
  const [containers, volumes, networks] = await Promise.all([
    docker.listContainers({all: true, filters}),
    docker.listVolumes({filters}),
    docker.listNetworks({filters}),
  ])
  return {
    containers: containers.map((c) => c.Names[0]?.replace(/^\//, '') ?? c.Id),
    volumes: (volumes.Volumes ?? []).map((v) => v.Name),
    networks: networks.map((n) => n.Name),
  }
}
