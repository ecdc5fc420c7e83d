import {Flags} from '@oclif/core'
import Docker from 'dockerode'
import {LABEL_CONNECTION, LABEL_MANAGED, LABEL_ROLE, dockerUnreachable} from '@tp/sdk'
import {TpCommand} from '../base-command.js'
import {Connections} from '../connections.js'

export default class Gc extends TpCommand {
  static override summary = 'Remove every tp-labelled container, volume and network that no live connection owns'
  static override flags = {'dry-run': Flags.boolean({description: 'only print what would be removed'})}

  async run(): Promise<void> {
    const {flags} = await this.parse(Gc)
    const docker = new Docker()
    await docker.ping().catch((error: unknown) => {
      throw dockerUnreachable(error)
    })
    const connections = new Connections(await this.registries(), this.pluginContext())
    // A connection is live when its daemon runs: known from our records, or a running daemon
    // container started from another cache directory (another user, another checkout).
    const live = new Set((await connections.live()).map((c) => c.record.name))
    const daemons = await docker.listContainers({filters: {label: [`${LABEL_MANAGED}=true`, `${LABEL_ROLE}=daemon`], status: ['running']}})
    for (const d of daemons) if (d.Labels[LABEL_CONNECTION]) live.add(d.Labels[LABEL_CONNECTION])
    const owned = (labels?: Record<string, string>) => Boolean(labels?.[LABEL_CONNECTION] && live.has(labels[LABEL_CONNECTION]))
    const filters = {label: [`${LABEL_MANAGED}=true`]}
    const containers = (await docker.listContainers({all: true, filters})).filter((c) => !owned(c.Labels))
    const volumes = ((await docker.listVolumes({filters})).Volumes ?? []).filter((v) => !owned(v.Labels ?? undefined))
    const networks = (await docker.listNetworks({filters})).filter((n) => !owned(n.Labels))
    const verb = flags['dry-run'] ? 'would remove' : 'removed'
    // containers first: volumes and networks cannot go while a container uses them
    for (const c of containers) {
      if (!flags['dry-run']) {
        // a graceful stop lets an agent take its redirect rule out of the workload
        await docker.getContainer(c.Id).stop({t: 5}).catch(() => undefined)
        await docker.getContainer(c.Id).remove({force: true}).catch(() => undefined)
      }
      this.log(`${verb} container ${c.Names[0]?.replace(/^\//, '')} (${c.Labels[LABEL_ROLE] ?? 'tp'}, connection ${c.Labels[LABEL_CONNECTION] ?? '-'})`)
    }
    for (const v of volumes) {
      if (!flags['dry-run']) await docker.getVolume(v.Name).remove({force: true}).catch(() => undefined)
      this.log(`${verb} volume ${v.Name}`)
    }
    for (const n of networks) {
      if (!flags['dry-run']) await docker.getNetwork(n.Id).remove().catch(() => undefined)
      this.log(`${verb} network ${n.Name}`)
    }
    if (containers.length + volumes.length + networks.length === 0) this.log('Nothing to remove.')
  }
}
