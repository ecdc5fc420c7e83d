/**
 * What `tp version` says of the Docker engine: its version, or why it is unreachable. Shared by the
 * command and by its answer without oclif (fast-start.ts); loads dockerode, and the sdk, only when
 * the answer prefetched by bin/run.js (engine-prefetch.ts) is not there.
 */
import {ENGINE_TIMEOUT_MS, takePrefetchedEngineVersion} from './engine-prefetch.js'

/** How long `tp version` waits for the Docker engine before saying it is unreachable. */
const DOCKER_TIMEOUT_MS = ENGINE_TIMEOUT_MS

export type EngineInfo =
  | {reachable: true; where: string; version: string; apiVersion: string; os: string; arch: string}
  | {reachable: false; where: string; reason: string}

/** Where dockerode (like the docker client) will look for the engine. */
export function dockerEndpoint(): string {
  return process.env.DOCKER_HOST || 'unix:///var/run/docker.sock'
}

/** Asks the engine for its version; never throws: an unreachable engine is described instead. */
export async function dockerEngineInfo(timeoutMs = DOCKER_TIMEOUT_MS): Promise<EngineInfo> {
  const where = dockerEndpoint()
  let started = Date.now()
  // `tp version` on a unix socket: bin/run.js asked as tp started (engine-prefetch.ts)
  const prefetched = takePrefetchedEngineVersion()
  if (prefetched) started = prefetched.started
  try {
    let version = await prefetched?.version
    if (!version) {
      // imported here so that commands which never talk to Docker do not pay for loading it
      const {default: Docker} = await import('dockerode')
      started = Date.now()
      version = await new Docker({timeout: timeoutMs}).version()
    }
    return {reachable: true, where, version: version.Version, apiVersion: version.ApiVersion, os: version.Os, arch: version.Arch}
  } catch (error) {
    // docker-modem ends a request that timed out with a bare "socket hang up": tell it by the clock
    const timedOut = Date.now() - started >= timeoutMs * 0.9
    return {reachable: false, where, reason: await explainDockerError(error as NodeJS.ErrnoException, timeoutMs, timedOut)}
  }
}

async function explainDockerError(error: NodeJS.ErrnoException, timeoutMs: number, timedOut: boolean): Promise<string> {
  const source = process.env.DOCKER_HOST ? 'DOCKER_HOST' : 'the default socket; set DOCKER_HOST to use another engine'
  switch (error.code) {
    case 'ENOENT':
      return `no socket there — is dockerd running? (${source})`
    case 'ECONNREFUSED':
      return `connection refused — is dockerd running and listening there? (${source})`
    case 'EACCES':
    case 'EPERM':
      return 'permission denied on the socket — run as a user in the docker group, or as root'
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return `host name not found (${source})`
  }
  if (timedOut || /timeout/i.test(error.message ?? '') || error.code === 'ETIMEDOUT') return `no answer within ${timeoutMs / 1000} s (${source})`
  // the sdk (80 KiB) for this one case: `tp version` answered without oclif does not load it otherwise
  const {dockerMessage, dockerStatusCode} = await import('@tp/sdk')
  const status = dockerStatusCode(error)
  if (status) return `the engine answered HTTP ${status}: ${dockerMessage(error)}`
  return `${error.message ?? String(error)} (${source})`
}
