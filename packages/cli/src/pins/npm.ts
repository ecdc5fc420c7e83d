/** Every npm call of the pins goes through here: the npm that @oclif/plugin-plugins ships (as `tp plugins install` uses), else the one on PATH. */
import {execFile} from 'node:child_process'
import {readFileSync} from 'node:fs'
import {createRequire} from 'node:module'
import {dirname, join} from 'node:path'
import {debugLog} from '@tp/sdk'

const trace = debugLog('tp:cli:pins')

export interface NpmFailure {
  code?: string
  summary: string
}

export class NpmError extends Error {
  constructor(
    readonly args: string[],
    readonly failure: NpmFailure,
  ) {
    super(`npm ${args.join(' ')}: ${failure.summary}`)
  }
}

function npmCommand(): string[] {
  try {
    const fromPlugins = createRequire(createRequire(import.meta.url).resolve('@oclif/plugin-plugins/package.json'))
    const pjsonPath = fromPlugins.resolve('npm/package.json')
    const pjson = JSON.parse(readFileSync(pjsonPath, 'utf8')) as {bin: {npm: string}}
    return [process.execPath, join(dirname(pjsonPath), pjson.bin.npm)]
  } catch {
    return [process.platform === 'win32' ? 'npm.cmd' : 'npm']
  }
}

/** npm's own description of a failure: its `--json` error object, else the `npm error` lines of stderr. */
function failureOf(stdout: string, stderr: string): NpmFailure {
  try {
    const json = JSON.parse(stdout) as {error?: {code?: string; summary?: string; detail?: string}}
    if (json.error) return {code: json.error.code, summary: [json.error.summary, json.error.detail].filter(Boolean).join(' ').trim()}
  } catch {}
  const lines = stderr.split('\n').filter((l) => /^npm (error|ERR!)/.test(l))
  const code = /^npm (?:error|ERR!) code (\S+)/m.exec(stderr)?.[1]
  const summary = lines
    .filter((l) => !/ code \S+$|A complete log of this run/.test(l))
    .map((l) => l.replace(/^npm (error|ERR!) ?/, ''))
    .join(' ')
    .trim()
  return {code, summary: summary || stderr.trim().split('\n').slice(-3).join(' ') || 'failed'}
}

export function runNpm(args: string[], cwd: string, timeoutMs = 300_000): Promise<string> {
  const [command, ...first] = npmCommand()
  const all = [...first, ...args, '--no-fund', '--no-audit', '--no-update-notifier', '--loglevel=error']
  trace(`${cwd}: npm ${args.join(' ')}`)
  return new Promise((resolve, reject) => {
    execFile(command, all, {cwd, timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024}, (error, stdout, stderr) => {
      if (error) reject(new NpmError(args, failureOf(stdout, stderr)))
      else resolve(stdout)
    })
  })
}

/**
 * For fetching one tarball or one manifest: npm's default retries take over a minute to give up on
 * a registry that is not there (offline, stopped); a few seconds say so as well.
 */
export const FEW_RETRIES = ['--fetch-retries=2', '--fetch-retry-mintimeout=500', '--fetch-retry-maxtimeout=2000']

/** What `npm pack --json` says of the package it fetched. */
export interface Packed {
  name: string
  version: string
  filename: string
  integrity: string
}

/** `npm pack <spec>` into `dir`: fetches a registry package (or a tarball) as npm would, through npm's cache. */
export async function npmPack(spec: string, dir: string, registry?: string): Promise<Packed> {
  const stdout = await runNpm(['pack', spec, '--json', '--pack-destination', dir, ...FEW_RETRIES, ...(registry ? [`--registry=${registry}`] : [])], dir)
  const [packed] = JSON.parse(stdout) as Packed[]
  return packed
}
