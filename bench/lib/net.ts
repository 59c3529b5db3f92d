/** Loopback ports: pick a free one, wait until something accepts on it. */
import { createConnection, createServer } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'

export const HOST = '127.0.0.1'

/** A port that was free a moment ago (the usual race: the caller binds it right away). */
export async function freePort (): Promise<number> {
  return await new Promise((resolve, reject) => {
    const server = createServer()
    server.unref()
    server.on('error', reject)
    server.listen(0, HOST, () => {
      const address = server.address()
      server.close(() => {
        if (address == null || typeof address === 'string') reject(new Error('no port assigned'))
        else resolve(address.port)
      })
    })
  })
}

async function canConnect (port: number): Promise<boolean> {
  return await new Promise(resolve => {
    const socket = createConnection({ host: HOST, port })
    const done = (ok: boolean): void => { socket.destroy(); resolve(ok) }
    socket.once('connect', () => { done(true) })
    socket.once('error', () => { done(false) })
    socket.setTimeout(500, () => { done(false) })
  })
}

/** Polls until `port` accepts TCP connections; `alive()` false (process died) fails fast. */
export async function waitForPort (port: number, timeoutMs: number, alive: () => boolean): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (!alive()) throw new Error(`process exited before port ${port} opened`)
    if (await canConnect(port)) return
    await sleep(50)
  }
  throw new Error(`port ${port} not open after ${timeoutMs} ms`)
}
