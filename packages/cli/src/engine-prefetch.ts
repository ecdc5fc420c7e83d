/**
 * `tp version` asks the Docker engine for its version, and the engine takes 10-50 ms to answer.
 * bin/run.js calls prefetchEngineVersion first: for `tp version` on a unix socket (DOCKER_HOST
 * unset or unix://, the engine dockerode would ask), `GET /version` goes out as tp starts, with
 * node:http alone, and the answer arrives while oclif loads its plugins instead of after; the
 * command takes it (dockerEngineInfo in engine-info.ts) and dockerode is not loaded at all.
 * Other engines (tcp://, TLS, ssh://) and answers other than 200 are left to dockerode.
 */
import {existsSync} from 'node:fs'
import {homedir} from 'node:os'
import {join} from 'node:path'

/** What GET /version answers (the fields tp shows). */
export interface EngineVersion {
  Version: string
  ApiVersion: string
  Os: string
  Arch: string
}

/** A request started by prefetchEngineVersion: when, and its answer (undefined: ask dockerode). */
export interface PrefetchedEngineVersion {
  started: number
  version: Promise<EngineVersion | undefined>
}

const KEY = Symbol.for('tp.prefetched-engine-version')
type Holder = {[KEY]?: PrefetchedEngineVersion}

/** How long `tp version` waits for the engine (dockerEngineInfo's limit too). */
export const ENGINE_TIMEOUT_MS = 2000

/** The unix socket dockerode (docker-modem) would use, or undefined when DOCKER_HOST is not a unix socket. */
function engineSocket(env: NodeJS.ProcessEnv): string | undefined {
  const host = env.DOCKER_HOST
  const fallback = () => {
    const user = join(homedir(), '.docker', 'run', 'docker.sock')
    return existsSync(user) ? user : '/var/run/docker.sock'
  }
  if (!host) return process.platform === 'win32' ? undefined : fallback()
  if (host.startsWith('unix://')) return host.slice('unix://'.length) || fallback()
  return undefined
}

/** Starts asking the engine when argv is `tp version` (not its help) and the engine is on a unix socket. */
export function prefetchEngineVersion(argv: string[], env: NodeJS.ProcessEnv = process.env): void {
  if (argv[0] !== 'version' || argv.some((a) => a === '--help' || a === '-h' || a === '--')) return
  const socketPath = engineSocket(env)
  if (!socketPath) return
  const started = Date.now()
  // not imported (scripts/esbuild-common.mjs); servername: no TLS name to work out (patches/README.md)
  const http = process.getBuiltinModule('node:http')
  const options: import('node:http').RequestOptions & {servername: string} = {socketPath, path: '/version', servername: '', timeout: ENGINE_TIMEOUT_MS}
  const version = new Promise<EngineVersion | undefined>((resolve, reject) => {
    const req = http.get(options, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => (body += chunk))
      res.on('end', () => {
        try {
          resolve(res.statusCode === 200 ? (JSON.parse(body) as EngineVersion) : undefined)
        } catch {
          resolve(undefined)
        }
      })
      res.on('error', () => resolve(undefined))
    })
    // as dockerode fails: the socket's own error (ENOENT, ECONNREFUSED, EACCES), or no answer in time
    req.on('error', reject)
    req.on('timeout', () => req.destroy(Object.assign(new Error('timeout'), {code: 'ETIMEDOUT'})))
  })
  version.catch(() => undefined) // taken by the command; never an unhandled rejection before that
  ;(globalThis as Holder)[KEY] = {started, version}
}

/** The request prefetchEngineVersion started, once (undefined when it did not start one). */
export function takePrefetchedEngineVersion(): PrefetchedEngineVersion | undefined {
  const holder = globalThis as Holder
  const prefetched = holder[KEY]
  delete holder[KEY]
  return prefetched
}
