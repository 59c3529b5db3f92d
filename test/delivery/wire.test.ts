/**
 * Pure parts of durable delivery: the durable protocol's request decoding (malformed input
 * is refused, never thrown) and receipts (signed by the recipient, verifiable by anyone).
 */
import { test, describe } from 'node:test'
import assert from 'node:assert/strict'
import * as dagCbor from '@ipld/dag-cbor'
import { generateAgentKey } from '../../src/core/keys.ts'
import { signEnvelope, type EnvelopeFields } from '../../src/core/envelope.ts'
import type { MessageId, NetworkId } from '../../src/core/ids.ts'
import * as lp from 'it-length-prefixed'
import { decodeRequest, decodeResponse, encodeFrame } from '../../src/delivery/wire.ts'
import { isReceipt, parseReceipt, receiptPayload, verifyReceipt } from '../../src/delivery/receipts.ts'
import { errorFromResponse } from '../../src/delivery/durable.ts'

const alice = generateAgentKey()
const bob = generateAgentKey()

function env (from = bob, fields: Partial<EnvelopeFields> = {}, body: unknown = receiptPayload(['bciqmcmvsz7vpklmppedjometftmiuy7ntcju4ebyefdmdvivipnzhpq' as MessageId])) {
  return signEnvelope({
    v: 1, net: 'fedmesh' as NetworkId, mode: 'direct', type: 'receipt', from: from.id, to: [alice.id], ts: Date.now(), ttl: 60, hops: 8, prio: 1,
    ct: 'application/json', body: new TextEncoder().encode(JSON.stringify(body)), ...fields
  }, from)
}

describe('durable protocol frames', () => {
  const leaf = (n: number, fill: number): Uint8Array => new Uint8Array(n).fill(fill)
  const frames: Array<Record<string, unknown>> = [
    { r: 1, op: 'putb', s: leaf(64, 1), l: [leaf(600, 2), leaf(32, 3), leaf(700, 4)], home: undefined, ho: undefined },
    { r: 2 ** 40, op: 'putb', s: leaf(64, 1), l: Array.from({ length: 300 }, (_, i) => leaf(500 + i, i & 255)), home: '12D3KooWhome', ho: true },
    { r: 3, op: 'puts', es: [leaf(10, 1), leaf(0, 0)], home: 'peer-é', ho: false },
    { r: 4, op: 'put', e: leaf(70_000, 9) },
    { r: 5, op: 'expired', from: 'did:key:z6Mk', ids: ['b1', 'b2'] },
    { r: 6, ok: true, st: 'stored' },
    { r: 7, ok: true, rs: [{ ok: true, st: 'duplicate' }, { ok: false, code: 'QuotaExceededError', msg: 'full', d: { scope: 'inbox', used: -1, limit: null } }] },
    { r: 8, ok: false, code: 'E', msg: 'ratio', d: { ratio: 0.5, big: 2n ** 60n } },
    { r: 9, ok: false, code: 'E', msg: 'ünïcode ✓', d: { 'ключ': 'значение', nested: { a: [1, 'x', true, false, null] } } }
  ]

  test('a frame is its length prefix and the DAG-CBOR dagCbor.encode writes, byte for byte', () => {
    for (const [i, m] of frames.entries()) {
      const clean = Object.fromEntries(Object.entries(m).filter(([, v]) => v !== undefined))
      assert.deepEqual(encodeFrame(m), lp.encode.single(dagCbor.encode(clean)).subarray(), `frame ${i}`)
    }
  })

  test('a frame decodes to what the general decoder reads from it; an envelope of put or puts is a buffer of its own', () => {
    for (const [i, m] of frames.entries()) {
      const clean = Object.fromEntries(Object.entries(m).filter(([, v]) => v !== undefined))
      const bytes = dagCbor.encode(clean)
      assert.deepEqual(m.op != null ? decodeRequest(bytes) : decodeResponse(bytes), clean, `frame ${i}`)
    }
    const read = new Uint8Array(4096)
    const put = dagCbor.encode({ r: 1, op: 'put', e: leaf(100, 7) })
    read.set(put, 100)
    const got = decodeRequest(read.subarray(100, 100 + put.length))
    assert.ok(got?.op === 'put')
    assert.equal(got.e.buffer.byteLength, 100)
    const puts = dagCbor.encode({ r: 1, op: 'puts', es: [leaf(50, 7), leaf(60, 8)] })
    read.set(puts, 0)
    const got2 = decodeRequest(read.subarray(0, puts.length))
    assert.ok(got2?.op === 'puts')
    assert.deepEqual(got2.es.map(e => e.buffer.byteLength), [50, 60])
  })

  test('a frame in a form the canonical reader does not take is read by the general decoder, as before', () => {
    // Keys out of canonical order, and a float: well-formed CBOR the general decoder reads.
    const unordered = Uint8Array.from([0xa3, 0x62, 0x6f, 0x6b, 0xf5, 0x61, 0x72, 0x01, 0x62, 0x73, 0x74, 0x66, 0x73, 0x74, 0x6f, 0x72, 0x65, 0x64])
    let general: unknown
    try { general = dagCbor.decode(unordered) } catch { general = undefined }
    assert.deepEqual(decodeResponse(unordered), general === undefined ? undefined : general)
    const float = dagCbor.encode({ r: 1, ok: false, code: 'E', msg: 'm', d: { x: 0.25 } })
    assert.deepEqual(decodeResponse(float), dagCbor.decode(float))
    assert.equal(decodeRequest(Uint8Array.from([0xff])), undefined)
  })
})

