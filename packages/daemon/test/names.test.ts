import {connect} from 'node:net'
import {PassThrough} from 'node:stream'
import {describe, expect, it} from 'vitest'
import type {Workload} from '@tp/sdk'
import {LinkedNames} from '@tp/daemon'

const workload = (over: Partial<Workload> = {}): Workload => ({
  name: 'web',
  namespace: 'shop',
  aliases: ['shop_web'],
  ports: [{port: 18931, protocol: 'tcp'}],
  environment: {},
  mounts: [],
  replicas: [
    {id: 't1', name: 'shop_web.1', address: '10.79.1.11', startedAt: '', node: 'w1'},
    {id: 't2', name: 'shop_web.2', address: '10.79.1.12', startedAt: '', node: 'w2'},
  ],
  ...over,
})

describe('names of a namespace on another machine', () => {
  it('gives each replica an address of its own for the replica names (tasks.<service>), and a connection there goes to that replica', async () => {
    const dialed: string[] = []
    const link = {
      connect: async (host: string, port: number) => {
        dialed.push(`${host}:${port}`)
        const stream = new PassThrough()
        stream.end(`hello from ${host}`)
        return stream as never
      },
    }
    const names = new LinkedNames(
      {workloads: async () => [workload({replicaNames: ['tasks.shop_web', 'tasks.web']})]},
      'shop',
      link,
      () => undefined,
      'sw2unit',
    )
    try {
      const entries = await names.sync()
      expect(entries).toHaveLength(3)
      expect(entries[0].names).toEqual(expect.arrayContaining(['web', 'shop_web', 'web.shop']))
      expect(entries[0].names).not.toContain('tasks.web')
      const own = entries.slice(1)
      expect(new Set(own.map((e) => e.address)).size).toBe(2)
      for (const e of own) expect(e.names).toEqual(['tasks.shop_web', 'tasks.shop_web.shop', 'tasks.web', 'tasks.web.shop'])
      const answer = await new Promise<string>((resolve, reject) => {
        const socket = connect(18931, own[1].address)
        let body = ''
        socket
          .on('data', (c) => (body += c))
          .on('end', () => resolve(body))
          .on('error', reject)
      })
      expect(answer).toBe('hello from 10.79.1.12')
      expect(dialed).toEqual(['10.79.1.12:18931'])
    } finally {
      names.close()
    }
  })

  it('stops serving the address of a replica that has gone', async () => {
    let replicas = workload().replicas
    const names = new LinkedNames(
      {workloads: async () => [workload({replicas, replicaNames: ['tasks.web']})]},
      'shop',
      {connect: async () => new PassThrough() as never},
      () => undefined,
      'sw2unit3',
    )
    try {
      const before = await names.sync()
      replicas = replicas.slice(0, 1)
      const after = await names.sync()
      expect(after.map((e) => e.address)).toEqual(before.slice(0, 2).map((e) => e.address))
      const answers = (address: string) =>
        new Promise<boolean>((resolve) => {
          const socket = connect(18931, address)
          socket
            .on('connect', () => {
              socket.destroy()
              resolve(true)
            })
            .on('error', () => resolve(false))
        })
      expect(await answers(before[1].address)).toBe(true)
      expect(await answers(before[2].address)).toBe(false)
    } finally {
      names.close()
    }
  })

  it('gives a workload without replica names one address', async () => {
    const names = new LinkedNames({workloads: async () => [workload()]}, 'shop', {connect: async () => new PassThrough() as never}, () => undefined, 'sw2unit2')
    try {
      expect(await names.sync()).toHaveLength(1)
    } finally {
      names.close()
    }
  })
})
