/**
 * `tp spec validate` on broken files: each problem names its line (and column) and what to write
 * instead; exit 1. A throw-away plugin linked into a sandboxed HOME contributes a handler kind with
 * a JSON Schema of its section. No Docker engine is needed.
 */
import {readFile, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {expandVariables, interceptFilter, interceptMode, interceptName, validateSpec} from '@tp/spec'
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
  ['previewURL, which tp refuses', `${base}        previewURL: {enable: true}\n`, 9, /tp does not support "previewURL"/, 'hosted service'],
  ['service, which tp refuses', `${base}        service: web\n`, 9, /tp does not support "service"/, "a workload's exposed ports"],
  ['headers as a map (they are a list of name and value)', `${base}        headers:\n          x-user: me\n`, 10, /headers: expected a list/],
  [
    'a header name that cannot be one (the words of --http-header)',
    `${base}        headers:\n          - {name: "X Dev", value: alice}\n`,
    10,
    /intercepts\[0\]\.headers\[0\]\.name: "X Dev" is not an HTTP header name/,
    'e.g. X-Dev',
  ],
  [
    'one header twice with different values',
    `${base}        headers:\n          - {name: X-Dev, value: alice}\n          - {name: x-dev, value: bob}\n`,
    11,
    /headers\[1\]: gives x-dev twice with different values/,
    'give each header once',
  ],
  ['a path prefix without its /', `${base}        pathPrefix: api\n`, 9, /pathPrefix: "api" does not start with \//, 'write pathPrefix: /api'],
  [
    'headers on a wiretap',
    `${base}        mode: wiretap\n        headers: [{name: X-Dev, value: alice}]\n`,
    10,
    /intercepts\[0\]: headers makes a personal intercept; mode wiretap takes no filter/,
    'use mode: intercept',
  ],
  ['an unknown mode', `${base}        mode: mirror\n`, 9, /mode: the text "mirror" is not one of intercept, ingest, replace, wiretap/],
  [
    'replace: true beside another mode',
    `${base}        mode: wiretap\n        replace: true\n`,
    10,
    /replace: true says mode replace, but mode is wiretap/,
    'remove replace',
  ],
  [
    'global: false without headers or pathPrefix',
    `${base}        global: false\n`,
    9,
    /global: false makes a personal intercept, but there are no headers/,
    'add headers',
  ],
  [
    'global: true with a path prefix',
    `${base}        global: true\n        pathPrefix: /api\n`,
    9,
    /global: true takes all of the port's traffic, but pathPrefix makes it a personal intercept/,
  ],
  ['a port on an ingest', `${base}        mode: ingest\n        port: 80\n`, 10, /an ingest takes no traffic, so port means nothing/],
  ['writable on an intercept', `${base}        writable: true\n`, 9, /writable is for an ingest or a wiretap/],
  [
    'a replace with localPort and no port',
    `${base}        replace: true\n        localPort: 8000\n`,
    10,
    /a replace takes every port; localPort says where the handler listens for one of them, but port does not say which/,
    'add port',
  ],
  [
    'two personal intercepts whose filters overlap: both named',
    `${base}        localPort: 8001\n        headers: [{name: X-Dev, value: alice}]\n      - {handler: web, localPort: 8002, name: other, headers: [{name: x-dev, value: alice}, {name: X-Team, value: a}]}\n`,
    11,
    /intercepts\[1\]: the filter x-dev=alice, x-team=a overlaps that of workloads\[0\]\.intercepts\[0\] on the port of frontend-v1 \(x-dev=alice\): a request could match both/,
    'another value',
  ],
  [
    'a plain intercept beside a personal one: both named',
    `${base}        localPort: 8001\n        port: 80\n        headers: [{name: X-Dev, value: alice}]\n      - {handler: web, localPort: 8002, port: 80}\n`,
    12,
    /intercepts\[1\]: port 80 of frontend-v1 has the personal intercept workloads\[0\]\.intercepts\[0\] \(x-dev=alice\)/,
    'make this one personal too',
  ],
  [
    'a replace beside an intercept of the same workload',
    `${base}        localPort: 8001\n      - {handler: web, replace: true}\n`,
    10,
    /intercepts\[1\]: replaces frontend-v1, taking every port, but workloads\[0\]\.intercepts\[0\] intercepts one of them/,
  ],
  [
    'two personal intercepts with the same default name',
    `${base}        localPort: 8001\n        headers: [{name: X-Dev, value: alice}]\n      - {handler: web, localPort: 8002, headers: [{name: X-Dev, value: bob}]}\n`,
    11,
    /intercepts\[1\]: its name "frontend-v1-web" is already that of workloads\[0\]\.intercepts\[0\]/,
    'name: <name>',
  ],
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
    const text = `handlers:\n  - name: web\n    docker: {image: x}\n    script: {run: echo}\n  - name: web\nworkloads:\n  - name: w\n    intercepts:\n      - handler: nope\n        pathPrefix: api\n`
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
      expect(result.stdout).toMatch(
        /^.*: valid spec (demo: 4 handlers, 2 workloads \(2 intercepts\), 1 prerequisite|two-developers: 3 handlers, 1 workload \(3 intercepts\), 0 prerequisites)\n?$/,
      )
    }
  })

  it('the modes: personal intercepts of one port side by side, a wiretap and an ingest beside them, a replace (the reference spelling too)', async () => {
    const text = `handlers:
  - name: alice
    script: {run: serve 8001}
  - name: bob
    script: {run: serve 8002}
  - name: tap
    script: {run: record}
workloads:
  - name: frontend-v1
    intercepts:
      - {handler: alice, localPort: 8001, headers: [{name: X-Dev, value: alice}]}
      - {handler: bob, localPort: 8002, global: false, headers: [{name: X-Dev, value: bob}], pathPrefix: /api}
      - {handler: alice, name: team, localPort: 8004, headers: [{name: X-Dev, value: carol}], pathPrefix: /web}
      - {handler: tap, localPort: 8003, mode: wiretap, writable: true}
      - {handler: tap, mode: ingest}
  - name: catalog
    intercepts:
      - {handler: bob, replace: true, global: true, port: 80, localPort: 8080}
`
    const result = await validate(text)
    expect(result.stderr).toBe('')
    expect(result.exitCode).toBe(0)
    const spec = validateSpec(text).spec
    const intercepts = spec?.workloads.flatMap((w) => w.intercepts.map((x) => [interceptMode(x), interceptFilter(x), interceptName(w.name, x)]))
    expect(intercepts).toEqual([
      ['intercept', {headers: {'x-dev': 'alice'}}, 'frontend-v1-alice'],
      ['intercept', {headers: {'x-dev': 'bob'}, pathPrefix: '/api'}, 'frontend-v1-bob'],
      ['intercept', {headers: {'x-dev': 'carol'}, pathPrefix: '/web'}, 'team'],
      ['wiretap', undefined, undefined],
      ['ingest', undefined, undefined],
      ['replace', undefined, undefined],
    ])
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
