import {basename, extname} from 'node:path'
import {type HttpFilter, INTERCEPT_MODES, type InterceptMode, describeFilter, filtersOverlap, httpFilterOf} from '@tp/sdk'
import {Ajv2020, type ErrorObject, type ValidateFunction} from 'ajv/dist/2020.js'
import {type Document, type Scalar, isMap, isScalar, isSeq, parse as parseYaml, parseDocument, visit} from 'yaml'
import type {z} from 'zod'
import {expandVariables} from './expand.js'
import {Locator, type SpecProblem, formatPath, newLineCounter} from './positions.js'
import {BUILTIN_KINDS, type HandlerSpec, type PluginKind, REFUSED_FIELDS, type Spec, specSchema} from './schema.js'

export interface ValidateOptions {
  /** The file's path (for the default name and messages). */
  file?: string
  /** Where `${VAR}` comes from (default: this process's environment). */
  env?: Record<string, string | undefined>
  /** Handler kinds contributed by plugins. */
  kinds?: readonly PluginKind[]
}

export interface ValidatedSpec extends Spec {
  name: string
  handlers: HandlerSpec[]
  workloads: NonNullable<Spec['workloads']>
  prerequisites: NonNullable<Spec['prerequisites']>
}

export interface ValidationResult {
  /** Present when there is no problem. */
  spec?: ValidatedSpec
  problems: SpecProblem[]
}

/** The kind of a handler: a built-in one, a plugin's, or none (an empty handler). */
export function handlerKind(handler: HandlerSpec, kinds: readonly PluginKind[] = []): string | undefined {
  return [...BUILTIN_KINDS, ...kinds.map((k) => k.name)].find((k) => handler[k] !== undefined)
}

/** The local port an intercept's handler listens on. */
export function localPortOf(intercept: {localPort?: number}, handler: HandlerSpec | undefined): number {
  return intercept.localPort ?? handler?.docker?.ports?.[0] ?? 8080
}

/** An intercept's mode: `mode`, else `replace: true` (the reference's spelling), else intercept. */
export function interceptMode(intercept: {mode?: InterceptMode; replace?: boolean}): InterceptMode {
  return intercept.mode ?? (intercept.replace === true ? 'replace' : 'intercept')
}

/** The words the shared filter check uses for a spec file's fields. */
const SPEC_SPELLING = {headers: 'entry of headers', pathPrefix: 'pathPrefix:'}

/** A personal intercept's filter (`headers`, `pathPrefix`), as `--http-header`/`--http-path-prefix` make it; none for a plain one. */
export function interceptFilter(intercept: {headers?: Array<{name: string; value: string}>; pathPrefix?: string}): HttpFilter | undefined {
  return httpFilterOf(intercept.headers ?? [], intercept.pathPrefix, SPEC_SPELLING).filter
}

/** The name tp gives an intercept of the file: `name`, else a personal intercept's `<workload>-<handler>`, else the daemon's (as `tp intercept`'s). */
export function interceptName(
  workload: string,
  intercept: {name?: string; handler: string; headers?: unknown; pathPrefix?: unknown; mode?: InterceptMode; replace?: boolean},
): string | undefined {
  if (intercept.name !== undefined) return intercept.name
  const personal = interceptMode(intercept) === 'intercept' && (intercept.headers !== undefined || intercept.pathPrefix !== undefined)
  return personal ? `${workload}-${intercept.handler}` : undefined
}

function describeValue(value: unknown): string {
  if (value === null) return 'nothing (null)'
  if (Array.isArray(value)) return 'a list'
  if (typeof value === 'object') return 'a map'
  if (typeof value === 'string') return `the text "${value.length > 30 ? `${value.slice(0, 30)}…` : value}"`
  return `${typeof value === 'number' ? 'the number' : typeof value === 'boolean' ? 'the boolean' : typeof value} ${String(value)}`
}

function valueAt(data: unknown, path: readonly PropertyKey[]): unknown {
  let v: unknown = data
  for (const segment of path) {
    if (v === null || typeof v !== 'object') return undefined
    v = (v as Record<PropertyKey, unknown>)[segment]
  }
  return v
}

