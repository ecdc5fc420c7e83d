/**
 * `tp --version`, answered without loading oclif (bin/run.js asks this first): the line oclif
 * prints for it — `config.userAgent`, `<name>/<version> <platform>-<arch> node-<version>`, with
 * oclif's own platform check (`wsl` under WSL) — at a fraction of the start-up cost. Unlike oclif,
 * it runs no `init` hook first: printing a version changes nothing on the machine.
 */
import {createRequire} from 'node:module'
import {arch, platform} from 'node:os'

/** oclif's `config.platform` (`wsl` under WSL) and `config.arch`. */
export async function platformAndArch(): Promise<{platform: string; arch: string}> {
  const {isWsl} = await import('wsl-utils')
  return {platform: isWsl ? 'wsl' : platform(), arch: arch() === 'ia32' ? 'x86' : arch()}
}

/** oclif's `config.userAgent`. */
export async function userAgent(pjson: {name: string; version: string}): Promise<string> {
  const {platform, arch} = await platformAndArch()
  return `${pjson.name}/${pjson.version} ${platform}-${arch} node-${process.version}`
}

/** True when argv asks for the version (oclif looks only at the first word) and it was printed. */
export async function answeredVersionFlag(argv: string[]): Promise<boolean> {
  if (argv[0] !== '--version') return false
  const pjson = createRequire(import.meta.url)('@tp/cli/package.json') as {name: string; version: string}
  process.stdout.write(`${await userAgent(pjson)}\n`)
  return true
}
