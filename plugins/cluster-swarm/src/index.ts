import type {ClusterDriver, ClusterDriverContext} from '@tp/sdk'
import {dockerClient} from '@tp/plugin-cluster-docker'
import {SwarmDriver} from './driver.js'

export * from './driver.js'
export * from './service.js'

/** The driver for the connection's swarm manager (the factory `load()` and the daemon's module both give). */
export default function createSwarmDriver(context: ClusterDriverContext): ClusterDriver {
  return new SwarmDriver(dockerClient(context.cluster), {
    tpVersion: context.tpVersion,
    registry: process.env.TP_REGISTRY || undefined,
    progress: (line) => context.log.info(line),
  })
}
