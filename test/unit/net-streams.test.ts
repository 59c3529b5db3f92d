import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import type { Stream } from '@libp2p/interface'
import * as lp from 'it-length-prefixed'
import { Uint8ArrayList } from 'uint8arraylist'
import { encode as dagCborEncode } from '@ipld/dag-cbor'
import { FrameLink, decodeFrame } from '../../src/net/frames.ts'
import { memoryStreamPair } from '../../src/routing/streams.ts'
import { messageStream } from '../helpers/fake-stream.ts'

/**
 * The parts of a libp2p Stream that FrameLink uses. The transport is "full": every write
 * stays in the write buffer until the test calls `drain()`, which empties it and fires
 * `idle`, as a muxer does when the remote grants window.
 */
function fakeStream () {
  const writes: Uint8Array[] = []
  const idle = new EventTarget()
  let buffered = 0
  const stream = {
    writeStatus: 'writable',
    get writeBufferLength () { return buffered },
    send (buf: Uint8Array) { writes.push(buf); buffered += 1024 * 1024; return false },
    addEventListener: (type: string, fn: EventListener) => { idle.addEventListener(type, fn) },
    removeEventListener: (type: string, fn: EventListener) => { idle.removeEventListener(type, fn) },
    pause () {},
    resume () {},
    readStatus: 'readable',
    close: async () => {},
    abort () {}
  }
  return { stream: stream as unknown as Stream, writes, drain: () => { buffered = 0; idle.dispatchEvent(new Event('idle')) } }
}

async function framesOf (buf: Uint8Array): Promise<number[]> {
  const out: number[] = []
  for await (const chunk of lp.decode([new Uint8ArrayList(buf)])) {
    const f = decodeFrame(chunk.subarray())
    if (f?.t === 1) out.push(f.h)
  }
  return out
}

describe('FrameLink', () => {
  it('batches frames queued together into one write, highest priority first', async () => {
    const { stream, writes, drain } = fakeStream()
    const link = new FrameLink(stream, { onFrame () {} })
    // h carries the priority so the order is visible on the wire.
    const sent = [0, 3, 1, 2, 3, 0].map(p => link.send({ t: 1, h: p, e: new Uint8Array(4) }, p))
    await new Promise(resolve => setImmediate(resolve))
    assert.equal(writes.length, 1, 'one write for frames queued in the same tick')
    assert.deepEqual(await framesOf(writes[0]), [3, 3, 2, 1, 0, 0])
    drain()
    await Promise.all(sent)
  })

  it('under load (transport full), later high-priority frames overtake queued low-priority ones', async () => {
    const { stream, writes, drain } = fakeStream()
    const link = new FrameLink(stream, { onFrame () {}, maxBatchBytes: 16 })
    const all = [link.send({ t: 1, h: 0, e: new Uint8Array(4) }, 0)]
    await new Promise(resolve => setImmediate(resolve)) // first write in flight, transport full
    for (const p of [0, 0, 3, 1]) all.push(link.send({ t: 1, h: p, e: new Uint8Array(4) }, p))
    for (let i = 0; i < 5; i++) { drain(); await new Promise(resolve => setImmediate(resolve)) }
    await Promise.all(all)
    const order = (await Promise.all(writes.map(framesOf))).flat()
    assert.deepEqual(order, [0, 3, 1, 0, 0])
  })
})

