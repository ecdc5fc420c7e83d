/** The ports each mode takes (issue 24): intercept one, replace every TCP port, ingest none. */
import {describe, expect, it} from 'vitest'
import {isUserError} from '@tp/sdk'
import {modePorts} from '@tp/daemon'

const web = {
  name: 'web',
  ports: [
    {port: 53, protocol: 'udp' as const},
    {port: 80, name: 'http', protocol: 'tcp' as const},
    {port: 8080, name: 'admin', protocol: 'tcp' as const},
  ],
}

function userError(f: () => unknown): string {
  try {
    f()
  } catch (error) {
    expect(isUserError(error), String(error)).toBe(true)
    return (error as Error).message
  }
  throw new Error('no error')
}

describe('modePorts', () => {
  it('intercept: the one port asked for, to the local port', () => {
    expect(modePorts('intercept', web, {servicePort: 'admin', localPort: 9000})).toEqual({ports: [{service: 8080, local: 9000}], serviceName: 'admin'})
  })

  it('ingest: no port is taken; the first TCP port is named, none is needed', () => {
    expect(modePorts('ingest', web, {localPort: 8080}).ports).toEqual([{service: 80, local: 8080}])
    expect(modePorts('ingest', {name: 'batch', ports: []}, {localPort: 8080})).toEqual({ports: []})
  })

  it('replace: every TCP port, on its own number unless mapped', () => {
    expect(modePorts('replace', web, {localPort: 0}).ports).toEqual([
      {service: 80, local: 80},
      {service: 8080, local: 8080},
    ])
    expect(modePorts('replace', web, {localPort: 8000, portMap: [{service: 'http', local: 8000}]}).ports).toEqual([
      {service: 80, local: 8000},
      {service: 8080, local: 8080},
    ])
  })

  it('replace: two service ports on one handler port, a port mapped twice, or no TCP port are user errors', () => {
    expect(userError(() => modePorts('replace', web, {localPort: 8080, portMap: [{service: '80', local: 8080}]}))).toBe(
      "service ports 80 and 8080 of web would both go to the handler's port 8080",
    )
    expect(
      userError(() =>
        modePorts('replace', web, {
          localPort: 1,
          portMap: [
            {service: '80', local: 1},
            {service: 'http', local: 2},
          ],
        }),
      ),
    ).toBe('--port maps service port 80 twice')
    expect(userError(() => modePorts('replace', {name: 'batch', ports: []}, {localPort: 0}))).toMatch(/exposes no TCP port/)
    expect(userError(() => modePorts('replace', web, {localPort: 0, portMap: [{service: '81', local: 8001}]}))).toMatch(/has no service port "81"/)
  })
})
