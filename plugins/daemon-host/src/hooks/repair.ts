import {hostsFilePath, mayHaveBlocks, removeDeadBlocks} from '../hosts-file.js'

/**
 * Before every tp command: a host daemon killed with SIGKILL could not take its names out of the
 * hosts file; whatever command runs next does. Costs one read of a small file: what tells a dead
 * daemon from a live one is loaded only when the file has blocks of tp's.
 */
export default async function repairHostsFile(): Promise<void> {
  try {
    const path = hostsFilePath()
    if (!mayHaveBlocks(path)) return
    const {daemonRuns} = await import('../daemon-process.js')
    removeDeadBlocks(path, daemonRuns)
  } catch {
    // not ours to fail a command over: `tp connect` says what is wrong with the hosts file
  }
}
