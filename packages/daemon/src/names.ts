import {createHash} from 'node:crypto'
import {type Server, createServer} from 'node:net'
import type {ClusterDriver, NamespaceLink} from '@tp/sdk'
import {debugLog, listen, swallow} from '@tp/sdk'
import {splice} from '@tp/agent'

const trace = debugLog('tp:daemon')

/** A name this side resolves, and the address where it is served here. */
export interface NameEntry {
  address: string
  names: string[]
}

/**
 * The second octet of a connection's loopback addresses (127.<this>.x.y): one of 64 by its name,
 * so that two connections to clusters on other machines seldom share addresses (where they do, the
 * second's names are refused with a message).
 */
export function loopbackOctet(connection: string): number {
  return 64 + (createHash('sha256').update(connection).digest()[0] % 64)
}

/**
 * The names of a namespace on another machine, served on this side (kubefwd's way): each workload
 * gets an address of its own on this machine's loopback (127.<n>.x.y; all of 127/8 is local, so no
 * address or route is added), a listener on each of its TCP ports there, and every connection to
 * one goes through the link to the workload. Remote subnets that overlap local ones are never
 * routed to: a name resolves to the workload's address here, never to its address there.
 */
export class LinkedNames {
  private readonly addresses = new Map<string, string>()
  private readonly listeners = new Map<string, Server>()
  private next = 1
  private closed = false

  private readonly octet: number

  constructor(
    private readonly driver: Pick<ClusterDriver, 'workloads'>,
    private readonly namespace: string,
    private readonly link: Pick<NamespaceLink, 'connect' | 'listeningPorts'>,
    private readonly log: (m: string) => void,
    connection: string,
  ) {
    this.octet = loopbackOctet(connection)
  }

  /** Brings the names and listeners up to date with the namespace's workloads; returns the names. */
  async sync(): Promise<NameEntry[]> {
    const workloads = await this.driver.workloads(this.namespace)
    // what the replicas listen on beyond what their workloads declare (a workload need not EXPOSE a port)
    const listening = this.link.listeningPorts
      ? await this.link.listeningPorts(workloads.flatMap((w) => w.replicas)).catch((error: Error) => {
          trace(`asking what the workloads listen on: ${error.message}`)
          return new Map<string, number[]>()
        })
      : new Map<string, number[]>()
    const entries: NameEntry[] = []
    const replicasNow = new Set<string>()
    for (const w of workloads) {
      const address = this.addressOf(w.name)
      const ports = new Set([...w.ports.filter((p) => p.protocol === 'tcp').map((p) => p.port), ...w.replicas.flatMap((r) => listening.get(r.id) ?? [])])
      // a connection goes to the workload by name: the namespace's own DNS spreads it over its replicas
      for (const port of ports) await this.serve(address, port, w.name)
      const names = [...new Set([w.name, ...w.aliases, ...w.replicas.map((r) => r.name)].flatMap((n) => [n, `${n}.${this.namespace}`]))]
      entries.push({address, names})
      // names of every replica at once (swarm's tasks.<service>): each replica an address of its own here
      const replicaNames = [...new Set((w.replicaNames ?? []).flatMap((n) => [n, `${n}.${this.namespace}`]))]
      if (replicaNames.length === 0) continue
      for (const r of w.replicas.filter((r) => r.address)) {
        replicasNow.add(`replica ${r.id}`)
        const own = this.addressOf(`replica ${r.id}`)
        for (const port of ports) await this.serve(own, port, r.address)
        entries.push({address: own, names: replicaNames})
      }
    }
    // a replica that has gone takes its address and listeners along
    for (const [key, address] of this.addresses) {
      if (!key.startsWith('replica ') || replicasNow.has(key)) continue
      this.addresses.delete(key)
      for (const [at, server] of this.listeners) {
        if (!at.startsWith(`${address}:`)) continue
        server.close()
        this.listeners.delete(at)
      }
    }
    return entries
  }

  private addressOf(workload: string): string {
    let address = this.addresses.get(workload)
    if (!address) {
      const n = this.next++
      address = `127.${this.octet}.${n >> 8}.${n & 255}`
      this.addresses.set(workload, address)
    }
    return address
  }

  private async serve(address: string, port: number, target: string): Promise<void> {
    const key = `${address}:${port}`
    if (this.closed || this.listeners.has(key)) return
    const server = createServer({allowHalfOpen: true}, (socket) => {
      socket.on('error', () => undefined)
      this.link.connect(target, port).then(
        (stream) => void splice(socket, stream),
        (error: Error) => {
          trace(`${target}:${port} through the link: ${error.message}`)
          socket.destroy()
        },
      )
    })
    this.listeners.set(key, server)
    await listen(server, address, port).catch((error: Error) => {
      this.listeners.delete(key)
      this.log(`cannot serve ${target}:${port} at ${key}: ${error.message}`)
    })
  }

  close(): void {
    this.closed = true
    for (const server of this.listeners.values()) server.close()
    this.listeners.clear()
  }
}

/**
 * A port on the daemon's side whose connections go through the link to host:port (a workload's
 * SFTP server): on loopback, or where the daemon listens (`at`: a daemon in a container listens on
 * its network, where the volume plugin reaches it, and gives its own address). It takes connections at once, but carries them only once `ready`
 * resolves (the agent serves there): a volume made early waits there, as it would for a server
 * not up yet, instead of meeting a connection closed at the far end.
 */
export async function forwardThrough(
  link: Pick<NamespaceLink, 'connect'>,
  host: string,
  port: number,
  ready: Promise<void> = Promise.resolve(),
  at: {listenHost: string; advertise: string} = {listenHost: '127.0.0.1', advertise: '127.0.0.1'},
): Promise<{host: string; port: number; close: () => void}> {
  const server = createServer({allowHalfOpen: true}, (socket) => {
    socket.on('error', () => undefined)
    ready
      .then(() => link.connect(host, port))
      .then(
        (stream) => void splice(socket, stream),
        () => socket.destroy(),
      )
  })
  const local = await listen(server, at.listenHost, 0)
  return {
    host: at.advertise,
    port: local,
    close: () => {
      server.close(swallow(trace, 'closing a forward'))
      ready.catch(() => undefined)
    },
  }
}