function distance(a: string, b: string): number {
  const d: number[][] = Array.from({length: a.length + 1}, (_, i) => [i, ...Array(b.length).fill(0)])
  for (let j = 1; j <= b.length; j++) d[0][j] = j
  for (let i = 1; i <= a.length; i++)
    for (let j = 1; j <= b.length; j++) d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1))
  return d[a.length][b.length]
}

/** The closest of `candidates` to `word`, when it is close enough to be a typo. */
export function closest(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined
  let bestDistance = Number.POSITIVE_INFINITY
  for (const c of candidates) {
    const dist = c.toLowerCase() === word.toLowerCase() ? 0 : distance(word, c)
    if (dist < bestDistance) {
      best = c
      bestDistance = dist
    }
  }
  return best !== undefined && bestDistance <= Math.max(2, Math.floor(word.length / 3)) ? best : undefined
}

// zod 4 keeps each schema's definition in `_zod.def`
interface ZodDef {
  type: string
  shape?: Record<string, {_zod: {def: ZodDef}}>
  element?: {_zod: {def: ZodDef}}
  innerType?: {_zod: {def: ZodDef}}
  options?: Array<{_zod: {def: ZodDef}}>
}

/** The keys an object of the schema at `path` takes (for "allowed here" hints). */
function keysAt(schema: z.ZodType, path: readonly PropertyKey[]): string[] {
  let def = (schema as unknown as {_zod: {def: ZodDef}})._zod.def
  const unwrap = () => {
    while (def.innerType) def = def.innerType._zod.def
  }
  unwrap()
  for (const segment of path) {
    if (def.type === 'object' && def.shape && typeof segment === 'string' && def.shape[segment]) def = def.shape[segment]._zod.def
    else if (def.type === 'array' && def.element) def = def.element._zod.def
    else return []
    unwrap()
  }
  return def.type === 'object' && def.shape ? Object.keys(def.shape) : []
}

const EXAMPLES: Record<string, string> = {
  string: 'a text, e.g. name: frontend',
  number: 'a number, e.g. 8000',
  int: 'a whole number, e.g. 8000',
  boolean: 'true or false',
  array: 'a list (lines starting with "- ", or [a, b])',
  object: 'a map of key: value lines',
  record: 'a map of key: value lines',
}