describe('durable protocol requests', () => {
  test('well-formed requests decode', () => {
    assert.deepEqual(decodeRequest(dagCbor.encode({ r: 1, op: 'put', e: new Uint8Array([1]) }))?.op, 'put')
    assert.equal(decodeRequest(dagCbor.encode({ r: 2, op: 'put', e: new Uint8Array([1]), home: '12D3KooW', ho: true }))?.op, 'put')
    assert.equal(decodeRequest(dagCbor.encode({ r: 3, op: 'ack', rc: new Uint8Array([1]) }))?.op, 'ack')
    assert.equal(decodeRequest(dagCbor.encode({ r: 4, op: 'pull', to: 'did:key:z6Mk' }))?.op, 'pull')
    assert.equal(decodeRequest(dagCbor.encode({ r: 5, op: 'expired', from: 'did:key:z6Mk', ids: ['b1'] }))?.op, 'expired')
  })

  test('malformed requests are refused, not thrown', () => {
    const bad: unknown[] = [
      { op: 'put', e: new Uint8Array([1]) },
      { r: -1, op: 'put', e: new Uint8Array([1]) },
      { r: 1, op: 'put', e: 'text' },
      { r: 1, op: 'put', e: new Uint8Array([1]), ho: 'yes' },
      { r: 1, op: 'ack', to: 'x', ids: ['a'] },
      { r: 1, op: 'pull' },
      { r: 1, op: 'expired', from: 'x', ids: Array.from({ length: 1001 }, () => 'a') },
      { r: 1, op: 'drop-everything' },
      [1, 2, 3]
    ]
    for (const b of bad) assert.equal(decodeRequest(dagCbor.encode(b)), undefined, JSON.stringify(b, (_k, v) => v instanceof Uint8Array ? 'bytes' : v))
    assert.equal(decodeRequest(new Uint8Array([0xff, 0x00])), undefined)
    assert.equal(decodeResponse(dagCbor.encode({ r: 1, ok: false })), undefined)
    assert.equal(decodeResponse(dagCbor.encode({ r: 1, ok: true, st: 'stored' }))?.ok, true)
  })

  test('typed errors come back from response codes', () => {
    const q = errorFromResponse('QuotaExceededError', 'full', { quota: 'sender-count', limit: 3, current: 3, requested: 1, recipient: 'r', sender: 's' })
    assert.equal(q.code, 'QuotaExceededError')
    assert.equal(q.details?.quota, 'sender-count')
    assert.equal(errorFromResponse('MessageExpiredError', 'late').code, 'MessageExpiredError')
    assert.equal(errorFromResponse('AgentNotFoundError', 'who').code, 'AgentNotFoundError')
    assert.equal(errorFromResponse('SomethingNew', 'eh').code, 'SomethingNew')
  })
})

describe('receipts', () => {
  test('a receipt verifies from its bytes and names signer, addressee and ids', () => {
    const e = env()
    assert.ok(isReceipt(e))
    const r = verifyReceipt(e.bytes, { by: bob.id, id: 'bciqmcmvsz7vpklmppedjometftmiuy7ntcju4ebyefdmdvivipnzhpq' as MessageId })
    assert.equal(r.by, bob.id)
    assert.equal(r.to, alice.id)
    assert.equal(r.ids.length, 1)
    assert.deepEqual(parseReceipt(e).ids, r.ids)
  })

  test('wrong signer, wrong id, tampered bytes, bad bodies are refused', () => {
    const e = env()
    assert.throws(() => verifyReceipt(e.bytes, { by: alice.id }), { code: 'InvalidEnvelopeError' })
    assert.throws(() => verifyReceipt(e.bytes, { id: 'bciqother' as MessageId }), { code: 'InvalidEnvelopeError' })
    const tampered = new Uint8Array(e.bytes)
    tampered[tampered.length - 3] ^= 1
    assert.throws(() => verifyReceipt(tampered), { code: 'InvalidEnvelopeError' })
    for (const body of [{}, { ids: [] }, { ids: ['not-an-id'] }, { ids: Array.from({ length: 257 }, () => 'bciqmcmvsz7vpklmppedjometftmiuy7ntcju4ebyefdmdvivipnzhpq') }]) {
      assert.throws(() => parseReceipt(env(bob, {}, body)), { code: 'InvalidEnvelopeError' }, JSON.stringify(body).slice(0, 40))
    }
    assert.throws(() => parseReceipt(env(bob, { type: 'inform' })), { code: 'InvalidEnvelopeError' })
  })
})
