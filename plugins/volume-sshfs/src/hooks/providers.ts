import {defineVolumeProviders} from '@tp/sdk'
import {sshfsDescriptor} from '../descriptor.js'

/** Hook `tp:volume-providers`: the workload's volumes as sshfs mounts under a directory on this machine. */
export default defineVolumeProviders([sshfsDescriptor])
