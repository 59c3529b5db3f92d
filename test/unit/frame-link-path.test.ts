import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { FrameLink, encodeMessageFrame } from '../../src/net/frames.ts'
import { messageStream as idleStream } from '../helpers/fake-stream.ts'

const prefixed = (frame: Uint8Array): Uint8Array => Uint8Array.of(frame.length, ...frame)

describe('FrameLink on the request path', () => {
  it('a frame queued on an idle link reaches the stream in the next microtask, not a later turn', async () => {
    const { stream, writes } = idleStream()
    const link = new FrameLink(stream, { onFrame () {} })
    assert.equal(link.push(encodeMessageFrame(1, new Uint8Array(8))), true)
    assert.equal(writes.length, 0, 'not written synchronously: frames of the same tick share a write')
    await new Promise<void>(resolve => { queueMicrotask(resolve) })
    assert.equal(writes.length, 1)
  })

  it('a frame pushed in two pieces (a tail) is written as one frame, between the frames around it', async () => {
    const { stream, writes } = idleStream()
    const link = new FrameLink(stream, { onFrame () {} })
    const a = encodeMessageFrame(1, new Uint8Array(8))
    const b = encodeMessageFrame(2, new Uint8Array(300).fill(7))
    const c = encodeMessageFrame(3, new Uint8Array(8))
    link.push(a)
    link.push(b.subarray(0, 100), 1, undefined, b.subarray(100))
    link.push(c)
    assert.equal(link.queuedBytes, a.length + b.length + c.length)
    await new Promise<void>(resolve => { queueMicrotask(resolve) })
    const written = writes.flatMap(w => [...w])
    const varint = (n: number): number[] => n < 128 ? [n] : [(n & 0x7f) | 0x80, n >>> 7]
    assert.deepEqual(written, [...varint(a.length), ...a, ...varint(b.length), ...b, ...varint(c.length), ...c])
    assert.equal(link.queuedBytes, 0)
  })

  it('sendEncoded resolves without waiting for an idle event while the stream takes the data', async () => {
    const { stream, writes } = idleStream()
    const link = new FrameLink(stream, { onFrame () {} })
    await link.sendEncoded(encodeMessageFrame(1, new Uint8Array(8)))
    await link.sendEncoded(encodeMessageFrame(2, new Uint8Array(8)))
    assert.equal(writes.length, 2)
  })

  it('frames are handed to onFrame inside the message event, synchronously', () => {
    const { stream, feed } = idleStream()
    const got: number[] = []
    const link = new FrameLink(stream, { onFrame (f) { if (f.t === 1) got.push(f.h) } })
    const a = prefixed(encodeMessageFrame(1, new Uint8Array(4)))
    const b = prefixed(encodeMessageFrame(2, new Uint8Array(40)))
    feed(a, b.subarray(0, 10))
    assert.deepEqual(got, [1])
    feed(b.subarray(10))
    assert.deepEqual(got, [1, 2])
    assert.equal(link.isClosed, false)
  })

  it('a stream that ends inside a frame closes the link and says so', async () => {
    const { stream, feed, end } = idleStream()
    const garbage: string[] = []
    const link = new FrameLink(stream, { onFrame () {}, onGarbage (d) { garbage.push(d) } })
    feed(prefixed(encodeMessageFrame(1, new Uint8Array(40))).subarray(0, 20))
    end()
    await link.done
    assert.ok(link.isClosed)
    assert.match(garbage.join(';'), /ended inside a frame/)
  })

  it('a stream aborted under the link (a reset, a connection closed by a liveness check) is not counted as the peer\'s garbage', async () => {
    const { stream, feed } = idleStream()
    const garbage: string[] = []
    let closed = 0
    const link = new FrameLink(stream, { onFrame () {}, onGarbage (d) { garbage.push(d) }, onClose () { closed++ } })
    feed(prefixed(encodeMessageFrame(1, new Uint8Array(4))))
    stream.dispatchEvent(Object.assign(new Event('close'), { error: new Error('The operation was aborted due to timeout') }))
    await link.done
    assert.ok(link.isClosed)
    assert.equal(closed, 1)
    assert.deepEqual(garbage, [])
  })

  it('an error thrown while handling a frame closes the link instead of escaping into the muxer', async () => {
    const { stream, feed } = idleStream()
    const garbage: string[] = []
    let closed = 0
    const link = new FrameLink(stream, {
      onFrame () { throw new Error('handler broke') },
      onGarbage (d) { garbage.push(d) },
      onClose () { closed++ }
    })
    feed(prefixed(encodeMessageFrame(1, new Uint8Array(4))))
    await link.done
    assert.ok(link.isClosed)
    assert.equal(closed, 1)
    assert.match(garbage[0], /handler broke/)
    await assert.rejects(link.sendEncoded(encodeMessageFrame(1, new Uint8Array(1))), /closed/)
  })
})
