/**
 * `tp --version`, answered without loading oclif (bin/run.js asks this first): the line oclif
 * prints for it — `config.userAgent`, `<name>/<version> <platform>-<arch> node-<version>`, with
 * oclif's own platform check (`wsl` under WSL) — at a fraction of the start-up cost. Unlike oclif,
 * it runs no `init` hook first: printing a version changes nothing on the machine.
 */
import {createRequire} from 'node:module'
import {arch, platform} from 'node:os'

/** True when argv asks for the version (oclif looks only at the first word) and it was printed. */
export async function answeredVersionFlag(argv: string[]): Promise<boolean> {
  if (argv[0] !== '--version') return false
  const pjson = createRequire(import.meta.url)('@tp/cli/package.json') as {name: string; version: string}
  const {isWsl} = await import('wsl-utils')
  const cpu = arch() === 'ia32' ? 'x86' : arch()
  process.stdout.write(`${pjson.name}/${pjson.version} ${isWsl ? 'wsl' : platform()}-${cpu} node-${process.version}\n`)
  return true
}
