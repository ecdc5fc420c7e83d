import {Flags} from '@oclif/core'
import {type WorkloadInfo, describeFilter} from '@tp/sdk'
import {TpCommand} from '../base-command.js'
import {Connections} from '../connections.js'

export default class List extends TpCommand {
  static override summary = 'List the workloads of the connected namespace, their ports and intercepts'
  static override flags = {
    use: Flags.string({description: 'connection to use (when there are several)'}),
    docker: Flags.boolean({description: 'connect with a container daemon if not connected'}),
    namespace: Flags.string({char: 'n', description: 'namespace to connect to if not connected'}),
    cluster: Flags.string({
      description:
        "the cluster's engine, if not connected: a Docker context or an engine URL (unix://, tcp://, ssh://[user@]host[:port]); default: $TP_CLUSTER, else the handlers' own engine",
      helpValue: '<context|URL>',
    }),
    json: Flags.boolean({description: 'print as JSON'}),
  }

  async run(): Promise<void> {
    const {flags} = await this.parse(List)
    const connections = new Connections(await this.registries(), this.pluginContext())
    const {client, record} = await connections.current({use: flags.use, implicit: {docker: flags.docker, namespace: flags.namespace, cluster: flags.cluster}})
    const workloads = await client.workloads()
    if (flags.json) {
      this.log(JSON.stringify(workloads, null, 2))
      return
    }
    if (workloads.length === 0) {
      this.log(`No workloads in namespace ${record.namespace}.`)
      return
    }
    const width = Math.max(...workloads.map((w) => w.name.length))
    for (const w of workloads) {
      const ports = w.ports.map((p) => (p.name ? `${p.port}/${p.name}` : String(p.port))).join(', ') || 'no ports'
      const state = w.intercepts.length > 0 ? `intercepted (${w.intercepts.map(describeIntercept).join(', ')})` : 'ready to intercept'
      this.log(`${w.name.padEnd(width)}  ports ${ports}  ${replicasOf(w)}${state}`)
    }
  }
}

/** `2 replicas on node-a, node-b  ` where the cluster has nodes (swarm); nothing for one replica without a node. */
function replicasOf(w: {replicas: Array<{node?: string}>}): string {
  const nodes = [...new Set(w.replicas.flatMap((r) => (r.node ? [r.node] : [])))].sort()
  if (nodes.length === 0 && w.replicas.length === 1) return ''
  const count = `${w.replicas.length} replica${w.replicas.length === 1 ? '' : 's'}`
  return nodes.length > 0 ? `${count} on ${nodes.join(', ')}  ` : `${count}  `
}

/** One intercept of a workload in `tp list`: `web on 80`, `web-ingest (ingest, no traffic)`, `web (replace: 80, 443; paused)`. */
export function describeIntercept(i: WorkloadInfo['intercepts'][number]): string {
  if (i.mode === 'ingest') return `${i.name} (ingest, no traffic)`
  if (i.mode === 'wiretap') return `${i.name} (wiretap on ${i.servicePort})`
  if (i.mode === 'replace') return `${i.name} (replace: ${(i.ports ?? [i.servicePort]).join(', ')})`
  if (i.filter) return `${i.name} on ${i.servicePort} for ${describeFilter(i.filter)}`
  return `${i.name} on ${i.servicePort}`
}
