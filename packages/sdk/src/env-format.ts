import {UserError} from './errors.js'

/**
 * Writers for the intercepted environment in the syntaxes other tools read
 * (`tp intercept --env-file <path> --env-syntax <syntax>`). Each writer either produces text that
 * its reader turns back into exactly the given values, or refuses with a UserError naming the
 * variable and a syntax that can hold it. Variables are written in the order given (callers pass
 * a sorted map).
 *
 * - docker:  `docker run --env-file`: raw `KEY=VALUE` lines, no quoting at all. Cannot hold a
 *            newline or carriage return, a key with whitespace, or a line over 64 KiB.
 * - compose: the `.env` syntax of Docker Compose v2 (compose-go's dotenv parser, as documented in
 *            "Set environment variables with an env file"). A value with no `'`, `\`, CR or LF is
 *            written single-quoted (taken literally by Compose v1 and v2 alike); one with a
 *            backslash but no space around it, no quote at its start and no `#`, `$`, CR or LF
 *            unquoted; any other value double-quoted with `\\`, `\"`, `\$`, `\n`, `\r` escapes.
 *            Compose v1 (python-dotenv) reads `\$` in double quotes literally and ends a
 *            double-quoted value early at a trailing `\`: such values differ there.
 * - sh:      POSIX shells (`. file`): `KEY='…'` shell variables, a `'` written `'\''`;
 *            sh:export: `export KEY='…'`, for the commands the shell starts too.
 * - csh:     csh/tcsh (`source file`): `set KEY='…'` shell variables, `'` as `'\''`, `!` as `\!`
 *            (history), a newline as backslash-newline inside the quotes; csh:export: `setenv KEY '…'`.
 * - ps:      PowerShell (`. ./file.ps1`): `$env:KEY = '…'` (the session's environment); inside
 *            single quotes only a quote character needs doubling (PowerShell also treats ‘ ’ ‚ ‛ as
 *            single quotes). ps:export: `[Environment]::SetEnvironmentVariable('KEY', '…', 'User')`,
 *            which keeps them in the user's environment for processes started later.
 *            Windows has no empty variables: an empty value (ps and cmd) leaves the variable unset.
 * - cmd:     Windows batch files (`call file.cmd`): `set "KEY=…"`, `%` as `%%`, and `^ & | < > ( )`
 *            escaped with `^` where a `"` in the value has closed the quotes. Assumes delayed
 *            expansion is off (the default). Cannot hold a newline.
 */
/** The reference's names: `sh`, `csh` and `ps` assign, their `:export` forms export. */
export const ENV_SYNTAXES = ['docker', 'compose', 'sh', 'sh:export', 'csh', 'csh:export', 'ps', 'ps:export', 'cmd'] as const
export type EnvSyntax = (typeof ENV_SYNTAXES)[number]

export function isEnvSyntax(value: string): value is EnvSyntax {
  return (ENV_SYNTAXES as readonly string[]).includes(value)
}

/** docker reads env files with Go's bufio.Scanner, whose default line limit is 64 KiB. */
const DOCKER_MAX_LINE = 64 * 1024 - 1

