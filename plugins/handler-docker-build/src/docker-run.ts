import type Dockerode from 'dockerode'
import type {HandlerRequest, PreparedHandler} from '@tp/sdk'

/**
 * The docker-run handler's reusable preparation (plugins/handler-docker-run): given the request and
 * the image that replaces the image argument, it checks and resolves the `docker run` side.
 */
type PrepareDockerRun = (request: HandlerRequest, options: {image?: string; docker?: Dockerode}) => Promise<PreparedHandler>

export async function prepareDockerRun(request: HandlerRequest, options: {image?: string; docker?: Dockerode}): Promise<PreparedHandler> {
  const module = (await import('@tp/plugin-handler-docker-run')) as {prepareDockerRun?: PrepareDockerRun}
  if (typeof module.prepareDockerRun !== 'function') throw new Error('@tp/plugin-handler-docker-run does not export prepareDockerRun')
  return module.prepareDockerRun(request, options)
}
