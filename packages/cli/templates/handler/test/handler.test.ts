import assert from 'node:assert/strict'
import {readFile} from 'node:fs/promises'
import {createServer} from 'node:net'
import {describe, it} from 'node:test'
import {isUserError} from '@tp/sdk'
import {fakePlacement, fakeRequest, fakeSession, runPrepared} from '@tp/sdk/testing'
import {prepare} from '../src/handler.js'
import hook from '../src/hooks/handlers.js'

/** Whether a process runs (a zombie, dead but not yet reaped, does not). */
async function alive(pid: number): Promise<boolean> {
  try {
    process.kill(pid, 0)
  } catch {
    return false
  }
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '')
  return !/^\d+ \(.*\) Z/.test(stat)
}

/** A port nothing listens on yet. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const {port} = server.address() as {port: number}
      server.close(() => resolve(port))
    })
    server.on('error', reject)
  })
}

describe('the __NAME__ handler', () => {
  it("runs the command with the workload's environment and PORT; its exit code is the run's", async () => {
    const prepared = await prepare(fakeRequest({args: ['sh', '-c', 'printf "%s|%s|%s" "$GREETING" "$NOTES" "$PORT"; exit 3']}))
    const session = fakeSession({environment: {GREETING: 'hello', NOTES: 'line 1\nline 2'}})
    const result = await runPrepared(prepared, session)
    assert.deepEqual(result, {exitCode: 3, stdout: 'hello|line 1\nline 2|8000', stderr: ''})
  })

  it('serves the intercepted traffic: a server started by it answers on the session port, and stop() ends it', async () => {
    const port = await freePort()
    const server = "require('node:http').createServer((q, s) => s.end('hi from ' + process.env.TP_WORKLOAD)).listen(process.env.PORT)"
    const prepared = await prepare(fakeRequest({args: [process.execPath, '-e', server]}))
    const running = runPrepared(prepared, fakeSession({ports: {local: port, container: port, service: 80, protocol: 'tcp'}}))
    let body = ''
    for (let attempt = 0; attempt < 50 && body === ''; attempt++) {
      body = await fetch(`http://127.0.0.1:${port}/`).then(
        (r) => r.text(),
        () => new Promise<string>((resolve) => setTimeout(() => resolve(''), 100)),
      )
    }
    assert.equal(body, 'hi from frontend-v1')
    await prepared.stop('test: done')
    assert.equal((await running).exitCode, 128 + 15) // ended by SIGTERM
  })

  it('stop() ends what the command started too (its process group)', async () => {
    // the shell's child holds none of its output: only the signal to the group can end it
    const prepared = await prepare(fakeRequest({args: ['sh', '-c', 'sleep 30 > /dev/null 2>&1 & echo $!; wait']}))
    const running = runPrepared(prepared, fakeSession())
    await new Promise((resolve) => setTimeout(resolve, 300))
    await prepared.stop('test: done')
    const sleeper = Number((await running).stdout.trim())
    assert.ok(sleeper > 0)
    try {
      assert.equal(await alive(sleeper), false)
    } finally {
      if (await alive(sleeper)) process.kill(sleeper, 'SIGKILL')
    }
  })

  it('--__NAME__-port-env names the variable that carries the port', async () => {
    const prepared = await prepare(fakeRequest({args: ['sh', '-c', 'printf "%s" "$HTTP_PORT"'], flags: {'__NAME__-port-env': 'HTTP_PORT'}, localPort: 9000}))
    const session = fakeSession({ports: {local: 9000, container: 9000, service: 80, protocol: 'tcp'}})
    assert.equal((await runPrepared(prepared, session)).stdout, '9000')
  })

  it('refuses, before anything runs: no command, a command that does not exist, a bad variable name', async () => {
    for (const [request, message] of [
      [fakeRequest({args: []}), /needs the command to run after --/],
      [fakeRequest({args: ['tp-no-such-command']}), /"tp-no-such-command" was not found on PATH/],
      [fakeRequest({args: ['true'], flags: {'__NAME__-port-env': 'not-a-name'}}), /is not a variable name/],
    ] as const) {
      const error = await prepare(request).catch((e: unknown) => e)
      assert.ok(isUserError(error), String(error))
      assert.match((error as Error).message, message)
    }
  })

  it('says where it must listen when the daemon is not on this machine, and wants the volumes only where they can be mounted', async () => {
    const shared = await prepare(fakeRequest({args: ['true'], capabilities: fakePlacement('shared').capabilities}))
    assert.match(shared.notes.join(' '), /listen on 0\.0\.0\.0:8000/)
    assert.equal(shared.wantsVolumes, false)
    const host = await prepare(fakeRequest({args: ['true'], capabilities: fakePlacement('host').capabilities}))
    assert.deepEqual([host.notes, host.wantsVolumes, host.volumeForm], [[], true, 'directory'])
  })

  it('its descriptor is what tp checks: a name, a selecting flag, a summary, and a loader', async () => {
    const [descriptor] = await hook.call(undefined, {})
    assert.equal(descriptor.name, '__NAME__')
    assert.equal(descriptor.selectedBy, '__NAME__')
    assert.ok(descriptor.flags.__NAME__)
    const loaded = await descriptor.load()
    assert.equal(typeof loaded.default, 'function')
  })
})
