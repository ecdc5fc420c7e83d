/**
 * Remote volumes through telemount (the managed volume plugin: sshfs over plain SFTP to a
 * workload's agent) against a plain bind mount of the same data, same run, same machine.
 *
 * A stand-in workload (node + sftp-server, a TCP listener that spawns `sftp-server -e` per
 * connection, exactly what the agent does) holds a 100 MB file and a directory of 5,000 files in a
 * Docker volume. Each run starts one handler container per kind of mount, and times inside it
 * (node's hrtime, so container start-up is not counted): reading the whole file, `ls -l`-style
 * listing (readdir + stat of every entry) cold, and the same listing again (warm). Every run
 * starts a fresh container, so telemount mounts a fresh sshfs: the cold figures are really cold.
 * Container start with the volume mounted is measured from outside (`docker run ... true`).
 */
import {execFile} from 'node:child_process'
import {randomBytes} from 'node:crypto'
import {readFileSync} from 'node:fs'
import {readFile} from 'node:fs/promises'
import {connect} from 'node:net'
import {join} from 'node:path'
import {promisify} from 'node:util'
import Docker from 'dockerode'
import {STATIC_BUSYBOX, ensureImportedImage} from '@tp/images'
import {telemountDescriptor} from '@tp/plugin-volume-telemount'
import {fakePlacement} from '@tp/sdk/testing'
import {pluginRef, pluginSettingsFromEnv} from '@tp/plugin-volume-telemount/plugin'
import {median} from './run.mjs'

export const name = 'telemount'
export const description = 'read 100 MB and list 5,000 files through a telemount volume vs a bind mount'

const RUNS = Number(process.env.TP_BENCH_RUNS ?? 5)
const SFTP_PORT = 2222
const FILE_MB = 100
const FILES = 5000
const execFileAsync = promisify(execFile)
const docker = new Docker()
const LABELS = {'tp.fixture': 'true', 'tpt.area': 'telemount-bench'}

// the stand-in SFTP source the telemount tests use too
const SPAWNER = readFileSync(new URL('../test/helpers/sftp-spawner.cjs', import.meta.url), 'utf8')

/** Runs inside the handler container; prints the three timings in ms. */
const MEASURE = `
const fs = require('node:fs')
const time = (work) => { const t = process.hrtime.bigint(); const r = work(); return [Number(process.hrtime.bigint() - t) / 1e6, r] }
const [read, bytes] = time(() => {
  const fd = fs.openSync('/data/big', 'r'); const buf = Buffer.allocUnsafe(1 << 20); let n, total = 0
  while ((n = fs.readSync(fd, buf, 0, buf.length, null)) > 0) total += n
  fs.closeSync(fd); return total
})
const list = () => { const names = fs.readdirSync('/data/many'); for (const n of names) fs.statSync('/data/many/' + n); return names.length }
const [cold, entries] = time(list)
const [warm] = time(list)
console.log(JSON.stringify({read, bytes, cold, warm, entries}))
`

async function waitListening(host, port) {
  for (let i = 0; i < 100; i++) {
    const ok = await new Promise((resolve) => {
      const s = connect({host, port}, () => {
        s.destroy()
        resolve(true)
      })
      s.on('error', () => resolve(false))
    })
    if (ok) return
    await new Promise((r) => setTimeout(r, 100))
  }
  throw new Error(`nothing listens on ${host}:${port}`)
}

async function measure(mountArgs, image) {
  const {stdout} = await execFileAsync('docker', ['run', '--rm', ...mountArgs, image, 'node', '-e', MEASURE], {maxBuffer: 1 << 20})
  return JSON.parse(stdout.trim().split('\n').at(-1))
}

async function startTime(mountArgs, image) {
  const started = process.hrtime.bigint()
  await execFileAsync('docker', ['run', '--rm', ...mountArgs, image, 'true'])
  return Number(process.hrtime.bigint() - started) / 1e6
}

