/**
 * `tp spec schema`: the published JSON Schema comes from the same zod schema as the validator,
 * compiles with ajv, takes every README example and the installed plugins' kinds. No Docker.
 */
import {readFile} from 'node:fs/promises'
import {join} from 'node:path'
import {Ajv2020} from 'ajv/dist/2020.js'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {parse} from 'yaml'
import {specJsonSchema} from '@tp/spec'
import {type Sandbox, link, makeSandbox, writePlugin} from '../../cli/test/helpers.js'
import {KIND_SCHEMA, PLUGIN_KIND, kindPlugin, readmeSpecs} from './fixtures.js'

let sandbox: Sandbox
let schema: Record<string, unknown>

beforeAll(async () => {
  sandbox = await makeSandbox('spec-schema')
  await link(sandbox, await writePlugin(sandbox, kindPlugin()))
  const result = await sandbox.tp(['spec', 'schema'])
  expect(result.stderr).toBe('')
  expect(result.exitCode).toBe(0)
  schema = JSON.parse(result.stdout) as Record<string, unknown>
})

afterAll(async () => {
  await sandbox?.remove()
})

const compile = () => new Ajv2020({allErrors: true, strict: true}).compile(schema)

describe('tp spec schema', () => {
  it('is a JSON Schema ajv compiles (strict mode), of draft 2020-12', () => {
    expect(schema.$schema).toBe('https://json-schema.org/draft/2020-12/schema')
    expect(() => compile()).not.toThrow()
  })

  it('validates every example of the README', async () => {
    const validate = compile()
    const specs = readmeSpecs(await readFile(join(import.meta.dirname, '..', '..', '..', 'README.md'), 'utf8'))
    expect(specs.length).toBeGreaterThan(0)
    for (const text of specs) {
      const ok = validate(parse(text))
      expect(validate.errors ?? []).toEqual([])
      expect(ok).toBe(true)
    }
  })

  it("describes a linked plugin's kind with the plugin's own schema", () => {
    const handler = (schema.properties as Record<string, {items: {properties: Record<string, unknown>}}>).handlers.items
    expect(handler.properties[PLUGIN_KIND]).toMatchObject(KIND_SCHEMA)
    const validate = compile()
    expect(validate({handlers: [{name: 'tool', [PLUGIN_KIND]: {target: 'x', level: 2}}]})).toBe(true)
    expect(validate({handlers: [{name: 'tool', [PLUGIN_KIND]: {level: 2}}]})).toBe(false)
  })

  it('refuses what the validator refuses that a schema can say: unknown keys, wrong types, bad ports', () => {
    const validate = compile()
    expect(validate({handler: []})).toBe(false)
    expect(validate({handlers: [{name: 'web', docker: {image: 'x', ports: [70000]}}]})).toBe(false)
    expect(validate({workloads: [{name: 'w', intercepts: [{handler: 'web', headers: {a: 'b'}}]}]})).toBe(false)
    expect(validate({workloads: [{name: 'w', intercepts: [{handler: 'web', headers: [{name: 'X Dev', value: 'b'}]}]}]})).toBe(false)
    expect(validate({workloads: [{name: 'w', intercepts: [{handler: 'web', headers: [{name: 'X-Dev'}]}]}]})).toBe(false)
    expect(validate({workloads: [{name: 'w', intercepts: [{handler: 'web', pathPrefix: 'api'}]}]})).toBe(false)
    expect(validate({workloads: [{name: 'w', intercepts: [{handler: 'web', mode: 'mirror'}]}]})).toBe(false)
    expect(validate({workloads: [{name: 'w', intercepts: [{handler: 'web', previewURL: {}}]}]})).toBe(false)
    expect(validate({handlers: [{name: 'web', environment: [{name: 'A', value: 1}]}]})).toBe(false)
  })

  it("an intercept's mode, headers (a list of name and value), pathPrefix, global, replace and writable, each described", () => {
    const intercept = (schema.properties as Record<string, {items: {properties: {intercepts: {items: {properties: Record<string, Record<string, unknown>>}}}}}>)
      .workloads.items.properties.intercepts.items.properties
    for (const key of ['name', 'mode', 'headers', 'pathPrefix', 'global', 'replace', 'writable']) expect(intercept[key]?.description, key).toMatch(/\w/)
    expect(intercept.mode.enum).toEqual(['intercept', 'ingest', 'replace', 'wiretap'])
    expect(intercept.headers).toMatchObject({type: 'array', minItems: 1, items: {type: 'object', required: ['name', 'value'], additionalProperties: false}})
    expect(intercept.pathPrefix).toMatchObject({type: 'string', pattern: '^\\/'})
    const validate = compile()
    const personal = {
      handlers: [{name: 'alice'}, {name: 'tap'}],
      workloads: [
        {
          name: 'w',
          intercepts: [
            {handler: 'alice', localPort: 8001, headers: [{name: 'X-Dev', value: 'alice'}], pathPrefix: '/api', global: false},
            {handler: 'tap', localPort: 8002, mode: 'wiretap', writable: true},
            {handler: 'tap', replace: true},
          ],
        },
      ],
    }
    expect(validate(personal)).toBe(true)
  })

  it('--output writes the same schema to a file', async () => {
    const file = join(sandbox.dir, 'schema.json')
    const result = await sandbox.tp(['spec', 'schema', '--output', file])
    expect(result.exitCode).toBe(0)
    expect(JSON.parse(await readFile(file, 'utf8'))).toEqual(schema)
  })

  it('without plugins, it is the built-in kinds only', () => {
    const handler = (specJsonSchema().properties as Record<string, {items: {properties: Record<string, unknown>}}>).handlers.items
    expect(Object.keys(handler.properties)).toEqual(['name', 'environment', 'docker', 'script', 'external'])
  })
})