/** Turns zod's issues into problems with positions and next steps. */
function zodProblems(issues: readonly z.core.$ZodIssue[], data: unknown, locator: Locator, schema: z.ZodType, kinds: readonly string[]): SpecProblem[] {
  const problems: SpecProblem[] = []
  for (const issue of issues) {
    const path = issue.path
    const where = formatPath(path) || 'the file'
    switch (issue.code) {
      case 'unrecognized_keys': {
        const allowed = keysAt(schema, path).filter((k) => k !== '$schema')
        for (const key of issue.keys) {
          const refused = REFUSED_FIELDS[key]
          if (refused) {
            problems.push(locator.problem([...path, key], `${formatPath([...path, key])}: tp does not support "${key}"`, refused, {key: true}))
            continue
          }
          const guess = closest(key, allowed)
          const isHandler = path.length === 2 && path[0] === 'handlers'
          const hint = guess
            ? `did you mean "${guess}"? Allowed here: ${allowed.join(', ')}`
            : isHandler
              ? `a handler has name, environment and one kind: ${[...BUILTIN_KINDS, ...kinds].join(', ')} (a plugin's kind needs its plugin installed, see \`tp extensions\`)`
              : `allowed here: ${allowed.join(', ')}`
          problems.push(locator.problem([...path, key], `${where}: unknown key "${key}"`, hint, {key: true}))
        }
        break
      }
      case 'invalid_type': {
        const found = valueAt(data, path)
        if (found === undefined) {
          const key = String(path[path.length - 1])
          problems.push(
            locator.problem(
              path,
              `${formatPath(path.slice(0, -1)) || 'the file'}: "${key}" is missing`,
              `add ${key}: ${EXAMPLES[issue.expected] ?? issue.expected}`,
            ),
          )
        } else {
          problems.push(
            locator.problem(
              path,
              `${where}: expected ${EXAMPLES[issue.expected] ?? issue.expected}, found ${describeValue(found)}`,
              `write ${EXAMPLES[issue.expected] ?? issue.expected}`,
            ),
          )
        }
        break
      }
      case 'invalid_union': {
        const key = path[path.length - 1]
        const found = describeValue(valueAt(data, path))
        const hint =
          key === 'port'
            ? 'write the service port as a number (1 to 65535) or its name (lower-case letters, digits, dashes), or leave it out when the workload exposes one port'
            : key === 'mountPoint'
              ? 'write true, false, or the empty directory to mount the volumes under'
              : 'see `tp spec schema`'
        problems.push(locator.problem(path, `${where}: ${found} is not usable here`, hint))
        break
      }
      case 'invalid_format': {
        // a header's name and the path prefix: the filter check (shared with the flags) says it
        if (path[path.length - 1] === 'pathPrefix' || (path[path.length - 3] === 'headers' && path[path.length - 1] === 'name')) break
        const found = valueAt(data, path)
        const key = String(path[typeof path[path.length - 1] === 'number' ? path.length - 2 : path.length - 1])
        const pattern = 'pattern' in issue ? String(issue.pattern) : issue.format
        const what: Record<string, string> = {
          name: 'a name: a letter, then letters, digits, _ or - (for a variable: letters, digits and _, not starting with a digit)',
          handler: 'the name of a handler: a letter, then letters, digits, _ or -',
          create: 'the name of a handler: a letter, then letters, digits, _ or -',
          delete: 'the name of a handler: a letter, then letters, digits, _ or -',
          port: 'a service port number (1 to 65535) or its name: lower-case letters, digits and dashes',
          args: 'NAME=value',
          options: 'key=value, e.g. target=dev',
        }
        if (path[0] === 'connection') what.name = 'a connection name: lower-case letters, digits and dashes, at most 31 characters'
        problems.push(
          locator.problem(path, `${where}: ${describeValue(found)} does not have the form ${pattern}`, `write ${what[key] ?? `a value matching ${pattern}`}`),
        )
        break
      }
      case 'too_small':
      case 'too_big': {
        const found = valueAt(data, path)
        if (Array.isArray(found)) problems.push(locator.problem(path, `${where}: the list is empty`, 'give at least one entry, or leave the key out'))
        else if (typeof found === 'string') problems.push(locator.problem(path, `${where}: the text is empty`, 'give a value, or leave the key out'))
        else {
          const isPort = /port/i.test(String(path[path.length - 1])) || path.includes('ports')
          problems.push(
            locator.problem(
              path,
              `${where}: ${describeValue(found)} is ${issue.code === 'too_small' ? 'too small' : 'too large'}`,
              isPort ? 'a port is a number from 1 to 65535' : issue.message,
            ),
          )
        }
        break
      }
      case 'invalid_value':
        problems.push(
          locator.problem(
            path,
            `${where}: ${describeValue(valueAt(data, path))} is not one of ${issue.values.map(String).join(', ')}`,
            `write one of ${issue.values.map(String).join(', ')}`,
          ),
        )
        break
      default:
        problems.push(locator.problem(path, `${where}: ${issue.message}`))
    }
  }
  return problems
}

function ajvProblems(errors: ErrorObject[], base: PropertyKey[], locator: Locator, kind: string): SpecProblem[] {
  return errors.map((e) => {
    const path = [
      ...base,
      ...e.instancePath
        .split('/')
        .slice(1)
        .map((s) => (/^\d+$/.test(s) ? Number(s) : s.replace(/~1/g, '/').replace(/~0/g, '~'))),
    ]
    const where = formatPath(path)
    const params = e.params as Record<string, unknown>
    if (e.keyword === 'additionalProperties') {
      const key = String(params.additionalProperty)
      return locator.problem(
        [...path, key],
        `${where}: unknown key "${key}" in the ${kind} section`,
        `the plugin's schema for ${kind} does not allow it (see \`tp spec schema\`)`,
        {key: true},
      )
    }
    if (e.keyword === 'required') {
      const key = String(params.missingProperty)
      return locator.problem(path, `${where}: "${key}" is missing in the ${kind} section`, `add ${key}, which the plugin's schema for ${kind} requires`)
    }
    return locator.problem(path, `${where}: ${e.message ?? 'does not fit'} (the plugin's schema for ${kind})`, `see the ${kind} section of \`tp spec schema\``)
  })
}