export async function run({log, root}) {
  const id = randomBytes(3).toString('hex')
  const network = `tpt-tm-bench-${id}`
  const dataVolume = `tpt-tm-bench-data-${id}`
  const sourceName = `tpt-tm-bench-src-${id}`
  const tpVersion = JSON.parse(await readFile(join(root, 'packages/cli/package.json'), 'utf8')).version
  const lines = []
  const context = {tpVersion, cacheDir: '/tmp', log: {info: log, warn: log, debug: (m) => lines.push(m)}}
  const plugin = pluginRef(pluginSettingsFromEnv(tpVersion, context.log))
  const pluginExisted = await docker
    .getPlugin(plugin, undefined)
    .inspect()
    .then(
      () => true,
      () => false,
    )
  let image
  let provided
  try {
    log('building the stand-in workload image (node + sftp-server + busybox)')
    image = (
      await ensureImportedImage(docker, {
        repo: 'tpt-tm-bench',
        tag: id,
        spec: {
          binaries: ['/usr/bin/node', '/usr/lib/openssh/sftp-server'],
          busybox: STATIC_BUSYBOX,
          files: {'/spawner.cjs': {content: SPAWNER}, '/etc/passwd': {content: 'root:x:0:0:root:/root:/bin/sh\n'}},
          dirs: ['/data', '/root'],
        },
        changes: ['CMD ["/usr/bin/node", "/spawner.cjs"]', 'ENV PATH=/usr/bin:/bin'],
        labels: LABELS,
        what: 'telemount bench',
      })
    ).ref
    await docker.createNetwork({Name: network, Labels: LABELS})
    await docker.createVolume({Name: dataVolume, Labels: LABELS})
    const source = await docker.createContainer({
      name: sourceName,
      Image: image,
      Labels: LABELS,
      HostConfig: {NetworkMode: network, Binds: [`${dataVolume}:/data`]},
    })
    await source.start()
    const ip = (await source.inspect()).NetworkSettings.Networks[network].IPAddress
    log(`writing ${FILE_MB} MB and ${FILES} files into the workload's volume`)
    await execFileAsync('docker', [
      'exec',
      sourceName,
      'sh',
      '-c',
      `dd if=/dev/urandom of=/data/big bs=1M count=${FILE_MB} 2>/dev/null && mkdir /data/many && cd /data/many && seq 1 ${FILES} | sed 's/^/file-/' | xargs touch && sync`,
    ])
    await waitListening(ip, SFTP_PORT)

    log(`telemount plugin ${plugin}${pluginExisted ? ' (already installed)' : ' (installing)'}`)
    const provider = await (await telemountDescriptor.load()).default(context)
    /** @type {import('@tp/sdk').InterceptSession} */
    const session = {
      id,
      name: 'bench',
      workload: 'bench',
      namespace: network,
      ports: {local: 8080, container: 8080, service: 80, protocol: 'tcp'},
      environment: {},
      mounts: [{path: '/data', readOnly: false, sftp: {host: ip, port: SFTP_PORT, dir: '/data'}}],
      placement: fakePlacement('shared', 'bench', {containerArgs: []}),
      daemon: {connection: 'bench', id, backend: 'container', where: 'bench'},
    }
    // a workload whose engine is not this one (no `engine` in the session): over SFTP
    provided = await provider.provide(session)
    // the same session as an intercept of a workload on this engine gets it: the provider mounts
    // the workload's own volume, and the handler reads it as the workload does
    const sameEngine = await provider.provide({
      ...session,
      id: `${id}e`,
      mounts: [{...session.mounts[0], engine: {engine: (await docker.info()).ID, type: 'volume', source: dataVolume}}],
    })
    if (sameEngine.dockerRunArgs.join(' ') !== `-v ${dataVolume}:/data`) throw new Error(`not mounted directly: ${sameEngine.dockerRunArgs.join(' ')}`)
    const hostPath = (await docker.getVolume(dataVolume).inspect()).Mountpoint
    const kinds = {telemount: provided.dockerRunArgs, direct: sameEngine.dockerRunArgs, bind: ['-v', `${hostPath}:/data`]}

    const samples = {telemount: [], direct: [], bind: []}
    const starts = {telemount: [], direct: [], bind: []}
    for (let i = 0; i < RUNS; i++) {
      // alternate which goes first, so none always meets a cache another just warmed
      for (const kind of i % 2 === 0 ? ['telemount', 'direct', 'bind'] : ['bind', 'direct', 'telemount']) {
        const sample = await measure(kinds[kind], image)
        if (sample.bytes !== FILE_MB * 1024 * 1024 || sample.entries !== FILES)
          throw new Error(`${kind}: read ${sample.bytes} bytes and ${sample.entries} entries`)
        samples[kind].push(sample)
        starts[kind].push(await startTime(kinds[kind], image))
      }
      log(
        `run ${i + 1}/${RUNS}: read ${samples.telemount.at(-1).read.toFixed(0)} / ${samples.direct.at(-1).read.toFixed(0)} vs ${samples.bind.at(-1).read.toFixed(0)} ms, list ${samples.telemount.at(-1).cold.toFixed(0)} / ${samples.direct.at(-1).cold.toFixed(0)} vs ${samples.bind.at(-1).cold.toFixed(0)} ms (telemount / direct vs bind)`,
      )
    }
    const m = (kind, key) => median(samples[kind].map((s) => s[key]))
    const note = `median of ${RUNS}; timed inside the container; telemount = sshfs over SFTP to a container on a bridge network, bind = -v <same volume's host dir>`
    const mbps = (ms) => FILE_MB / (ms / 1000)
    return [
      {metric: `read a ${FILE_MB} MB file`, tp: m('telemount', 'read'), baseline: m('bind', 'read'), unit: 'ms', note},
      {metric: `read throughput`, tp: mbps(m('telemount', 'read')), baseline: mbps(m('bind', 'read')), unit: 'MB/s', note: 'from the read above'},
      {
        metric: `list ${FILES} files, readdir+stat (cold)`,
        tp: m('telemount', 'cold'),
        baseline: m('bind', 'cold'),
        unit: 'ms',
        note: `${note}; fresh sshfs each run`,
      },
      {
        metric: `list ${FILES} files again (warm)`,
        tp: m('telemount', 'warm'),
        baseline: m('bind', 'warm'),
        unit: 'ms',
        note: 'same container, right after the cold listing (sshfs attribute cache)',
      },
      {
        metric: `read a ${FILE_MB} MB file, workload on this engine (its volume mounted directly)`,
        tp: m('direct', 'read'),
        baseline: m('bind', 'read'),
        unit: 'ms',
        note: `${note}; direct = -v <the workload's volume>, what an intercept gives a handler on the workload's engine`,
      },
      {
        metric: `list ${FILES} files cold, workload on this engine`,
        tp: m('direct', 'cold'),
        baseline: m('bind', 'cold'),
        unit: 'ms',
        note,
      },
      {
        metric: 'docker run … true with /data mounted',
        tp: median(starts.telemount),
        baseline: median(starts.bind),
        unit: 'ms',
        note: `median of ${RUNS}; wall time from outside, includes the sshfs mount`,
      },
    ]
  } finally {
    await provided?.release().catch((e) => log(`release: ${e.message}`))
    await docker
      .getContainer(sourceName)
      .remove({force: true})
      .catch(() => undefined)
    await docker
      .getVolume(dataVolume)
      .remove()
      .catch(() => undefined)
    await docker
      .getNetwork(network)
      .remove()
      .catch(() => undefined)
    if (image)
      await docker
        .getImage(image)
        .remove({force: true})
        .catch(() => undefined)
    // the plugin is tp's own and shared: remove it only if this run installed it and nobody uses it now
    if (!pluginExisted) {
      const installed = docker.getPlugin(plugin, undefined)
      await installed
        .disable({})
        .then(
          () => installed.remove({}),
          () => undefined,
        )
        .catch(() => undefined)
    }
  }
}
