import {describe, expect, it} from 'vitest'
import {isUserError} from '@tp/sdk'
import {fakePlacement, fakeRequest, fakeSession, runPrepared} from '@tp/sdk/testing'
import {createProcessHandler} from '../dist/handler.js'

/** The local-process handler, run as tp runs it (through the sdk's test kit), without Docker. */

const handler = createProcessHandler()

describe('the process handler', () => {
  it("runs the command with the workload's environment (multi-line values exact) and TP_ROOT; its exit code is the run's", async () => {
    const prepared = await handler.prepare(fakeRequest({args: ['sh', '-c', 'printf "%s|%s|%s" "$GREETING" "$NOTES" "$TP_ROOT"; exit 3']}))
    const session = fakeSession({environment: {GREETING: 'hello', NOTES: 'line 1\nline 2'}})
    const result = await runPrepared(prepared, session, {extras: {dockerRunArgs: [], root: '/tmp/tp-root'}})
    expect(result).toEqual({exitCode: 3, stdout: 'hello|line 1\nline 2|/tmp/tp-root', stderr: ''})
  })

  it('passes its input through, and stop() ends it', async () => {
    const echo = await runPrepared(await handler.prepare(fakeRequest({args: ['cat']})), fakeSession(), {input: 'typed\n'})
    expect(echo.stdout).toBe('typed\n')
    const long = await runPrepared(await handler.prepare(fakeRequest({args: ['sleep', '30']})), fakeSession(), {stopAfterMs: 200})
    expect(long.exitCode).toBe(128 + 15) // SIGTERM
  })

  it('refuses a command that does not exist, before anything runs', async () => {
    const error = await handler.prepare(fakeRequest({args: ['tp-no-such-command']})).catch((e: unknown) => e)
    expect(isUserError(error)).toBe(true)
    expect((error as Error).message).toBe('the command "tp-no-such-command" was not found on PATH')
  })

  it('says what a daemon in a container cannot give it, and wants no volumes there', async () => {
    const inContainer = await handler.prepare(fakeRequest({args: ['true'], capabilities: fakePlacement('shared').capabilities}))
    expect(inContainer.notes?.join(' ')).toMatch(/not the cluster's names/)
    expect(inContainer.wantsVolumes).toBe(false)
    const onHost = await handler.prepare(fakeRequest({args: ['true'], capabilities: fakePlacement('host').capabilities}))
    expect(onHost.notes).toEqual([])
    expect([onHost.wantsVolumes, onHost.volumeForm, onHost.runsAs]).toEqual([true, 'directory', 'process'])
  })
})
