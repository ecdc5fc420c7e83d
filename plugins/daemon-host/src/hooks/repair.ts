import {daemonRuns} from '../daemon-process.js'
import {hostsFilePath, removeDeadBlocks} from '../hosts-file.js'

/**
 * Before every tp command: a host daemon killed with SIGKILL could not take its names out of the
 * hosts file; whatever command runs next does. Costs one read of a small file.
 */
export default async function repairHostsFile(): Promise<void> {
  try {
    removeDeadBlocks(hostsFilePath(), daemonRuns)
  } catch {
    // not ours to fail a command over: `tp connect` says what is wrong with the hosts file
  }
}
