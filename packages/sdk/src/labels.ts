/** Labels on every Docker object tp creates, so the daemon and `tp gc` can always find them. */
export const LABEL_MANAGED = 'tp.managed'
export const LABEL_CONNECTION = 'tp.connection'
export const LABEL_INTERCEPT = 'tp.intercept'
/** What the object is: daemon, agent, handler, volume, image, fixture, demo. */
export const LABEL_ROLE = 'tp.role'
/** On the mark a driver leaves while `tp replace` pauses a workload: the paused container (or replica) id. */
export const LABEL_PAUSED = 'tp.paused'
/** On a daemon container: the cache directory (where its connection record is) of the tp that started it. */
export const LABEL_CACHE_DIR = 'tp.cache-dir'

export function tpLabels(fields: {connection?: string; intercept?: string; role: string}): Record<string, string> {
  const labels: Record<string, string> = {[LABEL_MANAGED]: 'true', [LABEL_ROLE]: fields.role}
  if (fields.connection) labels[LABEL_CONNECTION] = fields.connection
  if (fields.intercept) labels[LABEL_INTERCEPT] = fields.intercept
  return labels
}

/** `--label k=v` arguments for the docker CLI. */
export function labelArgs(labels: Record<string, string>): string[] {
  return Object.entries(labels).flatMap(([k, v]) => ['--label', `${k}=${v}`])
}
