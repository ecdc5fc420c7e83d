/**
 * The remote-machine fixture (test/helpers/remote-machine.ts): a second machine whose engine answers
 * over TLS and ssh only, whose containers sit on the local engine's own subnets where this host
 * cannot reach them, and which leaves nothing behind — after stop(), and after a kill -9 (swept).
 */
import {randomBytes} from 'node:crypto'
import {readFile, mkdtemp, rm, writeFile} from 'node:fs/promises'
import {createServer, type Server} from 'node:http'
import type {AddressInfo} from 'node:net'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {setTimeout as sleep} from 'node:timers/promises'
import Dockerode from 'dockerode'
import {build} from 'esbuild'
import {execa} from 'execa'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {ensureImportedImage, STATIC_BUSYBOX} from '@tp/images'
import {repoRoot} from './helpers/demo.js'
import {type RemoteMachine, startRemoteMachine, sweepStaleRemoteMachines, tcpConnects} from './helpers/remote-machine.js'

const PREFIX = 'tpt-rm-'
const uniqueName = () => `${PREFIX}${randomBytes(3).toString('hex')}`

/** What this host shows that could belong to a machine, one list per source. */
async function hostSnapshot(): Promise<Record<string, string[]>> {
  const lines = async (argv: string[]) => (await execa(argv[0], argv.slice(1))).stdout.split('\n')
  return {
    routes: await lines(['ip', 'route', 'show']),
    links: await lines(['ip', '-o', 'link', 'show']),
    netns: await lines(['ip', 'netns', 'list']),
    iptables: await lines(['iptables-save']),
    processes: await lines(['ps', '-eo', 'pid,args']),
    mounts: (await readFile('/proc/self/mountinfo', 'utf8')).split('\n'),
  }
}

interface Traces {
  name: string
  address: string
  hostInterface: string
  blackholes: string[]
  marker?: string
}

/** The lines of a snapshot that mention the machine (its name, veth, addresses, routes, files). */
function tracesOf(snapshot: Record<string, string[]>, machine: Traces): string[] {
  const subnet = machine.address.replace(/\.2$/, '.')
  const needles = [machine.name, `${machine.hostInterface}:`, `${machine.hostInterface}@`, ` ${machine.hostInterface} `, subnet, ...machine.blackholes]
  if (machine.marker) needles.push(machine.marker)
  return Object.entries(snapshot).flatMap(([source, lines]) =>
    lines.filter((line) => needles.some((needle) => `${line} `.includes(needle))).map((line) => `${source}: ${line}`),
  )
}

async function hostDocker(args: string[], env: Record<string, string>) {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith('DOCKER_'))) as Record<string, string>
  return execa('docker', args, {env: {...clean, ...env}, extendEnv: false, reject: false, timeout: 30_000})
}

/** GET url from this host; the body, or the error when nothing answered. */
async function getFromHost(url: string): Promise<string> {
  try {
    return await (await fetch(url, {signal: AbortSignal.timeout(3_000)})).text()
  } catch (error) {
    return `error: ${(error as Error).message}`
  }
}