/** Replaces ${VAR} in every value (not in keys); a plain scalar is re-read so `port: ${PORT}` stays a number. */
function expandDocument(doc: Document, env: Record<string, string | undefined>, locator: Locator): SpecProblem[] {
  const problems: SpecProblem[] = []
  visit(doc, {
    Scalar(key, node) {
      if (key === 'key' || typeof node.value !== 'string' || !node.value.includes('$')) return
      const expanded = expandVariables(node.value, env)
      const start = node.range?.[0] ?? 0
      const quoted = node.type === 'QUOTE_DOUBLE' || node.type === 'QUOTE_SINGLE'
      for (const e of expanded.errors) {
        const {line, col} = locator.position(node.type === 'PLAIN' || quoted ? start + e.offset + (quoted ? 1 : 0) : start)
        problems.push({line, col, path: '', message: e.message, hint: e.hint})
      }
      if (expanded.value === node.value) return
      let value: unknown = expanded.value
      if (node.type === 'PLAIN') {
        try {
          const read = parseYaml(expanded.value)
          if (typeof read === 'number' || typeof read === 'boolean') value = read
        } catch {
          // not a scalar on its own: keep the text
        }
      }
      ;(node as Scalar).value = value
    },
  })
  return problems
}

type Raw = Record<string, unknown>
const asList = (v: unknown): unknown[] => (Array.isArray(v) ? v : [])
const asMap = (v: unknown): Raw | undefined => (v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Raw) : undefined)

/** An intercept of the file that takes traffic, for the overlap check. */
interface Claim {
  here: string
  mode: InterceptMode
  /** As written (`port`); undefined: the workload's one port. */
  port?: string
  filter?: HttpFilter
}

/**
 * Whether two intercepts of one workload would take the same traffic, as the daemon refuses it: a
 * replace takes every port; on one port a plain intercept only alone, personal ones side by side
 * when no request matches both. The message names both.
 */
function claimConflict(claim: Claim, other: Claim, workload: string): {message: string; hint: string} | undefined {
  if (claim.mode === 'replace' || other.mode === 'replace') {
    return {
      message:
        claim.mode === 'replace'
          ? `${claim.here}: replaces ${workload}, taking every port, but ${other.here} ${other.mode === 'replace' ? 'replaces it too' : 'intercepts one of them'}`
          : `${claim.here}: intercepts a port of ${workload}, but ${other.here} replaces it, taking every port`,
      hint: 'a replace takes every port of its workload: remove one, or make one of them a wiretap or an ingest',
    }
  }
  if (claim.port !== other.port) return undefined
  const port = claim.port === undefined ? 'the port' : `port ${claim.port}`
  if (!claim.filter && !other.filter) {
    return {
      message: `${claim.here}: intercepts the same port of ${workload} as ${other.here}`,
      hint: 'a port can be intercepted once; remove one, or make both personal (headers or pathPrefix)',
    }
  }
  if (!claim.filter && other.filter) {
    return {
      message: `${claim.here}: ${port} of ${workload} has the personal intercept ${other.here} (${describeFilter(other.filter)}); an intercept of all its traffic would take that too`,
      hint: 'remove one, or make this one personal too: headers: [{name: X-Dev, value: <you>}]',
    }
  }
  if (claim.filter && !other.filter) {
    return {
      message: `${claim.here}: ${port} of ${workload} is intercepted by ${other.here}, which takes all of its traffic`,
      hint: 'remove one, or make that one personal too (headers or pathPrefix)',
    }
  }
  if (claim.filter && other.filter && filtersOverlap(claim.filter, other.filter)) {
    return {
      message: `${claim.here}: the filter ${describeFilter(claim.filter)} overlaps that of ${other.here} on ${port} of ${workload} (${describeFilter(other.filter)}): a request could match both`,
      hint: `give a header another value than ${other.here} does (e.g. X-Dev: <you>)`,
    }
  }
  return undefined
}

