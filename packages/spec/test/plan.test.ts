/**
 * What `tp spec run` would do, worked out before anything exists: the ports of each intercept as
 * the connection's placement allows them, and which connection it uses or makes. No Docker.
 */
import {describe, expect, it} from 'vitest'
import {validateSpec} from '@tp/spec'
import {planIntercepts, specConnection} from '../../cli/dist/spec-run.js'

const container = {canPublishPorts: false, sharesDaemonNetwork: true, hostReachesCluster: false}
const host = {canPublishPorts: true, sharesDaemonNetwork: false, hostReachesCluster: true}

function spec(text: string) {
  const result = validateSpec(text)
  if (!result.spec) throw new Error(JSON.stringify(result.problems))
  return result.spec
}

const twoIntercepts = spec(`handlers:
  - name: web
    docker: {image: frontend-v2, ports: [8000]}
  - name: local
    script: {run: serve}
workloads:
  - name: frontend-v1
    intercepts:
      - {handler: web, port: 80}
      - {handler: local, port: http, localPort: 9000, mountPoint: mnt}
  - name: catalog
    intercepts:
      - {handler: local, enabled: false}
      - {handler: local, localPort: 9001, mountPoint: false}
`)

describe('planIntercepts', () => {
  it("a docker handler's first port is the local port by default; enabled: false is skipped; mountPoint is --mount (relative to the spec)", () => {
    const plan = planIntercepts(twoIntercepts, container, '/specs')
    expect(plan.map((p) => [p.workload, p.handler.name, p.local, p.container, p.service, p.mount])).toEqual([
      ['frontend-v1', 'web', 8000, 8000, '80', {wanted: true}],
      ['frontend-v1', 'local', 9000, 9000, 'http', {wanted: true, root: '/specs/mnt'}],
      ['catalog', 'local', 9001, 9001, undefined, {wanted: false}],
    ])
  })

  it('where ports are published, localPort:port; where the handler shares the daemon’s network, they must be the same', () => {
    const published = spec(
      `handlers:\n  - name: web\n    docker: {image: x, ports: [8000]}\nworkloads:\n  - name: w\n    intercepts: [{handler: web, localPort: 18000}]\n`,
    )
    expect(planIntercepts(published, host, '/')[0]).toMatchObject({local: 18000, container: 8000})
    expect(() => planIntercepts(published, container, '/')).toThrow(/listens on port 8000, but the intercept of w has localPort 18000/)
  })
})

describe('planIntercepts: modes', () => {
  const modes = spec(`handlers:
  - name: alice
    docker: {image: x, ports: [8001]}
  - name: bob
    script: {run: serve}
  - name: tap
    docker: {image: x, ports: [8000]}
workloads:
  - name: web
    intercepts:
      - {handler: alice, port: 80, headers: [{name: X-Dev, value: alice}]}
      - {handler: bob, port: 80, localPort: 8002, name: bobs, headers: [{name: X-Dev, value: bob}], pathPrefix: /api}
      - {handler: tap, port: 80, mode: wiretap, writable: true}
      - {handler: tap, mode: ingest, writable: true}
  - name: catalog
    intercepts:
      - {handler: bob, replace: true, port: http, localPort: 9000}
  - name: db
    intercepts:
      - {handler: tap, mode: replace}
`)

  it('each intercept as its command would ask for it: mode, filter, name, ports, writable volumes', () => {
    const plan = planIntercepts(modes, container, '/specs')
    expect(plan.map((p) => [p.workload, p.mode, p.filter, p.name, p.local, p.container, p.service, p.portMap, p.writable])).toEqual([
      ['web', 'intercept', {headers: {'x-dev': 'alice'}}, 'web-alice', 8001, 8001, '80', [], false],
      ['web', 'intercept', {headers: {'x-dev': 'bob'}, pathPrefix: '/api'}, 'bobs', 8002, 8002, '80', [], false],
      ['web', 'wiretap', undefined, undefined, 8000, 8000, '80', [], true],
      // as tp ingest: no port (8080, which nothing uses); the docker handler's port does not matter
      ['web', 'ingest', undefined, undefined, 8080, 8080, undefined, [], true],
      // as tp replace --port 9000:http, and without --port (0: the service ports' own numbers)
      ['catalog', 'replace', undefined, undefined, 9000, 9000, undefined, [{service: 'http', local: 9000}], false],
      ['db', 'replace', undefined, undefined, 0, 0, undefined, [], false],
    ])
  })
})

describe('specConnection', () => {
  const live = (name: string, namespace: string) => ({record: {name, namespace}})
  const connections = (list: unknown[]) => ({live: async () => list}) as never

  it('no live connection: makes one with the spec’s connection options (default name: default)', async () => {
    expect(await specConnection(connections([]), spec('connection: {namespace: ns, docker: true}\n'))).toEqual({
      connect: {name: 'default', namespace: 'ns', docker: true},
    })
  })

  it('the connection the spec names, when live; else it is made', async () => {
    const a = live('a', 'ns')
    expect(await specConnection(connections([live('b', 'ns'), a]), spec('connection: {name: a}\n'))).toEqual({existing: a})
    expect(await specConnection(connections([live('b', 'ns')]), spec('connection: {name: a}\n'))).toEqual({
      connect: {name: 'a', namespace: undefined, docker: false},
    })
  })

  it('the only live connection, which must be to the spec’s namespace', async () => {
    const b = live('b', 'ns')
    expect(await specConnection(connections([b]), spec('name: x\n'))).toEqual({existing: b})
    await expect(specConnection(connections([b]), spec('connection: {namespace: other}\n'))).rejects.toThrow(/connection "b" is to namespace ns/)
  })

  it('several live ones: the one to the spec’s namespace, else the spec must name one', async () => {
    const b = live('b', 'ns')
    expect(await specConnection(connections([b, live('c', 'other')]), spec('connection: {namespace: ns}\n'))).toEqual({existing: b})
    await expect(specConnection(connections([b, live('c', 'other')]), spec('name: x\n'))).rejects.toThrow(
      /there are 2 connections \(b, c\) and the spec does not say which to use/,
    )
  })
})
