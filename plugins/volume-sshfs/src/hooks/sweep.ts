import {readdirSync} from 'node:fs'
import {join} from 'node:path'
import {cacheDir} from '@tp/sdk/paths'

/**
 * Before every tp command: what a tp process killed with SIGKILL left mounted under its TP_ROOT
 * (its agent gone, the sshfs ends by itself, but the directories stay) is undone. When there is
 * nothing to do, that costs one directory listing: the sweep is loaded only when there are records.
 */
export default async function sweepDeadMounts(): Promise<void> {
  const dir = cacheDir()
  let records: string[]
  try {
    records = readdirSync(join(dir, 'mounts'))
  } catch {
    return // no mounts were ever made here
  }
  if (records.length === 0) return
  const [{sweepMounts}, {debugLog, swallow}] = await Promise.all([import('../records.js'), import('@tp/sdk')])
  // never fail a command over it: the next provide() sweeps too
  await sweepMounts({cacheDir: dir}).catch(swallow(debugLog('tp:plugin:volume-sshfs'), 'sweeping the mounts of dead tp processes'))
}
