import {API_VERSION, type VolumeProviderDescriptor, defineVolumeProviders} from '@tp/sdk'

/** Hook `tp:volume-providers`: remote volumes through the telemount Docker volume plugin. */
export const telemountDescriptor: VolumeProviderDescriptor = {
  name: 'telemount',
  apiVersion: API_VERSION,
  summary: 'Remote volumes as Docker volumes, mounted with sshfs over SFTP by a managed volume plugin',
  requires: {},
  // the plugin's Mount waits for a workload's agent that is still starting (see server/sshfs.ts)
  waitsForServer: true,
  load: () => import('./provider.js'),
}

export default defineVolumeProviders([telemountDescriptor])
