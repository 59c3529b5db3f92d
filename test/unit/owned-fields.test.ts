/**
 * prepareOwnedEnvelope checks only ts, nonce and body of fields whose other members repeat the
 * last fields it checked in full (the SDK's publications): whatever differs in any other
 * member, or a member holding an object, is checked in full again; the encoding is the one
 * the generic encoder gives.
 */
import { test, describe } from 'node:test'
import assert from 'node:assert/strict'
import * as dagCbor from '@ipld/dag-cbor'
import { FieldsMemo, prepareOwnedEnvelope, newLeafFields, signPrepared, decodeEnvelope, type EnvelopeFields, type PreparedEnvelope } from '../../src/core/envelope.ts'
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

/** prepareOwnedEnvelope with `memo`, its bytes checked against the generic encoder's. */
function preparedAsGeneric (f: EnvelopeFields, memo: FieldsMemo): PreparedEnvelope {
  const p = prepareOwnedEnvelope(f, A, memo)
  const plain: Record<string, unknown> = {}
  for (const k in f) plain[k] = (f as unknown as Record<string, unknown>)[k]
  assert.deepEqual(Buffer.from(p.unsigned), Buffer.from(dagCbor.encode(plain)))
  return p
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
      prepared.push(preparedAsGeneric(f, memo))
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

  test('members holding objects are compared by content, never taken by reference', () => {
    const to = [B.id]
    const memo = new FieldsMemo()
    const direct = (): EnvelopeFields => sdkFields({ mode: 'direct', to }, ['topic'])
    prepareOwnedEnvelope(direct(), A, memo)
    assert.equal(memo.match(direct() as unknown as Record<string, unknown>) >= 0, true)
    to[0] = 'not an agent' as typeof to[0]
    assert.equal(memo.match(direct() as unknown as Record<string, unknown>), -1)
    assert.throws(() => prepareOwnedEnvelope(direct(), A, memo), /to must contain/)
    const dlv = { ack: true }
    prepareOwnedEnvelope(sdkFields({ dlv }), A, memo)
    ;(dlv as Record<string, unknown>).ack = 'yes'
    assert.throws(() => prepareOwnedEnvelope(sdkFields({ dlv }), A, memo), /dlv.ack must be/)
    // Several recipients, a dlv that is not a plain object of primitives: not remembered.
    const before = memo.shapes.length
    prepareOwnedEnvelope(sdkFields({ mode: 'multicast', to: [B.id, A.id] }, ['topic']), A, memo)
    prepareOwnedEnvelope(sdkFields({ dlv: new (class { ack = true })() }), A, memo)
    // Replies (`corr`, another each time): not remembered either.
    prepareOwnedEnvelope(sdkFields({ mode: 'direct', to: [B.id], corr: 'bafy-request-1' }, ['topic']), A, memo)
    assert.equal(memo.shapes.length, before)
  })
})

describe('prepareOwnedEnvelope, durable sends to one agent (dlv.seq varies)', () => {
  const durable = (seq: unknown, over: Record<string, unknown> = {}): EnvelopeFields =>
    sdkFields({ mode: 'direct', to: [B.id], dlv: { seq, durable: true }, ...over }, ['topic'])
  const primedDurable = (): FieldsMemo => {
    const memo = new FieldsMemo()
    prepareOwnedEnvelope(durable(1_767_225_600_000_000), A, memo)
    assert.equal(memo.match(durable(1_767_225_600_000_001) as unknown as Record<string, unknown>) >= 0, true)
    return memo
  }

  test('encodes as the generic encoder does, whatever the seq, nonce and body, and signs verifiable envelopes', () => {
    const memo = primedDurable()
    const prepared = []
    const seqs = [0, 1, 23, 24, 255, 256, 65_536, 2 ** 32, 1_767_225_600_000_123, Number.MAX_SAFE_INTEGER]
    for (let i = 0; i < 40; i++) {
      const f = durable(seqs[i % seqs.length], { ts: 1_767_225_600_000 + (i >> 2), body: new Uint8Array(i * 7 + 1).fill(i) })
      if (i % 4 !== 0) (f as unknown as Record<string, unknown>).nonce = i % 4
      assert.equal(memo.match(f as unknown as Record<string, unknown>) >= 0, true)
      prepared.push(preparedAsGeneric(f, memo))
    }
    for (const p of prepared.slice(0, 8)) assert.equal(decodeEnvelope(signPrepared([p], A)[0].bytes).ok, true)
    for (const env of signPrepared(prepared.slice(8), A)) {
      const d = decodeEnvelope(env.bytes)
      assert.equal(d.ok, true)
      if (d.ok) assert.deepEqual(d.envelope.dlv, env.dlv)
    }
  })

  test('seq is still checked, and any other difference is checked in full', () => {
    const refusedDurable = (f: EnvelopeFields, detail: RegExp): void => {
      const memo = primedDurable()
      assert.throws(() => prepareOwnedEnvelope(f, A, memo), (err: unknown) => err instanceof InvalidEnvelopeError && detail.test(err.message))
    }
    refusedDurable(durable(-1), /dlv.seq must be/)
    refusedDurable(durable(1.5), /dlv.seq must be/)
    refusedDurable(durable(Number.MAX_SAFE_INTEGER + 2), /dlv.seq must be/)
    refusedDurable(durable('7'), /dlv.seq must be/)
    refusedDurable(durable(1, { to: ['did:key:zNope'] }), /to must contain/)
    refusedDurable(durable(1, { to: [B.id, A.id] }), /direct mode needs exactly one/)
    refusedDurable(durable(1, { dlv: { seq: 1, durable: 'yes' } }), /dlv.durable must be/)
    refusedDurable(durable(1, { dlv: { seq: 1, durable: true, extra: 1 } }), /unknown delivery field/)
    refusedDurable(durable(1, { dlv: [1] }), /dlv must be a map/)
    // Another recipient or other delivery options: a shape of their own, the same bytes as the generic encoder's.
    const memo = primedDurable()
    for (const f of [durable(5, { to: [A.id] }), durable(6, { dlv: { ack: true, seq: 6, durable: true } }), durable(7, { dlv: { durable: true } })]) {
      preparedAsGeneric(f, memo)
    }
  })
})
