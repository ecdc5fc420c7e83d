import {chmod, writeFile} from 'node:fs/promises'
import {lookup} from 'node:dns/promises'
import type {Server} from 'node:http'
import {isIP} from 'node:net'
import type Docker from 'dockerode'
import {AgentServer} from '@tp/agent'
import {type ClusterDriver, LABEL_INTERCEPT, LABEL_ROLE, type NamespaceLink, UserError, ipv4Addresses, listen, sweep, tpLabels} from '@tp/sdk'
import {LinkedNames, type NameEntry, forwardThrough} from './names.js'
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

/** The port tp's relay listens on for agents, on a linked namespace's network. */
const LINKED_AGENT_PORT = 4701

/** One daemon per connection: the API, the agents' control server and the intercepts. */
export class Daemon {
  private api?: Server
  private agents?: AgentServer
  private intercepts?: InterceptManager
  private quitting?: Promise<void>
  private link?: NamespaceLink
  private linkedNames?: LinkedNames
  private readonly log: (m: string) => void

  constructor(
    private readonly config: DaemonConfig,
    private readonly deps: DaemonDeps,
  ) {
    this.log = deps.log ?? ((m) => console.error(m))
  }

  /**
   * The link to a namespace on another machine, and the names it serves here: made before the
   * daemon listens (a backend's addon may want the names first: `names()`).
   */
  async prepare(): Promise<void> {
    const {cluster} = this.config
    if (!cluster.linked || this.link) return
    if (!this.deps.driver.link) {
      throw new UserError(
        `cluster driver ${cluster.driver} cannot reach a namespace on another machine's engine (${cluster.engine})`,
        'use a cluster on the engine your handlers run on, or a driver that can',
      )
    }
    this.link = await this.deps.driver.link(this.config.namespace, {
      connection: this.config.connection,
      image: this.config.runtimeImage,
      labels: tpLabels({connection: this.config.connection, role: 'relay'}),
    })
    this.linkedNames = new LinkedNames(this.deps.driver, this.config.namespace, this.link, this.log, this.config.connection)
    void this.link.closed.then((why) => this.linkLost(why))
  }

  /** Where this side reaches the namespace's names: the workloads' own addresses, or (linked) where this daemon serves them. */
  async names(): Promise<NameEntry[]> {
    await this.prepare()
    if (this.linkedNames) return this.linkedNames.sync()
    const workloads = await this.deps.driver.workloads(this.config.namespace)
    return workloads.flatMap((w) =>
      w.replicas
        .filter((r) => r.address)
        .map((r) => ({address: r.address, names: [...new Set([w.name, r.name, ...w.aliases].flatMap((n) => [n, `${n}.${this.config.namespace}`]))]})),
    )
  }

  /**
   * The link broke (this machine slept, the network went, the engine restarted): the far end and
   * the agents there give the traffic back and go by themselves; every intercept here ends, and
   * says why; then the daemon quits (the next tp command connects anew).
   */
  private async linkLost(why: string): Promise<void> {
    if (this.quitting) return
    const reason = `the link to the cluster's engine ${this.config.cluster.engine} broke (${why})`
    this.log(reason)
    await this.intercepts?.removeAll(reason, 'link-lost')
    await this.quit(reason)
    this.deps.onQuit?.()
  }

  /** Listens for agents and for the API; resolves with the API's port. */
  async start(): Promise<number> {
    await this.prepare()
    const {placement} = this.config
    const link = this.link
    // linked: agents dial the far end, which brings their connections here; the daemon dials them through it
    this.agents = new AgentServer({
      host: link ? '127.0.0.1' : placement.daemon.listenHost,
      port: link ? 0 : this.config.controlPort,
      log: this.log,
      dial: link ? (host, port) => link.connect(host, port) : undefined,
    })
    const {port: controlPort} = await this.agents.listen()
    if (link) link.listen(LINKED_AGENT_PORT, ({stream, peer}) => this.agents?.accept(stream, peer.address))
    const handlerReach = async (where: {daemonConnectsTo: string; agentConnectsTo?: string}): Promise<HandlerReach> => ({
      handlerHost: where.daemonConnectsTo,
      // agents on another machine never reach a handler here straight
      directHost: where.agentConnectsTo === undefined || link ? undefined : await address(where.agentConnectsTo),
    })
    // a forward listens where the daemon listens: on this machine's loopback, or (a daemon in a
    // container, 0.0.0.0) on the container's own address, which the volume plugin reaches
    const listenHost = placement.daemon.listenHost
    const forwardsAt = {listenHost, advertise: listenHost === '0.0.0.0' ? (ipv4Addresses()[0] ?? '127.0.0.1') : listenHost}
    const reach: Reach = {
      agentsDial: link ? `${link.agentHost}:${LINKED_AGENT_PORT}` : `${await address(placement.daemon.agentHost)}:${controlPort}`,
      container: await handlerReach(placement.handler),
      process: placement.process ? await handlerReach(placement.process) : undefined,
      ...(link
        ? {forward: (host: string, port: number, ready?: Promise<void>) => forwardThrough(link, host, port, ready, forwardsAt), linkClosed: link.closed}
        : {}),
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
      this.linkedNames?.close()
      this.link?.close(reason)
      await this.deps.driver.close?.()
    })()
    return this.quitting
  }
}
