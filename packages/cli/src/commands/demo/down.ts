import {Flags} from '@oclif/core'
import {DEMO_NETWORK, connectDocker, demoDown} from '@tp/images'
import {TpCommand} from '../../base-command.js'

export default class DemoDown extends TpCommand {
  static override summary = 'Remove the demo cluster: its containers, volumes and network'
  static override flags = {
    network: Flags.string({summary: 'Name of the network (the namespace)', default: DEMO_NETWORK}),
  }

  async run(): Promise<void> {
    const {flags} = await this.parse(DemoDown)
    const docker = await connectDocker()
    const {removed} = await demoDown(docker, {network: flags.network, log: (m) => this.log(m)})
    this.log(removed.length === 0 ? `no demo cluster on network ${flags.network}; nothing to remove` : `the demo cluster on network ${flags.network} is gone`)
  }
}
