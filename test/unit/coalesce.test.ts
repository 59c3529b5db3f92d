/**
 * corkUntilDrained (src/net/coalesce.ts): a TCP connection's writes are held (corked) until
 * the writing code and the promise jobs it started have run, then leave together, in order;
 * other connections are left alone.
 */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { createServer, connect, type Socket } from 'node:net'
import type { MultiaddrConnection } from '@libp2p/interface'
import { corkUntilDrained } from '../../src/net/coalesce.ts'

/** A stand-in for libp2p's TCP connection: `sendData` writes each buffer, as @libp2p/tcp does. */
function fakeConn (socket: Socket): MultiaddrConnection & { sendData: (bufs: Uint8Array[]) => boolean } {
  return {
    socket,
    sendData (bufs: Uint8Array[]): boolean {
      let more = true
      for (const b of bufs) more = socket.write(b)
      return more
    }
  } as unknown as MultiaddrConnection & { sendData: (bufs: Uint8Array[]) => boolean }
}

describe('corkUntilDrained', { timeout: 10_000 }, () => {
  it('holds writes until the promise jobs have run, then sends them together, in order', async () => {
    const received: Buffer[] = []
    let gotAll!: () => void
    const all = new Promise<void>(resolve => { gotAll = resolve })
    const server = createServer((s) => {
      s.on('data', (d: Buffer) => { received.push(d); if (Buffer.concat(received).length >= 7) gotAll() })
    })
    await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
    const socket = connect((server.address() as { port: number }).port, '127.0.0.1')
    await new Promise<void>(resolve => socket.once('connect', resolve))
    try {
      const conn = corkUntilDrained(fakeConn(socket)) as ReturnType<typeof fakeConn>
      conn.sendData([Uint8Array.of(1, 2), Uint8Array.of(3)])
      // A write from a promise job started by this code joins the same batch.
      let inJob = -1
      void Promise.resolve().then(() => { conn.sendData([Uint8Array.of(4, 5, 6, 7)]); inJob = socket.writableLength })
      assert.equal(socket.writableCorked, 1, 'corked, once')
      assert.equal(socket.writableLength, 3, 'nothing written yet')
      await new Promise(resolve => { setImmediate(resolve) })
      assert.equal(inJob, 7, 'the promise job wrote into the corked socket')
      assert.equal(socket.writableCorked, 0)
      await all
      assert.deepEqual([...Buffer.concat(received)], [1, 2, 3, 4, 5, 6, 7])
      // A later write corks again.
      conn.sendData([Uint8Array.of(8)])
      assert.equal(socket.writableCorked, 1)
    } finally {
      socket.destroy()
      await new Promise(resolve => server.close(resolve))
    }
  })

  it('lets a bulk write go at once: held bytes reaching the high-water mark uncork the socket', async () => {
    const server = createServer((s) => { s.resume() })
    await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
    const socket = connect((server.address() as { port: number }).port, '127.0.0.1')
    await new Promise<void>(resolve => socket.once('connect', resolve))
    try {
      const conn = corkUntilDrained(fakeConn(socket)) as ReturnType<typeof fakeConn>
      conn.sendData([new Uint8Array(100)])
      assert.equal(socket.writableCorked, 1)
      conn.sendData([new Uint8Array(socket.writableHighWaterMark)])
      assert.equal(socket.writableCorked, 0, 'flushed without waiting for the promise jobs')
    } finally {
      socket.destroy()
      await new Promise(resolve => server.close(resolve))
    }
  })

  it('leaves a connection without a net.Socket untouched', () => {
    const sendData = (): boolean => true
    const conn = { socket: {}, sendData } as unknown as MultiaddrConnection
    assert.equal(corkUntilDrained(conn), conn)
    assert.equal((conn as unknown as { sendData: unknown }).sendData, sendData)
  })
})
