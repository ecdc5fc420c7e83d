import {spawn, spawnSync} from 'node:child_process'
import {accessSync, constants} from 'node:fs'
import {delimiter, isAbsolute, join} from 'node:path'

/**
 * The one place this plugin runs commands. `run` is for short commands that end by themselves
 * (fusermount, umount): it never rejects for an exit code, only when the command cannot be started
 * at all. Long-lived sshfs processes are started in sshfs.ts with the same spawn defaults.
 */
export interface RunResult {
  command: string
  /** Exit code; null when the command was killed (timeout) or could not be started. */
  code: number | null
  stdout: string
  stderr: string
  /** Set when the command could not be started (ENOENT: not installed). */
  startError?: NodeJS.ErrnoException
}

const KEEP = 8000

export function run(command: string, args: string[], options: {timeoutMs?: number} = {}): Promise<RunResult> {
  return new Promise((resolve) => {
    const line = [command, ...args].join(' ')
    let stdout = ''
    let stderr = ''
    let settled = false
    const child = spawn(command, args, {stdio: ['ignore', 'pipe', 'pipe']})
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 10_000)
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout = (stdout + c).slice(-KEEP)))
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr = (stderr + c).slice(-KEEP)))
    const done = (result: Omit<RunResult, 'command' | 'stdout' | 'stderr'>) => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      resolve({command: line, stdout, stderr, ...result})
    }
    child.on('error', (error: NodeJS.ErrnoException) => done({code: null, startError: error}))
    child.on('close', (code) => done({code}))
  })
}

/** The synchronous variant, for `process.on('exit')` where nothing asynchronous runs any more. */
export function runSync(command: string, args: string[], timeoutMs = 5000): RunResult {
  const result = spawnSync(command, args, {stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8', timeout: timeoutMs})
  return {
    command: [command, ...args].join(' '),
    code: result.status,
    stdout: result.stdout ?? '',
    stderr: result.stderr ?? '',
    ...(result.error ? {startError: result.error as NodeJS.ErrnoException} : {}),
  }
}

/** The executable `name` would run as (PATH lookup), or undefined when there is none. */
export function findExecutable(name: string, path = process.env.PATH ?? ''): string | undefined {
  const candidates =
    isAbsolute(name) || name.includes('/')
      ? [name]
      : path
          .split(delimiter)
          .filter(Boolean)
          .map((dir) => join(dir, name))
  for (const candidate of candidates) {
    try {
      accessSync(candidate, constants.X_OK)
      return candidate
    } catch {
      // next
    }
  }
  return undefined
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))
