import {spawn} from 'node:child_process'
import {Agent, type AgentOptions} from 'node:http'
import {Duplex} from 'node:stream'
import {parseSshUrl} from '@tp/sdk'

/**
 * An HTTP agent whose connections are `ssh … docker system dial-stdio`, run with this machine's
 * `ssh` exactly as the docker CLI's connection helper runs it: the user's ssh config, agent, keys
 * and known_hosts apply, and nothing but ssh is opened on the engine's machine. Kept-alive
 * connections are reused, so one ssh process serves many requests.
 */
export class DialStdioAgent extends Agent {
  private readonly args: string[]

  constructor(url: string, options: AgentOptions = {}) {
    super({keepAlive: true, maxSockets: 16, ...options})
    const {user, host, port, socket} = parseSshUrl(url)
    this.args = [
      '-o',
      'ConnectTimeout=30',
      '-T',
      ...(user ? ['-l', user] : []),
      ...(port ? ['-p', String(port)] : []),
      '--',
      host,
      'docker',
      ...(socket ? ['--host', `unix://${socket}`] : []),
      'system',
      'dial-stdio',
    ]
  }

  override createConnection(): Duplex {
    const child = spawn(process.env.TP_SSH_COMMAND || 'ssh', this.args, {stdio: ['pipe', 'pipe', 'pipe']})
    let stderr = ''
    child.stderr.on('data', (c: Buffer) => {
      stderr = (stderr + c.toString()).slice(-2000)
    })
    const connection = Duplex.from({readable: child.stdout, writable: child.stdin}) as Duplex & Record<string, unknown>
    // what an HTTP client asks of a socket, where a pipe has nothing to do
    connection.setTimeout = () => connection
    connection.setNoDelay = () => connection
    connection.setKeepAlive = () => connection
    // an idle kept-alive connection must not keep tp running (the agent unrefs it while it is free)
    const pipes = [child.stdin, child.stdout, child.stderr] as unknown as Array<{ref?: () => void; unref?: () => void}>
    connection.ref = () => {
      child.ref()
      for (const pipe of pipes) pipe.ref?.()
      return connection
    }
    connection.unref = () => {
      child.unref()
      for (const pipe of pipes) pipe.unref?.()
      return connection
    }
    child.once('error', (error) => connection.destroy(new Error(`ssh could not be started: ${error.message}`)))
    child.once('exit', (code) => {
      if (code !== 0 && code !== null) connection.destroy(new Error(`ssh exited with code ${code}: ${stderr.trim() || 'no message'}`))
      else connection.destroy()
    })
    connection.once('close', () => {
      if (child.exitCode === null) child.kill()
    })
    return connection
  }
}