describe('a remote machine', () => {
  let machine: RemoteMachine
  let image: string
  let before: Record<string, string[]>
  let startSeconds = 0
  const marker = `remote-${randomBytes(4).toString('hex')}`

  beforeAll(async () => {
    await sweepStaleRemoteMachines(PREFIX)
    before = await hostSnapshot()
    const started = Date.now()
    machine = await startRemoteMachine(uniqueName())
    startSeconds = (Date.now() - started) / 1000
    // the remote engine has no registry either: the busybox image is built there from this host's busybox
    image = (
      await ensureImportedImage(new Dockerode({socketPath: machine.socket}), {
        repo: 'tpt-remote-busybox',
        tag: '1',
        spec: {busybox: STATIC_BUSYBOX, dirs: ['/www']},
        changes: ['ENV PATH=/bin'],
        what: 'test fixture',
      })
    ).ref
  })

  afterAll(async () => {
    await machine?.stop()
  })

  it('starts within the bound and says where it is', () => {
    expect(startSeconds).toBeLessThan(60)
    expect(machine.address).toMatch(/^10\.203\.\d+\.2$/)
    expect(machine.tls.host).toBe(`tcp://${machine.address}:2376`)
    expect(machine.subnets).toEqual(['172.17.0.0/16', '172.18.0.0/16'])
  })

  it('answers docker over TLS with the cert dir, and refuses a client without the certificate', async () => {
    const root = (await machine.docker(['info', '--format', '{{.DockerRootDir}}'])).stdout
    const viaEnv = await hostDocker(['info', '--format', '{{.DockerRootDir}}'], machine.tls.env)
    expect(viaEnv.stderr).toBe('')
    expect(viaEnv.stdout).toBe(root)
    const viaFlags = await hostDocker(
      [
        '--tlsverify',
        '--tlscacert',
        machine.tls.ca,
        '--tlscert',
        machine.tls.cert,
        '--tlskey',
        machine.tls.key,
        '-H',
        machine.tls.host,
        'version',
        '--format',
        '{{.Server.Version}}',
      ],
      {},
    )
    expect(viaFlags.exitCode).toBe(0)
    expect(viaFlags.stdout).toMatch(/^\d+\.\d+/)
    // the local engine has another root: the answers came from the remote
    expect(root).not.toBe((await hostDocker(['info', '--format', '{{.DockerRootDir}}'], {})).stdout)
    const noCert = await hostDocker(['-H', machine.tls.host, 'version'], {})
    expect(noCert.exitCode).not.toBe(0)
  })

  it('answers docker over ssh:// with the wrapper first on PATH', async () => {
    const root = (await machine.docker(['info', '--format', '{{.DockerRootDir}}'])).stdout
    const viaSsh = await hostDocker(['info', '--format', '{{.DockerRootDir}}'], machine.ssh.env)
    expect(viaSsh.stderr).toBe('')
    expect(viaSsh.stdout).toBe(root)
    // the address works as well as the name: the config covers both
    const byAddress = await hostDocker(['version', '--format', '{{.Server.Version}}'], {...machine.ssh.env, DOCKER_HOST: `ssh://root@${machine.address}`})
    expect(byAddress.exitCode).toBe(0)
  })

  it('listens on ssh and the TLS API only, and lets in only those', async () => {
    const listening = await machine.listeningSockets()
    expect(listening.map((s) => `${s.protocol}/${s.port} ${s.process}`).sort()).toEqual(['tcp/22 sshd', 'tcp/2376 dockerd'])
    expect(await tcpConnects(machine.address, 22)).toBe(true)
    expect(await tcpConnects(machine.address, 2376)).toBe(true)
  })

  describe('with a container that publishes a port', () => {
    let containerAddress: string
    let server: Server

    beforeAll(async () => {
      await machine.docker(['network', 'create', 'tpt-remote-net'])
      await machine.docker([
        'run',
        '-d',
        '--name',
        'tpt-remote-web',
        '--network',
        'tpt-remote-net',
        '-p',
        '8080:80',
        image,
        'sh',
        '-c',
        `echo ${marker} > /www/index.html && exec httpd -f -p 80 -h /www`,
      ])
      containerAddress = (await machine.docker(['inspect', '-f', '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}', 'tpt-remote-web'])).stdout.trim()
      server = createServer((_req, res) => res.end('the developer machine')).listen(0, '0.0.0.0')
      await new Promise((resolve) => server.once('listening', resolve))
    })

    afterAll(() => {
      server?.close()
    })

    /** GET url from a throwaway container on the remote's network: `<body>exit=<wget's exit code>`. */
    async function getFromRemote(url: string): Promise<string> {
      // a shell as PID 1: it dies of timeout's SIGTERM, which PID 1 itself would ignore
      const script = `timeout 3 wget -q -O - ${url}; echo exit=$?`
      return (await machine.docker(['run', '--rm', '--network', 'tpt-remote-net', image, 'sh', '-c', script])).stdout
    }

    it('gets a 172.x address that this host does not reach', async () => {
      expect(containerAddress).toMatch(/^172\.18\.\d+\.\d+$/)
      const url = `http://${containerAddress}/`
      // it serves: a client on the remote's own network gets the page
      expect(await getFromRemote(url)).toBe(`${marker}\nexit=0`)
      // from this host the address leads to the local twin network or a blackhole, never to the veth
      expect((await execa('ip', ['route', 'get', containerAddress])).stdout).not.toContain(machine.hostInterface)
      expect(await getFromHost(url)).not.toContain(marker)
    })

    it('drops connections to what the remote publishes; inside the namespace it answers', async () => {
      expect((await machine.listeningSockets()).map((s) => s.port)).toContain(8080)
      const inside = await machine.exec(['timeout', '5', 'busybox', 'wget', '-q', '-O', '-', 'http://127.0.0.1:8080/'])
      expect(inside.stdout.trim()).toBe(marker)
      expect(await tcpConnects(machine.address, 8080)).toBe(false)
      expect(await getFromHost(`http://${machine.address}:8080/`)).not.toContain(marker)
    })

    it('cannot open connections towards this host', async () => {
      const port = (server.address() as AddressInfo).port
      expect(await getFromHost(`http://127.0.0.1:${port}/`)).toBe('the developer machine')
      const fromRemote = await getFromRemote(`http://${machine.hostAddress}:${port}/`)
      expect(fromRemote).toMatch(/^exit=[1-9]/)
    })
  })

  it('stop() removes everything it made, and a second stop() is a no-op', async () => {
    const traces: Traces = {...machine, marker: machine.socket}
    expect(tracesOf(await hostSnapshot(), traces).length).toBeGreaterThan(0)
    expect(tracesOf(before, traces)).toEqual([])
    const started = Date.now()
    await machine.stop()
    console.log(`remote machine: start ${startSeconds.toFixed(1)} s, stop ${((Date.now() - started) / 1000).toFixed(1)} s`)
    await machine.stop()
    // the host end of the veth goes a moment after the namespace
    let left: string[] = []
    for (let i = 0; i < 20; i++) {
      left = tracesOf(await hostSnapshot(), traces)
      if (left.length === 0) break
      await sleep(100)
    }
    expect(left).toEqual([])
    expect(await sweepStaleRemoteMachines(machine.name)).toEqual([])
  })
})

