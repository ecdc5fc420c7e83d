import {rm} from 'node:fs/promises'
import {createServer} from 'node:net'
import {Writable} from 'node:stream'
import {setTimeout as sleep} from 'node:timers/promises'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import type {InterceptSession} from '@tp/sdk'
import {fakePlacement} from '@tp/sdk/testing'
import {createDockerBuildHandler} from '../dist/handler.js'
import {docker, ensureBase, removeBaseAndDescendants, removeImages, tempDir, unique, writeHandlerContext} from './fixture.js'

/**
 * The whole handler without a cluster: prepare builds the image and hands it to docker-run's
 * preparation; run starts the built image (host-daemon style, `-p <free port>:8000`) and the
 * greeting is fetched from it, then stop ends it and nothing is left.
 */
const dirs: string[] = []
const images = new Set<string>()
let cacheDir: string

function collector(): {stream: Writable; text: () => string} {
  let text = ''
  return {
    stream: new Writable({
      write(chunk, _encoding, done) {
        text += String(chunk)
        done()
      },
    }),
    text: () => text,
  }
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.listen(0, '127.0.0.1', () => {
      const {port} = server.address() as {port: number}
      server.close(() => resolve(port))
    })
    server.on('error', reject)
  })
}

async function fetchText(url: string, timeoutMs: number): Promise<string> {
  const deadline = Date.now() + timeoutMs
  let last: unknown
  while (Date.now() < deadline) {
    try {
      const response = await fetch(url, {signal: AbortSignal.timeout(2000)})
      if (response.ok) return await response.text()
      last = new Error(`HTTP ${response.status}`)
    } catch (error) {
      last = error
    }
    await sleep(200)
  }
  throw new Error(`no answer from ${url}: ${String(last)}`)
}

beforeAll(async () => {
  await ensureBase()
  cacheDir = await tempDir('tpt-build-cache')
  dirs.push(cacheDir)
})

afterAll(async () => {
  await removeImages(images)
  await removeBaseAndDescendants()
  for (const dir of dirs) await rm(dir, {recursive: true, force: true})
})

describe('docker-build handler: build, then docker run the built image (real engine)', () => {
  it("serves the built handler's answer, tagged as asked, and leaves no container", async () => {
    const ctx = await tempDir('tpt-build-run-ctx')
    dirs.push(ctx)
    await writeHandlerContext(ctx)
    const tag = `${unique('tpt-build-mytag')}:latest`
    const port = await freePort()
    const progress = collector()
    const log = {info() {}, warn() {}, debug: (m: string) => debugLines.push(m)}
    const debugLines: string[] = []
    const handler = createDockerBuildHandler({tpVersion: '0.1.0', cacheDir, log}, {docker, progress: progress.stream})
    const prepared = await handler.prepare({
      workload: 'frontend-v1',
      flags: {'docker-build': '.', 'docker-build-opt': [`tag=${tag}`, 'build-arg=GREETING_SUFFIX=, built by tp']},
      args: ['--rm', 'IMAGE'],
      capabilities: fakePlacement('host').capabilities,
      localPort: port,
      containerPort: 8000,
      cwd: ctx,
    })
    const image = await docker.getImage(tag).inspect()
    images.add(image.Id)
    expect(progress.text()).toMatch(/^Step 1\/\d+ : FROM tpt-build-busybox:latest AS base$/m)
    expect(progress.text()).toMatch(new RegExp(`built image [0-9a-f]{12}, tagged ${tag} in [\\d.]+ s \\(context sent: `))
    expect(prepared.describe).toContain(image.Id.replace('sha256:', '').slice(0, 12))

    const name = unique('tpt-build-ic')
    const session: InterceptSession = {
      id: name,
      name,
      workload: 'frontend-v1',
      namespace: 'tpt-build',
      ports: {local: port, container: 8000, service: 80, protocol: 'tcp'},
      environment: {GREETING: 'hi'},
      mounts: [],
      placement: fakePlacement('host', 'default', {where: 'test'}),
      daemon: {connection: 'default', id: 'tptbuild', backend: 'host', where: 'test'},
    }
    const stderr = collector()
    // docker-run hands stdin/stdout to the docker client as file descriptors: give it ours
    const running = prepared.run(session, {stdin: process.stdin, stdout: process.stdout, stderr: stderr.stream}, {dockerRunArgs: []})
    // the handler must still be running when it answers: a run that ends first fails the test with its reason
    const ended = running.then(
      (code) => Promise.reject(new Error(`the handler ended with ${code} before answering: ${stderr.text()}`)),
      (error: Error) => Promise.reject(error),
    )
    ended.catch(() => undefined)
    try {
      const answer = await Promise.race([fetchText(`http://127.0.0.1:${port}/`, 30_000), ended])
      expect(answer.trim()).toBe('hello from the built handler, built by tp stage=base dockerfile=main')
    } finally {
      await prepared.stop('test finished')
      await running.catch((e: unknown) => console.error('run failed:', e, debugLines, stderr.text()))
      await prepared.dispose?.()
    }
    const left = await docker.listContainers({all: true, filters: {ancestor: [image.Id]}})
    expect(left.map((c) => c.Names)).toEqual([])
  })
})
