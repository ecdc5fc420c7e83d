/** Pure argument logic of `tp intercept`: --port and the handler choice. */
import {describe, expect, it} from 'vitest'
import {API_VERSION, type HandlerDescriptor, isUserError} from '@tp/sdk'
import {fakePlacement} from '@tp/sdk/testing'
import {chooseHandler} from '../dist/handler-choice.js'
import {parsePortSpec} from '../dist/port-spec.js'

function handler(name: string, implies?: string): HandlerDescriptor {
  return {
    name,
    apiVersion: API_VERSION,
    summary: name,
    selectedBy: name,
    flags: {[name]: {type: 'boolean', description: name, implies}},
    load: async () => ({default: () => ({prepare: async () => Promise.reject(new Error('unused'))})}),
  }
}

function userError(fn: () => unknown): {message: string; next?: string} {
  try {
    fn()
  } catch (error) {
    if (isUserError(error)) return error
    throw error
  }
  throw new Error('expected a UserError')
}

describe('--port', () => {
  it.each([
    ['8000', 'container', {local: 8000, container: 8000}],
    ['8000:http', 'container', {local: 8000, container: 8000, service: 'http'}],
    ['8000:80', 'container', {local: 8000, container: 8000, service: '80'}],
    ['8000', 'host', {local: 8000, container: 8000}],
    ['8000:9000', 'host', {local: 8000, container: 9000}],
    ['8000:9000:http', 'host', {local: 8000, container: 9000, service: 'http'}],
  ] as const)('%s with a %s daemon', (spec, kind, expected) => {
    expect(parsePortSpec(spec, fakePlacement(kind === 'host' ? 'host' : 'shared').capabilities)).toEqual(expected)
  })

  it.each([
    ['8000:80:http', 'container', /three parts/],
    ['x', 'container', /not a port number/],
    ['0', 'host', /not a port number/],
    ['65536', 'host', /not a port number/],
    ['8000:', 'container', /empty part/],
    ['8000:http', 'host', /container port "http" is not a port number/],
    ['1:2:3:4', 'host', /too many parts/],
  ] as const)('refuses %s with a %s daemon', (spec, kind, message) => {
    const error = userError(() => parsePortSpec(spec, fakePlacement(kind === 'host' ? 'host' : 'shared').capabilities))
    expect(error.message).toMatch(message)
    expect(error.next).toMatch(/--port <local>/)
  })
})

describe('handler choice', () => {
  const run = handler('docker-run')
  const build = handler('docker-build', 'docker-run')
  const descriptors = [run, build]

  it('picks the handler whose flag is set, or none', () => {
    expect(chooseHandler(descriptors, {'docker-run': true}, ['img'])).toBe(run)
    expect(chooseHandler(descriptors, {'docker-build': '.'}, ['IMAGE'])).toBe(build)
    expect(chooseHandler(descriptors, {}, [])).toBeUndefined()
  })

  it('refuses two handlers, saying which flag implies the other', () => {
    const error = userError(() => chooseHandler(descriptors, {'docker-run': true, 'docker-build': '.'}, ['IMAGE']))
    expect(error.message).toBe('--docker-run and --docker-build cannot be used together: each runs its own handler')
    expect(error.next).toBe('--docker-build already implies --docker-run: drop --docker-run')
  })

  it('refuses arguments after -- without a handler', () => {
    expect(userError(() => chooseHandler(descriptors, {}, ['img'])).next).toMatch(/--docker-run/)
  })
})
