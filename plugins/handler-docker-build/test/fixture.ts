import {randomBytes} from 'node:crypto'
import {mkdir, mkdtemp, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import Dockerode from 'dockerode'
import {execa} from 'execa'
import {LABEL_INPUTS, STATIC_BUSYBOX, ensureImportedImage, inputsHash} from '@tp/images'

/** Base image for this area's test Dockerfiles: busybox only, built locally (no registry). */
export const BASE_IMAGE = 'tpt-build-busybox:latest'

export const docker = new Dockerode()

const BASE_SPEC = {busybox: STATIC_BUSYBOX, dirs: ['/etc', '/www/cgi-bin']}
const BASE_LABELS = {'tp.fixture': 'true'}

export async function ensureBase(): Promise<{built: boolean}> {
  const image = await ensureImportedImage(docker, {repo: 'tpt-build-busybox', tag: 'latest', spec: BASE_SPEC, labels: BASE_LABELS, what: 'test fixture'})
  return {built: image.built}
}

/**
 * Removes the base image and every image built on it (tagged, untagged, the legacy builder's
 * intermediate layers): they all inherit the base's unique inputs label, and nobody else's do.
 */
export async function removeBaseAndDescendants(): Promise<void> {
  const hash = await inputsHash(BASE_SPEC, [JSON.stringify(BASE_LABELS)])
  for (let round = 0; round < 10; round++) {
    const images = await docker.listImages({all: true, filters: {label: [`${LABEL_INPUTS}=${hash}`]}})
    if (images.length === 0) return
    // children first: a parent cannot be removed while a child exists
    images.sort((a, b) => b.Created - a.Created)
    for (const image of images)
      await docker
        .getImage(image.Id)
        .remove({force: true})
        .catch(() => undefined)
  }
}

export function unique(prefix: string): string {
  return `${prefix}-${randomBytes(4).toString('hex')}`
}

/** A CGI script that answers (and prints when run directly) what the build baked in. */
export const GREET_SCRIPT = `#!/bin/sh
[ -n "$GATEWAY_INTERFACE" ] && printf 'Content-Type: text/plain\\r\\n\\r\\n'
echo "hello from the built handler$(cat /etc/greeting-suffix) stage=$(cat /etc/stage) dockerfile=$(cat /etc/dockerfile)"
`

/** A CGI script that shows the environment the handler runs with (the intercepted workload's). */
export const ENV_SCRIPT = `#!/bin/sh
printf 'Content-Type: text/plain\\r\\n\\r\\n'
echo "GREETING=$GREETING"
`

/**
 * The handler context: GREETING_SUFFIX comes from a build arg, two stages (base, debug), and a
 * second Dockerfile. Serves the greeting with busybox httpd on port 8000.
 */
export async function writeHandlerContext(dir: string): Promise<void> {
  await mkdir(dir, {recursive: true})
  await writeFile(join(dir, 'greet.sh'), GREET_SCRIPT, {mode: 0o755})
  await writeFile(join(dir, 'env.sh'), ENV_SCRIPT, {mode: 0o755})
  const common = (which: string) => `FROM ${BASE_IMAGE} AS base
ARG GREETING_SUFFIX=
COPY greet.sh /www/cgi-bin/index.cgi
COPY env.sh /www/cgi-bin/env.cgi
RUN echo "$GREETING_SUFFIX" > /etc/greeting-suffix && echo base > /etc/stage && echo ${which} > /etc/dockerfile
EXPOSE 8000
CMD ["httpd", "-f", "-v", "-p", "8000", "-h", "/www"]
`
  await writeFile(
    join(dir, 'Dockerfile'),
    `${common('main')}
FROM base AS debug
RUN echo debug > /etc/stage

FROM base AS final
`,
  )
  await writeFile(join(dir, 'Other.Dockerfile'), common('other'))
}

export async function tempDir(prefix: string): Promise<string> {
  return mkdtemp(join(tmpdir(), `${prefix}-`))
}

/** Runs the image's greeting script in a throw-away container and returns its output. */
export async function greeting(image: string): Promise<string> {
  const {stdout} = await execa('docker', ['run', '--rm', '--name', unique('tpt-build-run'), image, '/www/cgi-bin/index.cgi'])
  return stdout.trim()
}

export async function runInImage(image: string, command: string[]): Promise<string> {
  const {stdout} = await execa('docker', ['run', '--rm', '--name', unique('tpt-build-run'), image, ...command])
  return stdout
}

/** Removes images by id, ignoring ones already gone. */
export async function removeImages(ids: Iterable<string>): Promise<void> {
  for (const id of ids)
    await docker
      .getImage(id)
      .remove({force: true})
      .catch(() => undefined)
}

/** Containers (any state) whose command mentions marker: what a failed legacy build could leave. */
export async function containersMentioning(marker: string): Promise<string[]> {
  const all = await docker.listContainers({all: true})
  return all.filter((c) => c.Command.includes(marker)).map((c) => c.Id)
}
