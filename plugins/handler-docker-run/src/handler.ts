import type Dockerode from 'dockerode'
import type {Factory, Handler, PluginContext} from '@tp/sdk'
import {prepareDockerRun} from './prepare.js'

export function createDockerRunHandler(context: PluginContext, options: {docker?: Dockerode} = {}): Handler {
  return {
    prepare: (request) => prepareDockerRun(request, {context, docker: options.docker}),
  }
}

const factory: Factory<Handler> = (context) => createDockerRunHandler(context)
export default factory