/** Keys every shell syntax can name: the POSIX portable identifier. */
const SHELL_KEY = /^[A-Za-z_][A-Za-z0-9_]*$/
/** compose-go accepts letters, digits, `_` and `.` in a key. */
const COMPOSE_KEY = /^[\p{L}\p{N}_.]+$/u
/** A value Compose reads unquoted as it is: no comment, interpolation, quotes or surrounding space. */
const UNQUOTED_SAFE = /^(?![\s'"])[^#$\r\n]*(?<!\s)$/u

function cannot(syntax: EnvSyntax, key: string, why: string, instead: string): UserError {
  return new UserError(`the ${syntax} env-file syntax cannot hold variable ${key}: ${why}`, instead)
}

function hasNewline(value: string): boolean {
  return value.includes('\n') || value.includes('\r')
}

function checkCommon(syntax: EnvSyntax, key: string, value: string): void {
  if (key.length === 0 || key.includes('=') || key.includes('\0')) {
    throw cannot(syntax, JSON.stringify(key), 'it is not a valid variable name', 'rename the variable in the workload')
  }
  if (value.includes('\0')) {
    throw cannot(syntax, key, 'its value contains a NUL character, which no environment can hold', 'remove the NUL from the value')
  }
}

function docker(key: string, value: string): string {
  if (/\s/u.test(key) || key.startsWith('#')) {
    throw cannot('docker', key, 'docker rejects names with whitespace or a leading #', 'use --env-syntax compose, or --env-json')
  }
  if (hasNewline(value)) {
    throw cannot(
      'docker',
      key,
      'its value spans several lines and docker reads one variable per line, unquoted',
      'use --env-syntax compose or sh, or --env-json',
    )
  }
  const line = `${key}=${value}`
  if (Buffer.byteLength(line) > DOCKER_MAX_LINE) {
    throw cannot('docker', key, 'its line is longer than the 64 KiB docker reads', 'use --env-syntax compose or sh, or --env-json')
  }
  return line
}

function compose(key: string, value: string): string {
  if (!COMPOSE_KEY.test(key)) {
    throw cannot('compose', key, 'Compose only reads names made of letters, digits, "_" and "."', 'use --env-json')
  }
  if (!/['\\\r\n]/.test(value)) return `${key}='${value}'`
  // a trailing backslash before the closing quote is misread as an escaped quote by python-dotenv
  // (Compose v1) and older compose-go; unquoted, such a value is read as it is
  if (UNQUOTED_SAFE.test(value)) return `${key}=${value}`
  const escaped = value.replace(/[\\"$\n\r]/g, (c) => ({'\\': '\\\\', '"': '\\"', $: '\\$', '\n': '\\n', '\r': '\\r'})[c]!)
  return `${key}="${escaped}"`
}

function shellKey(syntax: EnvSyntax, key: string): void {
  if (!SHELL_KEY.test(key)) {
    throw cannot(
      syntax,
      key,
      'a shell variable name is letters, digits and "_", not starting with a digit',
      'use --env-syntax docker or compose, or --env-json',
    )
  }
}

function shQuoted(syntax: EnvSyntax, key: string, value: string): string {
  shellKey(syntax, key)
  return `'${value.replaceAll("'", `'\\''`)}'`
}

const sh = (key: string, value: string) => `${key}=${shQuoted('sh', key, value)}`
const shExport = (key: string, value: string) => `export ${key}=${shQuoted('sh:export', key, value)}`

function cshQuoted(syntax: EnvSyntax, key: string, value: string): string {
  shellKey(syntax, key)
  if (value.includes('\r')) {
    throw cannot(syntax, key, 'csh cannot read a carriage return inside quotes reliably', 'use --env-syntax sh, or --env-json')
  }
  // `!` triggers history substitution even inside single quotes; backslash-newline inside quotes is a newline
  return `'${value.replaceAll("'", `'\\''`).replaceAll('!', `'\\!'`).replaceAll('\n', '\\\n')}'`
}

const csh = (key: string, value: string) => `set ${key}=${cshQuoted('csh', key, value)}`
const cshExport = (key: string, value: string) => `setenv ${key} ${cshQuoted('csh:export', key, value)}`

function psQuoted(syntax: EnvSyntax, key: string, value: string): string {
  shellKey(syntax, key)
  return `'${value.replace(/['\u2018\u2019\u201a\u201b]/g, (c) => c + c)}'`
}

const ps = (key: string, value: string) => `$env:${key} = ${psQuoted('ps', key, value)}`
const psExport = (key: string, value: string) => `[Environment]::SetEnvironmentVariable('${key}', ${psQuoted('ps:export', key, value)}, 'User')`

function cmd(key: string, value: string): string {
  shellKey('cmd', key)
  if (hasNewline(value)) {
    throw cannot('cmd', key, 'a batch file cannot set a multi-line value', 'use --env-syntax ps, or --env-json')
  }
  // `set "KEY=value"`: cmd takes everything up to the last quote. Each `"` in the value toggles
  // cmd's quote state; outside quotes, special characters need a caret.
  let inQuotes = true
  let out = ''
  for (const c of value) {
    if (c === '%') out += '%%'
    else if (c === '"') {
      inQuotes = !inQuotes
      out += c
    } else if (!inQuotes && '^&|<>()'.includes(c)) out += `^${c}`
    else out += c
  }
  return `set "${key}=${out}"`
}

const WRITERS: Record<EnvSyntax, (key: string, value: string) => string> = {
  docker,
  compose,
  sh,
  'sh:export': shExport,
  csh,
  'csh:export': cshExport,
  ps,
  'ps:export': psExport,
  cmd,
}

/** The environment in the given syntax, one variable per line (or per statement), ending with a newline. */
export function formatEnv(env: Record<string, string>, syntax: EnvSyntax): string {
  const write = WRITERS[syntax]
  if (!write) {
    throw new UserError(`unknown env-file syntax "${String(syntax)}"`, `use one of: ${ENV_SYNTAXES.join(', ')}`)
  }
  const lines: string[] = []
  for (const [key, value] of Object.entries(env)) {
    checkCommon(syntax, key, value)
    lines.push(write(key, value))
  }
  return lines.length === 0 ? '' : `${lines.join('\n')}\n`
}

/** Whether the docker env-file syntax can hold this variable (the docker-run handler passes others as bare `-e KEY`). */
export function fitsDockerEnvFile(key: string, value: string): boolean {
  try {
    checkCommon('docker', key, value)
    docker(key, value)
    return true
  } catch {
    return false
  }
}
