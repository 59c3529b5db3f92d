/**
 * prepareOwnedEnvelope checks only ts, nonce and body of fields whose other members repeat the
 * last fields it checked in full (the SDK's publications): whatever differs in any other
 * member, or a member holding an object, is checked in full again; the encoding is the one
 * the generic encoder gives.
 */
import { test, describe } from 'node:test'
import assert from 'node:assert/strict'
import * as dagCbor from '@ipld/dag-cbor'
import { FieldsMemo, prepareOwnedEnvelope, newLeafFields, signPrepared, decodeEnvelope, type EnvelopeFields } from '../../src/core/envelope.ts'
import { agentKeyFromSeed } from '../../src/core/keys.ts'
import { InvalidEnvelopeError } from '../../src/core/errors.ts'

const A = agentKeyFromSeed(new Uint8Array(32).fill(1))
const B = agentKeyFromSeed(new Uint8Array(32).fill(2))

/** Fields as the SDK builds them (on the batch prototype, in its member order). */
function sdkFields (over: Record<string, unknown> = {}, drop: string[] = []): EnvelopeFields {
  const f = newLeafFields()
  const all: Record<string, unknown> = {
    v: 1, net: 'test', mode: 'topic', type: 'inform', from: A.id, topic: 'a/b', ts: 1_767_225_600_000, ttl: 60, hops: 8, prio: 1,
    ct: 'application/octet-stream', body: new Uint8Array([1, 2, 3])
  }
  for (const k in all) if (!drop.includes(k)) f[k] = k in over ? over[k] : all[k]
  for (const k in over) if (!(k in all)) f[k] = over[k]
  return f as unknown as EnvelopeFields
}

/** A memo that holds the fields sdkFields() builds (checked in full once). */
function primed (): FieldsMemo {
  const memo = new FieldsMemo()
  prepareOwnedEnvelope(sdkFields(), A, memo)
  assert.equal(memo.match(sdkFields() as unknown as Record<string, unknown>) >= 0, true)
  return memo
}

const refused = (f: EnvelopeFields, detail: RegExp, key = A): void => {
  const memo = primed()
  assert.throws(() => prepareOwnedEnvelope(f, key, memo), (err: unknown) => err instanceof InvalidEnvelopeError && detail.test(err.message))
}

describe('prepareOwnedEnvelope, fields repeating the last checked ones', () => {
  test('encodes as the generic encoder does, with and without a nonce, and signs verifiable envelopes', () => {
    const memo = primed()
    const prepared = []
    for (let i = 0; i < 40; i++) {
      const f = sdkFields({ ts: 1_767_225_600_000 + (i >> 2), body: new Uint8Array(i + 1).fill(i) })
      if (i % 4 !== 0) (f as unknown as Record<string, unknown>).nonce = i % 4
      // Two topics in turn: both shapes stay remembered.
      if (i % 3 === 2) (f as unknown as Record<string, unknown>).topic = 'a/c'
      const taken = memo.match(f as unknown as Record<string, unknown>) >= 0
      if (i >= 3) assert.equal(taken, true)
      const p = prepareOwnedEnvelope(f, A, memo)
      const plain: Record<string, unknown> = {}
      for (const k in f) plain[k] = (f as unknown as Record<string, unknown>)[k]
      assert.deepEqual(Buffer.from(p.unsigned), Buffer.from(dagCbor.encode(plain)))
      prepared.push(p)
    }
    // Signed alone (`sig` spliced in at the marks), and in a batch (`bp` too).
    for (const p of prepared.slice(0, 8)) assert.equal(decodeEnvelope(signPrepared([p], A)[0].bytes).ok, true)
    for (const env of signPrepared(prepared.slice(8), A)) assert.equal(decodeEnvelope(env.bytes).ok, true)
  })

  test('the varying members are still checked', () => {
    refused(sdkFields({ ts: -1 }), /ts must be/)
    refused(sdkFields({ ts: 1.5 }), /ts must be/)
    refused(sdkFields({ nonce: 0 }), /nonce must be/)
    refused(sdkFields({ body: 'text' }), /body must be bytes/)
    refused(sdkFields({ body: undefined }), /body must be bytes/)
  })

  test('any other member that differs is checked in full', () => {
    refused(sdkFields({ topic: 'a//b' }), /topic/)
    refused(sdkFields({ ttl: 0 }), /ttl must be/)
    refused(sdkFields({ prio: 4 }), /prio must be/)
    refused(sdkFields({ net: 'Not A Net' }), /net must be/)
    refused(sdkFields({ mode: 'direct' }), /direct mode/)
    refused(sdkFields({ extra: 1 }), /unknown field/)
    refused(sdkFields({ schema: '' }), /schema must be/)
    refused(sdkFields({}, ['ct']), /ct must be/)
    refused(sdkFields({}, ['topic']), /topic mode needs topic/)
    refused(sdkFields({ from: B.id }), /must be the signing agent/)
  })

  test('members holding objects are never taken as checked', () => {
    const to = [B.id]
    const memo = new FieldsMemo()
    const direct = (): EnvelopeFields => sdkFields({ mode: 'direct', to }, ['topic'])
    prepareOwnedEnvelope(direct(), A, memo)
    prepareOwnedEnvelope(direct(), A, memo)
    assert.equal(memo.shapes.length, 0)
    to[0] = 'not an agent' as typeof to[0]
    assert.throws(() => prepareOwnedEnvelope(direct(), A, memo), /to must contain/)
    const dlv = { ack: true }
    prepareOwnedEnvelope(sdkFields({ dlv }), A, memo)
    ;(dlv as Record<string, unknown>).ack = 'yes'
    assert.throws(() => prepareOwnedEnvelope(sdkFields({ dlv }), A, memo), /dlv.ack must be/)
  })
})
