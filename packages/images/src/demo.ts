import {createHash} from 'node:crypto'
import Dockerode from 'dockerode'
import {isConflict, isNotFound, sleep, UserError, debugLog, swallow} from '@tp/sdk'
import {type FixtureImages, ensureFixtureImages} from './fixtures.js'

const trace = debugLog('tp:cli')

/**
 * The demo cluster: a Docker network (the namespace) with two workloads, `frontend-v1` and
 * `catalog`, built from the local fixture images. Every object carries `tp.demo=true` (never
 * `tp.managed`: tp's own clean-up must not touch it) and `tp.demo.network=<network>`.
 */

export const LABEL_DEMO = 'tp.demo'
export const LABEL_DEMO_NETWORK = 'tp.demo.network'
/** Hash of a demo container's configuration; a container whose hash differs is recreated. */
const LABEL_DEMO_SPEC = 'tp.demo.spec'

export const DEMO_NETWORK = 'tp-demo'
export const CATALOG_JSON = '{"catalog":["apple","pear"]}'
export const DEMO_GREETING = 'hello from frontend-v1'
export const DEMO_NOTES = 'first line\nsecond line'
export const DEMO_CONFIG_TXT = 'greeting-source=demo-volume\n'
export const DEMO_SETTINGS_TXT = 'mode=read-only\n'

export interface DemoOptions {
  /** Network (namespace) name; default `tp-demo`. */
  network?: string
  /** Prefix of container and volume names; default none for `tp-demo`, else `<network>-`. */
  prefix?: string
  /** Progress messages. */
  log?: (message: string) => void
}

export interface DemoNames {
  network: string
  frontend: string
  catalog: string
  dataVolume: string
  readOnlyVolume: string
}

export interface DemoCluster extends DemoNames {
  images: FixtureImages
  /** What `up` did to each object: created, recreated or reused. */
  actions: Record<string, 'created' | 'recreated' | 'reused'>
}

export function demoNames(options: DemoOptions = {}): DemoNames {
  const network = options.network ?? DEMO_NETWORK
  const prefix = options.prefix ?? (network === DEMO_NETWORK ? '' : `${network}-`)
  const volumePrefix = prefix === '' ? 'tp-demo-' : prefix
  return {
    network,
    frontend: `${prefix}frontend-v1`,
    catalog: `${prefix}catalog`,
    dataVolume: `${volumePrefix}frontend-data`,
    readOnlyVolume: `${volumePrefix}frontend-ro`,
  }
}

/** A Docker client for the local engine, or a UserError saying where it looked. */
export async function connectDocker(): Promise<Dockerode> {
  const docker = new Dockerode()
  try {
    await docker.ping()
  } catch (error) {
    const where = process.env.DOCKER_HOST ? `DOCKER_HOST=${process.env.DOCKER_HOST}` : 'the default socket /var/run/docker.sock (DOCKER_HOST is not set)'
    throw new UserError(
      `the Docker engine is unreachable: looked at ${where} (${(error as Error).message})`,
      'start Docker (e.g. `dockerd &`), or point DOCKER_HOST at a running engine',
    )
  }
  return docker
}

function demoLabels(network: string): Record<string, string> {
  return {[LABEL_DEMO]: 'true', [LABEL_DEMO_NETWORK]: network}
}

async function ensureNetwork(docker: Dockerode, name: string): Promise<'created' | 'reused'> {
  const existing = await docker
    .getNetwork(name)
    .inspect()
    .catch((error) => {
      if (isNotFound(error)) return undefined
      throw error
    })
  if (existing) return 'reused'
  try {
    await docker.createNetwork({Name: name, Driver: 'bridge', CheckDuplicate: true, Labels: demoLabels(name)})
  } catch (error) {
    // another `tp demo up` created it meanwhile
    if (isConflict(error)) return 'reused'
    throw error
  }
  return 'created'
}

async function ensureVolume(docker: Dockerode, name: string, network: string): Promise<'created' | 'reused'> {
  const existing = await docker
    .getVolume(name)
    .inspect()
    .catch((error) => {
      if (isNotFound(error)) return undefined
      throw error
    })
  if (existing) return 'reused'
  await docker.createVolume({Name: name, Labels: demoLabels(network)})
  return 'created'
}

/** Runs a short-lived container to completion and returns its exit code and output. */
async function runOnce(docker: Dockerode, options: Dockerode.ContainerCreateOptions): Promise<{code: number; output: string}> {
  const container = await docker.createContainer({...options, Tty: true})
  try {
    await container.start()
    const {StatusCode} = (await container.wait()) as {StatusCode: number}
    const logs = await container.logs({stdout: true, stderr: true})
    return {code: StatusCode, output: logs.toString()}
  } finally {
    await container.remove({force: true}).catch(swallow(trace, 'removing a one-off demo container'))
  }
}

