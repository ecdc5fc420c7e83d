import {mkdir, rm} from 'node:fs/promises'
import {dirname} from 'node:path'
import {VolumeDriver} from './driver.js'
import {createPluginServer} from './http.js'

/**
 * Entry point of the plugin server (bundled to dist/server.cjs, run as `node /server.cjs` inside
 * the managed plugin). Paths default to the plugin's layout; the environment can move them so the
 * same server runs on a host for tests.
 */
const socketPath = process.env.TELEMOUNT_SOCKET ?? '/run/docker/plugins/telemount.sock'
const mountRoot = process.env.TELEMOUNT_MOUNT_ROOT ?? '/mnt/volumes'
const stateFile = process.env.TELEMOUNT_STATE ?? '/var/lib/telemount/volumes.json'
const mountTimeoutMs = Number(process.env.TELEMOUNT_MOUNT_TIMEOUT_MS ?? 15_000)
const warmIdleMs = process.env.TELEMOUNT_WARM_IDLE_MS ? Number(process.env.TELEMOUNT_WARM_IDLE_MS) : undefined
const serverWaitMs = process.env.TELEMOUNT_SERVER_WAIT_MS ? Number(process.env.TELEMOUNT_SERVER_WAIT_MS) : undefined

const log = (message: string): void => {
  process.stderr.write(`telemount: ${message}\n`)
}

async function main(): Promise<void> {
  const driver = new VolumeDriver({mountRoot, stateFile, mountTimeoutMs, warmIdleMs, serverWaitMs, log})
  await driver.init()
  await mkdir(dirname(socketPath), {recursive: true})
  await rm(socketPath, {force: true})
  const server = createPluginServer(driver, log)
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(socketPath, () => resolve())
  })
  log(`listening on ${socketPath}; mounts under ${mountRoot}`)
  const stop = (signal: string): void => {
    log(`${signal}: stopping`)
    server.close()
    void driver.shutdown().finally(() => process.exit(0))
  }
  process.once('SIGTERM', () => stop('SIGTERM'))
  process.once('SIGINT', () => stop('SIGINT'))
}

main().catch((error: unknown) => {
  log(`cannot start: ${(error as Error).stack ?? String(error)}`)
  process.exit(1)
})
