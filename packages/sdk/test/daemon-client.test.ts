import {type Server, type ServerResponse, createServer} from 'node:http'
import {afterEach, describe, expect, it} from 'vitest'
import {DaemonClient, type DaemonSession, type InterceptEvent, isUserError} from '@tp/sdk'

/**
 * DaemonClient's lease against a stand-in daemon that streams the NDJSON events of POST
 * /v1/intercepts as the test says: the early session, the agent's readiness, its failure, and a
 * daemon of before the early session (no `pending`, no `ready`).
 */

const session: DaemonSession = {
  id: 'abcd1234',
  name: 'frontend-v1',
  workload: 'frontend-v1',
  namespace: 'ns',
  ports: {local: 8000, container: 8000, service: 80, protocol: 'tcp'},
  environment: {TP_INTERCEPT_ID: 'abcd1234'},
  mounts: [{path: '/data', readOnly: false, sftp: {host: '10.1.0.5', port: 24_000, dir: '/data'}}],
  daemon: {connection: 'unit', id: 'unit', backend: 'container', where: 'container tp-unit-cn'},
}

let server: Server | undefined
afterEach(async () => {
  server?.closeAllConnections()
  await new Promise((resolve) => server?.close(resolve) ?? resolve(undefined))
  server = undefined
})

/** A daemon whose intercept stream is driven by `script`, which gets the response to write events to. */
async function daemon(script: (send: (event: InterceptEvent) => void, res: ServerResponse) => void): Promise<DaemonClient> {
  server = createServer((req, res) => {
    req.resume()
    res.writeHead(200, {'content-type': 'application/x-ndjson'})
    script((event) => res.write(`${JSON.stringify(event)}\n`), res)
  })
  const port = await new Promise<number>((resolve) => server!.listen(0, '127.0.0.1', () => resolve((server!.address() as {port: number}).port)))
  return new DaemonClient({url: `http://127.0.0.1:${port}`, token: 't'})
}

const request = {workload: 'frontend-v1', localPort: 8000, mounts: true}
const state = (p: Promise<unknown>) =>
  Promise.race([
    p.then(
      () => 'resolved',
      () => 'rejected',
    ),
    new Promise((r) => setTimeout(() => r('pending'), 50)),
  ])

describe('DaemonClient.createIntercept', () => {
  it('early: resolves at the session while the agent comes up; ready and the daemon steps follow', async () => {
    let sendLater!: (event: InterceptEvent) => void
    const client = await daemon((send) => {
      send({type: 'session', session, steps: [{step: 'workload found', ms: 3}], pending: true})
      sendLater = send
    })
    const lease = await client.createIntercept(request, {early: true})
    expect(lease.session).toEqual(session)
    expect(await state(lease.ready)).toBe('pending')
    sendLater({
      type: 'ready',
      steps: [
        {step: 'workload found', ms: 3},
        {step: 'agent ready', ms: 150},
      ],
    })
    await lease.ready
    expect(lease.steps.map((s) => s.step)).toEqual(['workload found', 'agent ready'])
    sendLater({type: 'active'})
    await lease.active
    lease.close()
  })

  it('not early: the same stream resolves only once the agent is ready', async () => {
    let sendLater!: (event: InterceptEvent) => void
    const client = await daemon((send) => {
      send({type: 'session', session, pending: true})
      sendLater = send
    })
    const creating = client.createIntercept(request)
    expect(await state(creating)).toBe('pending')
    sendLater({type: 'ready', steps: [{step: 'agent ready', ms: 150}]})
    const lease = await creating
    expect(await state(lease.ready)).toBe('resolved')
    expect(lease.steps).toEqual([{step: 'agent ready', ms: 150}])
    lease.close()
  })

  it("an agent that fails after the early session: ready rejects with the daemon's own error, and the lease ends", async () => {
    let res!: ServerResponse
    let sendLater!: (event: InterceptEvent) => void
    const client = await daemon((send, response) => {
      send({type: 'session', session, pending: true})
      sendLater = send
      res = response
    })
    const lease = await client.createIntercept(request, {early: true})
    sendLater({type: 'error', error: {kind: 'user', message: 'the traffic agent failed: port 24000 is taken', next: 'run the intercept again'}})
    res.end()
    const error = await lease.ready.then(
      () => undefined,
      (e: unknown) => e,
    )
    expect(isUserError(error)).toBe(true)
    expect(error).toMatchObject({message: 'the traffic agent failed: port 24000 is taken', next: 'run the intercept again'})
    expect(await lease.ended).toEqual({reason: 'the traffic agent failed: port 24000 is taken', normal: false})
  })

  it('a daemon that goes away before the agent is ready: ready rejects with a user error that says so', async () => {
    let res!: ServerResponse
    const client = await daemon((send, response) => {
      send({type: 'session', session, pending: true})
      res = response
    })
    const lease = await client.createIntercept(request, {early: true})
    res.socket?.destroy()
    const error = await lease.ready.then(
      () => undefined,
      (e: unknown) => e,
    )
    expect(isUserError(error)).toBe(true)
    expect(error).toMatchObject({message: expect.stringContaining('the tp daemon went away before the intercept'), next: expect.stringContaining('tp status')})
    expect((await lease.ended).normal).toBe(false)
  })

  it('not early, and the agent fails: the create itself rejects with the error', async () => {
    const client = await daemon((send, res) => {
      send({type: 'session', session, pending: true})
      send({type: 'error', error: {kind: 'user', message: 'the traffic agent did not become ready within 20 s'}})
      res.end()
    })
    await expect(client.createIntercept(request)).rejects.toThrow('did not become ready within 20 s')
  })

  it('a daemon from before the early session (no pending, no ready): the session means ready, early or not', async () => {
    const client = await daemon((send) => send({type: 'session', session, steps: [{step: 'agent ready', ms: 200}]}))
    for (const early of [true, false]) {
      const lease = await client.createIntercept(request, {early})
      expect(await state(lease.ready)).toBe('resolved')
      expect(lease.steps).toEqual([{step: 'agent ready', ms: 200}])
      lease.close()
    }
  })
})
