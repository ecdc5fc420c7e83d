import {readFileSync} from 'node:fs'
import {createServer, type Server} from 'node:net'
import {join} from 'node:path'
import {execa} from 'execa'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {handlersHook, link, makeSandbox, type Sandbox, writePlugin} from './helpers.js'

const cliVersion = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {version: string}).version
const sdkVersion = (JSON.parse(readFileSync(new URL('../../sdk/package.json', import.meta.url), 'utf8')) as {version: string}).version

interface VersionJson {
  tp: string
  sdk: string
  extensionApi: {min: number; max: number}
  plugins: Array<{name: string; version: string; type: string}>
  docker: {reachable: boolean; where: string; version?: string; apiVersion?: string; reason?: string}
}

describe('tp version', () => {
  let s: Sandbox

  beforeAll(async () => {
    s = await makeSandbox('version')
    await link(s, await writePlugin(s, {name: 'tpt-cli-versioned', version: '4.5.6', hooks: {'tp:handlers': handlersHook([{name: 'tpt-v'}])}}))
  })
  afterAll(async () => s?.remove())

  it("prints tp's and the sdk's versions, every plugin with its source, and the engine's version", async () => {
    const engine = await execa('docker', ['version', '--format', '{{.Server.Version}} {{.Server.APIVersion}}'])
    const [engineVersion, engineApi] = engine.stdout.trim().split(' ')

    const result = await s.tp(['version'])
    expect(result.exitCode).toBe(0)
    expect(result.stdout).toMatch(new RegExp(`^tp\\s+${cliVersion.replaceAll('.', '\\.')}$`, 'm'))
    expect(result.stdout).toMatch(new RegExp(`^sdk\\s+${sdkVersion.replaceAll('.', '\\.')} \\(extension API 1\\)$`, 'm'))
    expect(result.stdout).toContain(`engine ${engineVersion} (API ${engineApi}`)
    expect(result.stdout).toMatch(/^\s+tpt-cli-versioned\s+4\.5\.6\s+link$/m)
    expect(result.stdout).toMatch(/^\s+@oclif\/plugin-plugins\s+\S+\s+core$/m)
    expect(result.stdout).toMatch(/^\s+@tp\/cli\s+\S+\s+core$/m)

    const json = JSON.parse((await s.tp(['version', '--json'])).stdout) as VersionJson
    expect(json.tp).toBe(cliVersion)
    expect(json.sdk).toBe(sdkVersion)
    expect(json.extensionApi).toEqual({min: 1, max: 1})
    expect(json.docker).toMatchObject({reachable: true, version: engineVersion, apiVersion: engineApi})
    expect(json.plugins).toContainEqual({
      name: 'tpt-cli-versioned',
      version: '4.5.6',
      type: 'link',
      root: join(s.dir, 'plugins', 'tpt-cli-versioned'),
      origin: 'link',
    })
    // the bundled workspace plugins are core plugins
    const pjson = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {oclif: {plugins: string[]}}
    for (const name of pjson.oclif.plugins) expect(json.plugins.find((p) => p.name === name)?.type).toBe('core')
  })

  it('says where it looked and why when the engine is unreachable, and still succeeds', async () => {
    const socket = join(s.dir, 'no-dockerd-here.sock')
    const result = await s.tp(['version'], {DOCKER_HOST: `unix://${socket}`})
    expect(result.exitCode).toBe(0)
    expect(result.stdout).toMatch(new RegExp(`^docker\\s+unreachable at unix://${socket.replaceAll('.', '\\.')}: no socket there.*DOCKER_HOST`, 'm'))
    expect(result.stdout).toMatch(/^tp\s/m)

    const refused = JSON.parse((await s.tp(['version', '--json'], {DOCKER_HOST: 'tcp://127.0.0.1:1'})).stdout) as VersionJson
    expect(refused.docker).toMatchObject({reachable: false, where: 'tcp://127.0.0.1:1'})
    expect(refused.docker.reason).toMatch(/connection refused/)
  })

  it('gives up on an engine that does not answer after a short timeout', async () => {
    // a listener that accepts and never answers
    const silent: Server = createServer(() => {})
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve))
    const port = (silent.address() as {port: number}).port
    try {
      const started = Date.now()
      const result = await s.tp(['version'], {DOCKER_HOST: `tcp://127.0.0.1:${port}`})
      expect(result.exitCode).toBe(0)
      expect(result.stdout).toMatch(new RegExp(`unreachable at tcp://127\\.0\\.0\\.1:${port}: no answer within 2 s`))
      expect(Date.now() - started).toBeLessThan(10_000)
    } finally {
      silent.close()
    }
  })

  it('names the default socket when DOCKER_HOST is not set', async () => {
    const result = await s.tp(['version', '--json'], {DOCKER_HOST: ''})
    const json = JSON.parse(result.stdout) as VersionJson
    expect(json.docker.where).toBe('unix:///var/run/docker.sock')
    expect(json.docker.reachable).toBe(true)
  })
})
