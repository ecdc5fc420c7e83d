import {connect, type Socket} from 'node:net'
import {probeTcp} from '@tp/sdk'

/** Opens a connection to the handler at the host the placement names (127.0.0.1 for the bundled backends). */
export function connectHandler(host: string, port: number, timeoutMs = 3000): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({host, port, noDelay: true, allowHalfOpen: true})
    const timer = setTimeout(() => socket.destroy(new Error(`no answer on ${host}:${port} within ${timeoutMs} ms`)), timeoutMs)
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

/** Whether something accepts connections there (the handler is up). */
export async function handlerAnswers(host: string, port: number): Promise<boolean> {
  return (await probeTcp(host, port, 1000)) === undefined
}