/** `mode`, `replace`, and the fields only some modes take; the intercept's mode, or undefined when they disagree. */
function modeProblems(intercept: Raw, path: PropertyKey[], locator: Locator, problems: SpecProblem[]): InterceptMode | undefined {
  const here = formatPath(path)
  const mode = intercept.mode as InterceptMode | undefined
  if (mode !== undefined && !INTERCEPT_MODES.includes(mode)) return undefined // zod says why
  if (typeof intercept.replace === 'boolean' && mode !== undefined && intercept.replace !== (mode === 'replace')) {
    problems.push(
      locator.problem(
        [...path, 'replace'],
        `${here}: replace: ${intercept.replace} says ${intercept.replace ? 'mode replace' : 'not a replace'}, but mode is ${mode}`,
        'keep one: mode: <mode> (replace: true is the same as mode: replace), and remove replace',
        {key: true},
      ),
    )
    return undefined
  }
  const effective = interceptMode({mode, replace: intercept.replace === true})
  if (effective === 'ingest') {
    for (const key of ['port', 'localPort'] as const)
      if (intercept[key] !== undefined)
        problems.push(
          locator.problem(
            [...path, key],
            `${here}: an ingest takes no traffic, so ${key} means nothing`,
            `remove ${key} (the handler gets the environment and volumes only), or use mode: intercept`,
            {key: true},
          ),
        )
  }
  if (effective === 'replace' && intercept.localPort !== undefined && intercept.port === undefined) {
    problems.push(
      locator.problem(
        [...path, 'localPort'],
        `${here}: a replace takes every port; localPort says where the handler listens for one of them, but port does not say which`,
        'add port: <service port> (as --port <local>:<service port>), or remove localPort: the handler listens on the service ports’ own numbers',
        {key: true},
      ),
    )
  }
  if (intercept.writable === true && effective !== 'ingest' && effective !== 'wiretap') {
    problems.push(
      locator.problem(
        [...path, 'writable'],
        `${here}: writable is for an ingest or a wiretap, whose volumes are read-only otherwise; a${effective === 'intercept' ? 'n' : ''} ${effective}'s are writable already`,
        'remove writable',
        {key: true},
      ),
    )
  }
  return effective
}

/**
 * `headers`, `pathPrefix` and `global`: the check the flags use (the same messages after the
 * field), and only with mode intercept. The filter; undefined for a plain intercept; null when
 * something is wrong with it.
 */
function filterProblems(
  intercept: Raw,
  path: PropertyKey[],
  mode: InterceptMode | undefined,
  locator: Locator,
  problems: SpecProblem[],
): HttpFilter | undefined | null {
  const here = formatPath(path)
  const given = (['headers', 'pathPrefix'] as const).filter((k) => intercept[k] !== undefined)
  if (given.length > 0 && mode !== undefined && mode !== 'intercept') {
    problems.push(
      locator.problem(
        [...path, given[0]],
        `${here}: ${given.join(' and ')} make${given.length === 1 ? 's' : ''} a personal intercept; mode ${mode} takes no filter`,
        `remove ${given.join(' and ')}, or use mode: intercept`,
        {key: true},
      ),
    )
    return null
  }
  if (intercept.global === false && given.length === 0) {
    problems.push(
      locator.problem(
        [...path, 'global'],
        `${here}: global: false makes a personal intercept, but there are no headers nor pathPrefix to choose its requests`,
        'add headers: [{name: X-Dev, value: <you>}] (or pathPrefix: /<path>), or remove global',
        {key: true},
      ),
    )
  }
  if (intercept.global === true && given.length > 0) {
    problems.push(
      locator.problem(
        [...path, 'global'],
        `${here}: global: true takes all of the port's traffic, but ${given.join(' and ')} make${given.length === 1 ? 's' : ''} it a personal intercept`,
        `remove global (or write global: false), or remove ${given.join(' and ')}`,
        {key: true},
      ),
    )
    return null
  }
  if (given.length === 0) return undefined
  const headers = asList(intercept.headers)
  const usable = headers.every((h) => typeof asMap(h)?.name === 'string' && typeof asMap(h)?.value === 'string')
  const pathPrefix = intercept.pathPrefix
  if (!usable || (pathPrefix !== undefined && typeof pathPrefix !== 'string') || (intercept.headers !== undefined && headers.length === 0)) return null // zod says why
  const checked = httpFilterOf(headers as Array<{name: string; value: string}>, pathPrefix as string | undefined, SPEC_SPELLING)
  for (const problem of checked.problems) {
    const at: PropertyKey[] =
      problem.at === 'pathPrefix'
        ? [...path, 'pathPrefix']
        : [...path, 'headers', problem.at, ...(problem.kind === 'name' ? ['name'] : problem.kind === 'value' ? ['value'] : [])]
    problems.push(locator.problem(at, `${formatPath(at)}: ${problem.message}`, problem.hint))
  }
  return checked.filter ?? null
}

