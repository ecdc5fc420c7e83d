/**
 * The commands that bin/run.js may answer without oclif (fast-start.ts): argv exactly `version`,
 * `--help`, `help` or nothing (oclif prints the root help for the last three). Anything more
 * (`version --json`, `intercept --help`) is oclif's.
 */
export type FastCommand = 'help' | 'version'

export function fastCommand(argv: string[]): FastCommand | undefined {
  if (argv.length === 0) return 'help'
  if (argv.length !== 1) return undefined
  if (argv[0] === 'version') return 'version'
  if (argv[0] === '--help' || argv[0] === 'help') return 'help'
  return undefined
}
