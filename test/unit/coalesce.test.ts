/**
 * corkUntilDrained (src/net/coalesce.ts): a TCP connection's writes are held until the
 * writing code and the promise jobs it started have run, then leave together, in order, in
 * one socket write; a bulk write goes at once; closing writes what is held first; other
 * connections are left alone.
 */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { createServer, connect, type Socket, type Server } from 'node:net'
import type { MultiaddrConnection } from '@libp2p/interface'
import { Uint8ArrayList } from 'uint8arraylist'
import { corkUntilDrained } from '../../src/net/coalesce.ts'

interface SendResult { sentBytes: number, canSendMore: boolean }
type FakeConn = MultiaddrConnection & { sendData: (data: Uint8ArrayList) => SendResult, sendClose: () => Promise<void> }

/** A stand-in for libp2p's TCP connection: `sendData` writes each buffer, as @libp2p/tcp does; `sendClose` ends the socket. */
function fakeConn (socket: Socket): FakeConn {
  return {
    socket,
    sendData (data: Uint8ArrayList): SendResult {
      let canSendMore = true
      for (const b of data) canSendMore = socket.write(b)
      return { sentBytes: data.byteLength, canSendMore }
    },
    async sendClose (): Promise<void> {
      socket.destroySoon()
      await new Promise(resolve => socket.once('close', resolve))
    }
  } as unknown as FakeConn
}

/** A loopback server collecting what it reads, and a client socket to it whose writes are counted. */
async function pair (): Promise<{ server: Server, socket: Socket, received: () => number[], writes: () => number, readAll: (n: number) => Promise<void> }> {
  const chunks: Buffer[] = []
  const waiters: Array<{ n: number, resolve: () => void }> = []
  const server = createServer((s) => {
    s.on('data', (d: Buffer) => {
      chunks.push(d)
      const got = Buffer.concat(chunks).length
      for (const w of waiters) if (got >= w.n) w.resolve()
    })
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const socket = connect((server.address() as { port: number }).port, '127.0.0.1')
  await new Promise<void>(resolve => socket.once('connect', resolve))
  let writes = 0
  const write = socket.write.bind(socket) as (chunk: Uint8Array) => boolean
  socket.write = ((chunk: Uint8Array) => { writes++; return write(chunk) }) as typeof socket.write
  return {
    server,
    socket,
    received: () => [...Buffer.concat(chunks)],
    writes: () => writes,
    readAll: async (n) => {
      if (Buffer.concat(chunks).length >= n) return
      await new Promise<void>(resolve => { waiters.push({ n, resolve }) })
    }
  }
}

async function cleanup (server: Server, socket: Socket): Promise<void> {
  socket.destroy()
  await new Promise(resolve => server.close(resolve))
}

describe('corkUntilDrained', { timeout: 10_000 }, () => {
  it('holds writes until the promise jobs have run, then sends them in one write, in order', async () => {
    const { server, socket, received, writes, readAll } = await pair()
    try {
      const conn = corkUntilDrained(fakeConn(socket)) as FakeConn
      const r = conn.sendData(new Uint8ArrayList(Uint8Array.of(1, 2), Uint8Array.of(3)))
      assert.deepEqual(r, { sentBytes: 3, canSendMore: true })
      // A write from a promise job started by this code joins the same batch.
      let inJob = -1
      void Promise.resolve().then(() => { conn.sendData(new Uint8ArrayList(Uint8Array.of(4, 5, 6, 7))); inJob = writes() })
      assert.equal(writes(), 0, 'nothing written yet')
      await new Promise(resolve => { setImmediate(resolve) })
      assert.equal(inJob, 0, 'the promise job\'s write was held too')
      assert.equal(writes(), 1, 'one socket write for both calls and all three buffers')
      await readAll(7)
      assert.deepEqual(received(), [1, 2, 3, 4, 5, 6, 7])
      // A later write is held again.
      conn.sendData(new Uint8ArrayList(Uint8Array.of(8)))
      assert.equal(writes(), 1)
      await readAll(8)
      assert.equal(writes(), 2)
      assert.deepEqual(received(), [1, 2, 3, 4, 5, 6, 7, 8])
    } finally {
      await cleanup(server, socket)
    }
  })

  it('lets a bulk write go at once: held bytes reaching the high-water mark are written without waiting', async () => {
    const { server, socket, writes, readAll } = await pair()
    try {
      const conn = corkUntilDrained(fakeConn(socket)) as FakeConn
      conn.sendData(new Uint8ArrayList(new Uint8Array(100)))
      assert.equal(writes(), 0)
      conn.sendData(new Uint8ArrayList(new Uint8Array(socket.writableHighWaterMark)))
      assert.equal(writes(), 1, 'written without waiting for the promise jobs')
      await readAll(100 + socket.writableHighWaterMark)
    } finally {
      await cleanup(server, socket)
    }
  })

  it('writes what is held before the connection closes', async () => {
    const { server, socket, received, readAll } = await pair()
    try {
      const conn = corkUntilDrained(fakeConn(socket)) as FakeConn
      conn.sendData(new Uint8ArrayList(Uint8Array.of(9, 8, 7)))
      await conn.sendClose()
      await readAll(3)
      assert.deepEqual(received(), [9, 8, 7])
    } finally {
      await cleanup(server, socket)
    }
  })

  it('leaves a connection without a net.Socket untouched', () => {
    const sendData = (): boolean => true
    const conn = { socket: {}, sendData, sendClose: async () => {} } as unknown as MultiaddrConnection
    assert.equal(corkUntilDrained(conn), conn)
    assert.equal((conn as unknown as { sendData: unknown }).sendData, sendData)
  })
})
