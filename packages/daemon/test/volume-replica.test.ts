/** Whose volumes the handler gets (`--replica`): a named volume is per node, so one replica's, named or the first. */
import {describe, expect, it} from 'vitest'
import {isUserError} from '@tp/sdk'
import {volumeReplica} from '@tp/daemon'

const web = {
  name: 'web',
  replicas: [
    {id: 'k3v9x1aa', name: 'shop_web.1', address: '10.0.1.3', startedAt: '', node: 'node-1'},
    {id: 'p7q2r4bb', name: 'shop_web.2', address: '10.0.1.4', startedAt: '', node: 'node-2'},
  ],
}

describe('volumeReplica', () => {
  it('is the first replica unless one is named', () => {
    expect(volumeReplica(web, undefined).name).toBe('shop_web.1')
  })

  it('takes a replica by its name, its slot or a prefix of its id', () => {
    expect(volumeReplica(web, 'shop_web.2').address).toBe('10.0.1.4')
    expect(volumeReplica(web, '2').name).toBe('shop_web.2')
    expect(volumeReplica(web, 'p7q2').name).toBe('shop_web.2')
  })

  it('refuses a replica the workload does not have, listing those it has and their nodes', () => {
    let error: unknown
    try {
      volumeReplica(web, '3')
    } catch (caught) {
      error = caught
    }
    expect(isUserError(error)).toBe(true)
    expect((error as Error).message).toBe('web has no replica "3"')
    expect((error as {next?: string}).next).toBe('pass --replica with one of: shop_web.1 (on node-1), shop_web.2 (on node-2)')
  })
})
