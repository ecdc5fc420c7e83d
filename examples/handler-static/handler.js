import {createReadStream} from 'node:fs'
import {stat} from 'node:fs/promises'
import {createServer} from 'node:http'
import {extname, join, relative, resolve, sep} from 'node:path'
import {UserError} from '@tp/sdk'

const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.txt': 'text/plain; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.json': 'application/json',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.ico': 'image/x-icon',
}

async function fileAt(path) {
  const info = await stat(path).catch(() => undefined)
  if (info?.isFile()) return path
  if (info?.isDirectory()) return fileAt(join(path, 'index.html'))
  return undefined
}

/** The file a request path names inside root (never outside it), or undefined. */
async function resolveFile(root, urlPath, fallback) {
  let decoded
  try {
    decoded = decodeURIComponent(new URL(urlPath, 'http://x').pathname)
  } catch {
    return undefined
  }
  const path = resolve(root, `.${decoded}`)
  if (path !== root && !path.startsWith(root + sep)) return undefined
  const file = await fileAt(path)
  // a single-page app's routes (`/orders/42`) get the fallback; a missing asset (`/app.js`) stays 404
  if (file || !fallback || extname(decoded) !== '') return file
  return fileAt(join(root, fallback))
}

/** Serves root on the session's port, on every address (the daemon may reach this machine from its network). */
class StaticHandler {
  describe
  wantsVolumes = false
  runsAs = 'process'
  #server
  #stopped = false

  constructor(root, fallback) {
    this.root = root
    this.fallback = fallback
    this.describe = `static files of ${root}`
  }

  run(session, io) {
    if (this.#stopped) return Promise.resolve(0)
    const server = createServer(async (req, res) => {
      const file = req.method === 'GET' || req.method === 'HEAD' ? await resolveFile(this.root, req.url ?? '/', this.fallback) : undefined
      const status = file ? 200 : req.method === 'GET' || req.method === 'HEAD' ? 404 : 405
      io.stdout.write(`${req.method} ${req.url} ${status}${file ? ` ${relative(this.root, file)}` : ''}\n`)
      res.setHeader('x-served-by', 'tp-plugin-static')
      if (!file) return void res.writeHead(status, {'content-type': 'text/plain; charset=utf-8'}).end(status === 404 ? 'not found\n' : 'method not allowed\n')
      res.writeHead(200, {'content-type': TYPES[extname(file).toLowerCase()] ?? 'application/octet-stream'})
      if (req.method === 'HEAD') return void res.end()
      createReadStream(file).pipe(res)
    })
    this.#server = server
    return new Promise((resolvePromise, reject) => {
      server.once('error', (error) =>
        reject(error.code === 'EADDRINUSE' ? new UserError(`port ${session.ports.local} is already in use on this machine`, 'choose another --port') : error),
      )
      server.once('close', () => resolvePromise(0))
      server.listen(session.ports.local, '0.0.0.0', () => io.stdout.write(`serving ${this.root} on port ${session.ports.local}\n`))
    })
  }

  async stop() {
    this.#stopped = true
    if (!this.#server?.listening) return
    const closed = new Promise((resolvePromise) => this.#server.close(resolvePromise))
    this.#server.closeAllConnections()
    await closed
  }
}

export async function prepare(request) {
  if (request.args.length > 0) {
    throw new UserError(
      `--static serves a directory and runs no command, but "${request.args.join(' ')}" follows --`,
      'drop what follows --, or leave --static out to run a command',
    )
  }
  const given = String(request.flags.static)
  const root = resolve(request.cwd, given)
  const info = await stat(root).catch(() => undefined)
  if (!info?.isDirectory())
    throw new UserError(`--static ${given}: ${root} is not a directory`, 'give the directory whose files should answer, e.g. --static ./public')
  const fallback = request.flags['static-fallback'] === undefined ? undefined : String(request.flags['static-fallback'])
  if (fallback !== undefined && !(await resolveFile(root, `/${fallback}`))) {
    throw new UserError(
      `--static-fallback ${fallback}: there is no such file in ${root}`,
      'give a file of the --static directory, e.g. --static-fallback index.html',
    )
  }
  return new StaticHandler(root, fallback)
}

export default () => ({prepare})
