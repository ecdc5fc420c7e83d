import {Args, Flags} from '@oclif/core'
import {UserError} from '@tp/sdk'
import {TpCommand} from '../base-command.js'
import {Connections} from '../connections.js'

export default class Leave extends TpCommand {
  static override summary = 'End an intercept: traffic goes back to the workload and its handler is stopped'
  static override args = {name: Args.string({description: 'intercept name (see tp status)', required: true})}
  static override flags = {use: Flags.string({description: 'connection the intercept belongs to'})}

  async run(): Promise<void> {
    const {args, flags} = await this.parse(Leave)
    const connections = new Connections(await this.registries(), this.pluginContext())
    // --use names a connection that must exist (choose says which ones do)
    const chosen = flags.use ? await connections.choose({use: flags.use}) : undefined
    const live = chosen ? [chosen] : await connections.live()
    if (live.length === 0)
      throw new UserError(`cannot leave "${args.name}": tp is not connected`, 'there is nothing to leave; `tp status` shows connections and intercepts')
    const names: string[] = []
    for (const connection of live) {
      const status = await connection.client.status()
      if (status.intercepts.some((i) => i.name === args.name)) {
        await connection.client.leave(args.name)
        this.log(`Left ${args.name}: traffic goes to ${status.intercepts.find((i) => i.name === args.name)!.workload} again.`)
        return
      }
      names.push(...status.intercepts.map((i) => i.name))
    }
    throw new UserError(
      `there is no intercept named "${args.name}"`,
      names.length > 0 ? `active intercepts: ${names.join(', ')}` : 'there are no active intercepts',
    )
  }
}
