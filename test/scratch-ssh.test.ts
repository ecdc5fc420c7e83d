import {it} from 'vitest'
import {readFile} from 'node:fs/promises'
import {startRemoteMachine} from './helpers/remote-machine.js'
import {tpCli} from './helpers/index.js'

it('ssh debug', async () => {
  const m = await startRemoteMachine('tpt-dbg-' + process.pid)
  try {
    const env = {PATH: m.ssh.env.PATH, TP_CACHE_DIR: '/tmp/tpt-dbg-cache'}
    await m.docker(['network', 'create', 'dbgns'])
    const c = await tpCli(['connect', '--cluster', m.ssh.url, '--namespace', 'dbgns', '--name', 'dbg'], {env, timeoutMs: 60000})
    console.log('tp', c.exitCode, c.stdout, c.stderr.slice(-500))
    console.log('A', (await readFile('/etc/hosts', 'utf8')).includes('tp begin dbg'))
    await new Promise((r) => setTimeout(r, 3000))
    console.log('B', (await readFile('/etc/hosts', 'utf8')).includes('tp begin dbg'))
    const l = await tpCli(['status'], {env})
    console.log('status', l.stdout, l.stderr)
    console.log('C', (await readFile('/etc/hosts', 'utf8')).includes('tp begin dbg'))
    console.log(await readFile('/tmp/tpt-dbg-cache/daemons/dbg.log', 'utf8'))
    await tpCli(['quit', '--name', 'dbg'], {env, timeoutMs: 60000})
  } finally {
    await m.stop()
  }
}, 120000)
