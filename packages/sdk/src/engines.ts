import {createHash} from 'node:crypto'
import {existsSync, readFileSync, readdirSync} from 'node:fs'
import {homedir} from 'node:os'
import {join} from 'node:path'
import type {EngineTls} from './cluster.js'
import {LOCAL_ENGINE_URL} from './docker-endpoint.js'
import {UserError} from './errors.js'

/**
 * Docker engines named as the docker CLI names them: an engine URL (`unix://`, `tcp://`,
 * `ssh://[user@]host[:port]`), or the name of a Docker context from the docker CLI's context store
 * (its TLS files included); nothing given: DOCKER_HOST (with DOCKER_CERT_PATH and
 * DOCKER_TLS_VERIFY), else the current context, else the local socket.
 */

export interface EngineAddress {
  url: string
  /** For tcp:// with TLS: the files, as the docker CLI has them. */
  tls?: EngineTls
  /** The Docker context it was named by. */
  context?: string
}

const SCHEMES = /^(unix|tcp|ssh|npipe):\/\//

/** The docker CLI's configuration directory: $DOCKER_CONFIG, else ~/.docker. */
export function dockerConfigDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.DOCKER_CONFIG || join(homedir(), '.docker')
}

/** Where the docker CLI keeps a context: directories named by the sha256 of its name. */
function contextDirs(name: string, env: NodeJS.ProcessEnv): {meta: string; tls: string} {
  const id = createHash('sha256').update(name).digest('hex')
  const root = join(dockerConfigDir(env), 'contexts')
  return {meta: join(root, 'meta', id, 'meta.json'), tls: join(root, 'tls', id, 'docker')}
}

/** The contexts the docker CLI knows (besides `default`). */
export function dockerContexts(env: NodeJS.ProcessEnv = process.env): string[] {
  const dir = join(dockerConfigDir(env), 'contexts', 'meta')
  if (!existsSync(dir)) return []
  return readdirSync(dir)
    .flatMap((id) => {
      try {
        return [(JSON.parse(readFileSync(join(dir, id, 'meta.json'), 'utf8')) as {Name: string}).Name]
      } catch {
        return []
      }
    })
    .sort()
}

/** The context the docker CLI uses now: $DOCKER_CONTEXT, else config.json's currentContext; `default` when neither. */
export function currentDockerContext(env: NodeJS.ProcessEnv = process.env): string {
  if (env.DOCKER_CONTEXT) return env.DOCKER_CONTEXT
  try {
    const config = JSON.parse(readFileSync(join(dockerConfigDir(env), 'config.json'), 'utf8')) as {currentContext?: string}
    return config.currentContext || 'default'
  } catch {
    return 'default'
  }
}

/** A Docker context by name: its engine and TLS files. */
export function contextEngine(name: string, env: NodeJS.ProcessEnv = process.env): EngineAddress {
  if (name === 'default') return environmentEngine({...env, DOCKER_CONTEXT: undefined}, false)
  const dirs = contextDirs(name, env)
  let meta: {Endpoints?: {docker?: {Host?: string; SkipTLSVerify?: boolean}}}
  try {
    meta = JSON.parse(readFileSync(dirs.meta, 'utf8'))
  } catch {
    const known = dockerContexts(env)
    throw new UserError(
      `"${name}" is neither an engine URL (unix://, tcp://, ssh://) nor a Docker context`,
      known.length > 0 ? `Docker contexts here: ${known.join(', ')} (\`docker context ls\`)` : 'make one with `docker context create`, or give the engine URL',
    )
  }
  const url = meta.Endpoints?.docker?.Host
  if (!url) throw new UserError(`Docker context "${name}" names no Docker engine`, 'check it with `docker context inspect`')
  const files = {ca: join(dirs.tls, 'ca.pem'), cert: join(dirs.tls, 'cert.pem'), key: join(dirs.tls, 'key.pem')}
  const tls = url.startsWith('tcp://') && existsSync(files.cert) ? {...files, verify: meta.Endpoints?.docker?.SkipTLSVerify !== true} : undefined
  return {url, ...(tls ? {tls} : {}), context: name}
}

/** DOCKER_HOST with its TLS settings, else (unless `contexts` is false) the current context, else the local socket. */
function environmentEngine(env: NodeJS.ProcessEnv, contexts = true): EngineAddress {
  if (env.DOCKER_HOST) return urlEngine(env.DOCKER_HOST, env)
  if (contexts) {
    const current = currentDockerContext(env)
    if (current !== 'default') return contextEngine(current, env)
  }
  return {url: LOCAL_ENGINE_URL}
}

/** An engine URL; a tcp:// one takes its TLS files from DOCKER_CERT_PATH when DOCKER_TLS_VERIFY is set, as the docker CLI does. */
function urlEngine(url: string, env: NodeJS.ProcessEnv): EngineAddress {
  if (!SCHEMES.test(url)) {
    throw new UserError(`"${url}" is not an engine URL`, 'give unix:///path/to/docker.sock, tcp://host:port, ssh://[user@]host[:port] or a Docker context')
  }
  if (url.startsWith('tcp://') && env.DOCKER_TLS_VERIFY && env.DOCKER_TLS_VERIFY !== '0') {
    const dir = env.DOCKER_CERT_PATH || dockerConfigDir(env)
    return {url, tls: {ca: join(dir, 'ca.pem'), cert: join(dir, 'cert.pem'), key: join(dir, 'key.pem'), verify: true}}
  }
  return {url}
}

/**
 * The engine `given` names (a URL or a Docker context), or when nothing is given the one the docker
 * CLI would use here (with `contexts: false`, as tp's Docker client does: DOCKER_HOST, else the
 * local socket).
 */
export function resolveEngine(given: string | undefined, env: NodeJS.ProcessEnv = process.env, options: {contexts?: boolean} = {}): EngineAddress {
  if (given === undefined || given === '') return environmentEngine(env, options.contexts !== false)
  return SCHEMES.test(given) ? urlEngine(given, env) : contextEngine(given, env)
}

/** An ssh:// engine URL's parts, as the docker CLI's ssh helper takes them. */
export function parseSshUrl(url: string): {user?: string; host: string; port?: number; socket?: string} {
  const parsed = new URL(url)
  if (parsed.protocol !== 'ssh:' || !parsed.hostname) throw new UserError(`"${url}" is not an ssh:// engine URL`, 'give ssh://[user@]host[:port]')
  return {
    ...(parsed.username ? {user: decodeURIComponent(parsed.username)} : {}),
    host: parsed.hostname.replace(/^\[|\]$/g, ''),
    ...(parsed.port ? {port: Number(parsed.port)} : {}),
    ...(parsed.pathname && parsed.pathname !== '/' ? {socket: parsed.pathname} : {}),
  }
}
