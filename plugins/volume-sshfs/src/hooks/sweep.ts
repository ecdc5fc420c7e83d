import {cacheDir, debugLog, swallow} from '@tp/sdk'
import {sweepMounts} from '../records.js'

/**
 * Before every tp command: what a tp process killed with SIGKILL left mounted under its TP_ROOT
 * (its agent gone, the sshfs ends by itself, but the directories stay) is undone. Reads one small
 * directory when there is nothing to do.
 */
export default async function sweepDeadMounts(): Promise<void> {
  // never fail a command over it: the next provide() sweeps too
  await sweepMounts({cacheDir: cacheDir()}).catch(swallow(debugLog('tp:plugin:volume-sshfs'), 'sweeping the mounts of dead tp processes'))
}
