/**
 * Swarm clusters (issue 23), on a three-node swarm of network-namespace engines (the manager reached
 * over TLS only, as a remote engine) with a registry: `docker stack deploy` of a stack whose `web`
 * runs two replicas, one on each worker; tp picks the swarm driver by itself, lists the services with
 * their replicas and nodes, and intercepts every replica through the manager's API alone.
 */
import {mkdtemp, readFile, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {setTimeout as sleep} from 'node:timers/promises'
import Dockerode from 'dockerode'
import {execa} from 'execa'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {ensureImportedImage, STATIC_BUSYBOX} from '@tp/images'
import {eventually as poll, startTp, tpCli} from './helpers/index.js'
import {type SwarmMachine, startSwarm, sweepStaleSwarms} from './helpers/swarm-machine.js'

/** The swarm's name (its machines are `<NAME>-m`, `-w1`, `-w2`): TP_SWARM_NAME lets runs side by side differ. */
const NAME = process.env.TP_SWARM_NAME ?? 'tpsw-e2e'
const STACK = 'shop'
const COMPOSE = (image: string, webImage: string) => `
version: "3.8"
services:
  web:
    image: ${webImage}
    command: ["sh", "-c", "echo web on $$NODE > /www/index.html && echo data of $$NODE > /data/node.txt && exec httpd -f -p 80 -h /www"]
    # a named volume is per node: the handler gets the one of the task it mounts
    volumes: [data:/data]
    environment:
      NODE: "{{.Node.Hostname}}"
      GREETING: hello from the swarm web
    secrets: [{source: tpsw_token, target: api-token}]
    # tpsw_motd at its default target, /tpsw_motd: right under /, which tp says it does not serve
    configs: [{source: tpsw_settings, target: /etc/web/settings.txt}, tpsw_motd]
    deploy:
      replicas: 2
      endpoint_mode: dnsrr
      placement:
        max_replicas_per_node: 1
        constraints: [node.role == worker]
  inventory:
    image: ${image}
    command: ["sh", "-c", "echo the inventory > /www/index.html && exec httpd -f -p 8080 -h /www"]
    # its port from the endpoint spec (web's comes from its image)
    ports: [{target: 8080, published: 18080, mode: host}]
    deploy:
      endpoint_mode: dnsrr
      placement:
        constraints: [node.role == worker]
networks:
  default:
    attachable: true
volumes:
  data: {}
secrets:
  tpsw_token: {external: true}
configs:
  tpsw_settings: {external: true}
  tpsw_motd: {external: true}
`

/** The handler: answers with what it sees of the intercept (its env, the stack's inventory by name). */
const HANDLER = `
const http = require('node:http')
const inventory = () => new Promise((resolve) => {
  http.get({host: 'inventory', port: 8080, path: '/', timeout: 3000}, (res) => {
    let body = ''
    res.on('data', (c) => (body += c))
    res.on('end', () => resolve(body.trim()))
  }).on('error', (e) => resolve('error: ' + (e.code || e.message))).on('timeout', function () { this.destroy(new Error('timeout')) })
})
http.createServer(async (req, res) => res.end('handler: ' + process.env.GREETING + ' / ' + (await inventory()) + '\\n')).listen(Number(process.argv[1]))
`

let swarm: SwarmMachine
let manager: Dockerode
let env: Record<string, string>
let dockerConfig: string
let cacheDir: string
/** The fixture's busybox on this machine's engine, for handler containers. */
let localBusybox: string

const tp = (args: string[]) => tpCli(args, {env})

/** The replicas' addresses on the stack's network, and a client there (inventory's task, on a worker). */
async function webAddresses(): Promise<string[]> {
  const client = await inventoryClient()
  const lookup = await client.exec(['nslookup', 'tasks.web'])
  return [...lookup.matchAll(/Address: (10\.79\.\d+\.\d+)/g)].map((m) => m[1]).sort()
}

async function inventoryClient(): Promise<{exec: (argv: string[]) => Promise<string>}> {
  for (const node of swarm.nodes) {
    const ids = (await node.machine.docker(['ps', '-q', '--filter', `label=com.docker.swarm.service.name=${STACK}_inventory`])).stdout.trim()
    if (ids) {
      const id = ids.split('\n')[0]
      return {exec: async (argv) => (await node.machine.docker(['exec', id, ...argv], {reject: false, timeoutMs: 20_000})).stdout.trim()}
    }
  }
  throw new Error('no inventory task runs')
}

/** What a client in the stack gets from each replica of web (by its own address, so each is asked). */
async function answersOfWeb(): Promise<string[]> {
  const client = await inventoryClient()
  const addresses = await webAddresses()
  return (await Promise.all(addresses.map((a) => client.exec(['sh', '-c', `timeout 5 wget -qO- http://${a}/ 2>&1; true`])))).sort()
}

/** Polls every 500 ms: each probe here asks containers on several nodes. */
const eventually = <T>(what: string, probe: () => Promise<T>, ok: (value: T) => boolean, timeoutMs: number) => poll(what, probe, ok, timeoutMs, 500)

/**
 * Writes something of its own into each worker's copy of web's named volume (/data/node.txt), through
 * that node's engine; resolves with what, by node.
 */
async function markVolumes(): Promise<Map<string, string>> {
  const marks = new Map<string, string>()
  for (const node of swarm.nodes.filter((n) => n.role === 'worker')) {
    const task = (await node.machine.docker(['ps', '-q', '--filter', `label=com.docker.swarm.service.name=${STACK}_web`])).stdout.trim().split('\n')[0]
    const mark = `the volume on ${node.hostname}, ${Math.random().toString(36).slice(2, 8)}`
    await node.machine.docker(['exec', task, 'sh', '-c', `echo "${mark}" > /data/node.txt`])
    marks.set(node.hostname, mark)
  }
  return marks
}

/** Everything tp-labelled on every node: services (on the manager) and containers (on each node's engine). */
async function tpObjectsOnNodes(): Promise<string[]> {
  const services = await swarm.manager.docker(['service', 'ls', '--filter', 'label=tp.managed=true', '--format', 'service {{.Name}}'])
  const containers = await Promise.all(
    swarm.nodes.map(async (n) => {
      const out = await n.machine.docker(['ps', '-a', '--filter', 'label=tp.managed=true', '--format', `container {{.Names}} on ${n.hostname}`])
      return out.stdout
    }),
  )
  return [services.stdout, ...containers].join('\n').split('\n').filter(Boolean)
}

beforeAll(async () => {
  await sweepStaleSwarms(NAME)
  swarm = await startSwarm(NAME)
  manager = new Dockerode({socketPath: swarm.manager.socket})
  // the nodes' engines listen on sockets of their own: tp's launchers find them by this node label
  for (const node of swarm.nodes) await swarm.manager.docker(['node', 'update', '--label-add', `tp.docker-socket=${node.machine.socket}`, node.id])
  const busybox = await ensureImportedImage(manager, {
    repo: 'tpsw-busybox',
    tag: '1',
    spec: {busybox: STATIC_BUSYBOX, dirs: ['/www']},
    changes: ['ENV PATH=/bin'],
    what: 'test fixture',
  })
  const web = await ensureImportedImage(manager, {
    repo: 'tpsw-web',
    tag: '1',
    spec: {busybox: STATIC_BUSYBOX, dirs: ['/www']},
    changes: ['ENV PATH=/bin', 'EXPOSE 80'],
    what: 'test fixture',
  })
  // web's secret and config (a secret's data cannot be read back through the API: tp reads it in a task)
  await swarm.manager.docker(['secret', 'create', 'tpsw_token', '-'], {input: 'the secret token'})
  await swarm.manager.docker(['config', 'create', 'tpsw_settings', '-'], {input: 'the settings of web'})
  await swarm.manager.docker(['config', 'create', 'tpsw_motd', '-'], {input: 'the message of the day'})
  localBusybox = (
    await ensureImportedImage(new Dockerode(), {
      repo: 'tpsw-busybox',
      tag: '1',
      spec: {busybox: STATIC_BUSYBOX, dirs: ['/www']},
      changes: ['ENV PATH=/bin'],
      what: 'test fixture',
    })
  ).ref
  await swarm.deployStack(STACK, COMPOSE(await swarm.push(busybox.ref, 'tpsw-busybox:1'), await swarm.push(web.ref, 'tpsw-web:1')))
  await swarm.waitForStack(STACK, 90_000)
  dockerConfig = await mkdtemp(join(tmpdir(), 'tpsw-docker-config-'))
  const tls = swarm.manager.tls
  await execa('docker', ['context', 'create', 'tpsw', '--docker', `host=${tls.host},ca=${tls.ca},cert=${tls.cert},key=${tls.key}`], {
    env: {DOCKER_CONFIG: dockerConfig},
  })
  cacheDir = await mkdtemp(join(tmpdir(), 'tpsw-cache-'))
  env = {TP_CACHE_DIR: cacheDir, DOCKER_CONFIG: dockerConfig, TP_REGISTRY: swarm.registry, TP_IMAGE_TAG: process.env.TP_IMAGE_TAG ?? 'swarm'}
}, 300_000)

afterAll(async () => {
  await tp(['quit', '--name', 'sw']).catch(() => undefined)
  await swarm?.stop()
  if (cacheDir) await rm(cacheDir, {recursive: true, force: true})
  if (dockerConfig) await rm(dockerConfig, {recursive: true, force: true})
}, 120_000)

describe('a swarm cluster', () => {
  it('refuses a swarm of several nodes without a registry, saying what to pass, and makes nothing', async () => {
    const refused = await tpCli(['connect', '--cluster', 'tpsw', '--name', 'swnoreg'], {env: {...env, TP_REGISTRY: ''}})
    expect(refused.exitCode).toBe(1)
    expect(refused.stderr).toContain('this swarm has 3 nodes')
    expect(refused.stderr).toContain('--registry')
    expect(await tpObjectsOnNodes()).toEqual([])
  })

  it('is recognised by its manager, and lists the stack’s services with their replicas and nodes', async () => {
    const connected = await tp(['connect', '--cluster', 'tpsw', '--name', 'sw'])
    expect(connected.stderr + connected.stdout).not.toMatch(/error/i)
    expect(connected.exitCode).toBe(0)
    const status = await tp(['status'])
    expect(status.stdout).toMatch(/swarm/)
    expect(status.stdout).toMatch(new RegExp(`namespace ${STACK}`))
    const list = await tp(['list', '--use', 'sw'])
    expect(list.exitCode).toBe(0)
    const lines = list.stdout.split('\n')
    expect(lines.find((l) => l.startsWith('web'))).toMatch(new RegExp(`ports 80\\s+2 replicas on ${NAME}-w1, ${NAME}-w2\\s+ready to intercept`))
    expect(lines.find((l) => l.startsWith('inventory'))).toMatch(new RegExp(`ports 8080\\s+1 replica on ${NAME}-w[12]\\s+ready to intercept`))
    const json = JSON.parse((await tp(['list', '--use', 'sw', '--json'])).stdout) as Array<{name: string; aliases: string[]}>
    expect(json.find((w) => w.name === 'web')?.aliases).toContain(`${STACK}_web`)
  }, 240_000)

  it('sends every replica’s traffic to the handler, which sees the service’s env and its stack’s services by name; Ctrl-C gives it back', async () => {
    expect(await answersOfWeb()).toEqual([`web on ${NAME}-w1`, `web on ${NAME}-w2`].sort())
    const port = 18923
    const run = startTp(['intercept', 'web', '--use', 'sw', '--port', String(port), '--mount=false', '--', 'node', '-e', HANDLER, String(port)], {env})
    try {
      await run.active
      const answers = await eventually('both replicas answered by the handler', answersOfWeb, (a) => a.every((x) => x.startsWith('handler:')), 30_000)
      expect(answers).toEqual(['handler: hello from the swarm web / the inventory', 'handler: hello from the swarm web / the inventory'])
      const list = await tp(['list', '--use', 'sw'])
      expect(list.stdout).toMatch(/web .*intercepted \(web on 80\)/)
    } finally {
      run.child.kill('SIGINT')
      await run.child
    }
    await eventually('every replica answers for itself', answersOfWeb, (a) => a.join() === [`web on ${NAME}-w1`, `web on ${NAME}-w2`].sort().join(), 10_000)
    // what stays is the connection's own (its relay and janitor on the manager), until tp quit
    const left = await eventually('nothing of the intercept left on the nodes', tpObjectsOnNodes, (l) => l.length === 2, 60_000)
    expect(left.sort()).toEqual([`container tp-sw-janitor on ${NAME}-m`, `container tp-sw-relay on ${NAME}-m`])
  }, 240_000)

  it('intercepts the new tasks of a `docker service update --force` within 30 s of their start', async () => {
    const port = 18924
    const run = startTp(['intercept', 'web', '--use', 'sw', '--port', String(port), '--mount=false', '--', 'node', '-e', HANDLER, String(port)], {env})
    try {
      await run.active
      await eventually('both replicas answered by the handler', answersOfWeb, (a) => a.length === 2 && a.every((x) => x.startsWith('handler:')), 30_000)
      const before = await webAddresses()
      await swarm.manager.docker(['service', 'update', '--force', '--detach', `${STACK}_web`])
      // the update is done when both replicas run again, at new addresses (new tasks)
      await eventually('new tasks of web run', webAddresses, (a) => a.length === 2 && a.every((x) => !before.includes(x)), 90_000)
      await swarm.waitForStack(STACK, 60_000)
      const replaced = Date.now()
      const answers = await eventually(
        'the new tasks answered by the handler',
        answersOfWeb,
        (a) => a.length === 2 && a.every((x) => x.startsWith('handler:')),
        30_000,
      )
      expect(answers).toHaveLength(2)
      expect(Date.now() - replaced).toBeLessThan(30_000)
      expect(run.child.exitCode, run.output()).toBeNull()
    } finally {
      run.child.kill('SIGINT')
      await run.child
    }
    await eventually('every replica answers for itself', answersOfWeb, (a) => a.join() === [`web on ${NAME}-w1`, `web on ${NAME}-w2`].sort().join(), 10_000)
  }, 300_000)

  it('after kill -9 of the daemon here, every task has its traffic back within 10 s and nothing of tp is left on any node within 60 s', async () => {
    const port = 18925
    const run = startTp(['intercept', 'web', '--use', 'sw', '--port', String(port), '--mount=false', '--', 'node', '-e', HANDLER, String(port)], {env})
    await run.active
    await eventually('both replicas answered by the handler', answersOfWeb, (a) => a.length === 2 && a.every((x) => x.startsWith('handler:')), 30_000)
    const record = JSON.parse(await readFile(join(cacheDir, 'connections', 'sw.json'), 'utf8')) as {pid: number}
    process.kill(record.pid, 'SIGKILL')
    const killed = Date.now()
    await eventually('every replica answers for itself', answersOfWeb, (a) => a.join() === [`web on ${NAME}-w1`, `web on ${NAME}-w2`].sort().join(), 15_000)
    expect(Date.now() - killed).toBeLessThan(10_000 + 5_000) // a client round takes a moment of its own
    expect(await eventually('nothing of tp on the nodes', tpObjectsOnNodes, (left) => left.length === 0, 60_000)).toEqual([])
    await run.child
    expect((await tp(['status'])).stdout).toMatch(/DAEMON DIED/)
    // connected again for what follows
    expect((await tp(['connect', '--cluster', 'tpsw', '--name', 'sw'])).exitCode).toBe(0)
  }, 240_000)

  it('leaves nothing on any node after tp quit', async () => {
    expect((await tp(['quit', '--name', 'sw'])).exitCode).toBe(0)
    expect(await eventually('nothing of tp on the nodes', tpObjectsOnNodes, (left) => left.length === 0, 60_000)).toEqual([])
  }, 120_000)

  it('reaches the manager over ssh as well', async () => {
    const ssh = {...env, PATH: swarm.manager.ssh.env.PATH}
    const connected = await tpCli(['connect', '--cluster', swarm.manager.ssh.url, '--name', 'swssh'], {env: ssh})
    expect(connected.exitCode, connected.stderr).toBe(0)
    try {
      const list = await tpCli(['list', '--use', 'swssh'], {env: ssh})
      expect(list.stdout).toMatch(new RegExp(`web\\s+ports 80\\s+2 replicas on ${NAME}-w1, ${NAME}-w2`))
    } finally {
      expect((await tpCli(['quit', '--name', 'swssh'], {env: ssh})).exitCode).toBe(0)
    }
    expect(await eventually('nothing of tp on the nodes', tpObjectsOnNodes, (left) => left.length === 0, 60_000)).toEqual([])
  }, 120_000)
  /** A handler container here: it answers with what it sees (the service's env, the stack's names). */
  const dockerRunHandler = (port: number, what: string, files = false) => [
    '--rm',
    localBusybox,
    'sh',
    '-c',
    [
      'mkdir -p /www',
      `echo "${what}; $GREETING; inventory: $(timeout 5 wget -qO- http://inventory:8080/); tasks.inventory: $(timeout 5 wget -qO- http://tasks.inventory:8080/)${files ? '; secret: $(cat /run/secrets/api-token); config: $(cat /etc/web/settings.txt); data: $(cat /data/node.txt)' : ''}" > /www/index.html`,
      `exec httpd -f -p ${port} -h /www`,
    ].join(' && '),
  ]

  /** What tp left on this machine's engine for a connection. */
  const tpObjectsHere = async (connection: string) =>
    (await execa('docker', ['ps', '-a', '--filter', `label=tp.connection=${connection}`, '--format', '{{.Names}}'])).stdout.split('\n').filter(Boolean)

  it('--docker-run: a handler container here answers every replica, with the service’s env, secret and config at their paths, the volume of the task tp names, and the stack’s names (tasks.<service> too)', async () => {
    const volumeMarks = await markVolumes()
    expect((await tp(['connect', '--cluster', 'tpsw', '--name', 'sw2run'])).exitCode).toBe(0)
    try {
      const port = 18926
      const run = startTp(
        ['intercept', 'web', '--use', 'sw2run', '--port', String(port), '--docker-run', '--', ...dockerRunHandler(port, 'docker-run', true)],
        {env},
      )
      try {
        await run.active
        // a named volume is per node: tp says whose copy the handler gets (slot 1's)
        const from = /volumes from (\S+) on node (\S+)/.exec(run.output())
        expect(from?.[1], run.output()).toBe(`${STACK}_web.1`)
        expect(run.output()).toContain('not served: /tpsw_motd (a file right under / cannot be mounted in the handler: give it a target in a directory')
        const node = swarm.nodes.find((n) => n.hostname === from?.[2])
        expect(node?.role).toBe('worker')
        const answers = await eventually(
          'both replicas answered by the handler container',
          answersOfWeb,
          (a) => a.length === 2 && a.every((x) => x.startsWith('docker-run')),
          30_000,
        )
        expect(answers[0]).toBe(answers[1])
        expect(answers[0]).toBe(
          `docker-run; hello from the swarm web; inventory: the inventory; tasks.inventory: the inventory; secret: the secret token; config: the settings of web; data: ${volumeMarks.get(from?.[2] ?? '')}`,
        )
        // tasks.web: every task an address of its own here, as swarm's DNS answers there
        const tasksOfWeb = (await execa('getent', ['ahostsv4', 'tasks.web'], {reject: false})).stdout
        expect(new Set([...tasksOfWeb.matchAll(/^(\S+)\s+STREAM/gm)].map((m) => m[1])).size, tasksOfWeb).toBe(2)
      } finally {
        run.child.kill('SIGINT')
      }
      expect((await run.child).exitCode, run.output()).toBe(0)
      await eventually('every replica answers for itself', answersOfWeb, (a) => a.join() === [`web on ${NAME}-w1`, `web on ${NAME}-w2`].sort().join(), 10_000)
    } finally {
      expect((await tp(['quit', '--name', 'sw2run'])).exitCode).toBe(0)
    }
    expect(await tpObjectsHere('sw2run')).toEqual([])
    expect(await eventually('nothing of tp on the nodes', tpObjectsOnNodes, (left) => left.length === 0, 60_000)).toEqual([])
  }, 240_000)

  it('tp connect --docker: a daemon in a container here, a --docker-run handler answers every replica; tp quit leaves nothing here or there', async () => {
    const connected = await tp(['connect', '--docker', '--cluster', 'tpsw', '--name', 'sw2cn'])
    expect(connected.exitCode, connected.stderr).toBe(0)
    try {
      const port = 18927
      const run = startTp(
        ['intercept', 'web', '--use', 'sw2cn', '--port', String(port), '--mount=false', '--docker-run', '--', ...dockerRunHandler(port, 'container daemon')],
        {env},
      )
      try {
        await run.active
        const answers = await eventually(
          'both replicas answered by the handler container',
          answersOfWeb,
          (a) => a.length === 2 && a.every((x) => x.startsWith('container daemon')),
          30_000,
        )
        expect(answers).toEqual(Array(2).fill('container daemon; hello from the swarm web; inventory: the inventory; tasks.inventory: the inventory'))
      } finally {
        run.child.kill('SIGINT')
      }
      expect((await run.child).exitCode, run.output()).toBe(0)
      await eventually('every replica answers for itself', answersOfWeb, (a) => a.join() === [`web on ${NAME}-w1`, `web on ${NAME}-w2`].sort().join(), 10_000)
    } finally {
      expect((await tp(['quit', '--name', 'sw2cn'])).exitCode).toBe(0)
    }
    expect(await tpObjectsHere('sw2cn')).toEqual([])
    expect(await eventually('nothing of tp on the nodes', tpObjectsOnNodes, (left) => left.length === 0, 60_000)).toEqual([])
  }, 240_000)
  it('refuses a stack whose network is not attachable, naming the network and what to do, and makes nothing', async () => {
    const inventory = (
      await swarm.manager.docker(['service', 'inspect', `${STACK}_inventory`, '--format', '{{.Spec.TaskTemplate.ContainerSpec.Image}}'])
    ).stdout.trim()
    await swarm.deployStack(
      'closed',
      `
version: "3.8"
services:
  api:
    image: ${inventory.replace(/@sha256:.*/, '')}
    command: ["sh", "-c", "exec httpd -f -p 80 -h /www"]
    deploy: {endpoint_mode: dnsrr, placement: {constraints: [node.role == worker]}}
`,
    )
    try {
      await swarm.waitForStack('closed', 60_000)
      const refused = await tp(['connect', '--cluster', 'tpsw', '--namespace', 'closed', '--name', 'sw2closed'])
      expect(refused.exitCode).toBe(1)
      expect(refused.stderr).toContain('the overlay network closed_default of namespace closed is not attachable')
      expect(refused.stderr).toContain('attachable: true')
      expect(refused.stderr).toContain('docker stack rm closed')
      expect(await tpObjectsHere('sw2closed')).toEqual([])
      expect(await tpObjectsOnNodes()).toEqual([])
    } finally {
      await tp(['quit', '--name', 'sw2closed']).catch(() => undefined)
      await swarm.manager.docker(['stack', 'rm', 'closed'], {reject: false})
    }
  }, 180_000)

  it('a 12-second cut of the link to the manager: every task has its traffic back within 10 s, tp intercept says the link broke and exits 1, nothing of tp is left on any node within 60 s', async () => {
    expect((await tp(['connect', '--cluster', 'tpsw', '--name', 'sw2cut'])).exitCode).toBe(0)
    const port = 18928
    const run = startTp(['intercept', 'web', '--use', 'sw2cut', '--port', String(port), '--mount=false', '--', 'node', '-e', HANDLER, String(port)], {env})
    await run.active
    await eventually('both replicas answered by the handler', answersOfWeb, (a) => a.length === 2 && a.every((x) => x.startsWith('handler:')), 30_000)
    // nothing passes between this machine and the manager's API (the nodes still reach each other)
    const api = new URL(swarm.manager.tls.host.replace(/^tcp:/, 'http:'))
    const rules = [
      ['OUTPUT', '-d', api.hostname, '-p', 'tcp', '--dport', api.port],
      ['INPUT', '-s', api.hostname, '-p', 'tcp', '--sport', api.port],
    ].map((r) => [...r, '-j', 'DROP', '-m', 'comment', '--comment', `${NAME} link cut`])
    for (const rule of rules) await execa('iptables', ['-I', ...rule])
    const cut = Date.now()
    try {
      await eventually('every replica answers for itself', answersOfWeb, (a) => a.join() === [`web on ${NAME}-w1`, `web on ${NAME}-w2`].sort().join(), 15_000)
      expect(Date.now() - cut).toBeLessThan(10_000 + 5_000) // a client round takes a moment of its own
      const ended = await run.child
      expect(ended.exitCode, run.output()).toBe(1)
      expect(run.output()).toMatch(/link to the cluster's engine .* broke/)
      await sleep(Math.max(0, 12_000 - (Date.now() - cut)))
    } finally {
      for (const rule of rules) await execa('iptables', ['-D', ...rule], {reject: false})
      if (run.child.exitCode === null) run.child.kill('SIGINT')
    }
    expect(await eventually('nothing of tp on the nodes', tpObjectsOnNodes, (left) => left.length === 0, 60_000 - (Date.now() - cut))).toEqual([])
    await eventually(
      'the daemon here has ended',
      async () => (await tp(['status'])).stdout,
      (out) => /DAEMON DIED|Not connected/.test(out),
      30_000,
    )
    await tp(['quit', '--name', 'sw2cut']).catch(() => undefined)
  }, 240_000)
  it('tp gc with the manager as its engine removes the services and containers of connections that are gone, from every node', async () => {
    const image = (await swarm.manager.docker(['service', 'inspect', `${STACK}_inventory`, '--format', '{{.Spec.TaskTemplate.ContainerSpec.Image}}'])).stdout
      .trim()
      .replace(/@sha256:.*/, '')
    const labels = ['--label', 'tp.managed=true', '--label', 'tp.connection=sw2gone']
    // what a connection whose daemon and janitor both went left: a launcher on a worker, a relay on the manager
    await swarm.manager.docker([
      'service',
      'create',
      '--detach',
      '--name',
      'tp-sw2gone-launcher',
      ...labels,
      '--container-label',
      'tp.managed=true',
      '--container-label',
      'tp.connection=sw2gone',
      '--constraint',
      'node.role==worker',
      image,
      'sleep',
      '600',
    ])
    await swarm.manager.docker(['run', '-d', '--name', 'tp-sw2gone-relay', ...labels, image, 'sleep', '600'])
    await eventually('the leftovers run', tpObjectsOnNodes, (l) => l.length === 3, 60_000)
    // the manager is the engine of both the cluster and the handlers: gc looks at nothing else
    const gc = await tpCli(['gc'], {env: {...env, DOCKER_HOST: `unix://${swarm.manager.socket}`, DOCKER_CONFIG: dockerConfig}})
    expect(gc.exitCode, gc.stderr).toBe(0)
    expect(gc.stdout).toContain('removed service tp-sw2gone-launcher (connection sw2gone)')
    expect(gc.stdout).toMatch(/removed container tp-sw2gone-relay/)
    expect(await eventually('nothing of tp on the nodes', tpObjectsOnNodes, (left) => left.length === 0, 60_000)).toEqual([])
  }, 180_000)
})

/** A handler that says who it is, and prints each request's X-Seq header (what a wiretap's copies show). */
const ECHO = `
const http = require('node:http')
http.createServer((req, res) => {
  if (req.headers['x-seq']) console.log('copy ' + req.headers['x-seq'])
  res.end(process.argv[2] + ' handler\\n')
}).listen(Number(process.argv[1]))
`

/** What a client on the stack's network (a task of web, on whichever node runs one) gets from `url`, with `headers`. */
async function fromWeb(url: string, headers: string[] = []): Promise<string> {
  for (const node of swarm.nodes) {
    const id = (await node.machine.docker(['ps', '-q', '--filter', `label=com.docker.swarm.service.name=${STACK}_web`])).stdout.trim().split('\n')[0]
    if (!id) continue
    const args = headers.flatMap((h) => ['--header', `'${h}'`]).join(' ')
    return (
      await node.machine.docker(['exec', id, 'sh', '-c', `timeout 5 wget -qO- ${args} ${url} 2>&1; true`], {reject: false, timeoutMs: 20_000})
    ).stdout.trim()
  }
  return 'no task of web runs'
}

/** The node of inventory's running task. */
async function inventoryNode(): Promise<string> {
  const out = await swarm.manager.docker([
    'service',
    'ps',
    `${STACK}_inventory`,
    '--filter',
    'desired-state=running',
    '--format',
    '{{.Node}} {{.CurrentState}}',
  ])
  return (
    out.stdout
      .split('\n')
      .find((l) => / Running/.test(l))
      ?.split(' ')[0] ?? ''
  )
}

describe('a swarm cluster: drained nodes, personal intercepts, wiretap and ingest', () => {
  beforeAll(async () => {
    expect((await tp(['connect', '--cluster', 'tpsw', '--name', 'sw3'])).exitCode).toBe(0)
  }, 120_000)
  afterAll(async () => {
    await tp(['quit', '--name', 'sw3'])
  }, 60_000)

  it('a node drained during an intercept: its task moves, the new one is intercepted within 30 s; after the end each task serves itself and nothing of tp is left', async () => {
    const port = 18931
    const from = await inventoryNode()
    const drained = swarm.nodes.find((n) => n.hostname === from)
    expect(drained?.role).toBe('worker')
    const run = startTp(['intercept', 'inventory', '--use', 'sw3', '--port', String(port), '--mount=false', '--', 'node', '-e', ECHO, String(port), 'drain'], {
      env,
    })
    try {
      await run.active
      await eventually(
        'inventory answered by the handler',
        () => fromWeb('http://inventory:8080/'),
        (a) => a === 'drain handler',
        30_000,
      )
      await swarm.manager.docker(['node', 'update', '--availability', 'drain', drained?.id ?? ''])
      const moved = await eventually('inventory runs on another node', inventoryNode, (n) => n !== '' && n !== from, 60_000)
      expect(moved).not.toBe(from)
      const started = Date.now()
      await eventually(
        'the moved task answered by the handler',
        () => fromWeb('http://inventory:8080/'),
        (a) => a === 'drain handler',
        30_000,
      )
      expect(Date.now() - started).toBeLessThan(30_000)
      expect(run.child.exitCode, run.output()).toBeNull()
    } finally {
      await swarm.manager.docker(['node', 'update', '--availability', 'active', drained?.id ?? ''], {reject: false})
      run.child.kill('SIGINT')
      await run.child
    }
    await eventually(
      'inventory answers for itself',
      () => fromWeb('http://inventory:8080/'),
      (a) => a === 'the inventory',
      10_000,
    )
    // web's task of the drained node comes back there (one per node)
    await swarm.waitForStack(STACK, 60_000)
    await eventually(
      'every replica of web answers for itself',
      answersOfWeb,
      (a) => a.join() === [`web on ${NAME}-w1`, `web on ${NAME}-w2`].sort().join(),
      10_000,
    )
    const left = await eventually('nothing of the intercept left on the nodes', tpObjectsOnNodes, (l) => l.length === 2, 60_000)
    expect(left.sort()).toEqual([`container tp-sw3-janitor on ${NAME}-m`, `container tp-sw3-relay on ${NAME}-m`])
  }, 240_000)

  it('a personal intercept (--http-header X-Dev=alice) of both replicas: requests with the header reach the handler, the others each task', async () => {
    const port = 18932
    const run = startTp(
      [
        'intercept',
        'web',
        '--use',
        'sw3',
        '--port',
        String(port),
        '--mount=false',
        '--http-header',
        'X-Dev=alice',
        '--',
        'node',
        '-e',
        ECHO,
        String(port),
        'alice',
      ],
      {env},
    )
    try {
      await run.active
      expect(run.output()).toContain('personal: only HTTP requests with')
      const client = await inventoryClient()
      const ask = async (headers: string[]) =>
        (
          await Promise.all(
            (
              await webAddresses()
            ).map((a) => client.exec(['sh', '-c', `timeout 5 wget -qO- ${headers.map((h) => `--header '${h}'`).join(' ')} http://${a}/ 2>&1; true`])),
          )
        ).sort()
      await eventually(
        'both replicas send alice’s requests to the handler',
        () => ask(['X-Dev: alice']),
        (a) => a.join() === 'alice handler,alice handler',
        30_000,
      )
      expect(await ask([])).toEqual([`web on ${NAME}-w1`, `web on ${NAME}-w2`].sort())
      expect(await ask(['X-Dev: bob'])).toEqual([`web on ${NAME}-w1`, `web on ${NAME}-w2`].sort())
      expect((await tp(['list', '--use', 'sw3'])).stdout).toMatch(/on 80 for x-dev=alice/)
    } finally {
      run.child.kill('SIGINT')
    }
    expect((await run.child).exitCode, run.output()).toBe(0)
    expect(await eventually('nothing of the intercept left on the nodes', tpObjectsOnNodes, (l) => l.length === 2, 60_000)).toHaveLength(2)
  }, 180_000)

  it('tp wiretap: the handler gets a copy of what each replica is sent, every answer comes from the tasks', async () => {
    const port = 18933
    const run = startTp(['wiretap', 'web', '--use', 'sw3', '--port', String(port), '--mount=false', '--', 'node', '-e', ECHO, String(port), 'tap'], {env})
    try {
      await run.active
      const client = await inventoryClient()
      const addresses = await webAddresses()
      const answers = await Promise.all(
        addresses.map((a, i) => client.exec(['sh', '-c', `timeout 5 wget -qO- --header 'X-Seq: seq${i}' http://${a}/ 2>&1; true`])),
      )
      expect(answers.sort()).toEqual([`web on ${NAME}-w1`, `web on ${NAME}-w2`].sort())
      const copies = await eventually(
        'the handler got a copy of each',
        async () => [...run.output().matchAll(/^copy (seq\d)$/gm)].map((m) => m[1]).sort(),
        (c) => c.length >= 2,
        15_000,
      )
      expect(copies).toEqual(['seq0', 'seq1'])
    } finally {
      run.child.kill('SIGINT')
    }
    expect((await run.child).exitCode, run.output()).toBe(0)
    expect(await eventually('nothing of the wiretap left on the nodes', tpObjectsOnNodes, (l) => l.length === 2, 60_000)).toHaveLength(2)
  }, 180_000)

  it('tp ingest --replica 2: a --docker-run handler gets the service’s env and the volumes of task 2, read-only; no traffic is taken', async () => {
    const volumeMarks = await markVolumes()
    const script = 'echo "greeting=$GREETING"; cat /data/node.txt; if touch /data/ingest-wrote 2>/dev/null; then echo wrote; else echo read-only; fi'
    const run = await tp(['ingest', 'web', '--use', 'sw3', '--replica', '2', '--docker-run', '--', '--rm', localBusybox, 'sh', '-c', script])
    expect(run.exitCode, run.stderr).toBe(0)
    expect(run.stderr).toContain('Intercept web-ingest ')
    expect(run.stderr).toMatch(/volumes: .*\/data \(read-only\)/)
    const from = /volumes from (\S+) on node (\S+)/.exec(run.stderr)
    expect(from?.[1]).toBe(`${STACK}_web.2`)
    expect(run.stdout.split('\n').filter((l) => !l.startsWith('tp'))).toEqual([
      'greeting=hello from the swarm web',
      volumeMarks.get(from?.[2] ?? ''),
      'read-only',
    ])
    // the tasks kept their traffic
    expect(await answersOfWeb()).toEqual([`web on ${NAME}-w1`, `web on ${NAME}-w2`].sort())
    expect(await eventually('nothing of the ingest left on the nodes', tpObjectsOnNodes, (l) => l.length === 2, 60_000)).toHaveLength(2)
  }, 180_000)
})
