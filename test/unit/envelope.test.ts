import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import * as dagCbor from '@ipld/dag-cbor'
import {
  agentKeyFromSeed, decodeEnvelope, envelopeToJson, signEnvelope, compressPayload, envelopePayload, checkFields,
  generateAgentKey, isAgentId, didFromPublicKey, verifyByDid, InvalidEnvelopeError, type EnvelopeFields, type NetworkId, type Topic
} from '../../src/index.ts'
import { buildVectors } from '../../scripts/gen-vectors.ts'

const file = JSON.parse(readFileSync(new URL('../vectors/envelopes.json', import.meta.url), 'utf8'))
const unhex = (h: string): Uint8Array => new Uint8Array(Buffer.from(h, 'hex'))

describe('PROTOCOL.md test vectors', () => {
  it('seeds give the documented did:key ids', () => {
    assert.equal(agentKeyFromSeed(unhex(file.seeds.A)).id, file.agents.A)
    assert.equal(agentKeyFromSeed(unhex(file.seeds.B)).id, file.agents.B)
  })

  it('re-deriving every vector gives identical bytes, ids and signatures', () => {
    assert.deepEqual(buildVectors(), file)
  })

  for (const v of file.vectors) {
    it(`decodes and verifies: ${v.name}`, () => {
      const res = decodeEnvelope(unhex(v.wire))
      assert.ok(res.ok, JSON.stringify(res))
      assert.equal(res.envelope.id, v.id)
      assert.equal(Buffer.from(res.envelope.sig).toString('hex'), v.sig)
      assert.equal(Buffer.from(dagCbor.encode({ ...v.fields, body: unhex(v.fields.body) })).toString('hex'), v.unsigned)
    })

    it(`any flipped byte is rejected, never thrown: ${v.name}`, () => {
      const wire = unhex(v.wire)
      for (let i = 0; i < wire.length; i += 7) {
        const t = new Uint8Array(wire)
        t[i] ^= 0x01
        const res = decodeEnvelope(t)
        assert.equal(res.ok, false, `byte ${i}`)
      }
    })
  }
})

describe('envelope', () => {
  const key = generateAgentKey()
  const other = generateAgentKey()
  const base = (over: Partial<EnvelopeFields> = {}): EnvelopeFields => ({
    v: 1, net: 'test' as NetworkId, mode: 'topic', type: 'inform', from: key.id, topic: 'a/b' as Topic, ts: Date.now(), ttl: 60, hops: 8, prio: 1,
    ct: 'application/json', body: new TextEncoder().encode('{"x":1}'), ...over
  })

  it('round-trips and gives the JSON form', () => {
    const env = signEnvelope(base(), key)
    const res = decodeEnvelope(env.bytes)
    assert.ok(res.ok)
    assert.equal(res.envelope.id, env.id)
    const j = envelopeToJson(env)
    assert.deepEqual(j.payload, { x: 1 })
    assert.equal(j.from, key.id)
    const bin = envelopeToJson(signEnvelope(base({ ct: 'application/octet-stream', body: Uint8Array.from([1, 2]) }), key))
    assert.equal(bin.payloadBase64, 'AQI=')
  })

  it('refuses to sign for another agent or with bad fields', () => {
    assert.throws(() => signEnvelope(base({ from: other.id }), key), InvalidEnvelopeError)
    assert.throws(() => signEnvelope(base({ prio: 7 }), key), /prio/)
  })

  it('checkFields names each problem', () => {
    const ok = { ...base(), body: new Uint8Array(1) } as unknown as Record<string, unknown>
    assert.equal(checkFields(ok), undefined)
    const cases: Array<[Record<string, unknown>, RegExp]> = [
      [{ extra: 1 }, /unknown field/], [{ v: 2 }, /version/], [{ net: 'Bad Net' }, /net/], [{ mode: 'shout' }, /mode/],
      [{ type: '' }, /type/], [{ from: 'did:key:nope' }, /from/], [{ to: [other.id] }, /topic mode/],
      [{ mode: 'direct', topic: undefined }, /direct mode/], [{ mode: 'direct', topic: undefined, to: [key.id, other.id] }, /exactly one/],
      [{ mode: 'broadcast', topic: undefined, to: [other.id] }, /broadcast/], [{ topic: 'a/#' }, /topic/],
      [{ ttl: 0 }, /ttl/], [{ ttl: 10 ** 9 }, /ttl/], [{ hops: 99 }, /hops/], [{ prio: 4 }, /prio/], [{ ts: -1 }, /ts/],
      [{ dlv: { nope: 1 } }, /delivery field/], [{ dlv: { retries: 99 } }, /retries/], [{ dlv: { ack: 'yes' } }, /ack/],
      [{ ct: '' }, /ct/], [{ enc: 'zip' }, /enc/], [{ body: 'text' }, /body/], [{ schema: 'x'.repeat(300) }, /schema/]
    ]
    for (const [over, re] of cases) {
      const f = { ...ok, ...over }
      for (const k of Object.keys(f)) if (f[k] === undefined) delete f[k]
      assert.match(String(checkFields(f)), re, JSON.stringify(over))
    }
  })

  it('gzip payloads decompress, and a bomb is bounded', () => {
    const big = new Uint8Array(100_000).fill(65)
    const env = signEnvelope(base({ ct: 'text/plain', enc: 'gzip', body: compressPayload(big) }), key)
    assert.equal(envelopePayload(env).length, 100_000)
    assert.throws(() => envelopePayload(env, 1000), InvalidEnvelopeError)
  })

  it('non-canonical but well-formed CBOR is told apart from garbage', () => {
    const env = signEnvelope(base(), key)
    const obj = dagCbor.decode(env.bytes) as Record<string, unknown>
    // Unsorted keys: encode the same map by hand in insertion order (reverse of canonical).
    const entries = Object.entries(obj).reverse()
    const parts: Buffer[] = [Buffer.from([0xa0 + entries.length])]
    for (const [k, v] of entries) { parts.push(Buffer.from(dagCbor.encode(k))); parts.push(Buffer.from(dagCbor.encode(v as never))) }
    const res = decodeEnvelope(Buffer.concat(parts))
    assert.equal(res.ok ? 'ok' : res.reason, 'non-canonical')
    const garbage = decodeEnvelope(Uint8Array.from([0xff, 0xfe, 0x01]))
    assert.equal(garbage.ok ? 'ok' : garbage.reason, 'malformed')
    const notMap = decodeEnvelope(dagCbor.encode([1, 2]))
    assert.equal(notMap.ok ? 'ok' : notMap.reason, 'malformed')
  })
})

describe('keys', () => {
  it('did:key round trip and signature checks never throw', () => {
    const k = generateAgentKey()
    assert.equal(didFromPublicKey(k.publicKey), k.id)
    assert.ok(isAgentId(k.id))
    assert.ok(!isAgentId('did:key:z6Mk' + 'x'.repeat(44)))
    const sig = k.sign(new Uint8Array([1, 2, 3]))
    assert.ok(verifyByDid(k.id, new Uint8Array([1, 2, 3]), sig))
    assert.ok(!verifyByDid(k.id, new Uint8Array([1, 2, 4]), sig))
    assert.ok(!verifyByDid(k.id, new Uint8Array([1]), new Uint8Array(3)))
    assert.ok(!verifyByDid('did:key:zgarbage' as never, new Uint8Array([1]), sig))
  })
})
