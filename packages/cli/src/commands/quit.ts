import {Flags} from '@oclif/core'
import {TpCommand} from '../base-command.js'
import {Connections} from '../connections.js'

export default class Quit extends TpCommand {
  static override summary = 'End every intercept and stop the daemon of each connection (or of --name)'
  static override flags = {name: Flags.string({description: 'quit only this connection'})}

  async run(): Promise<void> {
    const {flags} = await this.parse(Quit)
    const connections = new Connections(await this.registries(), this.pluginContext())
    const live = (await connections.live()).filter((c) => !flags.name || c.record.name === flags.name)
    if (live.length === 0) {
      this.log(flags.name ? `No connection named ${flags.name}; nothing to quit.` : 'Not connected; nothing to quit.')
      return
    }
    for (const {record, backend} of live) {
      await backend.quit(record)
      this.log(`Quit connection ${record.name}: its intercepts ended and its daemon stopped.`)
    }
  }
}
