import {rm} from 'node:fs/promises'
import {Flags} from '@oclif/core'
import {LABEL_CONNECTION, LABEL_MANAGED, LABEL_ROLE, dockerUnreachable, sweep} from '@tp/sdk'
import {TpCommand} from '../base-command.js'
import {Connections, describeDeath} from '../connections.js'

export default class Gc extends TpCommand {
  static override summary = 'Remove every tp-labelled container, volume and network that no live connection owns'
  static override flags = {'dry-run': Flags.boolean({description: 'only print what would be removed'})}

  async run(): Promise<void> {
    const {flags} = await this.parse(Gc)
    // loaded here: the other commands that never sweep do not pay for dockerode
    const {default: Docker} = await import('dockerode')
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
    const verb = flags['dry-run'] ? 'would remove' : 'removed'
    for (const stray of survey.strays) {
      this.log(`${flags['dry-run'] ? 'would stop' : 'stopped'} the daemon of connection ${stray.connection} (${stray.where}), which has no usable record`)
      if (!flags['dry-run']) await stray.stop()
    }
    for (const damaged of survey.damaged) {
      this.log(`${verb} the damaged record of connection ${damaged.name} (${damaged.file}: ${damaged.reason})`)
      if (!flags['dry-run']) await rm(damaged.file, {force: true})
    }
    const swept = await sweep(docker, {
      labels: [`${LABEL_MANAGED}=true`],
      keep: (labels) => Boolean(labels[LABEL_CONNECTION] && live.has(labels[LABEL_CONNECTION])),
      networks: true,
      dryRun: flags['dry-run'],
    })
    for (const object of swept) {
      const owner = object.kind === 'container' ? ` (${object.role ?? 'tp'}, connection ${object.connection ?? '-'})` : ''
      this.log(`${verb} ${object.kind} ${object.name}${owner}`)
    }
    // what the backends changed outside Docker for connections no daemon owns any more
    let undone = 0
    for (const {descriptor} of registries.daemonBackends.list()) {
      const backend = await connections.backend(descriptor.name)
      for (const line of (await backend.gc?.({live, dryRun: flags['dry-run'] === true})) ?? []) {
        this.log(`${verb} ${line}`)
        undone++
      }
    }
    if (swept.length + undone + survey.strays.length + survey.damaged.length + survey.died.length === 0) this.log('Nothing to remove.')
  }
}
