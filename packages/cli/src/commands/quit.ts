import {Flags} from '@oclif/core'
import {rm} from 'node:fs/promises'
import {TpCommand} from '../base-command.js'
import {Connections, describeDeath} from '../connections.js'

export default class Quit extends TpCommand {
  static override summary = 'End every intercept and stop the daemon of each connection (or of --name)'
  static override description =
    'Also stops a daemon whose connection record is damaged or gone (found by its Docker labels or its process) and removes such a record.'
  static override flags = {name: Flags.string({description: 'quit only this connection'})}

  async run(): Promise<void> {
    const {flags} = await this.parse(Quit)
    const connections = new Connections(await this.registries(), this.pluginContext())
    const survey = await connections.survey({strays: true})
    const mine = (name: string) => !flags.name || name === flags.name
    let done = 0
    for (const stale of survey.died.filter((d) => mine(d.record.name))) {
      this.log(`Connection ${stale.record.name}: ${describeDeath(stale)}.`)
      done++
    }
    for (const connection of survey.live.filter((c) => mine(c.record.name))) {
      const {record} = connection
      await connections.quit(connection)
      this.log(`Quit connection ${record.name}: its intercepts ended and its daemon stopped.`)
      done++
    }
    for (const stray of survey.strays.filter((s) => mine(s.connection))) {
      await stray.stop()
      this.log(`Quit connection ${stray.connection}: its daemon (${stray.where}), which had no usable record, stopped, and what it left was removed.`)
      done++
    }
    for (const damaged of survey.damaged.filter((d) => mine(d.name))) {
      await rm(damaged.file, {force: true})
      const alone = !survey.strays.some((s) => s.connection === damaged.name)
      // with no daemon of it running, what it left is `tp gc`'s: a connection of that name from another cache directory may own it
      this.log(
        `Removed the damaged record of connection ${damaged.name} (${damaged.file}: ${damaged.reason}).${alone ? ' No daemon of it ran; `tp gc` removes what it may have left.' : ''}`,
      )
      done++
    }
    if (done === 0) this.log(flags.name ? `No connection named ${flags.name}; nothing to quit.` : 'Not connected; nothing to quit.')
  }
}
