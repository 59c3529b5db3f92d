import { describe, it, before } from 'node:test'
import assert from 'node:assert/strict'
import { Uint8ArrayList } from 'uint8arraylist'
import { logger } from '@libp2p/logger'
import { AbstractMessageStream } from '@libp2p/utils'
import type { SendResult } from '@libp2p/utils'
import { directMessageStreams } from '../../src/net/message-streams.ts'

/**
 * A message stream whose layer below takes at most `room` bytes per call (then wants a
 * drain) and consumes the list it is given, as yamux does; what it took is in `below`.
 */
class Layer extends AbstractMessageStream {
  room = Infinity
  readonly below: Uint8Array[] = []
  /** Called inside sendData, before it returns (a write made meanwhile). */
  during?: () => void

  constructor () { super({ log: logger('test:message-streams') }) }

  sendData (data: Uint8ArrayList): SendResult {
    const n = Math.min(this.room, data.byteLength)
    this.below.push(data.subarray(0, n))
    data.consume(n)
    const during = this.during
    this.during = undefined
    during?.()
    return { sentBytes: n, canSendMore: n < this.room || this.room === Infinity }
  }

  sendReset (): void {}
  sendPause (): void {}
  sendResume (): void {}
  async close (): Promise<void> {}

  /** Everything the layer below took, in order. */
  written (): number[] { return this.below.flatMap(b => [...b]) }
  drain (): void { this.room = Infinity; this.safeDispatchEvent('drain') }
}

const bytes = (from: number, n: number): Uint8Array => Uint8Array.from({ length: n }, (_, i) => (from + i) & 0xff)
const seq = (from: number, n: number): number[] => [...bytes(from, n)]
const tick = async (): Promise<void> => { await new Promise(resolve => setImmediate(resolve)) }

describe('message streams without list copies (net/message-streams.ts)', () => {
  before(() => { directMessageStreams() })

  it('a chunk read with nothing buffered reaches the listener as it came', () => {
    const s = new Layer()
    const got: Array<Uint8Array | Uint8ArrayList> = []
    s.addEventListener('message', (e) => { got.push(e.data) })
    const a = bytes(0, 10)
    const b = new Uint8ArrayList(bytes(10, 5), bytes(15, 5))
    s.onData(a)
    s.onData(b)
    assert.equal(got[0], a)
    assert.equal(got[1], b)
  })

  it('reads while paused or before a listener are buffered and come out first, in order', async () => {
    const s = new Layer()
    s.onData(bytes(0, 4)) // no listener yet
    const got: number[] = []
    s.addEventListener('message', (e) => { got.push(...e.data.subarray()) })
    await tick()
    s.pause()
    s.onData(bytes(4, 4))
    s.onData(bytes(8, 4))
    assert.deepEqual(got, seq(0, 4))
    s.resume()
    s.onData(bytes(12, 4))
    await tick()
    assert.deepEqual(got, seq(0, 16))
  })

  it('a lone write reaches the layer below whole, and the stream is idle after it', async () => {
    const s = new Layer()
    let idle = 0
    s.addEventListener('idle', () => { idle++ })
    assert.equal(s.send(bytes(0, 100)), true)
    assert.deepEqual(s.written(), seq(0, 100))
    await tick()
    assert.equal(idle, 1)
    assert.equal((s as unknown as { writeBuffer: Uint8ArrayList }).writeBuffer.byteLength, 0)
  })

  it('what the layer below does not take waits for drain and goes before later writes', async () => {
    const s = new Layer()
    s.room = 30
    assert.equal(s.send(bytes(0, 100)), false)
    assert.deepEqual(s.written(), seq(0, 30))
    assert.equal(s.send(bytes(100, 20)), false) // queued behind the rest
    s.drain()
    await tick()
    assert.deepEqual(s.written(), seq(0, 120))
  })

  it('a write made while the layer below is sending goes after the chunk being sent', () => {
    const s = new Layer()
    s.during = () => { s.send(bytes(50, 10)) }
    s.send(bytes(0, 50))
    assert.deepEqual(s.written(), seq(0, 60))
  })

  it('a partly taken chunk keeps its rest ahead of a write made meanwhile', async () => {
    const s = new Layer()
    s.room = 20
    s.during = () => { s.send(bytes(50, 10)) }
    s.send(bytes(0, 50))
    s.drain()
    await tick()
    assert.deepEqual(s.written(), seq(0, 60))
  })

  it('the caller\'s list is left as it was, though the layer below consumes what it is given', () => {
    const s = new Layer()
    const list = new Uint8ArrayList(bytes(0, 8), bytes(8, 8))
    s.send(list)
    assert.equal(list.byteLength, 16)
    assert.deepEqual([...list.subarray()], seq(0, 16))
    assert.deepEqual(s.written(), seq(0, 16))
  })

  it('a chunk larger than one message takes the library\'s path, split as before', () => {
    const s = new Layer()
    ;(s as unknown as { maxMessageSize: number }).maxMessageSize = 16
    s.send(bytes(0, 40))
    assert.deepEqual(s.below.map(b => b.length), [16, 16, 8])
    assert.deepEqual(s.written(), seq(0, 40))
  })

  it('a layer below that throws aborts the stream and the write fails', () => {
    const s = new Layer()
    s.sendData = () => { throw new Error('socket gone') }
    assert.throws(() => s.send(bytes(0, 10)), /socket gone/)
    assert.equal(s.status, 'aborted')
    assert.throws(() => s.send(bytes(0, 10)))
  })
})
