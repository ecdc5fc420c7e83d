import type {ClusterDriver, ClusterDriverContext} from '@tp/sdk'
import {DockerDriver} from './driver.js'
import {dockerClient} from './engine.js'

export * from './driver.js'
export * from './engine.js'
export * from './ssh.js'
export * from './workload.js'

/** The driver for the connection's cluster engine (the factory `load()` and the daemon's module both give). */
export default function createDockerDriver(context: ClusterDriverContext): ClusterDriver {
  return new DockerDriver(dockerClient(context.cluster), {tpVersion: context.tpVersion, progress: (line) => context.log.info(line)})
}
export * from './relay.js'
