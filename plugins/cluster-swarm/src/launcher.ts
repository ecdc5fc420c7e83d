/**
 * The node-local launcher: what tp places as a one-task service on a task's node (the manager's API
 * is all tp has) to start a container there that the swarm cannot express, one in the task's network
 * namespace (`--network container:<task>`, NET_ADMIN, its volumes) — as Portainer's agent runs with
 * the node's docker.sock, and mirrord's agent enters its target's namespace.
 *
 * It runs in tp's runtime image (`node -e`), with the node engine's socket mounted at
 * /var/run/docker.sock, and reads what to create from TP_LAUNCH ({name, body, graceSeconds}): it
 * creates and starts that container, follows it, and exits with its exit code; SIGTERM (its service
 * removed) stops the container with its grace first. The container removes itself (AutoRemove), so
 * nothing of it stays on the node once it ends, however the launcher ended.
 */

/** Where the launcher finds the node's engine (the node's own socket, wherever the node keeps it, is mounted there). */
export const LAUNCHER_SOCKET = '/var/run/docker.sock'

/** What a launcher makes on its node. */
export interface LaunchSpec {
  /** The container's name on the node. */
  name: string
  /** The Engine API's container create body. */
  body: Record<string, unknown>
  /** How long a stop waits for the container to end by itself. */
  graceSeconds: number
  /**
   * A task's secret and config files, bound read-only at their paths into the container: the
   * launcher finds the task container's directory on its node (beside its resolv.conf), where the
   * engine keeps them in `mounts/secrets/<id>`.
   */
  taskFiles?: {container: string; files: Array<{id: string; target: string}>}
}

/** A client of the engine at LAUNCHER_SOCKET in plain CommonJS: what the launcher and the janitor share. */
const API_SOURCE = String.raw`
const http = require('node:http')
const say = (line) => process.stderr.write('tp: ' + line + '\n')
function api(method, path, body, onResponse) {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : JSON.stringify(body)
    const req = http.request({socketPath: '${LAUNCHER_SOCKET}', method, path: '/v1.41' + path, headers: data ? {'content-type': 'application/json'} : {}}, (res) => {
      if (onResponse) onResponse()
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (chunk) => (text += chunk))
      res.on('end', () => {
        let json
        try { json = text ? JSON.parse(text) : undefined } catch { json = undefined }
        resolve({status: res.statusCode, json, text})
      })
    })
    req.on('error', reject)
    req.end(data)
  })
}
`

/** The launcher's program: plain CommonJS run by `node -e` (nothing but Node's own modules). */
export const LAUNCHER_SOURCE = `${API_SOURCE}${`
const spec = JSON.parse(process.env.TP_LAUNCH)
async function main() {
  const name = encodeURIComponent(spec.name)
  await api('DELETE', '/containers/' + name + '?force=1')
  if (spec.taskFiles && spec.taskFiles.files.length > 0) {
    const task = await api('GET', '/containers/' + spec.taskFiles.container + '/json')
    const resolv = task.json && task.json.ResolvConfPath
    if (resolv) {
      const root = resolv.slice(0, resolv.lastIndexOf('/'))
      const binds = spec.taskFiles.files.map((f) => root + '/mounts/secrets/' + f.id + ':' + f.target + ':ro')
      spec.body.HostConfig.Binds = (spec.body.HostConfig.Binds || []).concat(binds)
    } else say('the task container ' + spec.taskFiles.container + ' has no directory on this node: its secrets and configs are not served')
  }
  const created = await api('POST', '/containers/create?name=' + name, spec.body)
  if (created.status !== 201) { say('create ' + spec.name + ': ' + created.text.trim()); process.exit(125) }
  const id = created.json.Id
  let stopping
  const stop = () => (stopping ??= api('POST', '/containers/' + id + '/stop?t=' + spec.graceSeconds).catch(() => undefined))
  process.on('SIGTERM', stop)
  process.on('SIGINT', stop)
  // the wait is registered (its headers came) before the start, so its exit is never missed
  let registered
  const waiting = new Promise((resolve) => (registered = resolve))
  const exited = api('POST', '/containers/' + id + '/wait?condition=removed', undefined, registered)
  await waiting
  const started = await api('POST', '/containers/' + id + '/start')
  if (started.status >= 300) {
    say('start ' + spec.name + ': ' + started.text.trim())
    await api('DELETE', '/containers/' + id + '?force=1')
    process.exit(125)
  }
  const result = await exited
  const code = result.json && typeof result.json.StatusCode === 'number' ? result.json.StatusCode : 1
  process.exit(code)
}
main().catch((error) => { say(error.message); process.exit(125) })
`}`

/** What the janitor watches and removes (TP_JANITOR). */
export interface JanitorSpec {
  /** The relay's container id: while it runs, the connection lives. */
  relay: string
  /** The connection whose services go when the relay has gone. */
  connection: string
}

/**
 * The janitor: a container beside the relay on the manager, with the manager's engine socket. The
 * relay ends when its link does (the developer's side killed, the link cut); the janitor then
 * removes the connection's services (the launchers, whose SIGTERM stops what they started on their
 * nodes) and ends — what the manager cannot hear from the developer's side any more, it cleans itself.
 */
export const JANITOR_SOURCE = `${API_SOURCE}${`
const spec = JSON.parse(process.env.TP_JANITOR)
async function main() {
  process.on('SIGTERM', () => process.exit(0))
  for (;;) {
    const relay = await api('GET', '/containers/' + spec.relay + '/json')
    if (relay.status === 404 || (relay.json && relay.json.State && !relay.json.State.Running)) break
    await new Promise((resolve) => setTimeout(resolve, 1000))
  }
  const filters = encodeURIComponent(JSON.stringify({label: ['tp.managed=true', 'tp.connection=' + spec.connection]}))
  const services = await api('GET', '/services?filters=' + filters)
  for (const service of services.json || []) {
    const removed = await api('DELETE', '/services/' + service.ID)
    say('the link of connection ' + spec.connection + ' is gone: removed service ' + service.Spec.Name + ' (' + removed.status + ')')
  }
}
main().then(() => process.exit(0), (error) => { say(error.message); process.exit(1) })
`}`
