import {readFileSync} from 'node:fs'
import {Agent as HttpsAgent} from 'node:https'
import Docker from 'dockerode'
import {type ClusterTarget, UserError, defaultEngineUrl} from '@tp/sdk'
import {DialStdioAgent} from './ssh.js'

/**
 * A client of the cluster's engine: a unix socket, tcp:// (with the TLS files of its context or of
 * DOCKER_CERT_PATH), or ssh:// through this machine's ssh. The engine the environment names is
 * reached as tp's other Docker clients reach it (DOCKER_HOST and its TLS settings).
 */
export function dockerClient(target: Pick<ClusterTarget, 'engine' | 'tls'>, env: NodeJS.ProcessEnv = process.env): Docker {
  const url = target.engine
  if (url === defaultEngineUrl(env) && !target.tls) return new Docker()
  if (url.startsWith('unix://')) return new Docker({socketPath: url.slice('unix://'.length)})
  if (url.startsWith('ssh://')) return new Docker({protocol: 'http', host: 'docker', port: 80, agent: new DialStdioAgent(url)} as Docker.DockerOptions)
  const tcp = /^tcp:\/\/([^:/]+|\[[^\]]+\])(?::(\d+))?\/?$/.exec(url)
  if (tcp) {
    const host = tcp[1].replace(/^\[|\]$/g, '')
    if (!target.tls) return new Docker({host, port: Number(tcp[2] ?? 2375), protocol: 'http'})
    const read = (path: string, what: string) => {
      try {
        return readFileSync(path)
      } catch (error) {
        throw new UserError(
          `the ${what} for ${url} cannot be read: ${(error as Error).message}`,
          'check the Docker context (`docker context inspect`) or DOCKER_CERT_PATH',
        )
      }
    }
    const {tls} = target
    return new Docker({
      host,
      port: Number(tcp[2] ?? 2376),
      protocol: 'https',
      ca: read(tls.ca, 'CA certificate'),
      cert: read(tls.cert, 'client certificate'),
      key: read(tls.key, 'client key'),
      // a context with SkipTLSVerify: the engine's certificate is not checked, as the docker CLI does then
      ...(tls.verify ? {} : {agent: new HttpsAgent({rejectUnauthorized: false, keepAlive: true})}),
    } as Docker.DockerOptions)
  }
  throw new UserError(
    `the Docker cluster driver cannot reach the engine ${url}`,
    'name it as unix:///path/to/docker.sock, tcp://host:port or ssh://[user@]host[:port]',
  )
}
