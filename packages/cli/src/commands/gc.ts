import {rm} from 'node:fs/promises'
import {Flags} from '@oclif/core'
import {LABEL_CONNECTION, LABEL_MANAGED, LABEL_ROLE, defaultEngineUrl, dockerUnreachable, sweep} from '@tp/sdk'
import {TpCommand} from '../base-command.js'
import type {ClusterTarget} from '@tp/sdk'
import {Connections, clusterOf, defaultCluster, describeDeath} from '../connections.js'

export default class Gc extends TpCommand {
  static override summary = 'Remove every tp-labelled container, volume and network that no live connection owns'
  static override description =
    `Looks on the handlers' engine, on the cluster connections are made to now ($TP_CLUSTER, else the handlers' engine), on the cluster of every live connection, and on each --cluster.`
  static override flags = {
    'dry-run': Flags.boolean({description: 'only print what would be removed'}),
    cluster: Flags.string({
      description: "another cluster's engine to clean up as well: a Docker context or an engine URL (unix://, tcp://, ssh://)",
      helpValue: '<context|URL>',
      multiple: true,
    }),
  }

  async run(): Promise<void> {
    const {flags} = await this.parse(Gc)
    const dryRun = flags['dry-run'] === true
    // loaded here: the other commands that never sweep do not pay for dockerode
    const {default: Docker} = await import('dockerode')
    // the handler's engine: daemon containers, handler containers and their volumes live there
    const docker = new Docker()
    await docker.ping().catch((error: unknown) => {
      throw dockerUnreachable(error)
    })
    const registries = await this.registries()
    const connections = new Connections(registries, this.pluginContext())
    // A connection is live when its daemon runs: known from our records (finding them sweeps what
    // dead daemons left, through their backends), or a running daemon container started from
    // another cache directory (another user, another checkout). A daemon of this cache directory
    // without a usable record (damaged or removed) is a stray: gc stops it and removes what it left.
    const survey = await connections.survey({strays: true})
    for (const stale of survey.died) this.log(`connection ${stale.record.name}: ${describeDeath(stale)}`)
    const live = new Set(survey.live.map((c) => c.record.name))
    const strays = new Set(survey.strays.map((s) => s.connection))
    const daemons = await docker.listContainers({filters: {label: [`${LABEL_MANAGED}=true`, `${LABEL_ROLE}=daemon`], status: ['running']}})
    for (const d of daemons) if (d.Labels[LABEL_CONNECTION] && !strays.has(d.Labels[LABEL_CONNECTION])) live.add(d.Labels[LABEL_CONNECTION])
    const verb = dryRun ? 'would remove' : 'removed'
    for (const stray of survey.strays) {
      this.log(`${dryRun ? 'would stop' : 'stopped'} the daemon of connection ${stray.connection} (${stray.where}), which has no usable record`)
      if (!dryRun) await stray.stop()
    }
    for (const damaged of survey.damaged) {
      this.log(`${verb} the damaged record of connection ${damaged.name} (${damaged.file}: ${damaged.reason})`)
      if (!dryRun) await rm(damaged.file, {force: true})
    }
    // what tp left on the cluster connections are made to now (each installed driver there), then
    // on the handler's engine when that is another one
    const cluster = defaultCluster()
    // each engine once: the default cluster, --cluster, and those of the live connections (a dead
    // connection's engine may be out of reach: its agents and relay there remove themselves)
    const engines = new Map<string, ClusterTarget>([[cluster.engine, cluster]])
    for (const given of flags.cluster ?? []) {
      const target = defaultCluster(given)
      engines.set(target.engine, target)
    }
    for (const {record} of survey.live) {
      const target = clusterOf(record)
      if (!engines.has(target.engine)) engines.set(target.engine, target)
    }
    const lines: string[] = []
    for (const target of engines.values()) {
      const named = target !== cluster && (flags.cluster ?? []).some((given) => defaultCluster(given).engine === target.engine)
      for (const {descriptor} of registries['cluster-drivers'].list()) {
        try {
          const driver = await connections.driver({...target, driver: descriptor.name})
          lines.push(...((await driver.gc?.({live, dryRun})) ?? []))
        } catch (error) {
          // an engine asked for by name must answer; a live connection's may have just gone
          if (named) throw error
          this.warn(`could not clean up ${target.context ?? target.engine} (${descriptor.name}): ${(error as Error).message}`)
        }
      }
    }
    if (cluster.engine !== defaultEngineUrl() || !registries['cluster-drivers'].has(cluster.driver)) {
      const swept = await sweep(docker, {
        labels: [`${LABEL_MANAGED}=true`],
        keep: (labels) => Boolean(labels[LABEL_CONNECTION] && live.has(labels[LABEL_CONNECTION])),
        networks: true,
        dryRun,
      })
      lines.push(...swept.map((o) => `${o.kind} ${o.name}${o.kind === 'container' ? ` (${o.role ?? 'tp'}, connection ${o.connection ?? '-'})` : ''}`))
    }
    for (const line of lines) this.log(`${verb} ${line}`)
    // what the backends changed outside Docker for connections no daemon owns any more
    let undone = 0
    for (const {descriptor} of registries['daemon-backends'].list()) {
      const backend = await connections.backend(descriptor.name)
      for (const line of (await backend.gc?.({live, dryRun})) ?? []) {
        this.log(`${verb} ${line}`)
        undone++
      }
    }
    if (lines.length + undone + survey.strays.length + survey.damaged.length + survey.died.length === 0) this.log('Nothing to remove.')
  }
}
