import {afterEach, beforeEach, describe, expect, it, vi} from 'vitest'
import {configureDebug, debugLog, debugPattern, pluginNamespace, swallow} from '@tp/sdk'

describe('debugPattern', () => {
  it('TP_DEBUG=1 means every tp namespace', () => {
    expect(debugPattern({TP_DEBUG: '1'})).toBe('tp:*')
    expect(debugPattern({TP_DEBUG: 'true'})).toBe('tp:*')
    expect(debugPattern({TP_DEBUG: '*'})).toBe('tp:*')
  })

  it('any other TP_DEBUG value is a pattern; DEBUG adds to it', () => {
    expect(debugPattern({TP_DEBUG: 'tp:agent'})).toBe('tp:agent')
    expect(debugPattern({TP_DEBUG: 'tp:*,-tp:daemon'})).toBe('tp:*,-tp:daemon')
    expect(debugPattern({TP_DEBUG: 'tp:cli', DEBUG: 'tp:daemon'})).toBe('tp:cli,tp:daemon')
    expect(debugPattern({DEBUG: 'tp:daemon'})).toBe('tp:daemon')
  })

  it('nothing, an empty value, 0 or false: off', () => {
    expect(debugPattern({})).toBeUndefined()
    expect(debugPattern({TP_DEBUG: '', DEBUG: ''})).toBeUndefined()
    expect(debugPattern({TP_DEBUG: '0'})).toBeUndefined()
    expect(debugPattern({TP_DEBUG: 'false'})).toBeUndefined()
  })
})

describe('debugLog', () => {
  const saved = {TP_DEBUG: process.env.TP_DEBUG, DEBUG: process.env.DEBUG}
  let written: string[]

  beforeEach(() => {
    written = []
    vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
      written.push(String(chunk))
      return true
    })
  })

  afterEach(() => {
    vi.restoreAllMocks()
    for (const [key, value] of Object.entries(saved)) {
      if (value === undefined) delete process.env[key]
      else process.env[key] = value
    }
    configureDebug()
  })

  function set(env: {TP_DEBUG?: string; DEBUG?: string}): void {
    delete process.env.TP_DEBUG
    delete process.env.DEBUG
    Object.assign(process.env, env)
    configureDebug()
  }

  it('prints nothing by default', () => {
    set({})
    const log = debugLog('tp:agent')
    expect(log.enabled).toBe(false)
    log('quiet')
    expect(written).toEqual([])
  })

  it('TP_DEBUG=1 prints every tp namespace, with the namespace and the message, on stderr', () => {
    set({TP_DEBUG: '1'})
    const agent = debugLog('tp:agent')
    const plugin = debugLog(pluginNamespace('@tp/plugin-handler-docker-run'))
    expect(agent.enabled).toBe(true)
    agent('hello from the agent')
    plugin('hello from a plugin')
    expect(written.join('')).toMatch(/tp:agent.*hello from the agent/)
    expect(written.join('')).toMatch(/tp:plugin:handler-docker-run.*hello from a plugin/)
  })

  it('a TP_DEBUG pattern enables only what it names', () => {
    set({TP_DEBUG: 'tp:agent'})
    expect(debugLog('tp:agent').enabled).toBe(true)
    expect(debugLog('tp:daemon').enabled).toBe(false)
    set({TP_DEBUG: 'tp:*,-tp:daemon'})
    expect(debugLog('tp:cli').enabled).toBe(true)
    expect(debugLog('tp:daemon').enabled).toBe(false)
  })

  it('DEBUG works too, and is left as the user set it', () => {
    set({DEBUG: 'tp:daemon'})
    expect(debugLog('tp:daemon').enabled).toBe(true)
    expect(debugLog('tp:agent').enabled).toBe(false)
    set({TP_DEBUG: '1'})
    expect(process.env.DEBUG).toBeUndefined()
  })

  it('a logger made before the variables changed follows them', () => {
    set({})
    const log = debugLog('tp:cli')
    expect(log.enabled).toBe(false)
    set({TP_DEBUG: 'tp:cli'})
    expect(log.enabled).toBe(true)
    expect(log.namespace).toBe('tp:cli')
  })
})

describe('pluginNamespace', () => {
  it('names a plugin without its scope and plugin- prefix', () => {
    expect(pluginNamespace('@tp/plugin-volume-telemount')).toBe('tp:plugin:volume-telemount')
    expect(pluginNamespace('tp-plugin-acme')).toBe('tp:plugin:acme')
    expect(pluginNamespace('handler-docker-run')).toBe('tp:plugin:handler-docker-run')
  })
})

describe('swallow', () => {
  it('logs what it swallowed and what was being done, and resolves undefined', async () => {
    const lines: string[] = []
    const result = await Promise.reject(Object.assign(new Error('(HTTP code 404) no such container'), {json: {message: 'No such container: x'}})).catch(
      swallow((m) => lines.push(m), 'removing container x'),
    )
    expect(result).toBeUndefined()
    expect(lines).toEqual(['ignored: removing container x: No such container: x'])
  })

  it('keeps the value when nothing fails', async () => {
    const lines: string[] = []
    expect(await Promise.resolve(42).catch(swallow((m) => lines.push(m), 'x'))).toBe(42)
    expect(lines).toEqual([])
  })
})