/** What the schema alone cannot say: references between entries, one kind per handler, ports. */
function crossProblems(data: Raw, locator: Locator, kinds: readonly PluginKind[]): SpecProblem[] {
  const problems: SpecProblem[] = []
  const allKinds = [...BUILTIN_KINDS, ...kinds.map((k) => k.name)]
  const handlers = new Map<string, Raw>()
  asList(data.handlers).forEach((h, i) => {
    const handler = asMap(h)
    if (!handler) return
    const name = handler.name
    if (typeof name === 'string') {
      if (handlers.has(name))
        problems.push(locator.problem(['handlers', i, 'name'], `handlers[${i}]: a second handler is named "${name}"`, 'give each handler its own name'))
      else handlers.set(name, handler)
    }
    const present = allKinds.filter((k) => handler[k] !== undefined)
    if (present.length > 1) {
      problems.push(
        locator.problem(
          ['handlers', i, present[1]],
          `handlers[${i}]${typeof name === 'string' ? ` ("${name}")` : ''}: has ${present.length} kinds (${present.join(', ')})`,
          'a handler is exactly one kind (or none: an empty handler does nothing); split it into two handlers',
          {key: true},
        ),
      )
    }
    const docker = asMap(handler.docker)
    if (docker && (docker.image === undefined) === (docker.build === undefined)) {
      problems.push(
        locator.problem(
          ['handlers', i, 'docker'],
          `handlers[${i}].docker: ${docker.image === undefined ? 'has neither image nor build' : 'has both image and build'}`,
          'give exactly one: image: <image>, or build: {context: <dir>}',
          {key: true},
        ),
      )
    }
  })
  const names = [...handlers.keys()]
  const reference = (path: PropertyKey[], value: unknown, what: string) => {
    if (typeof value !== 'string' || handlers.has(value)) return false
    const guess = closest(value, names)
    problems.push(
      locator.problem(
        path,
        `${formatPath(path)}: there is no handler named "${value}" (${what})`,
        guess ? `did you mean "${guess}"?` : names.length > 0 ? `handlers of this file: ${names.join(', ')}` : 'add it under handlers:',
      ),
    )
    return true
  }
  const localPorts = new Map<number, string>()
  const interceptNames = new Map<string, string>()
  const claimed = new Map<string, Claim[]>()
  const workloadNames = new Map<string, number>()
  asList(data.workloads).forEach((w, i) => {
    const workload = asMap(w)
    if (!workload) return
    if (typeof workload.name === 'string') {
      if (workloadNames.has(workload.name)) {
        problems.push(
          locator.problem(
            ['workloads', i, 'name'],
            `workloads[${i}]: workload "${workload.name}" is listed twice`,
            `list all its intercepts under workloads[${workloadNames.get(workload.name)}]`,
          ),
        )
      } else workloadNames.set(workload.name, i)
    }
    asList(workload.intercepts).forEach((x, j) => {
      const intercept = asMap(x)
      if (!intercept) return
      const path = ['workloads', i, 'intercepts', j]
      reference([...path, 'handler'], intercept.handler, `the handler of an intercept of ${String(workload.name)}`)
      if (intercept.enabled === false) return
      const here = formatPath(path)
      const mode = modeProblems(intercept, path, locator, problems)
      const filter = filterProblems(intercept, path, mode, locator, problems)
      if (mode === undefined) return
      const handler = typeof intercept.handler === 'string' ? (handlers.get(intercept.handler) as HandlerSpec | undefined) : undefined
      // an ingest listens nowhere, a replace without localPort on the service ports' own numbers
      const local =
        mode === 'ingest' || (mode === 'replace' && intercept.localPort === undefined) ? undefined : localPortOf(intercept as {localPort?: number}, handler)
      if (typeof local === 'number') {
        const other = localPorts.get(local)
        if (other) {
          problems.push(
            locator.problem(
              intercept.localPort === undefined ? path : [...path, 'localPort'],
              `${here}: local port ${local} is already the local port of ${other}`,
              'each intercept needs a local port of its own: set localPort (and make its handler listen there)',
            ),
          )
        } else localPorts.set(local, here)
      }
      const name = typeof intercept.handler === 'string' ? interceptName(String(workload.name), intercept as {name?: string; handler: string}) : undefined
      if (name !== undefined) {
        const other = interceptNames.get(name)
        if (other)
          problems.push(
            locator.problem(
              intercept.name === undefined ? path : [...path, 'name'],
              `${here}: its name "${name}" is already that of ${other}`,
              `give one a name of its own: name: <name>${intercept.name === undefined ? ` (a personal intercept's default is <workload>-<handler>)` : ''}`,
            ),
          )
        else interceptNames.set(name, here)
      }
      // what takes traffic: the daemon's rule (intercepts.ts checkClaim), within this file
      if (mode === 'ingest' || mode === 'wiretap' || filter === null) return
      const port = intercept.port === undefined ? undefined : String(intercept.port)
      const claim: Claim = {here, mode, port, filter}
      const claims = claimed.get(String(workload.name)) ?? []
      for (const other of claims) {
        const conflict = claimConflict(claim, other, String(workload.name))
        if (conflict) {
          problems.push(locator.problem(path, conflict.message, conflict.hint))
          break
        }
      }
      claims.push(claim)
      claimed.set(String(workload.name), claims)
    })
  })
  asList(data.prerequisites).forEach((p, i) => {
    const prerequisite = asMap(p)
    if (!prerequisite) return
    const path = ['prerequisites', i]
    if (prerequisite.create === undefined && prerequisite.delete !== undefined) {
      problems.push(
        locator.problem(
          path,
          `prerequisites[${i}]: a delete without its create`,
          'a delete runs if and only if its create ran: add create: <handler> (an empty handler will do)',
        ),
      )
    }
    if (prerequisite.create === undefined && prerequisite.delete === undefined) {
      problems.push(
        locator.problem(path, `prerequisites[${i}]: has neither create nor delete`, 'give create: <handler> (and delete: <handler>), or remove the entry'),
      )
    }
    for (const which of ['create', 'delete'] as const) {
      const value = prerequisite[which]
      if (reference([...path, which], value, `the ${which} of a prerequisite`)) continue
      const handler = typeof value === 'string' ? (handlers.get(value) as HandlerSpec | undefined) : undefined
      const kind = handler ? handlerKind(handler, kinds) : undefined
      if (kind === 'docker' && handler?.docker?.build !== undefined) {
        problems.push(
          locator.problem(
            [...path, which],
            `${formatPath([...path, which])}: handler "${String(value)}" builds its image, which a prerequisite does not`,
            'give the prerequisite an image (docker.image), or build it in a script handler (`docker build -t <tag> <dir>`) that runs first',
          ),
        )
      } else if (kind && kind !== 'script' && kind !== 'docker') {
        problems.push(
          locator.problem(
            [...path, which],
            `${formatPath([...path, which])}: handler "${String(value)}" is a${kind === 'external' ? 'n' : ''} ${kind} handler, which needs an intercept`,
            'a prerequisite runs to completion with no intercept: use a script handler, a docker handler with an image, or an empty one',
          ),
        )
      }
    }
  })
  return problems
}

/** Problems of a plugin kind's section, checked against the plugin's JSON Schema with ajv. */
function pluginProblems(data: Raw, locator: Locator, kinds: readonly PluginKind[], validators: Map<string, ValidateFunction | string>): SpecProblem[] {
  const problems: SpecProblem[] = []
  asList(data.handlers).forEach((h, i) => {
    const handler = asMap(h)
    if (!handler) return
    for (const kind of kinds) {
      const section = handler[kind.name]
      if (section === undefined || asMap(section) === undefined) continue // zod says it must be a map
      const validate = validators.get(kind.name)
      if (typeof validate === 'string') {
        problems.push(
          locator.problem(
            ['handlers', i, kind.name],
            `handlers[${i}].${kind.name}: the plugin's schema for this kind is not usable: ${validate}`,
            `report it to ${kind.plugin ?? 'the plugin'}'s authors`,
          ),
        )
      } else if (validate && !validate(section)) problems.push(...ajvProblems(validate.errors ?? [], ['handlers', i, kind.name], locator, kind.name))
    }
  })
  return problems
}

/** One ajv per process: compiling a schema once is enough. */
let ajvInstance: Ajv2020 | undefined
export function ajv(): Ajv2020 {
  ajvInstance ??= new Ajv2020({allErrors: true, strict: false})
  return ajvInstance
}

function compileKinds(kinds: readonly PluginKind[]): Map<string, ValidateFunction | string> {
  const validators = new Map<string, ValidateFunction | string>()
  for (const kind of kinds) {
    try {
      const {$schema: _, $id: __, ...schema} = kind.schema
      validators.set(kind.name, ajv().compile(schema))
    } catch (error) {
      validators.set(kind.name, (error as Error).message)
    }
  }
  return validators
}

/** Parses (YAML or JSON), expands ${VAR}, validates; every problem has its line and column. */
export function validateSpec(text: string, options: ValidateOptions = {}): ValidationResult {
  const kinds = (options.kinds ?? []).filter((k) => !(BUILTIN_KINDS as readonly string[]).includes(k.name))
  const lines = newLineCounter()
  const doc = parseDocument(text, {lineCounter: lines, prettyErrors: false, uniqueKeys: true})
  const locator = new Locator(doc, lines)
  if (doc.errors.length > 0) {
    return {
      problems: doc.errors.map((e) => {
        const {line, col} = e.linePos?.[0] ?? locator.position(e.pos[0])
        const message = e.message.split('\n')[0].replace(/ at line \d+, column \d+:?$/, '')
        const hint =
          e.code === 'DUPLICATE_KEY'
            ? 'give each key once'
            : e.code === 'TAB_AS_INDENT'
              ? 'indent with spaces, not tabs'
              : 'fix the YAML syntax (indentation, a missing ":" or a quote left open); JSON files are read as YAML, which takes JSON'
        return {line, col, path: '', message: `YAML syntax error: ${message}`, hint}
      }),
    }
  }
  if (doc.contents === null || (isScalar(doc.contents) && (doc.contents.value === null || doc.contents.value === ''))) {
    return {
      problems: [{line: 1, col: 1, path: '', message: 'the file is empty', hint: 'start from `tp spec init`, or see "Intercept specifications" in the README'}],
    }
  }
  if (!isMap(doc.contents)) {
    const {line, col} = locator.position(doc.contents.range?.[0] ?? 0)
    return {
      problems: [
        {
          line,
          col,
          path: '',
          message: `the file is ${isSeq(doc.contents) ? 'a list' : 'a single value'}, not a map`,
          hint: 'write keys at the top level: name, connection, handlers, workloads, prerequisites',
        },
      ],
    }
  }
  const problems = expandDocument(doc, options.env ?? process.env, locator)
  const data = doc.toJS({maxAliasCount: 100}) as Raw
  const schema = specSchema(kinds.map((k) => k.name))
  const parsed = schema.safeParse(data)
  if (!parsed.success)
    problems.push(
      ...zodProblems(
        parsed.error.issues,
        data,
        locator,
        schema,
        kinds.map((k) => k.name),
      ),
    )
  problems.push(...crossProblems(data, locator, kinds))
  problems.push(...pluginProblems(data, locator, kinds, compileKinds(kinds)))
  problems.sort((a, b) => a.line - b.line || a.col - b.col)
  if (problems.length > 0 || !parsed.success) return {problems}
  const spec = parsed.data as Spec
  const name = spec.name ?? (options.file ? basename(options.file, extname(options.file)) : 'spec')
  return {problems: [], spec: {...spec, name, handlers: spec.handlers ?? [], workloads: spec.workloads ?? [], prerequisites: spec.prerequisites ?? []}}
}

/** `file:line:col: message` and the next step on the line below. */
export function formatProblem(problem: SpecProblem, file = '<spec>'): string {
  return `${file}:${problem.line}:${problem.col}: ${problem.message}${problem.hint ? `\n    → ${problem.hint}` : ''}`
}
