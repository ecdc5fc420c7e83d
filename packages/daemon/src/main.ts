import {formatError} from '@tp/sdk'
import {configFromEnv} from './config.js'
import {Daemon} from './daemon.js'

// Entry point inside the daemon container (bundled to /opt/tp/daemon.cjs, so no top-level await).
const log = (m: string) => process.stderr.write(`${new Date().toISOString()} ${m}\n`)

async function main(): Promise<void> {
  const daemon = new Daemon(configFromEnv(process.env), log, () => process.exit(0))
  await daemon.start()
  const stop = (signal: string) => void daemon.quit(signal).then(() => process.exit(0))
  process.on('SIGTERM', () => stop('SIGTERM'))
  process.on('SIGINT', () => stop('SIGINT'))
}

main().catch((error: unknown) => {
  log(formatError(error))
  process.exit(1)
})
