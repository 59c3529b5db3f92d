/**
 * LeafDecoder (a batch frame's leaves read against the leaves before them): the same
 * verdict, the same detail and the same values as decodeLeafFields for every leaf — as
 * signed, and with every kind of damage a sender could make to a leaf that otherwise
 * repeats the one before it.
 */
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import * as dagCbor from '@ipld/dag-cbor'
import { generateAgentKey } from '../../src/core/keys.ts'
import { LeafDecoder, LeafFailure, decodeLeafFields, encodeEnvelopeFields, type EnvelopeFields } from '../../src/core/envelope.ts'
import { createPrng } from '../../src/sim/prng.ts'
import type { NetworkId, Topic } from '../../src/core/ids.ts'

const key = generateAgentKey()
const T0 = 1_763_000_000_000

function fields (i: number, over: Partial<EnvelopeFields> = {}): EnvelopeFields {
  const f: EnvelopeFields = {
    v: 1, net: 'test' as NetworkId, mode: 'topic', type: 'inform', from: key.id, topic: 'a/b' as Topic, ts: T0 + (i >> 2),
    ttl: 60, hops: 16, prio: 1, ct: 'application/octet-stream', body: Uint8Array.from({ length: 40 + (i % 3) }, (_, j) => (i * 7 + j) & 255), ...over
  }
  if ((i & 3) !== 0) f.nonce = i & 3
  return f
}

/** The verdict of one decode, comparable with deepEqual (values, prototype and failure detail). */
function verdict (r: EnvelopeFields | LeafFailure): unknown {
  if (r instanceof LeafFailure) return { reason: r.reason, detail: r.detail }
  return { proto: Object.getPrototypeOf(r), keys: Object.keys(r), value: { ...r } }
}

/** A batch's leaves: mostly repeating each other, with a few that differ in other fields. */
function leaves (): Uint8Array[] {
  const out: Uint8Array[] = []
  for (let i = 0; i < 48; i++) {
    const over: Partial<EnvelopeFields> = i % 11 === 5 ? { topic: 'a/c' as Topic } : i % 13 === 7 ? { corr: `c${i}`, dlv: { ack: true, seq: i } } : {}
    out.push(encodeEnvelopeFields(fields(i, over)))
  }
  return out
}

