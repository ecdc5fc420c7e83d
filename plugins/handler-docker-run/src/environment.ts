import {chmod, mkdir, mkdtemp, readdir, rm, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {type InterceptSession, debugLog, fitsDockerEnvFile, formatEnv, sortedEnv, swallow} from '@tp/sdk'

const trace = debugLog('tp:plugin:handler-docker-run')

/**
 * The handler's environment: the workload's (the daemon already left out HOME, PATH, HOSTNAME)
 * plus the variables that describe the intercept, where the daemon did not set them.
 */
export function handlerEnvironment(session: InterceptSession): Record<string, string> {
  const env = {...session.environment}
  env.TP_INTERCEPT_ID ??= session.id
  env.TP_WORKLOAD ??= session.workload
  env.TP_MOUNTS ??= session.mounts.map((m) => m.path).join(':')
  return sortedEnv(env)
}

/**
 * Variables the docker client itself reads: a workload variable of that name must not be put in
 * the client's environment (it would change where or how `docker run` runs).
 */
function affectsDockerClient(key: string): boolean {
  return (
    key.startsWith('DOCKER_') ||
    key.startsWith('LD_') ||
    ['PATH', 'HOME', 'TMPDIR', 'HTTP_PROXY', 'HTTPS_PROXY', 'NO_PROXY', 'http_proxy', 'https_proxy', 'no_proxy'].includes(key)
  )
}

export interface SplitEnvironment {
  /** Goes into the `--env-file` (one raw KEY=VALUE line each). */
  file: Record<string, string>
  /**
   * Values the env file cannot hold (multi-line, very long): passed as bare `-e KEY`, with the
   * value in the docker client's own environment — never in a file docker parses, never in argv.
   */
  client: Record<string, string>
  /** Variables that could be passed neither way, with the reason. */
  dropped: Array<{key: string; reason: string}>
}

export function splitEnvironment(env: Record<string, string>): SplitEnvironment {
  const split: SplitEnvironment = {file: {}, client: {}, dropped: []}
  for (const [key, value] of Object.entries(env)) {
    if (fitsDockerEnvFile(key, value)) split.file[key] = value
    else if (key === '' || key.includes('=') || key.includes('\0') || value.includes('\0')) {
      split.dropped.push({key, reason: 'an environment cannot hold that name or a NUL in the value'})
    } else if (affectsDockerClient(key)) {
      split.dropped.push({key, reason: 'its value spans several lines and the docker client reads a variable of that name itself'})
    } else split.client[key] = value
  }
  return split
}

/** Whether a process of that id runs (signal 0 only checks). */
function processRuns(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/**
 * Removes the env directories of tp commands that died without cleaning up (kill -9): each is
 * named after the pid that made it. They hold a workload's environment and must not linger.
 */
async function removeOrphanedEnvDirs(parent: string): Promise<void> {
  for (const name of (await readdir(parent).catch(swallow(trace, `listing ${parent}`))) ?? []) {
    const pid = Number(/^env-(\d+)-/.exec(name)?.[1])
    if (pid && pid !== process.pid && !processRuns(pid)) await rm(join(parent, name), {recursive: true, force: true})
  }
}

/** A private directory (0700) for one run's env file, and the file in it (0600). Remove it with `removeEnvDir`. */
export async function writeEnvFile(cacheDir: string, env: Record<string, string>): Promise<{dir: string; file: string}> {
  const parent = join(cacheDir, 'run')
  await mkdir(parent, {recursive: true, mode: 0o700})
  await removeOrphanedEnvDirs(parent)
  const dir = await mkdtemp(join(parent, `env-${process.pid}-`))
  await chmod(dir, 0o700)
  const file = join(dir, 'handler.env')
  await writeFile(file, formatEnv(env, 'docker'), {mode: 0o600})
  return {dir, file}
}

export async function removeEnvDir(dir: string): Promise<void> {
  await rm(dir, {recursive: true, force: true})
}
