import {PassThrough, Duplex} from 'node:stream'
import type Dockerode from 'dockerode'
import {Tunnel} from '@tp/tunnel'
import {debugLog, swallow} from '@tp/sdk'

const trace = debugLog('tp:cluster-docker')

export interface Relay {
  /** The relay's container. */
  id: string
  name: string
  /** Its address on the namespace's network: where agents there dial the daemon. */
  address: string
  tunnel: Tunnel
}

/**
 * Starts tp's relay as a container on the namespace's network of the cluster's engine and opens a
 * tunnel through its attach stream: everything between this side and the namespace (agents
 * dialling the daemon, connections to workloads, their volumes) travels inside the Engine API
 * connection, so nothing is opened on the engine's machine. Its stdin closes when that connection
 * does; the relay then ends and its container removes itself.
 */
export async function startRelay(
  docker: Dockerode,
  options: {namespace: string; image: string; name: string; labels: Record<string, string>; pingMs?: number; pingTimeoutMs?: number},
): Promise<Relay> {
  const create = (hostConfig: Dockerode.HostConfig) =>
    docker.createContainer({
      name: options.name,
      Image: options.image,
      Cmd: ['node', '/opt/tp/relay.cjs'],
      Labels: options.labels,
      OpenStdin: true,
      StdinOnce: true,
      AttachStdin: true,
      AttachStdout: true,
      AttachStderr: false,
      Tty: false,
      HostConfig: {NetworkMode: options.namespace, AutoRemove: true, ...hostConfig},
    })
  // in the engine's pid namespace, the relay can tell which ports each workload listens on
  // (/proc/<pid>/net/tcp); an engine that refuses that (user namespaces) gets a relay without it
  const container = await create({PidMode: 'host'}).catch((error: Error) => {
    trace(`a relay in the host's pid namespace was refused (${error.message}): one without`)
    return create({})
  })
  try {
    const attached = (await container.attach({stream: true, stdin: true, stdout: true, stderr: false, hijack: true})) as unknown as Duplex & {
      setNoDelay?: (on: boolean) => void
    }
    // every connection the tunnel carries shares this socket: with Nagle on, a small write (a
    // request, a reply's last bytes) waited for the ACK of the one before, which the far side
    // delays (40 ms), on every request/response turn
    attached.setNoDelay?.(true)
    // without a TTY, what the relay writes comes in Docker's frames (8-byte headers); what we write goes as it is
    const fromRelay = new PassThrough()
    docker.modem.demuxStream(attached, fromRelay, new PassThrough())
    attached.on('end', () => fromRelay.end())
    attached.on('close', () => fromRelay.destroy())
    const transport = Duplex.from({readable: fromRelay, writable: attached})
    attached.on('close', () => transport.destroy())
    await container.start()
    const info = await container.inspect()
    const address = info.NetworkSettings.Networks?.[options.namespace]?.IPAddress ?? ''
    const tunnel = new Tunnel(transport, {pingMs: options.pingMs, pingTimeoutMs: options.pingTimeoutMs})
    void tunnel.closed.then(() => attached.destroy())
    return {id: container.id, name: options.name, address, tunnel}
  } catch (error) {
    await container.remove({force: true}).catch(swallow(trace, `removing the relay ${options.name} that did not start`))
    throw error
  }
}
