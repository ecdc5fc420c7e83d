import {describe, expect, it} from 'vitest'
import {isUserError} from '@tp/sdk'
import {resolvePort} from '@tp/daemon'

const web = {
  name: 'web',
  ports: [
    {port: 53, protocol: 'udp' as const},
    {port: 80, name: 'http', protocol: 'tcp' as const},
    {port: 8080, name: 'admin', protocol: 'tcp' as const},
  ],
}
const api = {name: 'api', ports: [{port: 9000, protocol: 'tcp' as const}]}
const portless = {name: 'twin', ports: []}

function userError(f: () => unknown): {message: string; next?: string} {
  try {
    f()
  } catch (error) {
    expect(isUserError(error), String(error)).toBe(true)
    return error as {message: string; next?: string}
  }
  throw new Error('expected a UserError')
}

describe('resolvePort', () => {
  it('resolves by number and by name', () => {
    expect(resolvePort(web, '8080')).toEqual({port: 8080, name: 'admin', protocol: 'tcp'})
    expect(resolvePort(web, 'http')).toEqual({port: 80, name: 'http', protocol: 'tcp'})
  })

  it('takes the only TCP port when none is given', () => {
    expect(resolvePort(api)).toEqual({port: 9000, protocol: 'tcp'})
  })

  it('asks which port when there are several, listing them', () => {
    const e = userError(() => resolvePort(web))
    expect(e.message).toContain('several ports')
    expect(e.next).toContain('80 (http)')
    expect(e.next).toContain('8080 (admin)')
  })

  it('refuses unknown ports, listing the known ones', () => {
    for (const spec of ['81', 'grpc']) {
      const e = userError(() => resolvePort(web, spec))
      expect(e.message).toContain(`"${spec}"`)
      expect(e.next).toContain('8080 (admin)')
    }
  })

  it('refuses UDP ports and workloads without ports', () => {
    expect(userError(() => resolvePort(web, '53')).message).toContain('UDP')
    expect(userError(() => resolvePort(portless)).message).toContain('exposes no TCP port')
  })
})
