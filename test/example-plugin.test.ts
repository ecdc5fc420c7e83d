/**
 * The example third-party plugin (examples/handler-static), installed the way a user installs one:
 * packed, then `tp plugins install <absolute path to the .tgz>` with npm offline. It then answers a
 * real intercept on a demo cluster of its own, its UserError prints as tp's own, and nothing is
 * left behind.
 */
import {mkdir, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {setTimeout as sleep} from 'node:timers/promises'
import {execa} from 'execa'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {type Sandbox, makeSandbox} from '../packages/cli/test/helpers.js'
import {connectOwnDemo, httpGet, nothingLeft, repoRoot, startTp, tpCli, tpObjects} from './helpers/index.js'

const NETWORK = `tpt-example-${process.pid}`
const CONNECTION = 'e2e-example'
const PORT = '18140'
let sandbox: Sandbox
let site: string
let disconnect: (() => Promise<void>) | undefined

async function workloadAnswers(): Promise<void> {
  const deadline = Date.now() + 15_000
  while (!(await httpGet('http://frontend-v1/', {network: NETWORK})).body.includes('hello from frontend-v1')) {
    if (Date.now() > deadline) throw new Error('frontend-v1 did not get its traffic back')
    await sleep(250)
  }
}

beforeAll(async () => {
  sandbox = await makeSandbox('example')
  site = join(sandbox.dir, 'site')
  await mkdir(join(site, 'docs'), {recursive: true})
  await writeFile(join(site, 'index.html'), `<h1>static site ${process.pid}</h1>\n`)
  await writeFile(join(site, 'docs', 'notes.txt'), 'first line\nsecond line\n')

  const packed = await execa('npm', ['pack', '--silent', '--pack-destination', sandbox.dir], {cwd: join(repoRoot, 'examples/handler-static')})
  const tgz = join(sandbox.dir, packed.stdout.trim().split('\n').at(-1)!)
  // offline: nothing may come from a registry (@tp/sdk is tp's own copy)
  const installed = await sandbox.tp(['plugins', 'install', tgz], {npm_config_offline: 'true', npm_config_cache: join(sandbox.dir, 'npm-cache')})
  if (installed.exitCode !== 0) throw new Error(`tp plugins install ${tgz} failed (${installed.exitCode}):\n${installed.stderr}`)
  ;({disconnect} = await connectOwnDemo(NETWORK, CONNECTION, sandbox.env))
})

afterAll(async () => {
  await disconnect?.()
  await sandbox?.remove()
})

describe('examples/handler-static, installed from its .tgz', () => {
  it('is listed as a user plugin', async () => {
    const listed = await sandbox.tp(['extensions'])
    expect(listed.exitCode, listed.stderr).toBe(0)
    expect(listed.stdout).toMatch(/^ {2}static +tp-plugin-static@0\.1\.0 +user /m)
  })

  it("answers the workload's traffic with the directory's files; Ctrl-C gives the traffic back and leaves nothing", async () => {
    const run = startTp(['intercept', '--use', CONNECTION, 'frontend-v1', '--port', PORT, '--static', site, '--static-fallback', 'index.html'], {
      env: sandbox.env,
    })
    await run.active
    const index = await httpGet('http://frontend-v1/', {network: NETWORK})
    expect(index.body).toBe(`<h1>static site ${process.pid}</h1>\n`)
    const notes = await httpGet('http://frontend-v1/docs/notes.txt', {network: NETWORK})
    expect(notes.body).toBe('first line\nsecond line\n')
    // an app's route gets the fallback; a missing file, or a path out of the directory, does not
    expect((await httpGet('http://frontend-v1/orders/42', {network: NETWORK})).body).toBe(`<h1>static site ${process.pid}</h1>\n`)
    expect((await httpGet('http://frontend-v1/missing.js', {network: NETWORK})).status).toBe(404)
    await writeFile(join(sandbox.dir, 'secret.txt'), 'not for the cluster\n')
    const outside = await httpGet('http://frontend-v1/%2e%2e/secret.txt', {network: NETWORK})
    expect(outside.body).not.toContain('not for the cluster')
    expect(outside.status).toBe(404)
    expect(run.output()).toContain('GET /%2e%2e/secret.txt 404') // as sent: the handler refused it
    expect(run.output()).toContain('GET /docs/notes.txt 200 docs/notes.txt')

    run.child.kill('SIGINT')
    expect((await run.child).exitCode).toBe(0)
    await workloadAnswers()
    expect(await nothingLeft(CONNECTION)).toEqual([])
  })

  it("its UserError prints exactly as tp's own, exit 1, and nothing is created", async () => {
    const before = await tpObjects()
    const missing = join(sandbox.dir, 'no-such-dir')
    const result = await tpCli(['intercept', '--use', CONNECTION, 'frontend-v1', '--port', PORT, '--static', missing], {env: sandbox.env})
    expect(result.exitCode).toBe(1)
    expect(result.stderr).toBe(
      `tp: --static ${missing}: ${missing} is not a directory\n  → give the directory whose files should answer, e.g. --static ./public`,
    )
    expect(await tpObjects()).toEqual(before)
  })
})
