import {API_VERSION, type VolumeProviderDescriptor} from '@tp/sdk'

/**
 * Mounts made on this host reach the agent's SFTP port only where the host reaches the cluster
 * (a host daemon); the implementation is imported only when this provider is chosen.
 */
export const sshfsDescriptor: VolumeProviderDescriptor = {
  name: 'sshfs',
  apiVersion: API_VERSION,
  summary: "The workload's volumes mounted with sshfs (plain SFTP to the agent) under a directory on this machine, the handler's TP_ROOT",
  forms: ['directory'],
  requires: {hostReachesCluster: true},
  load: () => import('./provider.js'),
}
