/**
 * `tp spec run` end to end, on a demo cluster of its own: two workloads intercepted at once (a
 * docker image handler with an `environment` entry, and a `docker.build` handler), prerequisites
 * whose scripts leave marker files, a run that connects by itself and quits what it made, a failing
 * create, and a run on a connection that was there before (it stays).
 */
import {chmod, mkdir, mkdtemp, readFile, rm, writeFile} from 'node:fs/promises'
import {existsSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {setTimeout as sleep} from 'node:timers/promises'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {demoDown} from '@tp/images'
import {docker, ensureDemo, httpGet, startTp, tpCli, tpObjects} from './helpers/index.js'

const NETWORK = `tpt-spec-${process.pid}`
const MADE = `tpt-spec-made-${process.pid}`.slice(0, 31)
const FAILING = `tpt-spec-fail-${process.pid}`.slice(0, 31)
const KEPT = `tpt-spec-kept-${process.pid}`.slice(0, 31)
let dir: string
let env: Record<string, string>

/** Every Docker object of a connection, its daemon included. */
async function objectsOf(connection: string): Promise<string[]> {
  const filters = JSON.stringify({label: [`tp.connection=${connection}`]})
  const [containers, volumes] = await Promise.all([docker.listContainers({all: true, filters}), docker.listVolumes({filters})])
  return [...containers.map((c) => `container ${c.Names[0]}`), ...(volumes.Volumes ?? []).map((v) => `volume ${v.Name}`)]
}

async function gone(connection: string): Promise<string[]> {
  const deadline = Date.now() + 15_000
  for (;;) {
    const left = await objectsOf(connection)
    if (left.length === 0 || Date.now() > deadline) return left
    await sleep(250)
  }
}

async function answers(url: string, text: string): Promise<void> {
  const deadline = Date.now() + 15_000
  for (;;) {
    const reply = await httpGet(url, {network: NETWORK})
    if (reply.body.includes(text)) return
    if (Date.now() > deadline) throw new Error(`${url} did not answer with ${text}: ${reply.status} ${reply.body} ${reply.stderr}`)
    await sleep(250)
  }
}

async function waitForOutput(output: () => string, pattern: RegExp, exited: () => boolean): Promise<void> {
  const deadline = Date.now() + 120_000
  while (!pattern.test(output())) {
    if (exited() || Date.now() > deadline) throw new Error(`tp spec run did not get to ${pattern}:\n${output()}`)
    await sleep(100)
  }
}

beforeAll(async () => {
  await ensureDemo({network: NETWORK})
  dir = await mkdtemp(join(tmpdir(), 'tpt-spec-'))
  env = {TP_CACHE_DIR: join(dir, 'cache'), MARKS: join(dir, 'marks'), TP_NAMESPACE: ''}
  await mkdir(env.MARKS)
  // the catalog handler: an image built from frontend-v2 that answers with its build argument
  await mkdir(join(dir, 'catalog'))
  await writeFile(join(dir, 'catalog', 'Dockerfile'), 'FROM frontend-v2\nARG FLAVOUR=none\nENV FLAVOUR=$FLAVOUR\nCOPY index.cgi /www/cgi-bin/index.cgi\n')
  await writeFile(
    join(dir, 'catalog', 'index.cgi'),
    '#!/bin/sh\nprintf "Status: 200 OK\\r\\nContent-Type: text/plain\\r\\n\\r\\nbuilt-catalog flavour=%s port=%s\\n" "$FLAVOUR" "$PORT"\n',
  )
  await chmod(join(dir, 'catalog', 'index.cgi'), 0o755)
})

afterAll(async () => {
  for (const name of [MADE, FAILING, KEPT]) await tpCli(['quit', '--name', name], {env}).catch(() => undefined)
  await demoDown(docker, {network: NETWORK}).catch(() => undefined)
  if (dir) await rm(dir, {recursive: true, force: true})
})

const twoWorkloads = () => `name: two-workloads
connection:
  namespace: ${NETWORK}
  name: ${MADE}
  docker: true
handlers:
  - name: frontend
    environment:
      - name: GREETING
        value: hello from the spec
    docker:
      image: frontend-v2
      ports: [8000]
  - name: catalog
    environment:
      - name: PORT
        value: "8001"
    docker:
      build:
        context: ./catalog
        args: [FLAVOUR=pear]
      ports: [8001]
  - name: setup
    script:
      run: |
        echo "creating" > \${MARKS}/create
        echo "create ran"
  - name: teardown
    script:
      run: echo "deleting" > \${MARKS}/delete
workloads:
  - name: frontend-v1
    intercepts:
      - handler: frontend
        port: 80
  - name: catalog
    intercepts:
      - handler: catalog
prerequisites:
  - create: setup
    delete: teardown
`

describe('tp spec run', () => {
  it('connects, runs the create, intercepts both workloads; SIGINT gives the traffic back, runs the delete and quits the connection it made', async () => {
    const file = join(dir, 'two.yaml')
    await writeFile(file, twoWorkloads())
    expect((await tpCli(['status', '--json'], {env})).stdout).not.toContain(MADE)

    const dry = await tpCli(['spec', 'run', file, '--dry-run'], {env})
    expect(dry.exitCode).toBe(0)
    expect(dry.stdout).toContain(`would connect "${MADE}" to ${NETWORK} with the container daemon`)
    expect(dry.stdout).toMatch(/intercept: frontend-v1:80 → port 8000, handler frontend: docker run frontend-v2 with GREETING="hello from the spec"/)
    expect(await objectsOf(MADE)).toEqual([])

    const run = startTp(['spec', 'run', file], {env, cwd: dir})
    const exited = () => run.child.exitCode !== null
    await waitForOutput(run.output, /now goes to your handler \(frontend\)/, exited)
    await waitForOutput(run.output, /now goes to your handler \(catalog\)/, exited)
    expect(run.output()).toContain(`Connecting "${MADE}"`)
    expect(run.output()).toMatch(/Spec two-workloads: connection "tpt-spec-made-\d+" to namespace/)
    expect(run.output()).toContain('create ran')
    expect(await readFile(join(env.MARKS, 'create'), 'utf8')).toBe('creating\n')
    expect(existsSync(join(env.MARKS, 'delete'))).toBe(false)

    const frontend = await httpGet('http://frontend-v1/', {network: NETWORK})
    expect(frontend.body).toMatch(/^frontend-v2$/m)
    expect(frontend.body).toContain('GREETING=hello from the spec') // the spec's entry wins over the workload's
    expect(frontend.body).toContain('catalog=built-catalog flavour=pear port=8001') // frontend-v2 asks catalog: intercepted too
    const catalog = await httpGet('http://catalog/', {network: NETWORK})
    expect(catalog.body).toBe('built-catalog flavour=pear port=8001\n')

    run.child.kill('SIGINT')
    const result = await run.child
    expect(result.exitCode).toBe(0)
    await answers('http://frontend-v1/', 'hello from frontend-v1')
    await answers('http://catalog/', '"catalog":["apple","pear"]')
    expect(await readFile(join(env.MARKS, 'delete'), 'utf8')).toBe('deleting\n')
    expect(run.output()).toContain(`Quitting connection "${MADE}", which this run made`)
    expect(await gone(MADE)).toEqual([])
    const left = await tpObjects()
    expect([...left.containers, ...left.volumes].filter((name) => name.includes(MADE) || name.includes(NETWORK))).toEqual([])
    expect((await tpCli(['status', '--json'], {env})).stdout).not.toContain(MADE)
  })

  it('a failing create: no intercept, the deletes of the creates that ran run (in reverse order), its exit code and output; a docker create reaches the cluster', async () => {
    const file = join(dir, 'failing.yaml')
    const mark = (name: string) => `{name: ${name}, script: {run: "echo ${name} >> \${MARKS}/order"}}`
    await writeFile(
      file,
      `connection: {namespace: ${NETWORK}, name: ${FAILING}, docker: true}
handlers:
  - name: frontend
    docker: {image: frontend-v2, ports: [8000]}
  - name: create-1
    environment: [{name: NOTE, value: "from a container"}]
    docker:
      image: frontend-v2
      options: ["-v", "\${MARKS}:/marks"]
      command: sh
      args: ['-c', 'echo create-1 >> /marks/order; echo "$NOTE: $(timeout 5 wget -q -O - http://catalog/)"']
  - ${mark('delete-1')}
  - name: broken
    script: {run: "echo the database is not there >&2; exit 3"}
  - ${mark('delete-2')}
  - ${mark('create-3')}
  - ${mark('delete-3')}
workloads:
  - name: frontend-v1
    intercepts: [{handler: frontend}]
prerequisites:
  - {create: create-1, delete: delete-1}
  - {create: broken, delete: delete-2}
  - {create: create-3, delete: delete-3}
`,
    )
    const result = await tpCli(['spec', 'run', file], {env, cwd: dir})
    expect(result.exitCode).toBe(3)
    expect(result.stderr).toContain('the database is not there')
    // a docker prerequisite: its environment, and the cluster's names where handler containers run
    expect(result.stdout).toContain('from a container: {"catalog":["apple","pear"]}')
    expect(result.stderr).toContain('Prerequisite create "broken" failed with exit code 3; no intercept is created.')
    expect(result.stderr).not.toMatch(/Intercept|now goes to/)
    // the failing create was started, so its delete runs too; create-3 never ran, nor its delete
    expect(await readFile(join(env.MARKS, 'order'), 'utf8')).toBe('create-1\ndelete-2\ndelete-1\n')
    expect(await gone(FAILING)).toEqual([])
    await answers('http://frontend-v1/', 'hello from frontend-v1')
  })

  it('on a connection that was there before: it stays; an external handler writes the session; `tp leave` ends the run', async () => {
    const connected = await tpCli(['connect', '--docker', '--name', KEPT, '--namespace', NETWORK], {env})
    expect(connected.exitCode).toBe(0)
    const init = await tpCli(['spec', 'init', 'frontend-v1', '--use', KEPT], {env})
    expect(init.exitCode).toBe(0)
    const initFile = join(dir, 'init.yaml')
    await writeFile(initFile, init.stdout)
    expect((await tpCli(['spec', 'validate', initFile], {env})).stdout).toMatch(/valid spec .*: 1 handler, 1 workload \(1 intercept\), 0 prerequisites/)

    const file = join(dir, 'external.yaml')
    await writeFile(
      file,
      `connection: {name: ${KEPT}}
handlers:
  - name: ide
    environment: [{name: FROM_SPEC, value: "yes"}]
    external: {outputFormat: json, outputPath: session.json}
workloads:
  - name: frontend-v1
    intercepts: [{handler: ide, localPort: 8100}]
`,
    )
    const run = startTp(['spec', 'run', file], {env, cwd: dir})
    const exited = () => run.child.exitCode !== null
    await waitForOutput(run.output, /Ctrl-C \(or `tp leave/, exited)
    const sessionFile = join(dir, 'session.json')
    const deadline = Date.now() + 10_000
    while (!existsSync(sessionFile) && Date.now() < deadline) await sleep(100)
    const session = JSON.parse(await readFile(sessionFile, 'utf8')) as {environment: Record<string, string>; ports: {local: number}; mounts: unknown[]}
    expect(session.environment.FROM_SPEC).toBe('yes')
    expect(session.environment.GREETING).toBe('hello from frontend-v1')
    expect(session.ports.local).toBe(8100)
    const name = /intercept (\S+), handler ide/.exec(run.output())?.[1] as string
    expect((await tpCli(['leave', '--use', KEPT, name], {env})).exitCode).toBe(0)
    expect((await run.child).exitCode).toBe(0)
    expect(run.output()).not.toContain('Quitting connection')
    expect((await tpCli(['status', '--json'], {env})).stdout).toContain(KEPT)
    await tpCli(['quit', '--name', KEPT], {env})
    expect(await gone(KEPT)).toEqual([])
  })
})
