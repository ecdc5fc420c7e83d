/**
 * `tp spec validate` on broken files: each problem names its line (and column) and what to write
 * instead; exit 1. A throw-away plugin linked into a sandboxed HOME contributes a handler kind with
 * a JSON Schema of its section. No Docker engine is needed.
 */
import {readFile, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {expandVariables, validateSpec} from '@tp/spec'
import {type Sandbox, link, makeSandbox, writePlugin} from '../../cli/test/helpers.js'
import {PLUGIN_KIND, kindPlugin, readmeSpecs} from './fixtures.js'

let sandbox: Sandbox
let n = 0

async function validate(text: string, ext = 'yaml', env: Record<string, string> = {}) {
  const file = join(sandbox.dir, `spec-${n++}.${ext}`)
  await writeFile(file, text)
  const result = await sandbox.tp(['spec', 'validate', file], env)
  return {file, ...result}
}

beforeAll(async () => {
  sandbox = await makeSandbox('spec')
  await link(sandbox, await writePlugin(sandbox, kindPlugin()))
})

afterAll(async () => {
  await sandbox?.remove()
})

const base = `handlers:
  - name: web
    docker:
      image: frontend-v2
workloads:
  - name: frontend-v1
    intercepts:
      - handler: web
`

/** [what, file, line of the first problem, what its message says]. */
const broken: Array<[string, string, number, RegExp, string?]> = [
  ['an unknown key (a typo of a known one)', `name: x\nhandler:\n  - name: web\n`, 2, /unknown key "handler"/, 'did you mean "handlers"'],
  [
    'an unknown key in a handler section',
    `handlers:\n  - name: web\n    docker:\n      image: x\n      imag: y\n`,
    5,
    /handlers\[0\]\.docker: unknown key "imag"/,
    'did you mean "image"',
  ],
  ['a wrong type', `${base}        localPort: eighty\n`, 9, /localPort: expected a number, e.g. 8000, found the text "eighty"/],
  ['a handler that does not exist', base.replace('handler: web', 'handler: webb'), 8, /there is no handler named "webb"/, 'did you mean "web"'],
  [
    'two kinds in one handler',
    `handlers:\n  - name: web\n    docker: {image: x}\n    script: {run: echo}\n`,
    4,
    /has 2 kinds \(docker, script\)/,
    'exactly one kind',
  ],
  ['duplicate handler names', `handlers:\n  - name: web\n  - name: api\n  - name: web\n`, 4, /a second handler is named "web"/, 'its own name'],
  ['a port out of range', `${base}        port: 70000\n`, 9, /port: the number 70000 is too large/, 'from 1 to 65535'],
  ['a local port of 0', `${base}        localPort: 0\n`, 9, /localPort: the number 0 is too small/, 'from 1 to 65535'],
  ['a port name that cannot be one', `${base}        port: "Not A Name"\n`, 9, /port: the text "Not A Name" does not have the form/, 'its name'],
  [
    'two intercepts on one local port',
    `${base}  - name: catalog\n    intercepts:\n      - handler: web\n`,
    11,
    /local port 8080 is already the local port of workloads\[0\]/,
    'set localPort',
  ],
  ['headers, which tp refuses', `${base}        headers:\n          x-user: me\n`, 9, /tp does not support "headers"/, 'per-request routing'],
  ['previewURL, which tp refuses', `${base}        previewURL: {enable: true}\n`, 9, /tp does not support "previewURL"/, 'hosted service'],
  ['global, which tp refuses', `${base}        global: true\n`, 9, /tp does not support "global"/, "all of a port's traffic"],
  ['a YAML syntax error', `handlers:\n  - name: web\n    docker: {image: x\nworkloads: []\n`, 4, /YAML syntax error/, 'YAML syntax'],
  ['a delete without its create', `handlers:\n  - name: clean\nprerequisites:\n  - delete: clean\n`, 4, /a delete without its create/, 'add create'],
  [
    'a prerequisite that needs an intercept',
    `handlers:\n  - name: ide\n    external: {}\nprerequisites:\n  - create: ide\n`,
    5,
    /is an external handler, which needs an intercept/,
    'script handler',
  ],
  [
    'a prerequisite that builds its image',
    `handlers:\n  - name: web\n    docker: {build: {context: .}}\nprerequisites:\n  - create: web\n`,
    5,
    /handler "web" builds its image, which a prerequisite does not/,
    'docker.image',
  ],
  [
    'docker with both image and build',
    `handlers:\n  - name: web\n    docker:\n      image: x\n      build: {context: .}\n`,
    3,
    /has both image and build/,
    'exactly one',
  ],
  ['docker with neither image nor build', `handlers:\n  - name: web\n    docker:\n      ports: [8000]\n`, 3, /has neither image nor build/, 'exactly one'],
  ['a handler without a name', `handlers:\n  - script: {run: echo}\n`, 2, /handlers\[0\]: "name" is missing/, 'add name'],
  [
    'a variable name that cannot be one',
    `handlers:\n  - name: web\n    environment:\n      - name: 1ST\n        value: x\n`,
    4,
    /environment\[0\]\.name: the text "1ST" does not have the form/,
    'letters, digits and _',
  ],
  [
    'a variable that is not set',
    `handlers:\n  - name: web\n    docker:\n      image: \${TPT_SPEC_UNSET}\n`,
    4,
    /the variable TPT_SPEC_UNSET is not set/,
    '${TPT_SPEC_UNSET:-<value>}',
  ],
  [
    'a kind nobody installed',
    `handlers:\n  - name: web\n    kubernetes: {pod: x}\n`,
    3,
    /unknown key "kubernetes"/,
    `one kind: docker, script, external, ${PLUGIN_KIND}`,
  ],
  [
    'a plugin section without a key its schema requires',
    `handlers:\n  - name: tool\n    ${PLUGIN_KIND}:\n      level: 2\n`,
    4,
    /"target" is missing in the tpt-kind section/,
    "plugin's schema",
  ],
  [
    'a plugin section with a value its schema refuses',
    `handlers:\n  - name: tool\n    ${PLUGIN_KIND}:\n      target: x\n      level: high\n`,
    5,
    /level: must be integer \(the plugin's schema for tpt-kind\)/,
  ],
  [
    'a plugin section with a key its schema does not know',
    `handlers:\n  - name: tool\n    ${PLUGIN_KIND}:\n      target: x\n      colour: red\n`,
    5,
    /unknown key "colour" in the tpt-kind section/,
  ],
  [
    'a connection name tp connect would refuse',
    `connection:\n  name: My_Connection\n`,
    2,
    /connection\.name: the text "My_Connection" does not have the form/,
    'lower-case letters, digits and dashes',
  ],
  ['an empty file', '\n', 1, /the file is empty/, 'tp spec init'],
  ['a list instead of a map', '- name: x\n', 1, /a list, not a map/],
]

describe('tp spec validate: broken files', () => {
  it.each(broken)('%s: names the line, says what to write instead, exit 1', async (_what, text, line, message, hint) => {
    const result = await validate(text)
    expect(result.exitCode).toBe(1)
    const first = result.stderr.split('\n').find((l) => l.startsWith(`${result.file}:`)) ?? ''
    expect(first).toMatch(new RegExp(`^${result.file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:${line}:\\d+: `))
    expect(result.stderr).toMatch(message)
    if (hint) expect(result.stderr).toContain(hint)
    expect(result.stderr).toMatch(/: \d+ problems?$/)
  })

  it('a JSON file: the line and column of the wrong value', async () => {
    const json = JSON.stringify({handlers: [{name: 'web', docker: {image: 'x', ports: ['eighty']}}]}, null, 2)
    const result = await validate(json, 'json')
    expect(result.exitCode).toBe(1)
    const line = json.split('\n').findIndex((l) => l.includes('"eighty"')) + 1
    expect(result.stderr).toMatch(new RegExp(`:${line}:\\d+: handlers\\[0\\]\\.docker\\.ports\\[0\\]: expected a number`))
  })

  it('lists every problem of a file, not only the first, in the order of the file', async () => {
    const text = `handlers:\n  - name: web\n    docker: {image: x}\n    script: {run: echo}\n  - name: web\nworkloads:\n  - name: w\n    intercepts:\n      - handler: nope\n        pathPrefix: /api\n`
    const result = await validate(text)
    expect(result.exitCode).toBe(1)
    const lines = result.stderr
      .split('\n')
      .filter((l) => l.startsWith(`${result.file}:`) && /:\d+:\d+: /.test(l))
      .map((l) => Number(l.split(':')[1]))
    expect(lines).toEqual([4, 5, 9, 10])
    expect(result.stderr).toContain('4 problems')
  })
})

describe('tp spec validate: good files', () => {
  it('every example of the README is valid: exit 0 and a one-line summary', async () => {
    const specs = readmeSpecs(await readFile(join(import.meta.dirname, '..', '..', '..', 'README.md'), 'utf8'))
    expect(specs.length).toBeGreaterThan(0)
    for (const text of specs) {
      const result = await validate(text)
      expect(result.stderr).toBe('')
      expect(result.exitCode).toBe(0)
      expect(result.stdout).toMatch(/^.*: valid spec demo: 4 handlers, 2 workloads \(2 intercepts\), 1 prerequisite\n?$/)
    }
  })

  it("a plugin's kind that fits its schema is valid, and a built-in kind is not taken for it", async () => {
    const result = await validate(`handlers:\n  - name: tool\n    ${PLUGIN_KIND}:\n      target: x\n      level: 3\n  - name: quiet\n`)
    expect(result.stderr).toBe('')
    expect(result.exitCode).toBe(0)
  })

  it('${VAR:-default} and ${VAR} come from the environment; an unquoted value is read again (a number stays a number)', async () => {
    const text = `${base}        localPort: \${TPT_PORT:-8000}\n        port: \${TPT_SERVICE}\n`
    const result = await validate(text, 'yaml', {TPT_SERVICE: '80'})
    expect(result.stderr).toBe('')
    expect(result.exitCode).toBe(0)
    const spec = validateSpec(text, {env: {TPT_PORT: '9000', TPT_SERVICE: 'http'}}).spec
    expect(spec?.workloads[0].intercepts[0]).toEqual({handler: 'web', localPort: 9000, port: 'http'})
  })
})

describe('expandVariables', () => {
  it('expands ${VAR} and ${VAR:-default}, keeps $1 and $HOME, and $$ is a literal $', () => {
    const env = {A: 'a', EMPTY: ''}
    expect(expandVariables('x${A}y ${B:-b} ${EMPTY:-e} $1 $HOME $${A}', env)).toEqual({value: 'xay b e $1 $HOME ${A}', errors: []})
  })

  it('an unset variable without a default, and a reference that is not one, are errors with their offsets', () => {
    const result = expandVariables('a ${NOPE} ${bad name}', {})
    expect(result.errors.map((e) => [e.offset, e.message])).toEqual([
      [2, 'the variable NOPE is not set'],
      [10, '"${bad name}" is not a usable variable reference'],
    ])
  })
})
