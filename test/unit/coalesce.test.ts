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

interface Pair { server: Server, socket: Socket, received: () => number[], writes: () => number, readAll: (n: number) => Promise<void> }

/** A loopback server collecting what it reads, and a client socket to it whose writes are counted. */
async function pair (): Promise<Pair> {
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

/** Runs `body` with a coalescing connection over a fresh pair, and closes the pair after. */
async function withConn (body: (conn: FakeConn, p: Pair) => Promise<void>): Promise<void> {
  const p = await pair()
  try {
    await body(corkUntilDrained(fakeConn(p.socket)) as FakeConn, p)
  } finally {
    p.socket.destroy()
    await new Promise(resolve => p.server.close(resolve))
  }
}

describe('corkUntilDrained', { timeout: 10_000 }, () => {
  it('holds writes until the promise jobs have run, then sends them in one write, in order', async () => {
    await withConn(async (conn, { received, writes, readAll }) => {
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
    })
  })

  it('lets a bulk write go at once: held bytes reaching the high-water mark are written without waiting', async () => {
    await withConn(async (conn, { socket, writes, readAll }) => {
      conn.sendData(new Uint8ArrayList(new Uint8Array(100)))
      assert.equal(writes(), 0)
      conn.sendData(new Uint8ArrayList(new Uint8Array(socket.writableHighWaterMark)))
      assert.equal(writes(), 1, 'written without waiting for the promise jobs')
      await readAll(100 + socket.writableHighWaterMark)
    })
  })

  it('writes what is held before the connection closes', async () => {
    await withConn(async (conn, { received, readAll }) => {
      conn.sendData(new Uint8ArrayList(Uint8Array.of(9, 8, 7)))
      await conn.sendClose()
      await readAll(3)
      assert.deepEqual(received(), [9, 8, 7])
    })
  })

  it('leaves a connection without a net.Socket untouched', () => {
    const sendData = (): boolean => true
    const conn = { socket: {}, sendData, sendClose: async () => {} } as unknown as MultiaddrConnection
    assert.equal(corkUntilDrained(conn), conn)
    assert.equal((conn as unknown as { sendData: unknown }).sendData, sendData)
  })
})