describe('FrameLink reading', () => {
  it('splits frames however the bytes are chunked: many per chunk, one across many', async () => {
    const { stream, feed, end } = messageStream()
    const got: number[] = []
    const garbage: string[] = []
    const link = new FrameLink(stream, { onFrame (f) { if (f.t === 1) got.push(f.h) }, onGarbage (d) { garbage.push(d) } })
    const sizes = Array.from({ length: 300 }, (_, i) => i === 150 ? 70_000 : (i * 37) % 300)
    const wire = Buffer.concat(sizes.map((n, h) => lp.encode.single(dagCborEncode({ t: 1, h, e: new Uint8Array(n) })).subarray()))
    let seed = 7
    for (let o = 0; o < wire.length;) {
      seed = (seed * 1103515245 + 12345) % 2147483648
      const n = 1 + (seed % 2000)
      feed(new Uint8Array(wire.subarray(o, o + n)))
      o += n
      if (seed % 5 === 0) await new Promise(resolve => setImmediate(resolve))
    }
    end()
    await link.done
    assert.deepEqual(got, sizes.map((_, h) => h))
    assert.deepEqual(garbage, [])
  })

  it('a chunk that is a list is split part by part: frames in one part stay views of it, frames across parts are whole', async () => {
    const { stream, feed, end } = messageStream()
    const got: number[] = []
    const raws: Uint8Array[] = []
    const garbage: string[] = []
    const link = new FrameLink(stream, { onFrame (f, raw) { if (f.t === 1) { got.push(f.h); raws.push(raw) } }, onGarbage (d) { garbage.push(d) } })
    const sizes = Array.from({ length: 120 }, (_, i) => i % 40 === 7 ? 9_000 : (i * 53) % 400)
    const frames = sizes.map((n, h) => lp.encode.single(dagCborEncode({ t: 1, h, e: new Uint8Array(n).fill(h) })).subarray())
    const wire = Buffer.concat(frames)
    // Lists of 1–6 parts of 1–3000 bytes each: frames cut anywhere, length prefixes included.
    let seed = 11
    const parts: Uint8Array[] = []
    for (let o = 0; o < wire.length;) {
      seed = (seed * 1103515245 + 12345) % 2147483648
      const n = 1 + (seed % 3000)
      parts.push(new Uint8Array(wire.subarray(o, o + n)))
      o += n
    }
    // The first part holds exactly the first frame: it must be handed on as a view of that part.
    const first = new Uint8Array(frames[0])
    feed(first, new Uint8Array(frames[1]))
    for (let i = 0; i < parts.length;) {
      const k = 1 + (i % 6)
      feed(...parts.slice(i, i + k))
      i += k
    }
    end()
    await link.done
    assert.deepEqual(got, [0, 1, ...sizes.map((_, h) => h)])
    assert.deepEqual(garbage, [])
    assert.equal(raws[0].buffer, first.buffer, 'a frame within one part is a view of it, not a copy of the joined list')
    for (let i = 2; i < raws.length; i++) {
      const h = got[i]
      const body = frames[h].subarray(frames[h][0] < 0x80 ? 1 : frames[h][1] < 0x80 ? 2 : 3)
      assert.deepEqual(Buffer.from(raws[i]), Buffer.from(body), `frame ${h} intact`)
    }
  })

  it('a length prefix above the frame limit closes the link', async () => {
    const { stream, feed } = messageStream()
    const garbage: string[] = []
    const link = new FrameLink(stream, { onFrame () {}, onGarbage (d) { garbage.push(d) } })
    feed(new Uint8Array([0xff, 0xff, 0xff, 0x7f]))
    await link.done
    assert.ok(link.isClosed)
    assert.match(garbage[0], /exceeds/)
  })
})

describe('in-process streams', () => {
  it('a writer waits when the reader does not read (backpressure), and resumes when it does', async () => {
    const [a, b] = memoryStreamPair(4)
    const writes: Array<Promise<void>> = []
    let done = 0
    for (let i = 0; i < 10; i++) writes.push(a.write(new Uint8Array([i])).then(() => { done++ }))
    await new Promise(resolve => setImmediate(resolve))
    assert.ok(done <= 5, `only the buffer's worth completes before reading (${done})`)
    const got: number[] = []
    const reader = (async () => { for await (const c of b) { got.push(c[0]); if (got.length === 10) break } })()
    await Promise.all(writes)
    await reader
    assert.deepEqual(got, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
  })
})
