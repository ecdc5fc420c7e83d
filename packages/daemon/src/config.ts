import {UserError, type NetworkAttachment} from '@tp/sdk'

/** What a backend tells the daemon when it starts it (environment variables). */
export interface DaemonConfig {
  id: string
  connection: string
  namespace: string
  token: string
  apiPort: number
  controlPort: number
  runtimeImage: string
  version: string
  backend: string
  /** Container name or process the daemon runs as. */
  where: string
  attachment: NetworkAttachment
  /** How long a lease may be silent before its intercept is removed. */
  leaseMs: number
}

export function configFromEnv(env: NodeJS.ProcessEnv): DaemonConfig {
  const required = (name: string): string => {
    const value = env[name]
    if (!value) throw new UserError(`the tp daemon needs ${name} in its environment`, 'start the daemon with `tp connect`, not by hand')
    return value
  }
  return {
    id: required('TP_DAEMON_ID'),
    connection: required('TP_CONNECTION'),
    namespace: required('TP_NAMESPACE'),
    token: required('TP_DAEMON_TOKEN'),
    apiPort: Number(env.TP_API_PORT ?? 4700),
    controlPort: Number(env.TP_CONTROL_PORT ?? 4701),
    runtimeImage: required('TP_RUNTIME_IMAGE'),
    version: env.TP_VERSION ?? '0.0.0',
    backend: env.TP_BACKEND ?? 'container',
    where: env.TP_DAEMON_WHERE ?? 'unknown',
    attachment: JSON.parse(required('TP_ATTACHMENT')) as NetworkAttachment,
    leaseMs: Number(env.TP_LEASE_MS ?? 5000),
  }
}
