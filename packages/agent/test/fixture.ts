// Docker fixtures for the agent and driver tests: a busybox image and helpers that track what
// they create so afterAll removes exactly that (the engine is shared).
import Dockerode from 'dockerode'
import {ensureImportedImage, STATIC_BUSYBOX} from '@tp/images'

export const FIXTURE_LABELS = {'tp.fixture': 'true'}

export class Fixtures {
  readonly docker = new Dockerode()
  private readonly containers: string[] = []
  private readonly networks: string[] = []
  private readonly volumes: string[] = []
  private readonly images: string[] = []

  /** A busybox image (httpd, sh, wget, nc) for workloads and clients. */
  async busybox(ref = 'tpt-agent-busybox:1'): Promise<string> {
    const [repo, tag] = ref.split(':')
    const image = await ensureImportedImage(this.docker, {
      repo,
      tag,
      spec: {busybox: STATIC_BUSYBOX, dirs: ['/www', '/data']},
      labels: FIXTURE_LABELS,
      what: 'test fixture',
    })
    if (!this.images.includes(image.ref)) this.images.push(image.ref)
    return image.ref
  }

  async network(name: string): Promise<Dockerode.NetworkInspectInfo> {
    await this.docker
      .getNetwork(name)
      .remove()
      .catch(() => undefined)
    await this.docker.createNetwork({Name: name, Labels: FIXTURE_LABELS, CheckDuplicate: true})
    this.networks.push(name)
    return this.docker.getNetwork(name).inspect()
  }

  async volume(name: string): Promise<string> {
    await this.docker
      .getVolume(name)
      .remove({force: true})
      .catch(() => undefined)
    await this.docker.createVolume({Name: name, Labels: FIXTURE_LABELS})
    this.volumes.push(name)
    return name
  }

  /** Creates and starts a container; removed in cleanup. */
  async container(options: Dockerode.ContainerCreateOptions & {name: string}, start = true): Promise<Dockerode.ContainerInspectInfo> {
    await this.docker
      .getContainer(options.name)
      .remove({force: true})
      .catch(() => undefined)
    const container = await this.docker.createContainer({...options, Labels: {...FIXTURE_LABELS, ...options.Labels}})
    this.containers.push(container.id)
    if (start) await container.start()
    return container.inspect()
  }

  /** Runs a command in a throwaway container on a network; returns its output and exit code. */
  async run(image: string, network: string, cmd: string[], name: string, hostConfig: Dockerode.HostConfig = {}): Promise<{output: string; code: number}> {
    await this.docker
      .getContainer(name)
      .remove({force: true})
      .catch(() => undefined)
    const container = await this.docker.createContainer({
      name,
      Image: image,
      Cmd: cmd,
      Labels: FIXTURE_LABELS,
      HostConfig: {NetworkMode: network, ...hostConfig},
    })
    this.containers.push(container.id)
    await container.start()
    const {StatusCode} = (await container.wait()) as {StatusCode: number}
    const logs = (await container.logs({stdout: true, stderr: true})) as unknown as Buffer
    await container.remove({force: true}).catch(() => undefined)
    return {output: demux(logs), code: StatusCode}
  }

  async cleanup(): Promise<void> {
    for (const id of this.containers.reverse())
      await this.docker
        .getContainer(id)
        .remove({force: true})
        .catch(() => undefined)
    for (const name of this.networks.reverse())
      await this.docker
        .getNetwork(name)
        .remove()
        .catch(() => undefined)
    for (const name of this.volumes.reverse())
      await this.docker
        .getVolume(name)
        .remove({force: true})
        .catch(() => undefined)
    for (const ref of this.images)
      await this.docker
        .getImage(ref)
        .remove()
        .catch(() => undefined)
  }
}

/** Docker's multiplexed log stream (8-byte frame headers) to text. */
export function demux(buffer: Buffer): string {
  let out = ''
  let at = 0
  while (at + 8 <= buffer.length) {
    const size = buffer.readUInt32BE(at + 4)
    out += buffer.subarray(at + 8, at + 8 + size).toString('utf8')
    at += 8 + size
  }
  return out
}

/** A command for a busybox container that serves `answer` over HTTP on `port`. */
export function httpdCmd(answer: string, port = 80): string[] {
  return ['sh', '-c', `mkdir -p /www && echo ${answer} > /www/index.html && exec httpd -f -p ${port} -h /www`]
}
