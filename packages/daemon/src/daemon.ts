import {chmod, writeFile} from 'node:fs/promises'
import {lookup} from 'node:dns/promises'
import type {Server} from 'node:http'
import {isIP} from 'node:net'
import type Docker from 'dockerode'
import {AgentServer} from '@tp/agent'
import {type ClusterDriver, LABEL_INTERCEPT, LABEL_ROLE, listen, sweep} from '@tp/sdk'
import type {HandlerReach, Reach} from './reach.js'
import type {DaemonConfig} from './config.js'
import {createApi} from './api.js'
import {InterceptManager} from './intercepts.js'

export interface DaemonDeps {
  /** The cluster's driver (workloads, agents). */
  driver: ClusterDriver
  /** The engine where handler containers and volumes live (a gone CLI's are removed here). */
  docker: Docker
  log?: (m: string) => void
  /** Called once `tp quit` has ended everything (the process exits there). */
  onQuit?: () => void
}

/** An IP for a host the placement names (agents get an address, not a name to resolve each time). */
async function address(host: string): Promise<string> {
  if (isIP(host)) return host
  return (await lookup(host, {family: 4})).address
}

/** One daemon per connection: the API, the agents' control server and the intercepts. */
export class Daemon {
  private api?: Server
  private agents?: AgentServer
  private intercepts?: InterceptManager
  private quitting?: Promise<void>
  private readonly log: (m: string) => void

  constructor(
    private readonly config: DaemonConfig,
    private readonly deps: DaemonDeps,
  ) {
    this.log = deps.log ?? ((m) => console.error(m))
  }

  /** Listens for agents and for the API; resolves with the API's port. */
  async start(): Promise<number> {
    const {placement} = this.config
    this.agents = new AgentServer({host: placement.daemon.listenHost, port: this.config.controlPort, log: this.log})
    const {port: controlPort} = await this.agents.listen()
    const handlerReach = async (where: {daemonConnectsTo: string; agentConnectsTo?: string}): Promise<HandlerReach> => ({
      handlerHost: where.daemonConnectsTo,
      directHost: where.agentConnectsTo === undefined ? undefined : await address(where.agentConnectsTo),
    })
    const reach: Reach = {
      agentsDial: `${await address(placement.daemon.agentHost)}:${controlPort}`,
      container: await handlerReach(placement.handler),
      process: placement.process ? await handlerReach(placement.process) : undefined,
    }
    this.intercepts = new InterceptManager(this.config, this.deps.driver, this.agents, reach, this.log, (name) => this.removeOrphans(name))
    this.api = createApi({
      config: this.config,
      driver: this.deps.driver,
      intercepts: this.intercepts,
      quit: () => this.quit('tp quit').then(() => this.deps.onQuit?.()),
      log: this.log,
    })
    const apiPort = await listen(this.api, this.config.apiHost, this.config.apiPort)
    if (this.config.readyFile) {
      await writeFile(this.config.readyFile, JSON.stringify({apiPort, pid: process.pid}) + '\n', {mode: 0o600})
      await chmod(this.config.readyFile, 0o600)
    }
    this.log(
      `tp daemon ${this.config.id} for connection ${this.config.connection}, namespace ${this.config.namespace} of ${this.config.cluster.driver} cluster ${this.config.cluster.engine} (${placement.where}): ` +
        `API on ${this.config.apiHost}:${apiPort}, agents dial ${reach.agentsDial}`,
    )
    return apiPort
  }

  /**
   * The CLI that ran a handler for this intercept is gone (kill -9, crash): stop its handler container
   * and remove its volumes, found by their labels; the agent stays until the intercept's removal.
   */
  private async removeOrphans(intercept: string): Promise<void> {
    const removed = await sweep(this.deps.docker, {
      labels: [...this.config.placement.sweepLabels, `${LABEL_INTERCEPT}=${intercept}`],
      keep: (labels) => labels[LABEL_ROLE] === 'agent',
      stopSeconds: 2,
    })
    for (const object of removed) this.log(`removed ${object.kind} ${object.name} left by a gone tp command`)
  }

  /** Ends every intercept (traffic back to the workloads, agents removed), then stops. */
  quit(reason: string): Promise<void> {
    this.quitting ??= (async () => {
      this.log(`quitting: ${reason}`)
      await this.intercepts?.removeAll(`the daemon is quitting (${reason})`)
      this.api?.closeAllConnections()
      this.api?.close()
      await this.agents?.close()
      await this.deps.driver.close?.()
    })()
    return this.quitting
  }
}
