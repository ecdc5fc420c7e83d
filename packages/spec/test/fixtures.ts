import type {ThrowAwayPlugin} from '../../cli/test/helpers.js'

/** The handler kind the throw-away plugin contributes. */
export const PLUGIN_KIND = 'tpt-kind'

/** Its section's JSON Schema: `target` required, `level` an integer, nothing else. */
export const KIND_SCHEMA = {
  type: 'object',
  properties: {target: {type: 'string'}, level: {type: 'integer', minimum: 1}},
  required: ['target'],
  additionalProperties: false,
}

/** A plugin whose handler descriptor declares a spec section (plain objects: no sdk needed). */
export function kindPlugin(): ThrowAwayPlugin {
  const hook = `export default async function () {
  return [{name: ${JSON.stringify(PLUGIN_KIND)}, apiVersion: 1, summary: 'a throw-away handler kind', flags: {}, specSchema: ${JSON.stringify(KIND_SCHEMA)}, load: () => import('./impl.js')}]
}
`
  return {
    name: 'tpt-spec-kind',
    hooks: {'tp:handlers': hook},
    files: {'impl.js': "export default () => ({prepare: async () => { throw new Error('not for use') }})\n"},
  }
}

/** The YAML examples of the README's "Intercept specifications" section. */
export function readmeSpecs(readme: string): string[] {
  const start = readme.indexOf('## Intercept specifications')
  const end = readme.indexOf('\n## ', start + 1)
  const section = readme.slice(start, end === -1 ? undefined : end)
  return [...section.matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => m[1])
}
