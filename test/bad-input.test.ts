/**
 * No internal error on anything a user typed: a table of bad command lines, each run as a user
 * would (the real `tp` against the real engine, on a demo cluster of its own), with and without
 * connections, against both daemon kinds where it matters. Every row must exit 1 (never 70, never
 * oclif's 2), say what was wrong and the next step (`→ …`), and create nothing: no tp-labelled
 * object of this file's connections, no daemon, no intercept, no connection record.
 */
import {mkdtemp, readFile, readdir, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {execa} from 'execa'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {demoDown} from '@tp/images'
import {docker, ensureDemo, repoRoot, tpBin, tpCli} from './helpers/index.js'

const NETWORK = `tpt-badin-${process.pid}`
const CONTAINER = 'bi-c'
const HOST = 'bi-h'
/** Every connection name a row could create by mistake. */
const NAMES = [CONTAINER, HOST, 'nosuch', 'bi-x', 'bi-y', 'bi-z']
const STOPPED = `${NETWORK}-stopped`

let connectedDir: string
let emptyDir: string
let scratch: string
let connected: Record<string, string>
let none: Record<string, string>

/** What this file's tp could have created: objects, daemon processes, records, intercepts. */
async function mine(): Promise<string[]> {
  const [containers, volumes] = await Promise.all([
    docker.listContainers({all: true, filters: JSON.stringify({label: ['tp.managed=true']})}),
    docker.listVolumes({filters: JSON.stringify({label: ['tp.managed=true']})}),
  ])
  const ours = (labels: Record<string, string> | null | undefined) =>
    NAMES.includes(labels?.['tp.connection'] ?? '') || [connectedDir, emptyDir].includes(labels?.['tp.cache-dir'] ?? '')
  const daemons = (await execa('pgrep', ['-f', 'packages/daemon/dist/main.js'], {reject: false})).stdout.split('\n').filter(Boolean)
  const hostDaemons: string[] = []
  for (const pid of daemons) {
    const environ = await readFile(`/proc/${pid}/environ`, 'utf8').catch(() => '')
    if (environ.includes(connectedDir) || environ.includes(emptyDir)) hostDaemons.push(`host daemon ${environ.match(/TP_CONNECTION=([^\0]*)/)?.[1]}`)
  }
  const records = async (dir: string) => (await readdir(join(dir, 'connections')).catch(() => [])).map((f) => `record ${dir}/${f}`)
  const status = await tpCli(['status', '--json'], {env: connected})
  const intercepts = (
    JSON.parse(status.stdout || '{"connections":[]}') as {connections: Array<{name: string; intercepts: Array<{name: string}>}>}
  ).connections.flatMap((c) => c.intercepts.map((i) => `intercept ${c.name}/${i.name}`))
  return [
    ...containers.filter((c) => ours(c.Labels)).map((c) => `container ${c.Names[0]}`),
    ...(volumes.Volumes ?? []).filter((v) => ours(v.Labels)).map((v) => `volume ${v.Name}`),
    ...hostDaemons,
    ...(await records(connectedDir)),
    ...(await records(emptyDir)),
    ...intercepts,
  ].sort()
}

interface Row {
  title: string
  args: string[] | (() => string[])
  /** `connected`: the container connection bi-c and the host connection bi-h exist; `none`: no connection. */
  with: 'connected' | 'none'
  /** What the message must say. */
  says: RegExp
}

const dir = () => scratch
const rows: Row[] = [
  // the paths the user names, checked before anything exists
  {
    title: 'env-json in /proc',
    with: 'connected',
    args: ['intercept', 'frontend-v1', '--use', CONTAINER, '--env-json', '/proc/x.json'],
    says: /--env-json \/proc\/x\.json cannot be written/,
  },
  {
    title: 'env-file in /proc, compose',
    with: 'connected',
    args: ['intercept', 'frontend-v1', '--use', HOST, '--env-file', '/proc/x.env', '--env-syntax', 'compose'],
    says: /--env-file \/proc\/x\.env cannot be written/,
  },
  {
    title: 'env-file a directory (container daemon)',
    with: 'connected',
    args: () => ['intercept', 'frontend-v1', '--use', CONTAINER, '--env-file', dir()],
    says: /is a directory/,
  },
  {
    title: 'env-file a directory (host daemon)',
    with: 'connected',
    args: () => ['intercept', 'frontend-v1', '--use', HOST, '--env-file', dir(), '--env-syntax', 'sh'],
    says: /is a directory/,
  },
  {
    title: 'env-json a directory',
    with: 'connected',
    args: () => ['intercept', 'frontend-v1', '--use', CONTAINER, '--env-json', dir()],
    says: /--env-json .* is a directory/,
  },
  {
    title: 'env-file in a missing directory',
    with: 'connected',
    args: () => ['intercept', 'frontend-v1', '--use', CONTAINER, '--env-file', join(dir(), 'no', 'x.env')],
    says: /is not a directory that exists/,
  },
  {
    title: 'env-file and env-json the same file',
    with: 'connected',
    args: () => ['intercept', 'frontend-v1', '--use', CONTAINER, '--env-file', join(dir(), 'a'), '--env-json', join(dir(), 'a')],
    says: /both name/,
  },
  {
    title: 'env-syntax without env-file',
    with: 'connected',
    args: ['intercept', 'frontend-v1', '--use', CONTAINER, '--env-syntax', 'compose'],
    says: /--env-syntax compose .* there is no --env-file/,
  },
  {
    title: 'env-syntax not one of the syntaxes',
    with: 'connected',
    args: ['intercept', 'frontend-v1', '--use', CONTAINER, '--env-file', '/tmp/x', '--env-syntax', 'yaml'],
    says: /--env-syntax=yaml/,
  },
  {title: 'env-json in /proc, no connection', with: 'none', args: ['intercept', 'frontend-v1', '--env-json', '/proc/x.json'], says: /cannot be written/},
  {
    title: 'env-file a directory, no connection, --docker',
    with: 'none',
    args: () => ['intercept', 'frontend-v1', '--docker', '--env-file', dir()],
    says: /is a directory/,
  },
  {
    title: 'env-syntax without env-file, no connection',
    with: 'none',
    args: ['intercept', 'frontend-v1', '--docker', '--env-syntax', 'sh'],
    says: /there is no --env-file/,
  },
  // which connection
  {
    title: '--use a missing connection',
    with: 'connected',
    args: ['intercept', 'frontend-v1', '--use', 'nosuch'],
    says: /no connection named "nosuch".*\n.*bi-c → .*bi-h → /,
  },
  {
    title: '--use a missing connection, no connections',
    with: 'none',
    args: ['intercept', 'frontend-v1', '--docker', '--use', 'nosuch'],
    says: /no connection named "nosuch".*\n.*there are no connections/,
  },
  {title: 'list --use a missing connection', with: 'none', args: ['list', '--use', 'nosuch'], says: /no connection named "nosuch"/},
  {title: 'leave --use a missing connection', with: 'connected', args: ['leave', 'x', '--use', 'nosuch'], says: /no connection named "nosuch"/},
  {
    title: '--namespace against the container connection',
    with: 'connected',
    args: ['intercept', 'frontend-v1', '--use', CONTAINER, '--namespace', 'other'],
    says: new RegExp(`connection "bi-c", which points to namespace ${NETWORK}`),
  },
  {
    title: '--namespace against the host connection',
    with: 'connected',
    args: ['intercept', 'frontend-v1', '--use', HOST, '--namespace', 'other'],
    says: new RegExp(`connection "bi-h", which points to namespace ${NETWORK}`),
  },
  {
    title: 'list --namespace against the connection',
    with: 'connected',
    args: ['list', '--use', HOST, '--namespace', 'other'],
    says: /which points to namespace/,
  },
  {title: 'two connections, no --use', with: 'connected', args: ['intercept', 'frontend-v1'], says: /2 connections/},
  {title: 'list with two connections, no --use', with: 'connected', args: ['list'], says: /2 connections/},
  {
    title: 'list connecting to a missing namespace',
    with: 'none',
    args: ['list', '--docker', '--namespace', 'nosuchnet'],
    says: /namespace "nosuchnet" does not exist/,
  },
  // docker run arguments
  {
    title: 'unknown docker run option (container daemon)',
    with: 'connected',
    args: ['intercept', 'frontend-v1', '--use', CONTAINER, '--docker-run', '--', '--bogus-opt', 'img'],
    says: /unknown docker run option --bogus-opt/,
  },
  {
    title: 'unknown docker run option (host daemon)',
    with: 'connected',
    args: ['intercept', 'frontend-v1', '--use', HOST, '--port', '8000:80', '--docker-run', '--', '--bogus-opt', 'img'],
    says: /unknown docker run option --bogus-opt/,
  },
  {
    title: 'unknown docker run option, no connection',
    with: 'none',
    args: ['intercept', 'frontend-v1', '--docker', '--docker-run', '--', '--bogus=1', 'img'],
    says: /unknown docker run option --bogus/,
  },
  {title: '--docker-run without an image', with: 'connected', args: ['intercept', 'frontend-v1', '--use', CONTAINER, '--docker-run'], says: /needs the image/},
  {
    title: '--docker-run -d',
    with: 'connected',
    args: ['intercept', 'frontend-v1', '--use', CONTAINER, '--docker-run', '--', '-d', 'img'],
    says: /-d\/--detach cannot be used/,
  },
  {
    title: '--docker-run -p with a container daemon',
    with: 'connected',
    args: ['intercept', 'frontend-v1', '--use', CONTAINER, '--docker-run', '--', '-p', '80:80', 'img'],
    says: /-p 80:80 cannot work/,
  },
  {
    title: '--docker-run a bad --name',
    with: 'connected',
    args: ['intercept', 'frontend-v1', '--use', HOST, '--docker-run', '--', '--name', 'a b', 'img'],
    says: /not a valid container name/,
  },
  // workloads and arguments
  {title: 'a stopped workload (container daemon)', with: 'connected', args: ['intercept', 'stoppy', '--use', CONTAINER], says: /stoppy is stopped/},
  {
    title: 'a stopped workload by container name (host daemon)',
    with: 'connected',
    args: ['intercept', STOPPED, '--use', HOST],
    says: new RegExp(`${STOPPED} is stopped`),
  },
  {title: 'no such workload', with: 'connected', args: ['intercept', 'nosuchworkload', '--use', CONTAINER], says: /no workload named "nosuchworkload"/},
  {
    title: 'a second workload',
    with: 'connected',
    args: ['intercept', 'frontend-v1', 'catalog', '--use', CONTAINER],
    says: /unexpected argument "catalog": tp intercept takes WORKLOAD/,
  },
  {title: 'no workload', with: 'connected', args: ['intercept', '--use', CONTAINER], says: /workload to intercept is missing/},
  // flags
  {
    title: 'the reference typo --port8000',
    with: 'connected',
    args: ['intercept', 'frontend-v1', '--use', CONTAINER, '--port8000'],
    says: /did you mean `--port 8000`\?/,
  },
  {
    title: 'the reference typo, no connection',
    with: 'none',
    args: ['intercept', '--docker', 'frontend-v1', '--port8000', '--docker-run', '--', 'frontend-v2'],
    says: /did you mean `--port 8000`\?/,
  },
  {title: 'a misspelt flag', with: 'connected', args: ['intercept', 'frontend-v1', '--use', CONTAINER, '--prot', '8000'], says: /did you mean `--port`\?/},
  {title: '--port without a value', with: 'connected', args: ['intercept', 'frontend-v1', '--use', CONTAINER, '--port'], says: /--port expects a value/},
  {title: '--port not a port', with: 'connected', args: ['intercept', 'frontend-v1', '--use', CONTAINER, '--port', 'abc'], says: /abc/},
  {
    title: '--port with three parts on a container daemon',
    with: 'connected',
    args: ['intercept', 'frontend-v1', '--use', CONTAINER, '--port', '8000:80:90', '--docker-run', '--', 'img'],
    says: /8000:80:90/,
  },
  {title: '--mount without a value', with: 'connected', args: ['intercept', 'frontend-v1', '--use', CONTAINER, '--mount='], says: /--mount needs a value/},
  {
    title: '--output json with a handler',
    with: 'connected',
    args: ['intercept', 'frontend-v1', '--use', HOST, '--output', 'json', '--', 'true'],
    says: /--output json prints the session of an intercept that has no handler/,
  },
  {
    title: '--use with an empty value (would have meant no --use)',
    with: 'connected',
    args: ['intercept', 'frontend-v1', '--use='],
    says: /--use needs a value/,
  },
  {title: 'quit --name with an empty value (would have quit every connection)', with: 'connected', args: ['quit', '--name='], says: /--name needs a value/},
  {title: 'a command that is not there, with arguments', with: 'none', args: ['nosuch', 'sub', './file'], says: /there is no command "nosuch"\n/},
  {title: '--output not an option', with: 'connected', args: ['intercept', 'frontend-v1', '--use', CONTAINER, '--output', 'yaml'], says: /--output=yaml/},
  // the other commands
  {title: 'connect: a bad name', with: 'none', args: ['connect', '--docker', '--name', 'Bad_Name'], says: /not a usable connection name/},
  {
    title: 'connect: a missing namespace (container daemon)',
    with: 'none',
    args: ['connect', '--docker', '--name', 'bi-x', '--namespace', 'nosuchnet'],
    says: /namespace "nosuchnet" does not exist/,
  },
  {
    title: 'connect: a missing namespace (host daemon)',
    with: 'none',
    args: ['connect', '--name', 'bi-y', '--namespace', 'nosuchnet'],
    says: /namespace "nosuchnet" does not exist/,
  },
  {
    title: 'connect: another namespace for an existing connection',
    with: 'connected',
    args: ['connect', '--docker', '--name', CONTAINER, '--namespace', 'other'],
    says: /is connected to namespace/,
  },
  {
    title: 'connect --docker under the name of a host connection',
    with: 'connected',
    args: ['connect', '--docker', '--name', HOST],
    says: /connection "bi-h" already exists with a host daemon/,
  },
  {title: 'connect: an argument', with: 'none', args: ['connect', 'bi-z'], says: /unexpected argument "bi-z": tp connect takes no arguments/},
  {title: 'connect: a misspelt flag', with: 'none', args: ['connect', '--dokcer'], says: /did you mean `--docker`\?/},
  {title: 'leave: no name', with: 'connected', args: ['leave'], says: /missing 1 required argument/},
  {title: 'leave: no such intercept', with: 'connected', args: ['leave', 'nosuch'], says: /no intercept named "nosuch"/},
  {title: 'leave: not connected', with: 'none', args: ['leave', 'x'], says: /not connected/},
  {title: 'quit: a misspelt flag', with: 'connected', args: ['quit', '--nme', CONTAINER], says: /did you mean `--name`\?/},
  {title: 'quit: a glued value', with: 'connected', args: ['quit', '--namebi-c'], says: /did you mean `--name bi-c`\?/},
  {title: 'quit: an argument', with: 'connected', args: ['quit', CONTAINER], says: /unexpected argument "bi-c"/},
  {title: 'status: a misspelt flag', with: 'connected', args: ['status', '--jsno'], says: /did you mean `--json`\?/},
  {title: 'status: an argument', with: 'none', args: ['status', 'x'], says: /unexpected argument "x"/},
  {title: 'list: a misspelt flag', with: 'connected', args: ['list', '--use', CONTAINER, '--jsn'], says: /did you mean `--json`\?/},
  {title: 'gc: an abbreviated flag', with: 'none', args: ['gc', '--dry'], says: /did you mean `--dry-run`\?/},
  {title: 'gc: an argument', with: 'none', args: ['gc', 'all'], says: /unexpected argument "all"/},
  {title: 'extensions: a misspelt flag', with: 'none', args: ['extensions', '--jsno'], says: /did you mean `--json`\?/},
  {title: 'extensions: an argument', with: 'none', args: ['extensions', 'handlers'], says: /unexpected argument "handlers"/},
  {title: 'an unknown command', with: 'none', args: ['nosuchcmd'], says: /there is no command "nosuchcmd"/},
  {title: 'a misspelt command', with: 'none', args: ['stauts'], says: /did you mean `tp status`\?/},
  {title: 'version: --env-file (a flag it has not)', with: 'none', args: ['version', '--env-file', 'x'], says: /tp version has no flag --env-file/},
]

beforeAll(async () => {
  const demo = await ensureDemo({network: NETWORK})
  connectedDir = await mkdtemp(join(tmpdir(), 'tp-e2e-badin-'))
  emptyDir = await mkdtemp(join(tmpdir(), 'tp-e2e-badin-none-'))
  scratch = await mkdtemp(join(tmpdir(), 'tp-e2e-badin-files-'))
  connected = {TP_CACHE_DIR: connectedDir, TP_NAMESPACE: NETWORK}
  none = {TP_CACHE_DIR: emptyDir, TP_NAMESPACE: NETWORK}
  // a workload of the namespace that has stopped
  const stopped = await docker.createContainer({
    name: STOPPED,
    Image: demo.images.workload,
    Labels: {'tp.fixture': 'true'},
    HostConfig: {NetworkMode: NETWORK},
    NetworkingConfig: {EndpointsConfig: {[NETWORK]: {Aliases: ['stoppy']}}},
  })
  await stopped.start()
  await stopped.stop({t: 1})
  for (const args of [
    ['connect', '--docker', '--name', CONTAINER, '--namespace', NETWORK],
    ['connect', '--name', HOST, '--namespace', NETWORK],
  ]) {
    const result = await tpCli(args, {env: connected})
    if (result.exitCode !== 0) throw new Error(`tp ${args.join(' ')} failed (${result.exitCode}): ${result.stderr}`)
  }
}, 240_000)

afterAll(async () => {
  await tpCli(['quit'], {env: connected}).catch(() => undefined)
  await tpCli(['quit'], {env: none}).catch(() => undefined)
  await docker
    .getContainer(STOPPED)
    .remove({force: true})
    .catch(() => undefined)
  await demoDown(docker, {network: NETWORK}).catch(() => undefined)
  for (const d of [connectedDir, emptyDir, scratch]) if (d) await rm(d, {recursive: true, force: true})
}, 120_000)

describe('bad input', () => {
  it('has a table of at least 40 bad command lines', () => {
    expect(rows.length).toBeGreaterThanOrEqual(40)
  })

  it.each(rows)('$title', async (row) => {
    const env = row.with === 'connected' ? connected : none
    const args = typeof row.args === 'function' ? row.args() : row.args
    const before = await mine()
    const result = await tpCli(args, {env})
    const shown = `tp ${args.join(' ')} → exit ${result.exitCode}\n${result.stderr}`
    expect(result.exitCode, shown).toBe(1)
    expect(result.stderr, shown).toMatch(/^tp: /)
    expect(result.stderr, shown).not.toMatch(/internal error|USAGE|See more help|at .*\.js:\d+/)
    expect(result.stderr, shown).toMatch(row.says)
    // a next step
    expect(result.stderr, shown).toMatch(/\n {2}→ \S/)
    expect(await mine(), shown).toEqual(before)
  })

  it('intercept --help shows exactly the arguments it takes: one workload, then what follows --', async () => {
    const result = await tpCli(['intercept', '--help'], {env: none})
    expect(result.exitCode).toBe(0)
    expect(result.stdout).toMatch(/\$ tp intercept WORKLOAD \[FLAGS\] \[-- COMMAND/)
    expect(result.stdout).not.toMatch(/WORKLOAD\.\.\./)
  })

  it('node packages/cli/bin/run.js -- … --env-file x: node leaves --env-file to tp', async () => {
    const file = join(scratch, 'never-made.env')
    // without the `--`, Node 20 itself takes the flag and exits 9 before tp runs (there is no file yet)
    const bare = await execa('node', [tpBin, 'version', '--env-file', file], {reject: false, cwd: repoRoot, env: none})
    if (process.versions.node.startsWith('20.')) expect(bare.exitCode, bare.stderr).toBe(9)
    const dashed = await execa('node', [tpBin, '--', 'version', '--env-file', file], {reject: false, cwd: repoRoot, env: none})
    expect(dashed.exitCode, dashed.stderr).toBe(1)
    expect(dashed.stderr).toMatch(/tp version has no flag --env-file/)
    // and a real tp flag after the `--`
    const help = await execa('node', [tpBin, '--', 'intercept', '--help'], {reject: false, cwd: repoRoot, env: none})
    expect(help.exitCode).toBe(0)
    expect(help.stdout).toMatch(/--env-file/)
  })
})
