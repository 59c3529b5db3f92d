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

  it('a lone byte of a length prefix still waits for the next read', () => {
    const { d, thrown } = decoder()
    const f = frame(4, 9)
    assert.deepEqual([...d.decode(f.subarray(0, 1))], [])
    assert.equal(thrown(), 1)
    assert.deepEqual([...d.decode(f.subarray(1))].map(l => l.subarray()), [new Uint8Array(4).fill(9)])
  })

  it('emptyIsShort answers 0 for an empty buffer and defers to the decoder otherwise', () => {
    const quiet = emptyIsShort(uint16Length)
    assert.equal(quiet(new Uint8ArrayList()), 0)
    assert.equal(quiet(new Uint8Array([1, 2])), 258)
    assert.throws(() => quiet(new Uint8Array([1])), RangeError)
  })
})
