import {Flags} from '@oclif/core'
import {TpCommand} from '../base-command.js'
import {Connections, type LiveConnection, describeCluster} from '../connections.js'
import {Interrupts} from '../interrupts.js'

export default class Connect extends TpCommand {
  static override summary = 'Connect to a namespace: start (or reuse) the daemon of a connection'
  static override description =
    `With --docker the daemon runs in a container (tp-<name>-cn) on the namespace's Docker network, so nothing on this machine's own network changes.
Without --namespace: $TP_NAMESPACE, else the only user-defined network that has containers.`
  static override examples = ['<%= config.bin %> connect --docker', '<%= config.bin %> connect --docker --namespace tp-demo --name demo']
  static override flags = {
    docker: Flags.boolean({description: 'run the daemon in a container (the container daemon backend)'}),
    namespace: Flags.string({char: 'n', description: 'namespace (Docker network) to connect to'}),
    cluster: Flags.string({
      description:
        "the cluster's engine: a Docker context or an engine URL (unix://, tcp://, ssh://[user@]host[:port]); default: $TP_CLUSTER, else the handlers' own engine",
      helpValue: '<context|URL>',
    }),
    'cluster-driver': Flags.string({
      description:
        "the cluster driver (docker, swarm, or a plugin's); default: $TP_CLUSTER_DRIVER, else the one that recognises the engine (a swarm manager: swarm), else docker",
      helpValue: '<driver>',
    }),
    registry: Flags.string({
      description: "where tp pushes its runtime image for a swarm's nodes to pull (host[:port]); default: $TP_REGISTRY",
      helpValue: '<host[:port]>',
    }),
    name: Flags.string({description: 'connection name', default: 'default'}),
    json: Flags.boolean({description: 'print the connection as JSON'}),
  }

  async run(): Promise<void> {
    const {flags} = await this.parse(Connect)
    const connections = new Connections(await this.registries(), this.pluginContext())
    const wasLive = (await connections.live()).some((c) => c.record.name === flags.name)
    // Ctrl-C while a daemon starts: let it come up, then remove it again, rather than leave a
    // daemon container that no connection record knows about
    const interrupts = new Interrupts((text) => process.stderr.write(text))
    interrupts.action = wasLive ? 'stopping' : 'stopping; the daemon being started is removed again'
    let connection: LiveConnection | undefined
    try {
      // the registry is a setting of the driver (in this process and the daemon's, which gets it from the connection's record)
      if (flags.registry) process.env.TP_REGISTRY = flags.registry
      connection = await connections.connect({
        name: flags.name,
        namespace: flags.namespace,
        docker: flags.docker,
        cluster: flags.cluster,
        clusterDriver: flags['cluster-driver'],
      })
      if (interrupts.signal) {
        if (!wasLive) await connections.quit(connection)
        process.stderr.write(wasLive ? `Connection "${flags.name}" is unchanged.\n` : `Not connected: the daemon of "${flags.name}" was removed again.\n`)
        this.exit(130)
      }
    } finally {
      interrupts.dispose()
    }
    if (!connection) return // interrupted: exited above
    const {record, placement} = connection
    if (flags.json) {
      const {api, ...shown} = record
      this.log(JSON.stringify({...shown, api: {url: api.url}, placement}, null, 2))
      return
    }
    this.log(`Connected "${record.name}" to namespace ${record.namespace} of the ${describeCluster(record)} (${record.backend} daemon, ${placement.where}).`)
  }
}
