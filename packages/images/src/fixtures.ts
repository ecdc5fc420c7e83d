import type Dockerode from 'dockerode'
import {debugLog, swallow} from '@tp/sdk'
import {type ImportChanges, type RootfsSpec, STATIC_BUSYBOX, ensureImportedImage, inputsHash} from './rootfs.js'

const trace = debugLog('tp:cli')

/**
 * Test and demo images built on this machine with no registry: a busybox base, the demo cluster's
 * workload and the `frontend-v2` handler of the reference's example. All are busybox `httpd`
 * serving one CGI router script, so every route is plain shell and answers with what the container
 * really sees (its env, its /data volume, the cluster's `catalog` service).
 */

export const LABEL_FIXTURE = 'tp.fixture'
const FIXTURE_LABELS = {[LABEL_FIXTURE]: 'true'}

export const BUSYBOX_REPO = 'tp-fixture-busybox'
export const WORKLOAD_IMAGE = 'tp-demo-workload:latest'
export const FRONTEND_V2_IMAGE = 'tp-fixture-frontend-v2:latest'
/** The bare name the reference's example uses: `tp intercept ... --docker-run -- frontend-v2`. */
export const FRONTEND_V2_BARE_IMAGE = 'frontend-v2:latest'

export interface FixtureImages {
  /** `tp-fixture-busybox:<inputs hash>`: busybox and its applets, nothing else. */
  busybox: string
  /** `tp-demo-workload:latest`: the demo cluster's workloads (frontend-v1, catalog). */
  workload: string
  /** `tp-fixture-frontend-v2:latest`, also tagged `frontend-v2:latest`. */
  frontendV2: string
  frontendV2Bare: string
  /** The refs that were built by this call (the others were reused). */
  built: string[]
}

/**
 * The CGI router. `nameExpr` is shell that yields the app's name: the workload takes it from its
 * env (WORKLOAD_NAME), frontend-v2 has it fixed, because as a handler it receives the intercepted
 * workload's env, WORKLOAD_NAME included.
 *
 * Routes (each also under /cgi-bin/<route>, which needs no redirect; `/config` redirects to
 * `/config/`, which wget and curl -L follow):
 *   /                 name, GREETING=, DEMO_NOTES= (multi-line), TP_INTERCEPT_ID=, and for frontend-v2
 *                     catalog=<body of http://catalog/>; with RESPONSE_JSON set: that JSON instead
 *   /config           /data/config.txt
 *   /write?name=X     writes "written by <name>" to /data/X  (or ?path=/abs/file); "ok <path>" or 500 + error
 *   /cat?path=/abs    a file's content
 *   /env              the environment, sorted
 */
function routerScript(nameExpr: string, fetchCatalog: boolean): string {
  return `#!/bin/sh
APP_NAME=${nameExpr}
route="\${REQUEST_URI%%\\?*}"
route="\${route#/cgi-bin}"
route="\${route%/}"
param() { printf '%s' "&$QUERY_STRING" | sed -n "s/.*&$1=\\([^&]*\\).*/\\1/p" | sed 's/%2[Ff]/\\//g; s/%20/ /g'; }
reply() { printf 'Status: %s\\r\\nContent-Type: %s\\r\\n\\r\\n' "$1" "$2"; cat; }
case "$route" in
  ""|/index.cgi)
    if [ -n "$RESPONSE_JSON" ]; then printf '%s\\n' "$RESPONSE_JSON" | reply "200 OK" application/json; exit 0; fi
    {
      echo "$APP_NAME"
      echo "GREETING=$GREETING"
      echo "DEMO_NOTES=$DEMO_NOTES"
      echo "TP_INTERCEPT_ID=$TP_INTERCEPT_ID"
${fetchCatalog ? '      echo "catalog=$(timeout 5 wget -q -O - "${CATALOG_URL:-http://catalog/}" 2>&1 || echo unreachable)"\n' : ''}    } | reply "200 OK" text/plain ;;
  /config)
    if out=$(cat /data/config.txt 2>&1); then printf '%s\\n' "$out" | reply "200 OK" text/plain
    else printf 'error: %s\\n' "$out" | reply "500 Error" text/plain; fi ;;
  /write)
    target=$(param path); name=$(param name)
    [ -z "$target" ] && target="/data/$name"
    case "$name" in */*|..) echo "error: bad name" | reply "400 Bad Request" text/plain; exit 0 ;; esac
    if out=$( (echo "written by $APP_NAME" > "$target") 2>&1); then echo "ok $target" | reply "200 OK" text/plain
    else printf 'error: %s\\n' "$out" | reply "500 Error" text/plain; fi ;;
  /cat)
    if out=$(cat "$(param path)" 2>&1); then printf '%s\\n' "$out" | reply "200 OK" text/plain
    else printf 'error: %s\\n' "$out" | reply "404 Not Found" text/plain; fi ;;
  /env)
    env | sort | reply "200 OK" text/plain ;;
  *)
    echo "no route $route" | reply "404 Not Found" text/plain ;;
esac
`
}

