import {HTTP_HEADER_NAME, INTERCEPT_MODES, type InterceptMode} from '@tp/sdk'
import {z} from 'zod'

/**
 * The intercept specification, defined once: the validator (`validateSpec`) parses with these
 * schemas, and the published JSON Schema (`specJsonSchema`) is generated from them.
 */

export const HANDLER_NAME = /^[a-zA-Z][a-zA-Z0-9_-]*$/
export const ENV_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/
/** As `tp connect --name` takes it. */
export const CONNECTION_NAME = /^[a-z0-9][a-z0-9-]{0,30}$/
/** A service port's name, as the `tp.port-names` label gives it. */
export const PORT_NAME = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/

/** The handler kinds tp itself knows; plugins add theirs. */
export const BUILTIN_KINDS = ['docker', 'script', 'external'] as const
export type BuiltinKind = (typeof BUILTIN_KINDS)[number]

/**
 * Fields of the reference's specification tp refuses (they belong to its licensed service), with
 * the reason the user sees.
 */
export const REFUSED_FIELDS: Record<string, string> = {
  previewURL: 'preview URLs are a hosted service of the reference, which tp does not have; remove it',
  service:
    "a Docker namespace has no services: a workload's exposed ports are its service ports; remove it and choose the port with `port` (a number, or a name from the tp.port-names label)",
}

/** An intercept's name, as `tp intercept --name` takes it. */
export const INTERCEPT_NAME = /^[a-z0-9][a-z0-9_.-]*$/i

export const port = z.int().min(1).max(65_535).meta({description: 'a TCP port, 1 to 65535'})

export const environmentEntry = z
  .strictObject({
    name: z.string().regex(ENV_NAME).meta({description: 'the variable, [a-zA-Z_][a-zA-Z0-9_]*'}),
    value: z.string().meta({description: 'its value (may be several lines)'}),
  })
  .meta({description: 'a variable added to the intercepted environment; it wins over the workload’s'})

export const dockerBuild = z
  .strictObject({
    context: z
      .string()
      .min(1)
      .meta({description: 'the build context: a directory (or a Dockerfile: its folder), relative to the spec file; .dockerignore is honoured'}),
    args: z
      .array(z.string().regex(/^[^=]+=/))
      .optional()
      .meta({description: 'build arguments, NAME=value'}),
    options: z
      .array(z.string().regex(/^[a-z-]+(=|$)/))
      .optional()
      .meta({description: 'build options key=value: tag, file, target, label=key=value, platform, no-cache, pull (as --docker-build-opt)'}),
  })
  .meta({description: 'build the handler image from a context through the Docker Engine API'})

export const dockerHandler = z
  .strictObject({
    image: z.string().min(1).optional().meta({description: 'the image to run (exactly one of image and build)'}),
    build: dockerBuild.optional(),
    options: z.array(z.string()).optional().meta({description: 'docker run options, e.g. ["-e", "DEBUG=1"] (as before the image in --docker-run)'}),
    command: z.string().optional().meta({description: 'the command after the image: docker run <options> <image> <command> <args…>'}),
    args: z.array(z.string()).optional().meta({description: 'its arguments'}),
    ports: z.array(port).min(1).optional().meta({
      description: "the container's ports; the first is where the intercepted traffic goes (published as localPort:port where the daemon can publish ports)",
    }),
  })
  .meta({description: 'a container on this machine, run with the intercepted environment, volumes and network'})

export const scriptHandler = z
  .strictObject({
    run: z.string().min(1).meta({description: 'the script (may be several lines), run by the shell with the intercepted environment'}),
    shell: z.string().min(1).optional().meta({description: 'the shell that runs it (default sh): <shell> -c <run>'}),
  })
  .meta({description: 'a process on this machine'})

export const externalHandler = z
  .strictObject({
    isDocker: z.boolean().optional().meta({description: 'the program that takes the traffic is a container (it listens where handler containers do)'}),
    outputFormat: z.enum(['json', 'yaml']).optional().meta({description: 'json (default) or yaml'}),
    outputPath: z.string().min(1).optional().meta({description: 'stdout (default), stderr, or a file to write the session to'}),
  })
  .meta({description: 'writes the session (environment, mounts, ports) and waits: for an IDE or debugger that starts the process itself'})

