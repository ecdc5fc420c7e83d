/** Pure argument logic of `tp ingest` and `tp replace`: --port in each mode. */
import {describe, expect, it} from 'vitest'
import {isUserError} from '@tp/sdk'
import {parseModePorts} from '../dist/port-spec.js'

const here = {canPublishPorts: false}

describe('parseModePorts', () => {
  it('intercept: one --port as before', () => {
    expect(parseModePorts('intercept', '8000:80', here)).toEqual({port: {local: 8000, container: 8000, service: '80'}, portMap: []})
    expect(parseModePorts('intercept', undefined, here).port.local).toBe(8080)
  })

  it('ingest: no port', () => {
    expect(parseModePorts('ingest', undefined, here)).toEqual({port: {local: 8080, container: 8080}, portMap: []})
  })

  it('replace: any number of <local>:<service port>; none: the daemon decides (0)', () => {
    expect(parseModePorts('replace', undefined, here)).toEqual({port: {local: 0, container: 0}, portMap: []})
    expect(parseModePorts('replace', ['8000:80', '9443:https'], here)).toEqual({
      port: {local: 8000, container: 8000},
      portMap: [
        {service: '80', local: 8000},
        {service: 'https', local: 9443},
      ],
    })
  })

  it('replace: a --port without the service port, or with a bad local port, is a user error that says what to write', () => {
    for (const bad of ['8000', '0:80', '70000:80', 'x:80', '8000:']) {
      try {
        parseModePorts('replace', [bad], here)
        expect.unreachable(bad)
      } catch (error) {
        expect(isUserError(error)).toBe(true)
        expect((error as Error).message).toBe(`--port "${bad}" is not <local>:<service port>`)
      }
    }
  })
})
