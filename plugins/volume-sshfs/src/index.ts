export {sshfsDescriptor} from './descriptor.js'
export {SshfsProvider, type SshfsProviderOptions} from './provider.js'
export {type SweepOptions, sweepMounts, recordsDir} from './records.js'
export {sshfsArgs} from './sshfs.js'