/** A busybox httpd web root whose every route runs `script`. */
function webRoot(script: string): RootfsSpec['files'] {
  const files: NonNullable<RootfsSpec['files']> = {'/www/cgi-bin/index.cgi': {content: script, mode: 0o755}}
  for (const route of ['config', 'write', 'cat', 'env']) files[`/www/cgi-bin/${route}`] = {content: script, mode: 0o755}
  return files
}

const ROUTE_DIRS = ['/www/config', '/www/write', '/www/cat', '/www/env', '/data']

/**
 * PID 1 is a shell that exits on TERM, so `docker stop` is immediate (httpd alone ignores it as PID 1).
 * `logErrors`: httpd -v logs failed requests (on a workload: `docker logs`); a handler runs in the
 * user's terminal, where that is noise.
 */
function serve(defaultPort: number, logErrors: boolean): string {
  const script = `trap "exit 0" TERM INT; httpd -f${logErrors ? ' -v' : ''} -p "\${PORT:-${defaultPort}}" -h /www & wait`
  return `CMD ["/bin/sh", "-c", ${JSON.stringify(script)}]`
}

function busyboxSpec(extra: Partial<RootfsSpec> = {}): RootfsSpec {
  return {busybox: STATIC_BUSYBOX, dirs: ['/root', ...(extra.dirs ?? [])], files: extra.files}
}

const BASE_CHANGES: ImportChanges = ['ENV PATH=/bin:/usr/bin:/sbin:/usr/sbin', 'CMD ["/bin/sh"]']

/** Tags `source` as `target` unless it already points at the same image. */
async function ensureTag(docker: Dockerode, imageId: string, target: string): Promise<void> {
  const existing = await docker
    .getImage(target)
    .inspect()
    .catch(swallow(trace, `looking up image ${target}`))
  if (existing?.Id === imageId) return
  const [repo, tag] = target.split(':')
  await docker.getImage(imageId).tag({repo, tag})
}

/**
 * Builds (or reuses, when nothing changed) every fixture image. Idempotent and cheap on the second
 * call: each image carries a hash of its inputs, compared without rebuilding anything.
 */
export async function ensureFixtureImages(docker: Dockerode, options: {prefix?: string} = {}): Promise<FixtureImages> {
  // a prefix gives a test images of its own to build from nothing and remove afterwards
  const prefix = options.prefix ?? ''
  const baseSpec = busyboxSpec()
  const baseTag = await inputsHash(baseSpec, [...BASE_CHANGES, JSON.stringify(FIXTURE_LABELS)])
  const [base, workload, frontendV2] = await Promise.all([
    ensureImportedImage(docker, {
      repo: `${prefix}${BUSYBOX_REPO}`,
      tag: baseTag,
      spec: baseSpec,
      changes: BASE_CHANGES,
      labels: FIXTURE_LABELS,
      what: 'fixture busybox',
    }),
    ensureImportedImage(docker, {
      repo: `${prefix}tp-demo-workload`,
      tag: 'latest',
      spec: busyboxSpec({dirs: ROUTE_DIRS, files: webRoot(routerScript('"${WORKLOAD_NAME:-workload}"', false))}),
      changes: [...BASE_CHANGES.slice(0, 1), 'EXPOSE 80', serve(80, true)],
      labels: FIXTURE_LABELS,
      what: 'demo workload',
    }),
    ensureImportedImage(docker, {
      repo: `${prefix}tp-fixture-frontend-v2`,
      tag: 'latest',
      spec: busyboxSpec({dirs: ROUTE_DIRS, files: webRoot(routerScript('frontend-v2', true))}),
      changes: [...BASE_CHANGES.slice(0, 1), 'EXPOSE 8000', serve(8000, false)],
      labels: FIXTURE_LABELS,
      what: 'frontend-v2 fixture',
    }),
  ])
  const frontendV2Bare = `${prefix}${FRONTEND_V2_BARE_IMAGE}`
  await ensureTag(docker, frontendV2.id, frontendV2Bare)
  const built = [base, workload, frontendV2].filter((image) => image.built).map((image) => image.ref)
  return {busybox: base.ref, workload: workload.ref, frontendV2: frontendV2.ref, frontendV2Bare, built}
}