/** Puts the demo's files into its volumes; /data/config.txt only if missing (tests may change it). */
async function seedVolumes(docker: Dockerode, names: DemoNames, busybox: string): Promise<void> {
  const script = [`[ -f /data/config.txt ] || printf '%s' "$CONFIG_TXT" > /data/config.txt`, `printf '%s' "$SETTINGS_TXT" > /etc/frontend/settings.txt`].join(
    ' && ',
  )
  const result = await runOnce(docker, {
    Image: busybox,
    Cmd: ['sh', '-c', script],
    Env: [`CONFIG_TXT=${DEMO_CONFIG_TXT}`, `SETTINGS_TXT=${DEMO_SETTINGS_TXT}`],
    Labels: demoLabels(names.network),
    HostConfig: {Binds: [`${names.dataVolume}:/data`, `${names.readOnlyVolume}:/etc/frontend`], NetworkMode: 'none'},
  })
  if (result.code !== 0)
    throw new UserError(`could not write the demo's files into its volumes: ${result.output.trim()}`, 'run `tp demo down`, then `tp demo up` again')
}

interface WorkloadSpec {
  name: string
  alias: string
  env: string[]
  binds: string[]
}

/**
 * Creates the container, or keeps the existing one when it is running with the same configuration
 * (so an intercept in progress against it is never disturbed); anything else is replaced.
 */
async function ensureWorkload(
  docker: Dockerode,
  names: DemoNames,
  image: string,
  spec: WorkloadSpec,
  attempt = 1,
): Promise<'created' | 'recreated' | 'reused'> {
  const imageId = (await docker.getImage(image).inspect()).Id
  const specHash = createHash('sha256')
    .update(JSON.stringify({imageId, ...spec, network: names.network}))
    .digest('hex')
    .slice(0, 16)
  const existing = await docker
    .getContainer(spec.name)
    .inspect()
    .catch((error) => {
      if (isNotFound(error)) return undefined
      throw error
    })
  if (existing) {
    const sameSpec = existing.Config.Labels?.[LABEL_DEMO_SPEC] === specHash
    if (sameSpec && existing.State.Running && existing.NetworkSettings.Networks[names.network]) return 'reused'
    if (existing.Config.Labels?.[LABEL_DEMO] !== 'true') {
      throw new UserError(
        `a container named ${spec.name} exists and is not part of the demo`,
        `remove or rename it (docker rm -f ${spec.name}), then run \`tp demo up\` again`,
      )
    }
    await docker.getContainer(spec.name).remove({force: true})
  }
  let container: Dockerode.Container
  try {
    container = await docker.createContainer({
      name: spec.name,
      Image: image,
      Env: spec.env,
      Labels: {...demoLabels(names.network), [LABEL_DEMO_SPEC]: specHash},
      HostConfig: {Binds: spec.binds, NetworkMode: names.network},
      NetworkingConfig: {EndpointsConfig: {[names.network]: {Aliases: [spec.alias]}}},
    })
  } catch (error) {
    // a concurrent `tp demo up` won the race for the name: look again at what it made
    if (isConflict(error) && attempt < 3) {
      await sleep(1000)
      return ensureWorkload(docker, names, image, spec, attempt + 1)
    }
    throw error
  }
  await container.start()
  return existing ? 'recreated' : 'created'
}

/** Waits until both workloads answer through the network's DNS, as a client in the cluster would. */
async function waitUntilServing(docker: Dockerode, names: DemoNames, busybox: string, timeoutSeconds = 30): Promise<void> {
  const check = `timeout 2 wget -q -O /dev/null http://frontend-v1/ && timeout 2 wget -q -O /dev/null http://catalog/`
  const script = `i=0; while [ $i -lt ${timeoutSeconds * 5} ]; do ${check} && exit 0; i=$((i+1)); sleep 0.2; done; ${check}`
  const result = await runOnce(docker, {Image: busybox, Cmd: ['sh', '-c', script], Labels: demoLabels(names.network), HostConfig: {NetworkMode: names.network}})
  if (result.code !== 0) {
    throw new UserError(
      `the demo workloads did not answer on network ${names.network} within ${timeoutSeconds}s: ${result.output.trim()}`,
      `look at \`docker logs ${names.frontend}\` and \`docker logs ${names.catalog}\`, then run \`tp demo down\` and \`tp demo up\``,
    )
  }
}

