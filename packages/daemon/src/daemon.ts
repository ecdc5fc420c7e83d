import Docker from 'dockerode'
import {LABEL_CONNECTION, LABEL_INTERCEPT, LABEL_MANAGED, LABEL_ROLE} from '@tp/sdk'
import {AgentServer} from '@tp/agent'
import {DockerCluster} from '@tp/cluster-docker'
import type {Server} from 'node:http'
import type {DaemonConfig} from './config.js'
import {createApi} from './api.js'
import {InterceptManager} from './intercepts.js'

/** One daemon per connection: the API, the agents' control server and the intercepts. */
export class Daemon {
  private api?: Server
  private readonly agents: AgentServer
  private readonly intercepts: InterceptManager
  private readonly cluster: DockerCluster
  private readonly docker: Docker
  private quitting?: Promise<void>

  constructor(
    private readonly config: DaemonConfig,
    private readonly log: (m: string) => void = (m) => console.error(m),
    /** Called once `tp quit` has ended everything (the process exits there). */
    private readonly onQuit: () => void = () => undefined,
  ) {
    this.docker = new Docker()
    this.cluster = new DockerCluster(this.docker)
    this.agents = new AgentServer({port: config.controlPort, log})
    this.intercepts = new InterceptManager(config, this.cluster, this.agents, log, (name) => this.removeOrphans(name))
  }

  async start(): Promise<void> {
    await this.agents.listen()
    this.api = createApi({config: this.config, cluster: this.cluster, intercepts: this.intercepts, quit: () => this.quit('tp quit').then(() => this.onQuit()), log: this.log})
    await new Promise<void>((resolve, reject) => {
      this.api!.once('error', reject)
      this.api!.listen(this.config.apiPort, '0.0.0.0', () => resolve())
    })
    this.log(`tp daemon ${this.config.id} for connection ${this.config.connection}, namespace ${this.config.namespace}: API on :${this.config.apiPort}, agents on :${this.config.controlPort}`)
  }

  /**
   * The CLI that ran a handler for this intercept is gone (kill -9, crash): stop its handler container
   * and remove its volumes, found by their labels.
   */
  private async removeOrphans(intercept: string): Promise<void> {
    const filters = {label: [`${LABEL_MANAGED}=true`, `${LABEL_CONNECTION}=${this.config.connection}`, `${LABEL_INTERCEPT}=${intercept}`]}
    const containers = await this.docker.listContainers({all: true, filters})
    await Promise.all(
      containers
        .filter((c) => c.Labels[LABEL_ROLE] !== 'agent')
        .map(async (c) => {
          const container = this.docker.getContainer(c.Id)
          await container.stop({t: 2}).catch(() => undefined)
          await container.remove({force: true}).catch(() => undefined)
          this.log(`removed ${c.Names[0]} left by a gone tp command`)
        }),
    )
    const volumes = (await this.docker.listVolumes({filters})).Volumes ?? []
    for (const volume of volumes) {
      for (let attempt = 0; attempt < 20; attempt++) {
        try {
          await this.docker.getVolume(volume.Name).remove()
          break
        } catch {
          await new Promise((r) => setTimeout(r, 250)) // still in use while its container goes
        }
      }
    }
  }

  /** Ends every intercept (traffic back to the workloads, agents removed), then stops. */
  quit(reason: string): Promise<void> {
    this.quitting ??= (async () => {
      this.log(`quitting: ${reason}`)
      await this.intercepts.removeAll(`the daemon is quitting (${reason})`)
      this.api?.closeAllConnections()
      this.api?.close()
      await this.agents.close()
    })()
    return this.quitting
  }
}
