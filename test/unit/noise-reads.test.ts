import { describe, it, before } from 'node:test'
import assert from 'node:assert/strict'
import { Uint8ArrayList } from 'uint8arraylist'
import { LengthPrefixedDecoder } from '@libp2p/utils'
import { emptyIsShort, quietLengthPrefixReads } from '../../src/net/noise-reads.ts'

/** Noise's own framing: a 2-byte big-endian length, then the message. */
function uint16Length (data: Uint8ArrayList | Uint8Array): number {
  if (data.length < 2) throw new RangeError('Could not decode int16BE')
  return data instanceof Uint8Array ? (data[0] << 8) | data[1] : data.getUint16(0)
}

function frame (n: number, fill: number): Uint8Array {
  const out = new Uint8Array(2 + n).fill(fill)
  out[0] = n >> 8
  out[1] = n & 0xff
  return out
}

function concat (...parts: Uint8Array[]): Uint8Array {
  return new Uint8Array(Buffer.concat(parts))
}

/** A Noise-style decoder whose length decoder counts the RangeErrors it throws. */
function decoder (): { d: LengthPrefixedDecoder, thrown: () => number } {
  let thrown = 0
  const d = new LengthPrefixedDecoder({
    lengthDecoder: (data) => {
      try {
        return uint16Length(data)
      } catch (err) {
        thrown++
        throw err
      }
    },
    encodingLength: () => 2
  })
  return { d, thrown: () => thrown }
}

describe('Noise reads without an exception per read (net/noise-reads.ts)', () => {
  before(() => { quietLengthPrefixReads() })

  it('a read that ends on a message boundary throws nothing', () => {
    const { d, thrown } = decoder()
    const out = [...d.decode(concat(frame(3, 1), frame(5, 2)))].map(l => l.subarray())
    assert.deepEqual(out, [new Uint8Array(3).fill(1), new Uint8Array(5).fill(2)])
    // Before: the loop read a third length from the empty buffer, and caught the RangeError.
    assert.equal(thrown(), 0)
  })

  it('messages split anywhere across reads come out whole and in order', () => {
    const wire = concat(frame(1, 1), frame(300, 2), frame(0, 3), frame(40, 4))
    for (let cut = 0; cut <= wire.length; cut++) {
      for (let cut2 = cut; cut2 <= wire.length; cut2 += 7) {
        const { d } = decoder()
        const got = [wire.subarray(0, cut), wire.subarray(cut, cut2), wire.subarray(cut2)].flatMap(c => [...d.decode(c)].map(l => l.subarray()))
        // A zero-length message is not yielded (the library's rule), the others are.
        assert.deepEqual(got, [new Uint8Array(1).fill(1), new Uint8Array(300).fill(2), new Uint8Array(40).fill(4)], `cuts ${cut}, ${cut2}`)
      }
    }
  })

  it('a message spread over reads comes out as one Uint8Array, not a list', () => {
    const { d } = decoder()
    const wire = concat(frame(300, 2), frame(40, 4))
    // Cut inside the first message, then inside the second: both come from the buffered path.
    const got = [wire.subarray(0, 100), wire.subarray(100, 320), wire.subarray(320)].flatMap(c => [...d.decode(c)])
    // Before: the library's Uint8ArrayList, which Noise's decrypt joined twice.
    for (const m of got) assert.ok(m instanceof Uint8Array, 'a Uint8Array')
    assert.deepEqual(got.map(m => new Uint8Array(m.subarray())), [new Uint8Array(300).fill(2), new Uint8Array(40).fill(4)])
  })

  it('a lone byte of a length prefix still waits for the next read', () => {
    const { d, thrown } = decoder()
    const f = frame(4, 9)
    assert.deepEqual([...d.decode(f.subarray(0, 1))], [])
    assert.equal(thrown(), 1)
    assert.deepEqual([...d.decode(f.subarray(1))].map(l => l.subarray()), [new Uint8Array(4).fill(9)])
  })

  it('a read of whole messages yields views of the read itself, nothing buffered', () => {
    const { d, thrown } = decoder()
    const read = concat(frame(3, 1), frame(0, 2), frame(5, 3))
    const out = [...d.decode(read)]
    assert.deepEqual(out.map(m => m.subarray()), [new Uint8Array(3).fill(1), new Uint8Array(5).fill(3)])
    // Before: a sublist of the decoder's buffer list per message.
    for (const m of out) assert.ok(m instanceof Uint8Array && m.buffer === read.buffer, 'a view of the read')
    assert.equal((d as unknown as { buffer: Uint8ArrayList }).buffer.byteLength, 0)
    assert.equal(thrown(), 0)
  })

  it('an incomplete message after whole ones waits in the buffer for the next read', () => {
    const { d } = decoder()
    const second = frame(6, 5)
    const first = [...d.decode(concat(frame(2, 4), second.subarray(0, 4)))].map(m => m.subarray())
    assert.deepEqual(first, [new Uint8Array(2).fill(4)])
    assert.deepEqual([...d.decode(second.subarray(4))].map(m => m.subarray()), [new Uint8Array(6).fill(5)])
  })

  it('a bad length still throws the library\'s error, after the messages before it', () => {
    const d = new LengthPrefixedDecoder({ lengthDecoder: uint16Length, maxDataLength: 100, encodingLength: () => 2 })
    const got: number[][] = []
    assert.throws(() => { for (const m of d.decode(concat(frame(2, 7), frame(200, 8)))) got.push([...m.subarray()]) }, /Invalid message length/)
    assert.deepEqual(got, [[7, 7]])
  })

  it('emptyIsShort answers 0 for an empty buffer and defers to the decoder otherwise', () => {
    const quiet = emptyIsShort(uint16Length)
    assert.equal(quiet(new Uint8ArrayList()), 0)
    assert.equal(quiet(new Uint8Array([1, 2])), 258)
    assert.throws(() => quiet(new Uint8Array([1])), RangeError)
  })
})
