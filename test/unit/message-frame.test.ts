/**
 * The direct encoder of message frames `{t: 1, h, e}` (src/net/frames.ts) writes what
 * DAG-CBOR writes, byte for byte, and decodes back.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import * as dagCbor from '@ipld/dag-cbor'
import { decodeFrame, encodeFrame, encodeMessageFrame } from '../../src/net/frames.ts'

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')

test('message frames: the direct encoder matches DAG-CBOR and decodes back', () => {
  for (const size of [0, 1, 23, 24, 255, 256, 65_535, 65_536]) {
    const e = new Uint8Array(size).map((_, i) => i * 7)
    for (const h of [0, 1, 23, 24, 255, 256, 70_000]) {
      const bytes = encodeMessageFrame(h, e)
      assert.equal(hex(bytes), hex(dagCbor.encode({ t: 1, h, e })), `h ${h}, ${size} bytes`)
      assert.equal(hex(encodeFrame({ t: 1, h, e })), hex(bytes))
      const f = decodeFrame(bytes)
      assert.ok(f?.t === 1)
      assert.equal(f.h, h)
      assert.equal(hex(f.e), hex(e))
    }
  }
})
