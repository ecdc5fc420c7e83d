import type Dockerode from 'dockerode'
import {dockerStatusCode, UserError, dockerUnreachable, tail} from '@tp/sdk'

export interface ResolvedImage {
  /** The image as the user named it. */
  ref: string
  /** The image id (`sha256:…`) that will run. */
  id: string
  pulled: boolean
}

/** Pulls an image; rejects with docker's own words. Uses the docker CLI so the user's registry credentials apply. */
export type PullImage = (ref: string) => Promise<void>

export const dockerCliPull: PullImage = async (ref) => {
  // loaded only when an image is missing: not on the way to every handler's start
  const {execa} = await import('execa')
  const result = await execa('docker', ['pull', ref], {reject: false, stdin: 'ignore'})
  if (result.exitCode !== 0) throw new Error(tail(String(result.stderr || result.stdout), 4).trim() || `docker pull exited with ${result.exitCode}`)
}

async function inspect(docker: Dockerode, ref: string): Promise<string | undefined> {
  try {
    return (await docker.getImage(ref).inspect()).Id
  } catch (error) {
    const status = dockerStatusCode(error)
    if (status === 404) return undefined
    if (status === undefined) throw dockerUnreachable(error) // no answer at all: the engine is not there
    throw new UserError(`Docker could not look up image ${ref}: ${(error as Error).message}`, 'check the image name (docker images)', {cause: error})
  }
}

/** Finds the image locally; pulls it only if it is missing. Nothing else is created. */
export async function resolveImage(docker: Dockerode, ref: string, options: {pull?: PullImage; onPull?: (ref: string) => void} = {}): Promise<ResolvedImage> {
  const local = await inspect(docker, ref)
  if (local) return {ref, id: local, pulled: false}
  options.onPull?.(ref)
  try {
    await (options.pull ?? dockerCliPull)(ref)
  } catch (error) {
    throw new UserError(
      `image ${ref} was not found locally and could not be pulled: ${(error as Error).message}`,
      `build it (docker build -t ${ref} <dir>) or check the name; \`docker images\` lists the local ones`,
    )
  }
  const pulled = await inspect(docker, ref)
  if (!pulled) throw new UserError(`image ${ref} was pulled but Docker still does not find it`, 'check the name (docker images)')
  return {ref, id: pulled, pulled: true}
}
