import {describe, expect, it} from 'vitest'
import {volumeName, nameSlug} from '@tp/plugin-volume-telemount/names'
import {parseVolumeOptions, volumeDriverOptions} from '@tp/plugin-volume-telemount/options'
import {buildOf, pluginConfig, pluginRef} from '@tp/plugin-volume-telemount/plugin'

describe('driver options', () => {
  it('parses what the provider writes, round trip', () => {
    const options = {host: '172.18.0.5', port: 2222, dir: '/data', readOnly: true}
    expect(parseVolumeOptions(volumeDriverOptions(options))).toEqual(options)
    expect(parseVolumeOptions({host: '::1', port: '1', dir: '/a//b/'})).toEqual({host: '::1', port: 1, dir: '/a/b/', readOnly: false})
  })

  it.each([
    [{host: '10.0.0.1', port: '22', container: 'x'}, /unknown option "container"/],
    [{host: '10.0.0.1', port: '65536'}, /port must be a whole number from 1 to 65535, got "65536"/],
    [{host: '10.0.0.1', port: '2x'}, /port must be a whole number/],
    [{host: 'frontend', port: '22'}, /host must be an IP address, got "frontend"/],
    [{host: '10.0.0.1', port: '22', dir: '/a/../etc'}, /must not contain "\.\."/],
    [{host: '10.0.0.1', port: '22', ro: 'yes'}, /ro must be true or false/],
    [{host: '10.0.0.1'}, /port is required/],
  ])('rejects %j', (opts, message) => {
    expect(() => parseVolumeOptions(opts)).toThrow(message)
  })
})

describe('names', () => {
  const session = {id: '3f9a1c2b', name: 'frontend-v1', daemon: {connection: 'default', id: 'x', backend: 'container', where: 'tp-x-cn'}}
  it('puts connection, intercept, intercept id, index and path in every volume name', () => {
    expect(volumeName(session, 0, '/data')).toBe('tp-default-frontend-v1-3f9a1c2b-0-data')
    expect(volumeName(session, 1, '/var/lib/app data')).toBe('tp-default-frontend-v1-3f9a1c2b-1-var-lib-app-data')
    expect(volumeName({...session, name: 'other'}, 0, '/data')).not.toBe(volumeName(session, 0, '/data'))
    expect(nameSlug('///')).toBe('x')
  })

  it("tags the plugin with a valid Docker tag made from tp's version", () => {
    expect(pluginRef({name: 'tp-telemount', version: '1.2.3+build.4'})).toBe('tp-telemount:1.2.3-build.4')
    expect(buildOf(pluginConfig('abc123').description as string)).toBe('abc123')
  })
})
