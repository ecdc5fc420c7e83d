import {Flags} from '@oclif/core'
import {DEMO_NETWORK, connectDocker, demoUp} from '@tp/images'
import {TpCommand} from '../../base-command.js'

export default class DemoUp extends TpCommand {
  static override summary = 'Create the demo cluster on the local Docker engine (network tp-demo, workloads frontend-v1 and catalog)'
  static override description =
    'Idempotent: what exists and works is kept, what is missing or broken is (re)created. Builds its images locally; no registry is needed.'
  static override flags = {
    network: Flags.string({summary: 'Name of the network (the namespace)', default: DEMO_NETWORK}),
  }

  async run(): Promise<void> {
    const {flags} = await this.parse(DemoUp)
    const docker = await connectDocker()
    const demo = await demoUp(docker, {network: flags.network, log: (m) => this.log(m)})
    const onNetwork = demo.network === DEMO_NETWORK ? '' : ` --namespace ${demo.network}`
    this.log(`
The demo cluster is up: network ${demo.network}
  ${demo.frontend}   http://frontend-v1/  (port 80) answers with its name, GREETING and the two-line DEMO_NOTES;
                  volumes ${demo.dataVolume} at /data (config.txt) and ${demo.readOnlyVolume} at /etc/frontend (read-only)
  ${demo.catalog}       http://catalog/      (port 80) answers ${'{"catalog":["apple","pear"]}'}

Try it from a client on the network:
  docker run --rm --network ${demo.network} ${demo.images.workload} wget -q -O - http://frontend-v1/
Intercept it:
  tp intercept --docker${onNetwork} frontend-v1 --port 8000 --docker-run -- frontend-v2
Remove it:
  tp demo down${demo.network === DEMO_NETWORK ? '' : ` --network ${demo.network}`}`)
  }
}
