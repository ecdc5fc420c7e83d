import {Flags} from '@oclif/core'
import type {DaemonStatus} from '@tp/sdk'
import {TpCommand} from '../base-command.js'
import {Connections} from '../connections.js'

export default class Status extends TpCommand {
  static override summary = 'Show the connections, their daemons, namespaces and intercepts'
  static override flags = {json: Flags.boolean({description: 'print as JSON'})}

  async run(): Promise<void> {
    const {flags} = await this.parse(Status)
    const connections = new Connections(await this.registries(), this.pluginContext())
    const rows: Array<{name: string; backend: string; namespace: string; daemon: string; status?: DaemonStatus; error?: string}> = []
    for (const {record, client, placement} of await connections.live()) {
      const row = {name: record.name, backend: record.backend, namespace: record.namespace, daemon: placement.where}
      try {
        rows.push({...row, status: await client.status()})
      } catch (error) {
        rows.push({...row, error: (error as Error).message})
      }
    }
    if (flags.json) {
      this.log(JSON.stringify({connections: rows.map(({status, ...r}) => ({...r, intercepts: status?.intercepts ?? []}))}, null, 2))
      return
    }
    if (rows.length === 0) {
      this.log('Not connected. Connect with `tp connect --docker`, or just run `tp intercept`.')
      return
    }
    for (const row of rows) {
      this.log(`Connection ${row.name}: namespace ${row.namespace}, ${row.backend} daemon, ${row.daemon}${row.error ? ` — NOT ANSWERING: ${row.error}` : ''}`)
      const intercepts = row.status?.intercepts ?? []
      if (intercepts.length === 0) this.log('  no intercepts')
      for (const i of intercepts) {
        this.log(
          `  intercept ${i.name}: ${i.workload}:${i.servicePort} → local port ${i.localPort} (${i.state === 'active' ? 'active' : 'waiting for the handler'})`,
        )
      }
    }
  }
}
