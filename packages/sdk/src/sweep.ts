import type Docker from 'dockerode'
import {debugLog, swallow} from './debug.js'
import {isNotFound, sleep} from './docker-kit.js'
import {LABEL_CONNECTION, LABEL_MANAGED, LABEL_PAUSED, LABEL_ROLE} from './labels.js'

/**
 * The one owner of "remove what tp left": the daemon (a gone CLI's handler), the backends (a dead
 * daemon's connection, `tp quit`) and `tp gc` (whatever no live connection owns) all sweep here,
 * by label, in one order: containers (stopped first, so an agent takes its redirect rule out),
 * then volumes (retried while a container still goes), then networks. A mark of `tp replace`
 * (labelled `tp.paused`) resumes the container it names before it goes.
 */
export interface SweepOptions {
  /** `key=value` label selectors, all of which must match (tp.managed=true is always added). */
  labels: string[]
  /** Objects to leave alone, by their labels (e.g. the agents while a handler is removed). */
  keep?: (labels: Record<string, string>) => boolean
  /** Grace before a container is killed (default 5 s). */
  stopSeconds?: number
  /** How long a volume still in use is retried (default 5 s). */
  volumeRetryMs?: number
  /** Also remove networks (tp gc: demo and fixture networks). */
  networks?: boolean
  /** Only list what would be removed. */
  dryRun?: boolean
}

export interface SweptObject {
  kind: 'container' | 'volume' | 'network'
  name: string
  role?: string
  connection?: string
}

const trace = debugLog('tp:sweep')

export async function sweep(docker: Docker, options: SweepOptions): Promise<SweptObject[]> {
  const filters = {label: [`${LABEL_MANAGED}=true`, ...options.labels.filter((l) => l !== `${LABEL_MANAGED}=true`)]}
  const keep = options.keep ?? (() => false)
  const describe = (kind: SweptObject['kind'], name: string, labels: Record<string, string> | null | undefined): SweptObject => ({
    kind,
    name,
    role: labels?.[LABEL_ROLE],
    connection: labels?.[LABEL_CONNECTION],
  })
  const swept: SweptObject[] = []

  const containers = (await docker.listContainers({all: true, filters})).filter((c) => !keep(c.Labels ?? {}))
  swept.push(...containers.map((c) => describe('container', (c.Names[0] ?? c.Id).replace(/^\//, ''), c.Labels)))
  if (!options.dryRun) {
    await Promise.all(
      containers.map(async (c) => {
        const paused = c.Labels?.[LABEL_PAUSED]
        if (paused) await resumePaused(docker, paused)
        const container = docker.getContainer(c.Id)
        await container.stop({t: options.stopSeconds ?? 5}).catch(swallow(trace, `stopping ${c.Id} (already stopped)`))
        await container.remove({force: true}).catch(swallow(trace, `removing ${c.Id} (already removed: AutoRemove)`))
      }),
    )
  }

  const volumes = ((await docker.listVolumes({filters})).Volumes ?? []).filter((v) => !keep(v.Labels ?? {}))
  swept.push(...volumes.map((v) => describe('volume', v.Name, v.Labels)))
  if (!options.dryRun) {
    const deadline = Date.now() + (options.volumeRetryMs ?? 5000)
    await Promise.all(
      volumes.map(async (v) => {
        for (;;) {
          try {
            await docker.getVolume(v.Name).remove({force: true})
            return
          } catch (error) {
            if (isNotFound(error)) return
            if (Date.now() > deadline) return swallow(trace, `removing volume ${v.Name}`)(error)
            await sleep(200) // in use while its container is being removed
          }
        }
      }),
    )
  }

  if (options.networks) {
    const networks = (await docker.listNetworks({filters})).filter((n) => !keep(n.Labels ?? {}))
    swept.push(...networks.map((n) => describe('network', n.Name, n.Labels)))
    if (!options.dryRun)
      await Promise.all(
        networks.map((n) =>
          docker
            .getNetwork(n.Id)
            .remove()
            .catch(swallow(trace, `removing network ${n.Name}`)),
        ),
      )
  }
  return swept
}

/** The selector of everything one connection created. */
export function connectionLabels(connection: string): string[] {
  return [`${LABEL_MANAGED}=true`, `${LABEL_CONNECTION}=${connection}`]
}

/** Resumes a container `tp replace` paused, if it still is (one that went, or runs, is left as it is). */
async function resumePaused(docker: Docker, id: string): Promise<void> {
  const container = docker.getContainer(id)
  const info = await container.inspect().catch(swallow(trace, `inspecting ${id}, paused by tp replace`))
  if (info?.State.Paused) await container.unpause().catch(swallow(trace, `resuming ${id}`))
}
