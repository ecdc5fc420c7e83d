import {Flags} from '@oclif/core'
import {type ClusterTarget, type DaemonStatus, defaultEngineUrl} from '@tp/sdk'
import {TpCommand} from '../base-command.js'
import {Connections, clusterOf, describeCluster, describeDeath} from '../connections.js'

export default class Status extends TpCommand {
  static override summary = 'Show the connections, their daemons, namespaces and intercepts'
  static override description =
    `Exits 1 when something is wrong: a daemon that died (reported once, with what was cleaned up; the next status is "Not connected"), a connection record that cannot be used, or a daemon that runs without one.`
  static override flags = {json: Flags.boolean({description: 'print as JSON'})}

  async run(): Promise<void> {
    const {flags} = await this.parse(Status)
    const connections = new Connections(await this.registries(), this.pluginContext())
    const survey = await connections.survey({strays: true})
    const rows: Array<{
      name: string
      backend: string
      namespace: string
      cluster: ClusterTarget
      handlerEngine: string
      daemon: string
      status?: DaemonStatus
      error?: string
    }> = []
    for (const {record, client, placement} of survey.live) {
      const row = {
        name: record.name,
        backend: record.backend,
        namespace: record.namespace,
        cluster: clusterOf(record),
        handlerEngine: record.handlerEngine ?? defaultEngineUrl(),
        daemon: placement.where,
      }
      try {
        rows.push({...row, status: await client.status()})
      } catch (error) {
        rows.push({...row, error: (error as Error).message})
      }
    }
    const died = survey.died.map(({record, cleanedUp}) => ({
      name: record.name,
      backend: record.backend,
      namespace: record.namespace,
      cluster: clusterOf(record),
      pid: record.pid,
      cleanedUp,
    }))
    const damaged = survey.damaged.map((d) => ({...d, daemon: survey.strays.find((s) => s.connection === d.name)?.where}))
    const strays = survey.strays.map(({connection, backend, where, namespace}) => ({connection, backend, where, namespace}))
    const troubled = died.length + damaged.length + strays.length > 0
    if (flags.json) {
      this.log(
        JSON.stringify(
          {connections: rows.map(({status, ...r}) => ({...r, intercepts: status?.intercepts ?? []})), died, damagedRecords: damaged, strayDaemons: strays},
          null,
          2,
        ),
      )
    } else {
      for (const stale of survey.died) this.log(`Connection ${stale.record.name}: DAEMON DIED — ${describeDeath(stale)}.`)
      for (const d of damaged) {
        this.log(
          `Connection ${d.name}: RECORD DAMAGED — ${d.file}: ${d.reason}; ${d.daemon ? `its daemon still runs (${d.daemon})` : 'no daemon of it runs'}.\n  → \`tp quit --name ${d.name}\` ${d.daemon ? 'stops it and ' : ''}removes the record and what the connection left`,
        )
      }
      for (const s of strays.filter((s) => !damaged.some((d) => d.name === s.connection))) {
        this.log(
          `Connection ${s.connection}: NO RECORD — a ${s.backend} daemon runs (${s.where}${s.namespace ? `, namespace ${s.namespace}` : ''}) but its connection record is gone.\n  → \`tp quit --name ${s.connection}\` stops it and removes what it left`,
        )
      }
      if (rows.length === 0 && !troubled) this.log('Not connected. Connect with `tp connect --docker`, or just run `tp intercept`.')
      // what is true now, after the report: the dead connections are gone
      else if (rows.length === 0 && damaged.length + strays.length === 0)
        this.log('Not connected any more. Connect again with `tp connect --docker` (or `tp connect`), or just run `tp intercept`.')
      for (const row of rows) {
        // the handlers' engine, when it is not the cluster's
        const handlers = row.handlerEngine === row.cluster.engine ? '' : `, handlers on the engine at ${row.handlerEngine}`
        this.log(
          `Connection ${row.name}: namespace ${row.namespace} of the ${describeCluster({cluster: row.cluster})}${handlers}, ${row.backend} daemon, ${row.daemon}${row.error ? ` — NOT ANSWERING: ${row.error}` : ''}`,
        )
        const intercepts = row.status?.intercepts ?? []
        if (intercepts.length === 0) this.log('  no intercepts')
        for (const i of intercepts) {
          this.log(
            `  intercept ${i.name}: ${i.workload}:${i.servicePort} → local port ${i.localPort} (${i.state === 'active' ? 'active' : 'waiting for the handler'})`,
          )
        }
      }
    }
    if (troubled) this.exit(1)
  }
}
