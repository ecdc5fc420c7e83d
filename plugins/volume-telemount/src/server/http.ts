import {type IncomingMessage, type Server, type ServerResponse, createServer} from 'node:http'
import type {VolumeDriver} from './driver.js'

/**
 * Docker's volume plugin protocol (`docker.volumedriver/1.0`): JSON POSTs, every answer 200 with
 * an `Err` string that is empty on success (Docker shows a non-empty one to the user).
 */
type Body = {Name?: string; ID?: string; Opts?: Record<string, unknown> | null}
type Route = (body: Body) => Promise<Record<string, unknown>> | Record<string, unknown>

const CONTENT_TYPE = 'application/vnd.docker.plugins.v1.2+json'

export function volumeDriverRoutes(driver: VolumeDriver): Record<string, Route> {
  const name = (body: Body): string => {
    if (typeof body.Name !== 'string' || body.Name === '') throw new Error('the request has no volume Name')
    return body.Name
  }
  return {
    '/Plugin.Activate': () => ({Implements: ['VolumeDriver']}),
    '/VolumeDriver.Capabilities': () => ({Capabilities: {Scope: 'local'}}),
    '/VolumeDriver.Create': async (body) => {
      await driver.create(name(body), body.Opts)
      return {Err: ''}
    },
    '/VolumeDriver.Remove': async (body) => {
      await driver.remove(name(body))
      return {Err: ''}
    },
    '/VolumeDriver.Mount': async (body) => ({Mountpoint: await driver.mount(name(body), String(body.ID ?? '')), Err: ''}),
    '/VolumeDriver.Unmount': async (body) => {
      await driver.unmount(name(body), String(body.ID ?? ''))
      return {Err: ''}
    },
    '/VolumeDriver.Path': (body) => ({Mountpoint: driver.path(name(body)) ?? '', Err: ''}),
    '/VolumeDriver.Get': (body) => {
      const {record, mountpoint, users} = driver.get(name(body))
      const {host, port, dir, readOnly} = record.options
      return {
        Volume: {Name: record.name, Mountpoint: mountpoint ?? '', CreatedAt: record.createdAt, Status: {host, port, dir, ro: readOnly, users}},
        Err: '',
      }
    },
    '/VolumeDriver.List': () => ({Volumes: driver.list().map((v) => ({Name: v.name, Mountpoint: v.mountpoint ?? ''})), Err: ''}),
  }
}

export function createPluginServer(driver: VolumeDriver, log: (message: string) => void): Server {
  const routes = volumeDriverRoutes(driver)
  return createServer((request: IncomingMessage, response: ServerResponse) => {
    const chunks: Buffer[] = []
    request.on('data', (chunk: Buffer) => chunks.push(chunk))
    request.on('end', () => {
      void (async () => {
        const path = (request.url ?? '').split('?')[0]
        const route = routes[path]
        let status = 200
        let reply: Record<string, unknown>
        if (!route) {
          status = 404
          reply = {Err: `telemount does not implement ${path}`}
        } else {
          try {
            const text = Buffer.concat(chunks).toString('utf8').trim()
            const body = (text ? JSON.parse(text) : {}) as Body
            reply = await route(body ?? {})
          } catch (error) {
            reply = {Err: `telemount: ${(error as Error).message}`}
          }
        }
        if (reply.Err) log(`${path} ${JSON.stringify(reply.Err)}`)
        response.writeHead(status, {'Content-Type': CONTENT_TYPE})
        response.end(JSON.stringify(reply))
      })()
    })
  })
}