describe('LeafDecoder', () => {
  test('the leaves of a batch as signed: the values decodeLeafFields gives', () => {
    const d = new LeafDecoder()
    const ls = leaves()
    let prev: EnvelopeFields | undefined
    for (const [i, l] of ls.entries()) {
      const got = d.decode(l)
      assert.deepEqual(verdict(got), verdict(decodeLeafFields(l)), `leaf ${i}`)
      assert.ok(!(got instanceof LeafFailure))
      // An object is not shared between envelopes.
      if (prev?.dlv !== undefined && got.dlv !== undefined) assert.notEqual(prev.dlv, got.dlv)
      prev = got
    }
    // Most leaves were read against an earlier one (those with another topic, correlation or
    // delivery map, and the first of each layout, in full).
    assert.ok(d.repeated >= 20, `${d.repeated} of ${ls.length} read against a layout`)
  })

  test('a leaf that repeats the one before it but in a damaged place: the verdict and detail of decodeLeafFields', () => {
    const prng = createPrng(7)
    const rnd = (): number => prng.next()
    const ls = leaves()
    let checked = 0
    let repeated = 0
    for (let round = 0; round < 3000; round++) {
      const i = 1 + Math.floor(rnd() * (ls.length - 1))
      const bad = ls[i].slice()
      const kind = Math.floor(rnd() * 4)
      let input: Uint8Array
      if (kind === 0) {
        bad[Math.floor(rnd() * bad.length)] ^= 1 << Math.floor(rnd() * 8)
        input = bad
      } else if (kind === 1) {
        bad[Math.floor(rnd() * bad.length)] = Math.floor(rnd() * 256)
        input = bad
      } else if (kind === 2) input = bad.subarray(0, Math.floor(rnd() * bad.length))
      else {
        const at = Math.floor(rnd() * bad.length)
        input = Uint8Array.from([...bad.subarray(0, at), Math.floor(rnd() * 256), ...bad.subarray(at)])
      }
      // A decoder that has seen the leaves before this one (its layouts), as in a batch frame.
      const d = new LeafDecoder()
      for (let j = Math.max(0, i - 3); j < i; j++) d.decode(ls[j])
      const before = d.repeated
      assert.deepEqual(verdict(d.decode(input)), verdict(decodeLeafFields(input)), `round ${round}: leaf ${i}, damage ${kind}`)
      repeated += d.repeated - before
      checked++
    }
    assert.equal(checked, 3000)
    // Damage inside a time, nonce or body leaves the layout usable: those rounds took the short path.
    assert.ok(repeated > 100, `${repeated} rounds read against a layout`)
  })

  test('time, nonce and body are checked anew in a leaf that repeats every other byte', () => {
    const d = new LeafDecoder()
    const good = fields(1)
    d.decode(encodeEnvelopeFields(good))
    const bad = [
      { ...good, ts: 'soon' },
      { ...good, nonce: 0 },
      { ...good, body: 'text' },
      { ...good, ts: -1 }
    ]
    for (const f of bad) {
      const bytes = dagCbor.encode(f)
      const got = d.decode(bytes)
      assert.ok(got instanceof LeafFailure, JSON.stringify(f, (_k, v) => v instanceof Uint8Array ? '<bytes>' : v))
      assert.deepEqual(verdict(got), verdict(decodeLeafFields(bytes)))
    }
  })

  test('leaves that differ only in their delivery map (a durable send\'s sequence numbers) are read against a layout, and a bad one is refused as decodeLeafFields refuses it', () => {
    const d = new LeafDecoder()
    for (let i = 0; i < 16; i++) {
      const bytes = encodeEnvelopeFields(fields(4 * i, { mode: 'direct', to: [key.id], dlv: { seq: 1000 + i, durable: true } }))
      assert.deepEqual(verdict(d.decode(bytes)), verdict(decodeLeafFields(bytes)), `leaf ${i}`)
    }
    assert.ok(d.repeated >= 14, `${d.repeated} of 16 read against a layout`)
    const good = fields(4, { mode: 'direct', to: [key.id], dlv: { seq: 2000, durable: true } })
    for (const dlv of [{ seq: 1, durable: true, extra: true }, { seq: 'x', durable: true }, { seq: 1, durable: 1 }, { seq: 1.5, durable: true }, { seq: 1, durable: true, ack: 'yes' }, { seq: 2 ** 60, durable: true }]) {
      const bytes = dagCbor.encode({ ...good, dlv })
      const got = d.decode(bytes)
      assert.ok(got instanceof LeafFailure, JSON.stringify(dlv))
      assert.deepEqual(verdict(got), verdict(decodeLeafFields(bytes)))
    }
  })

  test('a repeated recipient list is a new array per envelope: changing one changes neither the others nor the leaves read after it', () => {
    const d = new LeafDecoder()
    const other = generateAgentKey()
    const got: EnvelopeFields[] = []
    for (let i = 0; i < 8; i++) {
      const bytes = encodeEnvelopeFields(fields(4 * i, { mode: 'multicast', to: [key.id, other.id], dlv: { seq: i } }))
      const f = d.decode(bytes)
      assert.ok(!(f instanceof LeafFailure))
      assert.deepEqual(verdict(f), verdict(decodeLeafFields(bytes)), `leaf ${i}`)
      got.push(f)
      // The caller's array is its own: what it does to it stays there.
      ;(f.to as string[]).push('x')
      ;(f.to as string[])[0] = 'y'
    }
    assert.ok(d.repeated >= 6, `${d.repeated} of 8 read against a layout`)
    for (const f of got) assert.deepEqual(f.to, ['y', other.id, 'x'])
    assert.equal(new Set(got.map(f => f.to)).size, got.length)
  })

  test('a leaf over the size limit is refused before any layout is tried', () => {
    const d = new LeafDecoder(300)
    const small = encodeEnvelopeFields(fields(1, { body: new Uint8Array(10) }))
    assert.ok(!(d.decode(small) instanceof LeafFailure))
    const big = encodeEnvelopeFields(fields(1, { body: new Uint8Array(400) }))
    assert.deepEqual(verdict(d.decode(big)), verdict(decodeLeafFields(big, 300)))
  })

  test('leaves that are views of one buffer at any offset (a batch frame\'s), each byte of one changed in turn: the verdict of decodeLeafFields', () => {
    const ls = leaves().slice(0, 4)
    for (let shift = 0; shift < 4; shift++) {
      // Packed one after another from an odd offset, as a frame's leaves lie in its buffer.
      const frame = new Uint8Array(shift + ls.reduce((n, l) => n + l.length, 0) + 3)
      const views: Uint8Array[] = []
      let at = shift
      for (const l of ls) { frame.set(l, at); views.push(frame.subarray(at, at + l.length)); at += l.length }
      const last = views[views.length - 1]
      const decoder = (): LeafDecoder => {
        const d = new LeafDecoder()
        for (const v of views.slice(0, -1)) assert.ok(!(d.decode(v) instanceof LeafFailure))
        return d
      }
      let repeated = 0
      for (let b = 0; b < last.length; b++) {
        last[b] ^= 0x20
        assert.deepEqual(verdict(decoder().decode(last)), verdict(decodeLeafFields(last)), `shift ${shift}, byte ${b}`)
        last[b] ^= 0x20
        const d = decoder()
        const before = d.repeated
        assert.deepEqual(verdict(d.decode(last)), verdict(decodeLeafFields(last)), `shift ${shift}, byte ${b} restored`)
        repeated += d.repeated - before
      }
      // Intact, the last leaf is read against the layout of one before it.
      assert.equal(repeated, last.length, `shift ${shift}`)
    }
  })
})
