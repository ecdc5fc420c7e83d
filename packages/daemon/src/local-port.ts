import {connect, type Socket} from 'node:net'

/** Opens a connection to the handler on the daemon's loopback. */
export function connectLocal(port: number, timeoutMs = 3000): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({host: '127.0.0.1', port, noDelay: true, allowHalfOpen: true})
    const timer = setTimeout(() => socket.destroy(new Error(`no answer on 127.0.0.1:${port} within ${timeoutMs} ms`)), timeoutMs)
    socket.once('connect', () => {
      clearTimeout(timer)
      resolve(socket)
    })
    socket.once('error', (error) => {
      clearTimeout(timer)
      reject(error)
    })
  })
}

/** Whether something accepts connections on the port (the handler is up). */
export async function portAnswers(port: number): Promise<boolean> {
  try {
    const socket = await connectLocal(port, 1000)
    socket.destroy()
    return true
  } catch {
    return false
  }
}