export const httpHeader = z
  .strictObject({
    name: z.string().regex(HTTP_HEADER_NAME).meta({description: 'the header, e.g. X-Dev (without case)'}),
    value: z.string().meta({description: 'its value (exactly)'}),
  })
  .meta({description: 'a header a request must carry to go to the handler'})

export const intercept = z.strictObject({
  enabled: z.boolean().optional().meta({description: 'false skips this intercept (default true)'}),
  name: z.string().regex(INTERCEPT_NAME).optional().meta({
    description:
      "the intercept's name, as --name (default: as tp intercept names it; a personal intercept's: <workload>-<handler>); letters, digits, dots, dashes and underscores",
  }),
  mode: z
    .enum(INTERCEPT_MODES as [InterceptMode, ...InterceptMode[]])
    .optional()
    .meta({
      description:
        "what it does, as the command of that name: intercept (default) takes the port's traffic (or, with headers or pathPrefix, the matching HTTP requests); wiretap sends the handler a copy of it, the workload answers; ingest takes no traffic (environment and volumes only); replace takes every port and pauses the workload",
    }),
  headers: z.array(httpHeader).min(1).optional().meta({
    description:
      'a personal intercept (as --http-header, mode intercept only): only HTTP requests with every one of these headers go to the handler, the rest to the workload',
  }),
  pathPrefix: z
    .string()
    .regex(/^\//)
    .optional()
    .meta({description: 'a personal intercept (as --http-path-prefix, mode intercept only): only HTTP requests whose path starts with this go to the handler'}),
  global: z.boolean().optional().meta({
    description: "true (default): all of the port's traffic; false: a personal intercept, which needs headers or pathPrefix (the reference's spelling)",
  }),
  replace: z.boolean().optional().meta({description: "true: the reference's spelling of mode: replace"}),
  writable: z.boolean().optional().meta({description: "ingest and wiretap: mount the workload's volumes writable (default read-only), as --writable"}),
  port: z
    .union([port, z.string().regex(PORT_NAME)])
    .optional()
    .meta({
      description:
        "the workload's service port, by number or name; may be left out when it exposes one port (replace: the service port that localPort takes; ingest: none)",
    }),
  localPort: port.optional().meta({
    description:
      'where the handler listens (default: the docker handler’s first port, else 8080; replace: for the service port `port`, the others on their own numbers; ingest: none)',
  }),
  handler: z.string().regex(HANDLER_NAME).meta({description: 'the name of a handler of this file'}),
  mountPoint: z
    .union([z.boolean(), z.string().min(1)])
    .optional()
    .meta({description: "the workload's volumes: true (default), false, or for a handler on this machine the empty directory to mount them under (TP_ROOT)"}),
})

export const workload = z.strictObject({
  name: z.string().min(1).meta({description: 'the workload (a container name or network alias of the namespace)'}),
  namespace: z.string().min(1).optional().meta({description: "must be the connection's namespace when given"}),
  intercepts: z.array(intercept).min(1),
})

export const prerequisite = z
  .strictObject({
    create: z.string().regex(HANDLER_NAME).optional().meta({description: 'a handler run to completion before any intercept, in the order of the list'}),
    delete: z.string().regex(HANDLER_NAME).optional().meta({description: 'a handler run at the end, in reverse order, if and only if its create ran'}),
  })
  .meta({description: 'a pair of handlers run with no intercept: create before, delete after'})

export const connection = z
  .strictObject({
    namespace: z.string().min(1).optional().meta({description: 'the namespace (Docker network) to connect to'}),
    name: z
      .string()
      .regex(CONNECTION_NAME)
      .optional()
      .meta({description: 'the connection to use, or to make (default: default): lower-case letters, digits and dashes, at most 31 characters'}),
    docker: z.boolean().optional().meta({description: 'make the connection with a container daemon (tp connect --docker)'}),
    cluster: z.string().min(1).optional().meta({
      description: "the cluster's engine: a Docker context or an engine URL (unix://, tcp://, ssh://); default: the handlers' own (tp connect --cluster)",
    }),
  })
  .meta({description: "tp connect's options: used when that connection is not live yet"})

/** The handler object, with one optional section per plugin kind. */
export function handlerSchema(pluginKinds: readonly string[] = []) {
  const sections: Record<string, z.ZodType> = {}
  for (const kind of pluginKinds)
    sections[kind] = z
      .record(z.string(), z.unknown())
      .optional()
      .meta({description: `a handler of the plugin kind ${kind}`})
  return z.strictObject({
    name: z.string().regex(HANDLER_NAME).meta({description: 'the handler’s name, [a-zA-Z][a-zA-Z0-9_-]*'}),
    environment: z.array(environmentEntry).optional(),
    docker: dockerHandler.optional(),
    script: scriptHandler.optional(),
    external: externalHandler.optional(),
    ...sections,
  })
}

export function specSchema(pluginKinds: readonly string[] = []) {
  return z.strictObject({
    $schema: z.string().optional().meta({description: 'the JSON Schema of this file, for editors'}),
    name: z.string().min(1).optional().meta({description: "the spec's name (default: the file's base name)"}),
    connection: connection.optional(),
    handlers: z.array(handlerSchema(pluginKinds)).optional(),
    workloads: z.array(workload).optional(),
    prerequisites: z.array(prerequisite).optional(),
  })
}

export type DockerHandlerSpec = z.infer<typeof dockerHandler>
export type ScriptHandlerSpec = z.infer<typeof scriptHandler>
export type ExternalHandlerSpec = z.infer<typeof externalHandler>
export type InterceptSpec = z.infer<typeof intercept>
export type HttpHeaderSpec = z.infer<typeof httpHeader>
export type WorkloadSpec = z.infer<typeof workload>
export type PrerequisiteSpec = z.infer<typeof prerequisite>
export type ConnectionSpec = z.infer<typeof connection>
export interface HandlerSpec extends z.infer<ReturnType<typeof handlerSchema>> {
  /** Sections of plugin kinds, by kind. */
  [kind: string]: unknown
}
export interface Spec extends Omit<z.infer<ReturnType<typeof specSchema>>, 'handlers'> {
  handlers?: HandlerSpec[]
}

/** A handler kind a plugin contributes: the handler descriptor's name and its `specSchema`. */
export interface PluginKind {
  name: string
  schema: Record<string, unknown>
  /** The plugin that contributes it, for messages. */
  plugin?: string
}

/**
 * The JSON Schema of the file (draft 2020-12), with each plugin kind's section described by the
 * plugin's own schema.
 */
export function specJsonSchema(kinds: readonly PluginKind[] = []): Record<string, unknown> {
  const usable = kinds.filter((k) => !(BUILTIN_KINDS as readonly string[]).includes(k.name))
  const json = z.toJSONSchema(specSchema(usable.map((k) => k.name)), {target: 'draft-2020-12', io: 'input'}) as Record<string, unknown>
  const handler = ((json.properties as Record<string, Record<string, unknown>>).handlers.items ?? {}) as Record<string, unknown>
  const properties = handler.properties as Record<string, unknown>
  for (const kind of usable) {
    properties[kind.name] = {
      ...kind.schema,
      description: (kind.schema.description as string | undefined) ?? `a handler of the plugin kind ${kind.name}${kind.plugin ? ` (${kind.plugin})` : ''}`,
    }
    // a plugin's schema may name its own draft; inside this document the outer one holds
    delete (properties[kind.name] as Record<string, unknown>).$schema
  }
  return {
    ...json,
    $id: 'https://tp.invalid/schemas/intercept-spec.json',
    title: 'tp intercept specification',
    description: 'A file for `tp spec run|validate`: a connection, handlers, workloads with their intercepts, and create/delete prerequisites.',
  }
}
