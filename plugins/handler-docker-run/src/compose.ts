import {type InterceptSession, type RunExtras, labelArgs, tpLabels} from '@tp/sdk'
import type {DockerRunPlan} from './plan.js'

/** Docker's container-name rule, applied to the parts tp puts in a default name. */
function nameSafe(part: string): string {
  return part.replace(/[^a-zA-Z0-9_.-]/g, '-')
}

/** The name tp gives the container unless the user chose one. */
export function defaultContainerName(session: InterceptSession): string {
  if (session.mode === 'ingest' || session.mode === 'replace' || session.mode === 'wiretap') return `${session.mode}-${nameSafe(session.name)}`
  return `intercept-${nameSafe(session.name)}-${session.ports.local}`
}

/** `-p` pairs (this machine's port, the container's) a handler container publishes: an ingest none, a replace every port it takes. */
export function publishedPorts(session: Pick<InterceptSession, 'mode' | 'ports' | 'replacedPorts'>): Array<[number, number]> {
  if (session.mode === 'ingest') return []
  if (session.mode === 'replace' && session.replacedPorts)
    return session.replacedPorts.map((p) => [p.local, p.local === session.ports.local ? session.ports.container : p.local])
  return [[session.ports.local, session.ports.container]]
}

export interface ComposeInput {
  plan: DockerRunPlan
  session: InterceptSession
  extras: RunExtras
  /** The env file tp wrote. */
  envFile: string
  /** Variables passed as bare `-e KEY` (their values are in the docker client's environment). */
  clientEnvKeys: string[]
  /** The image to run: the resolved image id, or the plan's image. */
  image: string
  /** Where docker writes the container id once it exists (tells "never created" from "failed"). */
  cidFile?: string
}

export interface ComposedRun {
  args: string[]
  /** The container's name (given by the user, or tp's). */
  name: string
  /** Whether tp added `--rm` (then tp also removes the container if docker could not). */
  tpRemoves: boolean
}

/**
 * `docker run` arguments: tp's options first, then the user's (so a user's `-e`, `--env-file` or
 * other single-valued option wins), then the image and the container's arguments untouched.
 */
export function composeDockerRun(input: ComposeInput): ComposedRun {
  const {plan, session, extras} = input
  const args = ['run', '--env-file', input.envFile]
  for (const key of input.clientEnvKeys) args.push('-e', key)
  const name = plan.name ?? defaultContainerName(session)
  if (plan.name === undefined) args.push('--name', name)
  const tpRemoves = plan.rm === undefined
  if (tpRemoves) args.push('--rm')
  if (input.cidFile && plan.cidFile === undefined) args.push('--cidfile', input.cidFile)
  args.push(...labelArgs(tpLabels({connection: session.daemon.connection, intercept: session.name, role: 'handler'})))
  const {placement} = session
  args.push(...placement.containerArgs)
  args.push(...extras.dockerRunArgs)
  // the volumes mounted on this machine, bound where --docker-mount says
  if (plan.dockerMount !== undefined && extras.root) args.push('-v', `${extras.root}:${plan.dockerMount}`)
  // a container on its own network is reached through a published port
  if (placement.capabilities.canPublishPorts) for (const [local, container] of publishedPorts(session)) args.push('-p', `${local}:${container}`)
  args.push(...plan.optionArgs, input.image, ...plan.containerArgs)
  return {args, name, tpRemoves}
}
