import {readFileSync} from 'node:fs'
import {writeFile} from 'node:fs/promises'
import {join, resolve} from 'node:path'
import {fileURLToPath, pathToFileURL} from 'node:url'
import {Config} from '@oclif/core'
import {execa} from 'execa'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {makeSandbox, type Sandbox, TP_BIN} from './helpers.js'

const cliRoot = resolve(fileURLToPath(import.meta.url), '../..')

describe('start-up cost', () => {
  it('loading dockerode does not load ssh2 or gRPC (patches/ is applied)', async () => {
    const script = `
      require('dockerode')
      const loaded = Object.keys(require.cache).filter((f) => /node_modules\\/(ssh2|@grpc|protobufjs)\\//.test(f))
      console.log(JSON.stringify(loaded))`
    const {stdout} = await execa('node', ['-e', script])
    expect(JSON.parse(stdout)).toEqual([])
  })

  it('an ssh:// Docker host still loads ssh2 when it is used', async () => {
    const script = `
      const Docker = require('dockerode')
      const docker = new Docker({protocol: 'ssh', host: '127.0.0.1', port: 1, username: 'nobody', sshOptions: {readyTimeout: 500}})
      docker.ping().catch(() => {}).finally(() => console.log(Object.keys(require.cache).some((f) => f.includes('/node_modules/ssh2/'))))`
    const {stdout} = await execa('node', ['-e', script])
    expect(stdout.trim()).toBe('true')
  })
})

describe('what a tp command loads', () => {
  let s: Sandbox
  /** Every file a tp process loads: ES modules through a loader hook, CommonJS from require.cache at exit. */
  let nodeOptions: string
  let log: string

  beforeAll(async () => {
    s = await makeSandbox('startup')
    log = join(s.dir, 'loaded.txt')
    const hooks = join(s.dir, 'hooks.mjs')
    const register = join(s.dir, 'register.mjs')
    const cjs = join(s.dir, 'cjs.cjs')
    await writeFile(
      hooks,
      `import {appendFileSync} from 'node:fs'\nexport async function load(url, context, next) {\n  appendFileSync(process.env.TP_TEST_LOADED, url + '\\n')\n  return next(url, context)\n}\n`,
    )
    await writeFile(register, `import {register} from 'node:module'\nregister(${JSON.stringify(pathToFileURL(hooks).href)})\n`)
    await writeFile(
      cjs,
      `process.on('exit', () => require('node:fs').appendFileSync(process.env.TP_TEST_LOADED, Object.keys(require.cache).map((f) => 'file://' + f).join('\\n') + '\\n'))\n`,
    )
    nodeOptions = `--import ${pathToFileURL(register).href} --require ${cjs}`
  })
  afterAll(async () => s?.remove())

  /** Every file `tp <args>` loaded, as file URLs. */
  async function loadedBy(args: string[], env: Record<string, string> = {}): Promise<{urls: string[]; stdout: string}> {
    await writeFile(log, '')
    const result = await s.tp(args, {...env, NODE_OPTIONS: nodeOptions, TP_TEST_LOADED: log})
    expect(result.exitCode, `tp ${args.join(' ')}: ${result.stderr}`).toBe(0)
    return {urls: [...new Set(readFileSync(log, 'utf8').split('\n').filter(Boolean))], stdout: result.stdout}
  }

  /** The files that hold a package matching `pattern`: its own, and the bundle's that carry it (scripts/bundle.mjs writes which output holds which input). */
  function holding(pattern: RegExp, urls: string[]): string[] {
    const meta = JSON.parse(readFileSync(join(cliRoot, 'dist/bundle/meta.json'), 'utf8')) as {outputs: Record<string, {inputs: Record<string, unknown>}>}
    const bundled = Object.entries(meta.outputs)
      .filter(([, output]) => Object.keys(output.inputs).some((input) => pattern.test(input)))
      .map(([file]) => pathToFileURL(join(cliRoot, file)).href)
    return urls.filter((url) => pattern.test(url) || bundled.includes(url))
  }

  /** Docker clients: dockerode and what it uses. */
  const dockerCode = /node_modules\/(dockerode|docker-modem|ssh2|@grpc\/grpc-js|protobufjs)\//

  it('commands that do not talk to Docker load no Docker code', async () => {
    for (const args of [['--version'], ['--help'], ['help', 'intercept'], ['extensions'], ['spec', 'schema'], ['plugins']]) {
      expect(holding(dockerCode, (await loadedBy(args)).urls), `tp ${args.join(' ')}`).toEqual([])
    }
  })

  it('`tp version` on a tcp:// engine asks it through dockerode (what the test above looks for is what loads)', async () => {
    expect(holding(dockerCode, (await loadedBy(['version'], {DOCKER_HOST: 'tcp://127.0.0.1:1'})).urls)).not.toEqual([])
  })

  it('`tp version` on a unix socket asks the engine as tp starts, with node:http alone (bin/run.js, engine-prefetch.ts)', async () => {
    const {urls, stdout} = await loadedBy(['version', '--json'])
    expect(holding(dockerCode, urls)).toEqual([])
    expect((JSON.parse(stdout) as {docker: {reachable: boolean}}).docker.reachable).toBe(true)
  })

  it('`tp --version` prints what oclif prints for it, without loading oclif', async () => {
    const config = await Config.load(cliRoot)
    const {urls, stdout} = await loadedBy(['--version'])
    expect(stdout).toBe(config.userAgent)
    expect(holding(/node_modules\/@oclif\//, urls)).toEqual([])
    // what the line above looks for is what the other commands load
    expect(holding(/node_modules\/@oclif\//, (await loadedBy(['--help'], {TP_FAST_START: '0'})).urls)).not.toEqual([])
    // the form that keeps node off tp's flags (see bin/run.js) answers the same
    const dashed = await execa('node', [TP_BIN, '--', '--version'], {env: s.env})
    expect(dashed.stdout).toBe(config.userAgent)
  })
})
