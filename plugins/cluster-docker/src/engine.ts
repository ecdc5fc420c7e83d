import Docker from 'dockerode'
import {UserError, defaultEngineUrl} from '@tp/sdk'

/** A client of the engine at `url` (unix:// or tcp://); the engine the environment names is reached as the docker CLI would (DOCKER_HOST, its TLS settings). */
export function dockerClient(url: string, env: NodeJS.ProcessEnv = process.env): Docker {
  if (url === defaultEngineUrl(env)) return new Docker()
  if (url.startsWith('unix://')) return new Docker({socketPath: url.slice('unix://'.length)})
  const tcp = /^tcp:\/\/([^:/]+)(?::(\d+))?\/?$/.exec(url)
  if (tcp) return new Docker({host: tcp[1], port: Number(tcp[2] ?? 2375), protocol: 'http'})
  throw new UserError(`the Docker cluster driver cannot reach the engine ${url}`, 'name it as unix:///path/to/docker.sock or tcp://host:port')
}