/** Creates the demo cluster, or repairs and reuses what exists. Returns once both workloads answer. */
export async function demoUp(docker: Dockerode, options: DemoOptions = {}): Promise<DemoCluster> {
  const names = demoNames(options)
  const log = options.log ?? (() => {})
  const images = await ensureFixtureImages(docker)
  const actions: DemoCluster['actions'] = {}
  actions[`network ${names.network}`] = await ensureNetwork(docker, names.network)
  actions[`volume ${names.dataVolume}`] = await ensureVolume(docker, names.dataVolume, names.network)
  actions[`volume ${names.readOnlyVolume}`] = await ensureVolume(docker, names.readOnlyVolume, names.network)
  await seedVolumes(docker, names, images.busybox)
  actions[`container ${names.frontend}`] = await ensureWorkload(docker, names, images.workload, {
    name: names.frontend,
    alias: 'frontend-v1',
    env: ['WORKLOAD_NAME=frontend-v1', `GREETING=${DEMO_GREETING}`, `DEMO_NOTES=${DEMO_NOTES}`],
    binds: [`${names.dataVolume}:/data`, `${names.readOnlyVolume}:/etc/frontend:ro`],
  })
  actions[`container ${names.catalog}`] = await ensureWorkload(docker, names, images.workload, {
    name: names.catalog,
    alias: 'catalog',
    env: ['WORKLOAD_NAME=catalog', `RESPONSE_JSON=${CATALOG_JSON}`],
    binds: [],
  })
  for (const [object, action] of Object.entries(actions)) log(`${action.padEnd(9)} ${object}`)
  await waitUntilServing(docker, names, images.busybox)
  return {...names, images, actions}
}

export interface DemoDownResult {
  removed: string[]
}

/**
 * Containers that use the demo without being part of it: on its network, or in the network
 * namespace of one of its workloads (a tp agent or handler). Removing the demo under them would
 * break them, so `down` refuses while there are any.
 */
async function foreignUsers(docker: Dockerode, network: Dockerode.NetworkInspectInfo | undefined, ours: Dockerode.ContainerInfo[]): Promise<string[]> {
  const ourIds = new Set(ours.map((c) => c.Id))
  const ourNames = new Set(ours.flatMap((c) => c.Names.map((n) => n.replace(/^\//, ''))))
  const users = new Set<string>()
  for (const [id, endpoint] of Object.entries((network?.Containers ?? {}) as Record<string, {Name: string}>)) {
    if (!ourIds.has(id)) users.add(endpoint.Name)
  }
  for (const c of await docker.listContainers({all: true})) {
    const mode = c.HostConfig?.NetworkMode ?? ''
    if (!mode.startsWith('container:')) continue
    const target = mode.slice('container:'.length)
    if (ourNames.has(target) || [...ourIds].some((id) => id.startsWith(target))) users.add(c.Names[0]?.replace(/^\//, '') ?? c.Id)
  }
  return [...users]
}

/** Removes the demo's containers, volumes and network; refuses, removing nothing, while others use it. */
export async function demoDown(docker: Dockerode, options: DemoOptions = {}): Promise<DemoDownResult> {
  const names = demoNames(options)
  const log = options.log ?? (() => {})
  const removed: string[] = []
  const filters = JSON.stringify({label: [`${LABEL_DEMO}=true`, `${LABEL_DEMO_NETWORK}=${names.network}`]})
  const containers = await docker.listContainers({all: true, filters})
  const network = await docker
    .getNetwork(names.network)
    .inspect()
    .catch((error) => {
      if (isNotFound(error)) return undefined
      throw error
    })
  const others = await foreignUsers(docker, network, containers)
  if (others.length > 0) {
    throw new UserError(
      `the demo on network ${names.network} is still in use by ${others.join(', ')}, which the demo did not create; nothing was removed`,
      "end those first (`tp quit` ends tp's intercepts and daemons), then run `tp demo down` again",
    )
  }
  for (const c of containers) {
    await docker
      .getContainer(c.Id)
      .remove({force: true})
      .catch((error) => {
        if (!isNotFound(error)) throw error
      })
    removed.push(`container ${c.Names[0]?.replace(/^\//, '') ?? c.Id}`)
  }
  if (network?.Labels?.[LABEL_DEMO] === 'true') {
    await docker.getNetwork(names.network).remove()
    removed.push(`network ${names.network}`)
  }
  const {Volumes} = await docker.listVolumes({filters})
  for (const v of Volumes ?? []) {
    await docker.getVolume(v.Name).remove()
    removed.push(`volume ${v.Name}`)
  }
  for (const r of removed) log(`removed ${r}`)
  return {removed}
}
