import {UserError} from './errors.js'

/** Where a local Docker engine listens when nothing says otherwise: the one place tp knows it. */
export const LOCAL_ENGINE_SOCKET = '/var/run/docker.sock'
export const LOCAL_ENGINE_URL = `unix://${LOCAL_ENGINE_SOCKET}`

/** Where the Docker client looks for the engine, in words: DOCKER_HOST, else the default socket. */
export function dockerEndpoint(env: NodeJS.ProcessEnv = process.env): {where: string; socketPath?: string} {
  const host = env.DOCKER_HOST
  if (host) {
    const socketPath = host.startsWith('unix://') ? host.slice('unix://'.length) : undefined
    return {where: `DOCKER_HOST=${host}`, socketPath}
  }
  return {where: `the default socket ${LOCAL_ENGINE_SOCKET} (DOCKER_HOST is not set)`, socketPath: LOCAL_ENGINE_SOCKET}
}

/** The error to raise when the engine does not answer. */
export function dockerUnreachable(cause: unknown, env: NodeJS.ProcessEnv = process.env): UserError {
  const {where} = dockerEndpoint(env)
  const reason = (cause as Error)?.message ?? String(cause)
  return new UserError(
    `the Docker engine is unreachable: looked at ${where} (${reason})`,
    'start Docker (e.g. `dockerd &` or `systemctl start docker`), or point DOCKER_HOST at a running engine',
    {cause},
  )
}

/** The engine the docker CLI would use here, as a URL: DOCKER_HOST, else the default socket. */
export function defaultEngineUrl(env: NodeJS.ProcessEnv = process.env): string {
  return env.DOCKER_HOST || LOCAL_ENGINE_URL
}
