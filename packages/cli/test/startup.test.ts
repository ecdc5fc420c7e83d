import {execa} from 'execa'
import {describe, expect, it} from 'vitest'

describe('start-up cost', () => {
  it('loading dockerode does not load ssh2 or gRPC (patches/ is applied)', async () => {
    const script = `
      require('dockerode')
      const loaded = Object.keys(require.cache).filter((f) => /node_modules\\/(ssh2|@grpc|protobufjs)\\//.test(f))
      console.log(JSON.stringify(loaded))`
    const {stdout} = await execa('node', ['-e', script])
    expect(JSON.parse(stdout)).toEqual([])
  })

  it('an ssh:// Docker host still loads ssh2 when it is used', async () => {
    const script = `
      const Docker = require('dockerode')
      const docker = new Docker({protocol: 'ssh', host: '127.0.0.1', port: 1, username: 'nobody', sshOptions: {readyTimeout: 500}})
      docker.ping().catch(() => {}).finally(() => console.log(Object.keys(require.cache).some((f) => f.includes('/node_modules/ssh2/'))))`
    const {stdout} = await execa('node', ['-e', script])
    expect(stdout.trim()).toBe('true')
  })
})
