/**
 * How `tp spec run` maps a spec's handlers onto the installed handlers (what their prepare gets),
 * with stand-in registries: no Docker, no connection.
 */
import {describe, expect, it} from 'vitest'
import type {HandlerRequest, InterceptSession, PreparedHandler} from '@tp/sdk'
import type {HandlerSpec} from '@tp/spec'
import {handlerCall, prepareSpecHandler, withEnvironment} from '../../cli/dist/spec-handlers.js'
import {KIND_SCHEMA, PLUGIN_KIND} from './fixtures.js'

const kinds = [{name: PLUGIN_KIND, schema: KIND_SCHEMA}]
const capabilities = {canPublishPorts: false, sharesDaemonNetwork: true, hostReachesCluster: false}
const context = {tpVersion: '0.0.0', cacheDir: '/tmp', log: {info: () => {}, warn: () => {}, debug: () => {}}}

/** Registries whose every handler records its request. */
function recording() {
  const calls: Array<{name: string; request: HandlerRequest}> = []
  const prepared: PreparedHandler = {describe: 'x', wantsVolumes: false, run: async () => 0, stop: async () => {}}
  const registries = {
    handlers: {
      has: () => true,
      load: async (name: string) => ({
        prepare: async (request: HandlerRequest) => {
          calls.push({name, request})
          return prepared
        },
      }),
    },
  }
  return {calls, registries: registries as never}
}

const request = {workload: 'frontend-v1', capabilities, localPort: 8000, containerPort: 8000, cwd: '/work/specs'}

describe('spec handlers → installed handlers', () => {
  it("a plugin kind's section is handed to that plugin's prepare as request.spec", async () => {
    const {calls, registries} = recording()
    const section = {target: 'x', level: 2}
    await prepareSpecHandler(registries, context, {name: 'tool', [PLUGIN_KIND]: section} as HandlerSpec, kinds, request)
    expect(calls).toEqual([{name: PLUGIN_KIND, request: {...request, flags: {}, args: [], spec: section}}])
  })

  it('docker image: docker-run with options, image, command and args as after --', async () => {
    const {calls, registries} = recording()
    const handler: HandlerSpec = {name: 'web', docker: {image: 'frontend-v2', options: ['-e', 'A=1'], command: 'serve', args: ['--fast']}}
    await prepareSpecHandler(registries, context, handler, kinds, request)
    expect(calls[0]).toMatchObject({name: 'docker-run', request: {flags: {'docker-run': true}, args: ['-e', 'A=1', 'frontend-v2', 'serve', '--fast']}})
  })

  it('docker build: docker-build with the context relative to the spec file, build args and options, IMAGE in place of the image', () => {
    const call = handlerCall(
      {name: 'b', docker: {build: {context: 'ctx', args: ['FLAVOUR=pear'], options: ['target=dev']}, options: ['-e', 'X=1']}},
      kinds,
      '/work/specs',
    )
    expect(call).toMatchObject({
      descriptor: 'docker-build',
      flags: {'docker-build': '/work/specs/ctx', 'docker-build-opt': ['target=dev', 'build-arg=FLAVOUR=pear']},
      args: ['-e', 'X=1', 'IMAGE'],
    })
  })

  it('script: the process handler runs <shell> -c <run>', () => {
    expect(handlerCall({name: 's', script: {run: 'echo a\necho b\n'}}, kinds, '/')).toMatchObject({
      descriptor: 'process',
      args: ['sh', '-c', 'echo a\necho b\n'],
    })
    expect(handlerCall({name: 's', script: {run: 'x', shell: 'bash'}}, kinds, '/').args).toEqual(['bash', '-c', 'x'])
  })

  it('external and empty handlers are tp’s own and wait until stopped', async () => {
    const {calls, registries} = recording()
    for (const handler of [{name: 'e', external: {outputFormat: 'yaml' as const}}, {name: 'none'}]) {
      const prepared = await prepareSpecHandler(registries, context, handler, kinds, request)
      const ran = prepared.run(
        {environment: {}, mounts: [], ports: {}, placement: {containerArgs: []}} as unknown as InterceptSession,
        {stdin: process.stdin, stdout: {write: () => true} as never, stderr: process.stderr},
        {dockerRunArgs: []},
      )
      await prepared.stop('test')
      expect(await ran).toBe(0)
    }
    expect(calls).toEqual([])
  })

  it('environment entries win over the intercepted environment, which stays sorted', () => {
    const session = {environment: {A: 'workload', GREETING: 'workload', Z: 'z'}} as unknown as InterceptSession
    const result = withEnvironment(session, {
      name: 'h',
      environment: [
        {name: 'GREETING', value: 'spec'},
        {name: 'B', value: 'b'},
      ],
    })
    expect(result.environment).toEqual({A: 'workload', B: 'b', GREETING: 'spec', Z: 'z'})
    expect(Object.keys(result.environment)).toEqual(['A', 'B', 'GREETING', 'Z'])
  })
})
