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
import { decodeRequest, decodeResponse } from '../../src/delivery/wire.ts'
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
