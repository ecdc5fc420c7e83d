import {execFileSync, spawnSync} from 'node:child_process'
import {mkdtempSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import Docker from 'dockerode'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {ENV_SYNTAXES, type EnvSyntax, formatEnv, isUserError} from '@tp/sdk'
import {ensureImportedImage} from '@tp/images'

/**
 * Every writer is checked by reading its output back with the program that reads that syntax:
 * docker's own `--env-file`, sh, csh (tcsh) and PowerShell where installed. Compose and cmd (and
 * csh/PowerShell where missing) are read back with the reverse parsers below, written from the
 * documented rules of those readers.
 */

const VALUES: Record<string, string> = {
  PLAIN: 'hello',
  EMPTY: '',
  SPACES: '  two  spaces  inside and around  ',
  SINGLE_QUOTE: "it's 'quoted'",
  DOUBLE_QUOTE: 'say "hi" "',
  DOLLAR: '$HOME ${PATH} $(id) `id` $$',
  EQUALS: 'a=b==c=',
  BACKSLASH: 'C:\\path\\to\\ end\\',
  UNICODE: 'héllo wörld ✓ 日本 🎉',
  TAB: 'a\tb\t',
  HASH: '#not a comment # x',
  BANG: 'wow!!1 !$ !-1',
  PERCENT: '100% %PATH% %%',
  SPECIAL: 'a&b|c<d>e^f(g)h;i*?[x]~',
  SMART_QUOTES: 'it’s ‘x’ ‚y‛',
  QUOTE_THEN_SPECIAL: 'x"a&b|c"d^e',
  TRAILING_BACKSLASH: 'dir\\',
  TRAILING_BACKSLASH_SPACE: 'a b\\',
}
const MULTI_LINE: Record<string, string> = {
  NEWLINE: 'line1\nline2\n',
  LEADING_NEWLINE: '\nfirst',
  MIXED: `'"\\$x\n\t'\\\nend`,
  BACKSLASH_NEWLINE: 'a\\\nb',
  PEM: '-----BEGIN KEY-----\nMIIB+abc/def==\n-----END KEY-----\n',
  NEWLINE_TRAILING_BACKSLASH: '$x\n#y\\',
}
const CR: Record<string, string> = {CRLF: 'a\r\nb', CR_END: 'x\r'}

/** Which values each syntax must carry (the others must be refused, tested below). */
const CARRIES: Record<EnvSyntax, Record<string, string>> = {
  docker: VALUES,
  compose: {...VALUES, ...MULTI_LINE, ...CR},
  sh: {...VALUES, ...MULTI_LINE, ...CR},
  'sh:export': {...VALUES, ...MULTI_LINE, ...CR},
  csh: {...VALUES, ...MULTI_LINE},
  'csh:export': {...VALUES, ...MULTI_LINE},
  ps: {...VALUES, ...MULTI_LINE, ...CR},
  'ps:export': {...VALUES, ...MULTI_LINE, ...CR},
  cmd: VALUES,
}

const work = mkdtempSync(join(tmpdir(), 'tpt-envfmt-'))
let fileCounter = 0
function writeTemp(text: string, ext = ''): string {
  const file = join(work, `env-${++fileCounter}${ext}`)
  writeFileSync(file, text)
  return file
}

function parseNulEnv(output: Buffer): Record<string, string> {
  const env: Record<string, string> = {}
  for (const entry of output.toString('utf8').split('\0')) {
    const eq = entry.indexOf('=')
    if (eq > 0) env[entry.slice(0, eq)] = entry.slice(eq + 1)
  }
  return env
}

function pick(env: Record<string, string>, keys: string[]): Record<string, string> {
  return Object.fromEntries(keys.filter((k) => k in env).map((k) => [k, env[k]]))
}

function have(program: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${program}`]).status === 0
}

// ---------------------------------------------------------------------------------------------
// Reverse parsers

/** Compose v2 (compose-go dotenv) rules for the forms formatEnv writes: KEY='literal' and KEY="escaped". */
function parseCompose(text: string): Record<string, string> {
  const env: Record<string, string> = {}
  let i = 0
  while (i < text.length) {
    while (i < text.length && /\s/.test(text[i])) i++
    if (i >= text.length) break
    if (text[i] === '#') {
      i = text.indexOf('\n', i) === -1 ? text.length : text.indexOf('\n', i)
      continue
    }
    const eq = text.indexOf('=', i)
    const key = text.slice(i, eq).trim()
    i = eq + 1
    const quote = text[i]
    let value = ''
    if (quote === "'") {
      const end = text.indexOf("'", i + 1)
      value = text.slice(i + 1, end)
      i = end + 1
    } else if (quote === '"') {
      i++
      for (;;) {
        const c = text[i++]
        if (c === '"') break
        if (c === undefined) throw new Error(`unterminated value of ${key}`)
        if (c === '\\') {
          const n = text[i++]
          value += n === 'n' ? '\n' : n === 'r' ? '\r' : n
        } else if (c === '$') {
          throw new Error(`unescaped $ in ${key}: compose would interpolate it`)
        } else value += c
      }
    } else {
      const end = text.indexOf('\n', i)
      value = text
        .slice(i, end === -1 ? undefined : end)
        .split('#')[0]
        .trimEnd()
      i = end === -1 ? text.length : end
    }
    env[key] = value
  }
  return env
}

/**
 * csh rules for `setenv KEY 'a'\''b'\!'c\<newline>d'` (csh:export) or `set KEY='…'` (csh): quotes
 * concatenate, `\x` outside quotes is x.
 */
function parseCsh(text: string, form: 'set' | 'setenv'): Record<string, string> {
  const env: Record<string, string> = {}
  let i = 0
  while (i < text.length) {
    if (text[i] === '\n') {
      i++
      continue
    }
    const match = (form === 'setenv' ? /^setenv ([A-Za-z_][A-Za-z0-9_]*) / : /^set ([A-Za-z_][A-Za-z0-9_]*)=/).exec(text.slice(i))
    if (!match) throw new Error(`not a ${form} line at ${JSON.stringify(text.slice(i, i + 30))}`)
    i += match[0].length
    let value = ''
    while (i < text.length && text[i] !== '\n') {
      const c = text[i++]
      if (c === "'") {
        for (;;) {
          const q = text[i++]
          if (q === "'") break
          if (q === '\\' && text[i] === '\n') {
            value += '\n'
            i++
          } else if (q === '\n') throw new Error('unescaped newline inside quotes')
          else if (q === '!') throw new Error('unescaped ! would trigger history substitution')
          else value += q
        }
      } else if (c === '\\') value += text[i++]
      else throw new Error(`unquoted ${JSON.stringify(c)} in csh value`)
    }
    env[match[1]] = value
  }
  return env
}

/**
 * PowerShell rules for `$env:KEY = '...'` (ps) or `[Environment]::SetEnvironmentVariable('KEY', '...', 'User')`
 * (ps:export): inside single quotes, two quote characters are one.
 */
function parsePs(text: string, form: 'assign' | 'user'): Record<string, string> {
  const env: Record<string, string> = {}
  const quotes = "'\u2018\u2019\u201a\u201b"
  let i = 0
  while (i < text.length) {
    if (text[i] === '\n') {
      i++
      continue
    }
    const match = (form === 'assign' ? /^\$env:([A-Za-z_][A-Za-z0-9_]*) = '/ : /^\[Environment\]::SetEnvironmentVariable\('([A-Za-z_][A-Za-z0-9_]*)', '/).exec(
      text.slice(i),
    )
    if (!match) throw new Error(`not an assignment at ${JSON.stringify(text.slice(i, i + 30))}`)
    i += match[0].length
    let value = ''
    for (;;) {
      const c = text[i++]
      if (c === undefined) throw new Error('unterminated string')
      if (quotes.includes(c)) {
        if (quotes.includes(text[i])) {
          value += c
          i++
        } else break
      } else value += c
    }
    if (form === 'user') {
      if (!text.startsWith(", 'User')", i)) throw new Error(`not a user-level SetEnvironmentVariable at ${i}`)
      i += ", 'User')".length
    }
    env[match[1]] = value
  }
  return env
}

/**
 * cmd.exe rules for a batch line `set "KEY=..."`: phase 1 turns `%%` into `%`; phase 2 toggles
 * quoting at each `"`, and outside quotes `^x` is x and `& | < > ( )` would end or redirect the
 * command; `set "…"` then takes the text between the first and the last quote.
 */
function parseCmd(text: string): Record<string, string> {
  const env: Record<string, string> = {}
  for (const raw of text.split('\n')) {
    if (raw === '') continue
    if (!raw.startsWith('set "')) throw new Error(`not a set line: ${raw}`)
    let line = ''
    for (let i = 0; i < raw.length; i++) {
      if (raw[i] === '%') {
        if (raw[i + 1] !== '%') throw new Error(`lone % would expand a variable: ${raw}`)
        i++
      }
      line += raw[i]
    }
    let inQuotes = false
    let parsed = ''
    for (let i = 0; i < line.length; i++) {
      const c = line[i]
      if (c === '"') inQuotes = !inQuotes
      else if (!inQuotes && c === '^') {
        parsed += line[++i]
        continue
      } else if (!inQuotes && '&|<>()'.includes(c)) throw new Error(`unescaped ${c} outside quotes: ${raw}`)
      parsed += c
    }
    const body = parsed.slice(parsed.indexOf('"') + 1, parsed.lastIndexOf('"'))
    const eq = body.indexOf('=')
    env[body.slice(0, eq)] = body.slice(eq + 1)
  }
  return env
}

// ---------------------------------------------------------------------------------------------

const docker = new Docker()
const IMAGE_REPO = 'tpt-envfmt-busybox'
let image = ''

beforeAll(async () => {
  image = (await ensureImportedImage(docker, {repo: IMAGE_REPO, tag: '1', spec: {busybox: '/bin/busybox'}, labels: {'tp.fixture': 'true'}})).ref
})

afterAll(async () => {
  rmSync(work, {recursive: true, force: true})
  await docker
    .getImage(`${IMAGE_REPO}:1`)
    .remove()
    .catch(() => undefined)
})

describe('formatEnv reads back with the real reader', () => {
  it('docker: docker run --env-file', () => {
    const file = writeTemp(formatEnv(CARRIES.docker, 'docker'))
    const out = execFileSync('docker', ['run', '--rm', '--env-file', file, image, 'env', '-0'])
    expect(pick(parseNulEnv(out), Object.keys(CARRIES.docker))).toEqual(CARRIES.docker)
  })

  it('sh:export: sourced by sh (dash) and by bash, the variables reach the commands it starts', () => {
    const file = writeTemp(formatEnv(CARRIES['sh:export'], 'sh:export'))
    for (const shell of ['sh', 'bash']) {
      const out = execFileSync('env', ['-i', shell, '-c', '. "$1" && env -0', 'sh', file])
      expect(pick(parseNulEnv(out), Object.keys(CARRIES['sh:export']))).toEqual(CARRIES['sh:export'])
    }
  })

  it('sh: sourced by sh (dash) and by bash, shell variables only until exported', () => {
    const keys = Object.keys(CARRIES.sh)
    const file = writeTemp(formatEnv(CARRIES.sh, 'sh'))
    for (const shell of ['sh', 'bash']) {
      expect(pick(parseNulEnv(execFileSync('env', ['-i', shell, '-c', '. "$1" && env -0', 'sh', file])), keys)).toEqual({})
      const out = execFileSync('env', ['-i', shell, '-c', `. "$1" && export ${keys.join(' ')} && env -0`, 'sh', file])
      expect(pick(parseNulEnv(out), keys)).toEqual(CARRIES.sh)
    }
  })

  it.runIf(have('tcsh'))('csh:export: sourced by tcsh, also interactive (history substitution on)', () => {
    const file = writeTemp(formatEnv(CARRIES['csh:export'], 'csh:export'))
    const out = execFileSync('env', ['-i', 'tcsh', '-f', '-c', `source ${file} && env -0`])
    expect(pick(parseNulEnv(out), Object.keys(CARRIES['csh:export']))).toEqual(CARRIES['csh:export'])
    const dump = join(work, 'csh-dump')
    // an interactive shell reading from stdin applies `!` history substitution to sourced lines too
    execFileSync('env', ['-i', 'tcsh', '-f', '-i'], {input: `source ${file}\nenv -0 > ${dump}\nexit\n`, stdio: ['pipe', 'ignore', 'ignore']})
    expect(pick(parseNulEnv(execFileSync('cat', [dump])), Object.keys(CARRIES['csh:export']))).toEqual(CARRIES['csh:export'])
  })

  it.runIf(have('tcsh'))('csh: sourced by tcsh as shell variables ($K:q exports each exactly)', () => {
    const keys = Object.keys(CARRIES.csh)
    const file = writeTemp(formatEnv(CARRIES.csh, 'csh'))
    const exportAll = keys.map((k) => `setenv ${k} $${k}:q`).join(' && ')
    const out = execFileSync('env', ['-i', 'tcsh', '-f', '-c', `source ${file} && ${exportAll} && env -0`])
    expect(pick(parseNulEnv(out), keys)).toEqual(CARRIES.csh)
  })

  it.runIf(have('pwsh'))('ps: dot-sourced by PowerShell', () => {
    const file = writeTemp(formatEnv(CARRIES.ps, 'ps'), '.ps1')
    const out = execFileSync('pwsh', [
      '-NoProfile',
      '-Command',
      `. '${file}'; Get-ChildItem env: | ForEach-Object { [Console]::Out.Write($_.Name + '=' + $_.Value + [char]0) }`,
    ])
    expect(pick(parseNulEnv(out), Object.keys(CARRIES.ps))).toEqual(CARRIES.ps)
  })
})

describe('formatEnv reads back with a reverse parser of the documented rules', () => {
  it('compose: Compose v2 .env rules', () => {
    const text = formatEnv(CARRIES.compose, 'compose')
    expect(parseCompose(text)).toEqual(CARRIES.compose)
  })

  it('csh and csh:export', () => {
    expect(parseCsh(formatEnv(CARRIES.csh, 'csh'), 'set')).toEqual(CARRIES.csh)
    expect(parseCsh(formatEnv(CARRIES['csh:export'], 'csh:export'), 'setenv')).toEqual(CARRIES['csh:export'])
  })

  it('ps and ps:export', () => {
    expect(parsePs(formatEnv(CARRIES.ps, 'ps'), 'assign')).toEqual(CARRIES.ps)
    expect(parsePs(formatEnv(CARRIES['ps:export'], 'ps:export'), 'user')).toEqual(CARRIES['ps:export'])
  })

  it('cmd: batch-file rules', () => {
    expect(parseCmd(formatEnv(CARRIES.cmd, 'cmd'))).toEqual(CARRIES.cmd)
  })

  it.runIf(spawnSync('python3', ['-c', 'import dotenv']).status === 0)('compose: python-dotenv (Compose v1 reader) agrees where v1 and v2 agree', () => {
    // v1 reads `\$` inside double quotes literally, and a trailing `\` as an escaped closing quote
    const doubleQuoted = (k: string, v: string) => formatEnv({[k]: v}, 'compose').startsWith(`${k}="`)
    const values = Object.fromEntries(Object.entries(CARRIES.compose).filter(([k, v]) => !(doubleQuoted(k, v) && (v.includes('$') || v.endsWith('\\')))))
    const file = writeTemp(formatEnv(values, 'compose'))
    const out = execFileSync('python3', ['-c', 'import sys, json, dotenv; print(json.dumps(dotenv.dotenv_values(sys.argv[1], interpolate=False)))', file])
    expect(JSON.parse(out.toString())).toEqual(values)
  })
})

describe('formatEnv refuses what a syntax cannot express', () => {
  function refusal(env: Record<string, string>, syntax: EnvSyntax): {message: string; next?: string} {
    try {
      formatEnv(env, syntax)
    } catch (error) {
      expect(isUserError(error)).toBe(true)
      return error as {message: string; next?: string}
    }
    throw new Error(`formatEnv(${syntax}) accepted ${JSON.stringify(env)}`)
  }

  it.each([
    ['docker', {OK: 'x', MULTI: 'a\nb'}, 'MULTI', /compose|sh|env-json/],
    ['docker', {CR_ONLY: 'a\r'}, 'CR_ONLY', /compose|sh|env-json/],
    ['docker', {'HAS SPACE': 'x'}, 'HAS SPACE', /compose|env-json/],
    ['docker', {BIG: 'x'.repeat(70_000)}, 'BIG', /compose|sh|env-json/],
    ['cmd', {MULTI: 'a\nb'}, 'MULTI', /ps|env-json/],
    ['csh', {CR: 'a\rb'}, 'CR', /sh|env-json/],
    ['csh:export', {CR: 'a\rb'}, 'CR', /sh|env-json/],
    ['sh:export', {'A-B': 'x'}, 'A-B', /docker|compose|env-json/],
    ['ps:export', {'1ABC': 'x'}, '1ABC', /env-json/],
    ['sh', {'A-B': 'x'}, 'A-B', /docker|compose|env-json/],
    ['ps', {'1ABC': 'x'}, '1ABC', /env-json/],
    ['compose', {'A B': 'x'}, 'A B', /env-json/],
    ['sh', {NUL: 'a\0b'}, 'NUL', /NUL/],
  ] as Array<[EnvSyntax, Record<string, string>, string, RegExp]>)('%s refuses %j naming the variable', (syntax, env, name, next) => {
    const error = refusal(env, syntax)
    expect(error.message).toContain(name)
    expect(`${error.message} ${error.next}`).toMatch(next)
  })

  it('an unknown syntax is a user error listing the known ones', () => {
    const error = refusal({A: 'b'}, 'yaml' as EnvSyntax)
    for (const syntax of ENV_SYNTAXES) expect(error.next).toContain(syntax)
  })

  it('an empty environment is an empty file', () => {
    for (const syntax of ENV_SYNTAXES) expect(formatEnv({}, syntax)).toBe('')
  })
})