it('sweepStaleRemoteMachines removes a machine whose owner and engine were killed with kill -9', async () => {
  // the owner is a child process running the same helper, bundled (node 20 does not run TypeScript)
  const dir = await mkdtemp(join(tmpdir(), 'tpt-rm-owner-'))
  try {
    await build({
      entryPoints: [join(repoRoot, 'test', 'helpers', 'remote-machine.ts')],
      bundle: true,
      platform: 'node',
      format: 'esm',
      outfile: join(dir, 'remote-machine.mjs'),
      // execa's dependencies require() node built-ins
      banner: {js: "import {createRequire} from 'node:module';const require=createRequire(import.meta.url);"},
      logLevel: 'warning',
    })
    const name = uniqueName()
    const marker = `tpt-rm-sleeper-${randomBytes(4).toString('hex')}`
    await writeFile(
      join(dir, 'owner.mjs'),
      `import {startRemoteMachine} from './remote-machine.mjs'
const machine = await startRemoteMachine(${JSON.stringify(name)})
console.log(JSON.stringify(machine))
setInterval(() => undefined, 60_000)
`,
    )
    const owner = execa('node', [join(dir, 'owner.mjs')], {reject: false, buffer: false, all: true})
    let output = ''
    owner.all?.on('data', (chunk: Buffer) => (output += chunk.toString()))
    const deadline = Date.now() + 70_000
    while (!output.includes('\n') && owner.exitCode === null && Date.now() < deadline) await sleep(100)
    const started = JSON.parse(output.split('\n')[0]) as RemoteMachine
    // a container too, whose processes must go with it: busybox from this host, copied in
    await execa('sh', ['-c', `tar -C / -c bin/busybox | docker -H unix://${started.socket} import - tpt-remote-bare:1`])
    // the shell stays (two commands), its command line carrying the marker
    await execa('docker', [
      '-H',
      `unix://${started.socket}`,
      'run',
      '-d',
      'tpt-remote-bare:1',
      '/bin/busybox',
      'sh',
      '-c',
      `/bin/busybox sleep 1000; echo ${marker}`,
    ])
    const traces: Traces = {...started, marker}
    expect(tracesOf(await hostSnapshot(), traces).join('\n')).toContain(marker)

    owner.kill('SIGKILL')
    await owner
    process.kill(started.pids.dockerd, 'SIGKILL')
    const sweepStarted = Date.now()
    expect(await sweepStaleRemoteMachines(PREFIX)).toEqual([name])
    console.log(`remote machine: sweep after kill -9 ${((Date.now() - sweepStarted) / 1000).toFixed(1)} s`)
    let left: string[] = []
    for (let i = 0; i < 20; i++) {
      left = tracesOf(await hostSnapshot(), traces)
      if (left.length === 0) break
      await sleep(100)
    }
    expect(left).toEqual([])
  } finally {
    await rm(dir, {recursive: true, force: true})
  }
})
