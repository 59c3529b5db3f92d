import { test, describe } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { createHash } from 'node:crypto'
import { gzipSync } from 'node:zlib'
import * as dagCbor from '@ipld/dag-cbor'
import * as cborg from 'cborg'
import { CID } from 'multiformats/cid'
import {
  signEnvelope, decodeEnvelope, checkFields, envelopeToJson, envelopePayload, compressPayload, messageIdFromBytes,
  isJsonContentType, LIMITS, SIGNATURE_DOMAIN, ENVELOPE_VERSION, type EnvelopeFields, type Envelope, type DecodeResult
} from '../../src/core/envelope.ts'
import { agentKeyFromSeed, type AgentKey } from '../../src/core/keys.ts'
import { InvalidEnvelopeError, MessageTooLargeError } from '../../src/core/errors.ts'
import type { NetworkId, Topic } from '../../src/core/ids.ts'
import { base32Lower, base58btc, ed25519Verify, hex, unhex, utf8 } from '../helpers/reference.ts'
import { buildVectors, withVectorsSection, VECTORS_FILE, PROTOCOL_FILE } from '../../scripts/gen-vectors.ts'

const file = JSON.parse(readFileSync(VECTORS_FILE, 'utf8'))
const keys: Record<string, AgentKey> = {}
for (const name of ['A', 'B']) { const k = agentKeyFromSeed(unhex(file.seeds[name])); keys[k.id] = k }
const A = agentKeyFromSeed(unhex(file.seeds.A))
const B = agentKeyFromSeed(unhex(file.seeds.B))

const reason = (r: DecodeResult): string => r.ok ? 'ok' : r.reason
const inputFields = (v: { fields: Record<string, unknown> }): EnvelopeFields => ({ ...v.fields, body: unhex(v.fields.body as string) }) as unknown as EnvelopeFields
/** The envelope's fields only (what was signed). */
const fieldsOf = (env: Envelope): Record<string, unknown> => { const { id: _i, sig: _s, bytes: _b, ...f } = env; return f }

const base = (over: Partial<EnvelopeFields> = {}): EnvelopeFields => ({
  v: 1, net: 'test' as NetworkId, mode: 'topic', type: 'inform', from: A.id, topic: 'a/b' as Topic, ts: 1_767_225_600_000, ttl: 60, hops: 8, prio: 1,
  ct: 'application/json', body: utf8('{"x":1}'), ...over
})

/** Canonical key order: encoded length first, then bytewise. */
function canonicalOrder (keysInOrder: string[]): boolean {
  for (let i = 1; i < keysInOrder.length; i++) {
    const a = Buffer.from(keysInOrder[i - 1]); const b = Buffer.from(keysInOrder[i])
    if (a.length > b.length || (a.length === b.length && Buffer.compare(a, b) >= 0)) return false
  }
  return true
}

describe('test vectors (test/vectors/envelopes.json, docs/PROTOCOL.md)', () => {
  test('the file covers every mode, compression, delivery options and all optional fields', () => {
    const vs = file.vectors as Array<{ fields: Record<string, unknown> }>
    assert.ok(vs.length >= 5)
    assert.deepEqual(new Set(vs.map(v => v.fields.mode)), new Set(['topic', 'direct', 'multicast', 'broadcast']))
    assert.ok(vs.some(v => v.fields.enc === 'gzip'))
    const present = new Set(vs.flatMap(v => Object.keys(v.fields)))
    for (const k of ['to', 'topic', 'schema', 'proto', 'conv', 'corr', 'replyTo', 'nonce', 'dlv', 'enc']) assert.ok(present.has(k), k)
    const dlvKeys = new Set(vs.flatMap(v => Object.keys((v.fields.dlv ?? {}) as object)))
    assert.deepEqual([...dlvKeys].sort(), ['ack', 'dedup', 'durable', 'maxMs', 'retries', 'seq'])
  })

  for (const v of file.vectors) {
    describe(v.name, () => {
      const f = inputFields(v)

      test('signing the input fields with the seed reproduces every value byte for byte', () => {
        const env = signEnvelope(f, keys[f.from])
        assert.equal(hex(dagCbor.encode(fieldsOf(env))), v.unsigned)
        assert.equal(env.id, v.id)
        assert.equal(hex(env.sig), v.sig)
        assert.equal(hex(env.bytes), v.wire)
      })

      test('id and signature, derived independently of src/core', () => {
        const unsigned = unhex(v.unsigned)
        const multihash = Uint8Array.from([0x12, 0x20, ...createHash('sha256').update(unsigned).digest()])
        assert.equal(hex(multihash), v.multihash)
        assert.equal(v.id, 'b' + base32Lower(multihash))
        const signingInput = Uint8Array.from([...Buffer.from('fedmesh/envelope/v1', 'ascii'), ...multihash])
        assert.equal(signingInput.length, 53)
        assert.equal(hex(signingInput), v.signingInput)
        const signer = v.fields.from === file.agents.A ? 'A' : 'B'
        const publicKey = unhex(file.publicKeys[signer])
        assert.equal(v.fields.from, 'did:key:z' + base58btc(Uint8Array.from([0xed, 0x01, ...publicKey])))
        assert.ok(ed25519Verify(publicKey, signingInput, unhex(v.sig)))
        assert.equal(ed25519Verify(publicKey, signingInput.subarray(1), unhex(v.sig)), false, 'the domain is part of the signed bytes')
      })

      test('the bytes are canonical CBOR of the fields, and wire = unsigned + sig entry', () => {
        // A generic CBOR decoder (no DAG-CBOR rules) sees the same values…
        const plain = cborg.decode(unhex(v.wire), { useMaps: true }) as Map<string, unknown>
        const keysInOrder = [...plain.keys()]
        assert.ok(canonicalOrder(keysInOrder), keysInOrder.join(','))
        const dlv = plain.get('dlv') as Map<string, unknown> | undefined
        if (dlv != null) assert.ok(canonicalOrder([...dlv.keys()]))
        const expected = { ...f, sig: unhex(v.sig) } as Record<string, unknown>
        assert.deepEqual(new Set(keysInOrder), new Set(Object.keys(expected)))
        assert.deepEqual(cborg.decode(unhex(v.wire)), expected)
        // …and the unsigned bytes are the wire bytes without the `sig` entry.
        const wire = Buffer.from(unhex(v.wire))
        const entry = Buffer.concat([Buffer.from('6373696758' + '40', 'hex'), unhex(v.sig)])
        const at = wire.indexOf(entry)
        assert.ok(at > 0)
        const stripped = Buffer.concat([wire.subarray(0, at), wire.subarray(at + entry.length)])
        stripped[0] -= 1 // one entry fewer in the map header (all vectors have < 23 fields)
        assert.equal(stripped.toString('hex'), v.unsigned)
      })

      test('decodes and verifies to the input fields', () => {
        const res = decodeEnvelope(unhex(v.wire))
        assert.ok(res.ok, JSON.stringify(res))
        assert.equal(res.envelope.id, v.id)
        assert.deepEqual(fieldsOf(res.envelope), f)
        assert.equal(hex(res.envelope.sig), v.sig)
        assert.equal(Buffer.from(envelopePayload(res.envelope)).toString('utf8'), v.payload.startsWith('hex:') ? Buffer.from(v.payload.slice(4), 'hex').toString('utf8') : v.payload)
      })

      test('any altered byte, and any truncation, is a rejection, never a throw', () => {
        const wire = unhex(v.wire)
        const reasons = new Set<string>()
        for (let i = 0; i < wire.length; i++) {
          for (const mask of [0x01, 0x80, 0xff]) {
            const t = new Uint8Array(wire)
            t[i] ^= mask
            let res: DecodeResult | undefined
            assert.doesNotThrow(() => { res = decodeEnvelope(t) })
            assert.equal(res?.ok, false, `byte ${i} ^ ${mask}`)
            reasons.add(reason(res as DecodeResult))
          }
        }
        for (let n = 0; n < wire.length; n++) assert.equal(decodeEnvelope(wire.subarray(0, n)).ok, false, `truncated to ${n}`)
        for (const r of ['malformed', 'non-canonical', 'bad-field', 'bad-signature']) assert.ok(reasons.has(r), `some change gave ${r}`)
      })
    })
  }

  test('frame vectors: varint length, then the DAG-CBOR map', () => {
    const direct = file.vectors[1]
    // A batch envelope's unsigned bytes, re-encoded from its input fields.
    const unsignedOf = (f: Record<string, unknown>): Uint8Array => new Uint8Array(dagCbor.encode({ ...f, body: new Uint8Array(unhex(f.body as string)) }))
    const expected: Record<string, unknown> = {
      message: { t: 1, h: 1, e: unhex(direct.wire) },
      confirmOk: { t: 2, id: direct.id, ok: true },
      confirmFailed: { t: 2, id: direct.id, ok: false, code: 'NoRespondersError', msg: 'no handler' },
      data: { t: 6, h: 1, e: unhex(file.batch.envelopes[0].wire), x: [0] },
      batch: { t: 7, h: 1, l: [unsignedOf(file.batch.envelopes[0].fields), unhex(file.batch.leaves[1]), unsignedOf(file.batch.envelopes[2].fields)], s: unhex(file.batch.sig), x: [0] },
      // Vector 5 and its twin (nonce 1, the next seq, body {"n":2}), signed together: their unsigned bytes.
      durablePutb: {
        r: 1,
        op: 'putb',
        s: (dagCbor.decode(unhex(file.frames.durablePutb.cbor)) as { s: Uint8Array }).s,
        l: [0, 1].map(k => unsignedOf({ ...file.vectors[4].fields, ...(k > 0 ? { nonce: k } : {}), dlv: { seq: 1767225600000 * 1000 + k, durable: true }, body: hex(new TextEncoder().encode(`{"n":${k + 1}}`)) }))
      },
      durableAnswer: { r: 1, ok: true, st: 'stored' },
      interest: { t: 3, r: [[unhex(file.node.peerIdBytes), 1767225600000, ['sensors/#', 'weather/*'], 0, 0, unhex(file.frames.interest.sig)]] },
      lost: { t: 4, l: [[unhex(file.node.peerIdBytes), 1767225600000, 3]] },
      request: { t: 5, q: [[unhex(file.node.peerIdBytes), 1767225600000]] }
    }
    assert.deepEqual(Object.keys(file.frames).sort(), Object.keys(expected).sort())
    for (const [name, f] of Object.entries(file.frames as Record<string, { cbor: string, lengthPrefixed: string }>)) {
      const bytes = unhex(f.lengthPrefixed)
      let len = 0
      let shift = 0
      let i = 0
      for (; ; i++) { len += (bytes[i] & 0x7f) * 2 ** shift; shift += 7; if ((bytes[i] & 0x80) === 0) break }
      assert.equal(len, bytes.length - i - 1, name)
      assert.equal(hex(bytes.subarray(i + 1)), f.cbor, name)
      assert.deepEqual(dagCbor.decode(unhex(f.cbor)), expected[name], name)
    }
  })

  test('the generator reproduces the file, and PROTOCOL.md quotes the current values', () => {
    assert.deepEqual(buildVectors(), file)
    const doc = readFileSync(PROTOCOL_FILE, 'utf8')
    assert.equal(withVectorsSection(doc, buildVectors()), doc, 'run `node scripts/gen-vectors.ts`')
    const flat = doc.replace(/\s+/g, '')
    for (const v of file.vectors) for (const value of [v.unsigned, v.id, v.sig, v.wire]) assert.ok(flat.includes(value), `${v.name}: ${value.slice(0, 16)}…`)
    for (const name of ['A', 'B']) assert.ok(doc.includes(file.seeds[name]) && doc.includes(file.agents[name]))
  })
})

describe('signEnvelope / decodeEnvelope', () => {
  test('round trip with every optional field', () => {
    const f = base({
      mode: 'direct', to: [B.id], topic: 'x/y' as Topic, schema: 'market/rfp@1.0.0', proto: 'fipa-request', conv: 'c', corr: 'bciqabc', replyTo: A.id,
      nonce: 3, dlv: { ack: true, maxMs: 1000, retries: 2, dedup: false, seq: 9 }, enc: 'gzip', ct: 'text/plain', body: compressPayload(utf8('hi'))
    })
    const env = signEnvelope(f, A)
    const res = decodeEnvelope(env.bytes)
    assert.ok(res.ok)
    assert.deepEqual(fieldsOf(res.envelope), f)
    assert.equal(res.envelope.id, env.id)
    assert.deepEqual(res.envelope.bytes, env.bytes)
    assert.equal(Buffer.from(envelopePayload(res.envelope)).toString(), 'hi')
    assert.ok(Object.isFrozen(env) && Object.isFrozen(res.envelope))
  })

  test('ids and bytes: deterministic, independent of key order, undefined members dropped', () => {
    const f = base({ dlv: { ack: true } })
    const a = signEnvelope(f, A)
    const shuffled = Object.fromEntries(Object.entries(f).reverse()) as unknown as EnvelopeFields
    const b = signEnvelope(shuffled, A)
    const c = signEnvelope({ ...f, schema: undefined, dlv: { ack: true, seq: undefined } }, A)
    assert.deepEqual(b.bytes, a.bytes)
    assert.deepEqual(c.bytes, a.bytes)
    assert.equal(a.id, messageIdFromBytes(dagCbor.encode(f)).id)
    assert.notEqual(signEnvelope(base({ nonce: 1 }), A).id, signEnvelope(base(), A).id)
    assert.notEqual(signEnvelope(base({ ts: 1_767_225_600_001 }), A).id, signEnvelope(base(), A).id)
  })

  test('messageIdFromBytes: sha2-256 multihash in multibase base32', () => {
    const { id, multihash } = messageIdFromBytes(new Uint8Array(0))
    assert.equal(hex(multihash), '1220e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855')
    assert.equal(id, 'b' + base32Lower(multihash))
    assert.match(id, /^bciq[a-z2-7]{52}$/)
  })

  test('signature domain and version', () => {
    assert.equal(Buffer.from(SIGNATURE_DOMAIN).toString('ascii'), 'fedmesh/envelope/v1')
    assert.equal(ENVELOPE_VERSION, 1)
    const env = signEnvelope(base(), A)
    const { multihash } = messageIdFromBytes(dagCbor.encode(fieldsOf(env)))
    assert.ok(ed25519Verify(A.publicKey, Uint8Array.from([...SIGNATURE_DOMAIN, ...multihash]), env.sig))
    assert.equal(ed25519Verify(A.publicKey, multihash, env.sig), false)
  })

  test('refuses to sign for another agent, bad fields, a stray sig, or more than 1 MiB', () => {
    assert.throws(() => signEnvelope(base({ from: B.id }), A), InvalidEnvelopeError)
    assert.throws(() => signEnvelope(base({ prio: 7 }), A), (e: unknown) => e instanceof InvalidEnvelopeError && /prio/.test((e as Error).message))
    assert.throws(() => signEnvelope({ ...base(), sig: new Uint8Array(64) } as EnvelopeFields, A), /unknown field "sig"/)
    assert.throws(() => signEnvelope(base({ body: new Uint8Array(LIMITS.maxEnvelopeBytes) }), A), MessageTooLargeError)
    const near = signEnvelope(base({ body: new Uint8Array(LIMITS.maxEnvelopeBytes - 1000) }), A)
    assert.ok(near.bytes.length <= LIMITS.maxEnvelopeBytes)
  })

  test('the documented limits', () => {
    assert.deepEqual({ ...LIMITS }, {
      maxEnvelopeBytes: 1_048_576, maxRecipients: 256, maxTtlSeconds: 604_800, maxHops: 32, maxStringField: 256, maxContentType: 128, maxRetries: 16
    })
  })
})

describe('non-canonical and malformed encodings', () => {
  const env = signEnvelope(base({ mode: 'direct', topic: undefined, to: [B.id], dlv: { ack: true } }), A)
  const wire = Buffer.from(env.bytes)
  const entries = Object.keys(dagCbor.decode(wire) as object).length
  /** Replaces the first occurrence of `from` (hex) by `to` (hex). */
  const patch = (fromHex: string, toHex: string, bytes: Buffer = wire): Uint8Array => {
    const at = bytes.indexOf(Buffer.from(fromHex, 'hex'))
    assert.ok(at >= 0, `pattern ${fromHex} present`)
    return Buffer.concat([bytes.subarray(0, at), Buffer.from(toHex, 'hex'), bytes.subarray(at + fromHex.length / 2)])
  }
  const tsHex = '1b' + (1_767_225_600_000).toString(16).padStart(16, '0')
  const f64 = (n: number): string => { const b = Buffer.alloc(9); b[0] = 0xfb; b.writeDoubleBE(n, 1); return b.toString('hex') }

  test('the unaltered envelope is accepted (control)', () => {
    assert.equal(reason(decodeEnvelope(wire)), 'ok')
    assert.equal(wire[0], 0xa0 + entries, `a map of ${entries} entries in one header byte`)
  })

  test('well-formed but not canonical → non-canonical', () => {
    const cases: Record<string, Uint8Array> = {
      'unsorted keys': (() => {
        const entries = Object.entries(dagCbor.decode(wire) as Record<string, unknown>)
        ;[entries[0], entries[1]] = [entries[1], entries[0]]
        return Buffer.concat([Buffer.from([0xa0 + entries.length]), ...entries.flatMap(([k, v]) => [dagCbor.encode(k), dagCbor.encode(v as never)])])
      })(),
      'non-minimal integer (prio 1 as 0x18 0x01)': patch('647072696f01', '647072696f1801'),
      'non-minimal integer (hops 8 as 2 bytes)': patch('64686f707308', '64686f7073190008'),
      'non-minimal map header': Buffer.concat([Buffer.from([0xb8, entries]), wire.subarray(1)]),
      'non-minimal text length': patch('6176', '780176'),
      'non-minimal byte-string length (sig)': patch('5840', '590040'),
      'indefinite-length map': Buffer.concat([Buffer.from([0xbf]), wire.subarray(1), Buffer.from([0xff])]),
      'indefinite-length array (to)': (() => {
        const at = wire.indexOf(Buffer.from('62746f81', 'hex')) + 3
        return Buffer.concat([wire.subarray(0, at), Buffer.from([0x9f]), wire.subarray(at + 1, at + 1 + 58), Buffer.from([0xff]), wire.subarray(at + 1 + 58)])
      })(),
      'ts as a float': patch(tsHex, f64(1_767_225_600_000)),
      'ttl as a half float': patch('6374746c183c', '6374746cf95380'),
      'undefined instead of a value': patch('647072696f01', '647072696ff7'),
      'invalid UTF-8 in a text value': patch('66696e666f726d', '66696e666f72ff')
    }
    for (const [name, bytes] of Object.entries(cases)) {
      const res = decodeEnvelope(bytes)
      assert.equal(reason(res), 'non-canonical', name)
    }
  })

  test('not a CBOR map → malformed', () => {
    const cases: Record<string, Uint8Array> = {
      empty: new Uint8Array(0),
      garbage: Uint8Array.from([0xff, 0xfe, 0x01]),
      'reserved initial byte': Uint8Array.from([0x1c]),
      truncated: wire.subarray(0, wire.length - 1),
      'trailing byte': Buffer.concat([wire, Buffer.from([0x00])]),
      'two maps': Buffer.concat([wire, wire]),
      'duplicate key': Buffer.concat([Buffer.from([0xa1 + entries]), Buffer.from('617601', 'hex'), wire.subarray(1)]),
      'integer key': Buffer.concat([Buffer.from([0xa1 + entries]), Buffer.from('0101', 'hex'), wire.subarray(1)]),
      'byte-string key': Buffer.concat([Buffer.from([0xa1 + entries]), Buffer.from('410101', 'hex'), wire.subarray(1)]),
      'unknown tag': patch('647072696f01', '647072696fc101'),
      'indefinite-length byte string (sig)': (() => {
        const at = wire.indexOf(Buffer.from('6373696758', 'hex')) + 4
        return Buffer.concat([wire.subarray(0, at), Buffer.from([0x5f]), wire.subarray(at, at + 66), Buffer.from([0xff]), wire.subarray(at + 66)])
      })(),
      'unsupported simple value': patch('647072696f01', '647072696ff0'),
      NaN: patch('647072696f01', '647072696ff97e00'),
      Infinity: patch('647072696f01', '647072696ffb7ff0000000000000'),
      'nesting too deep': Buffer.concat([Buffer.from('a1617681', 'hex'), Buffer.alloc(200_000, 0x81), Buffer.from([0x00])]),
      array: dagCbor.encode([1, 2]),
      text: dagCbor.encode('envelope'),
      bytes: dagCbor.encode(new Uint8Array(3)),
      null: dagCbor.encode(null),
      integer: dagCbor.encode(7)
    }
    for (const [name, bytes] of Object.entries(cases)) {
      let res: DecodeResult | undefined
      assert.doesNotThrow(() => { res = decodeEnvelope(bytes) }, name)
      assert.equal(reason(res as DecodeResult), 'malformed', name)
    }
  })

  test('canonical CBOR with the wrong shape → bad-field, never a crash', () => {
    const obj = dagCbor.decode(wire) as Record<string, unknown>
    const proto = { ...obj }
    Object.defineProperty(proto, '__proto__', { value: { polluted: true }, enumerable: true, configurable: true, writable: true })
    const cases: Record<string, Uint8Array> = {
      'empty map': dagCbor.encode({}),
      'no sig': dagCbor.encode(Object.fromEntries(Object.entries(obj).filter(([k]) => k !== 'sig'))),
      'sig of 63 bytes': dagCbor.encode({ ...obj, sig: new Uint8Array(63) }),
      'sig as text': dagCbor.encode({ ...obj, sig: 'x'.repeat(64) }),
      'CID as body': dagCbor.encode({ ...obj, body: CID.parse('bafyreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy') }),
      'a __proto__ field': dagCbor.encode(proto),
      'integer beyond 2^53 (ts)': patch(tsHex, '1bffffffffffffffff'),
      'negative ts': patch(tsHex, '3903e7')
    }
    for (const [name, bytes] of Object.entries(cases)) assert.equal(reason(decodeEnvelope(bytes)), 'bad-field', name)
    assert.equal(({} as Record<string, unknown>).polluted, undefined)
    const res = decodeEnvelope(dagCbor.encode(proto))
    assert.ok(!res.ok && /__proto__/.test(res.detail))
  })
})

describe('checkFields', () => {
  const ok = (): Record<string, unknown> => ({ ...base() }) as unknown as Record<string, unknown>
  const without = (f: Record<string, unknown>, ...ks: string[]): Record<string, unknown> => { for (const k of ks) delete f[k]; return f }
  const long = (n: number): string => 'x'.repeat(n)
  const x25519Did = 'did:key:z' + base58btc(Uint8Array.from([0xec, 0x01, ...A.publicKey]))

  test('the base and every boundary value pass', () => {
    assert.equal(checkFields(ok()), undefined)
    const edges: Array<Record<string, unknown>> = [
      { ttl: 1 }, { ttl: 604_800 }, { hops: 0 }, { hops: 32 }, { prio: 0 }, { prio: 3 }, { ts: 0 }, { ts: Number.MAX_SAFE_INTEGER },
      { nonce: 1 }, { nonce: Number.MAX_SAFE_INTEGER }, { type: long(64) }, { type: 'x' }, { ct: long(128) }, { net: 'a' }, { net: 'a' + long(62) },
      { net: '0.b_c-d' }, { schema: long(256) }, { proto: 'p' }, { conv: long(256) }, { corr: 'c' }, { replyTo: B.id }, { body: new Uint8Array(0) },
      { dlv: {} }, { dlv: { ack: false, dedup: true, maxMs: 1, retries: 0, seq: 0 } }, { dlv: { maxMs: 604_800_000, retries: 16, seq: Number.MAX_SAFE_INTEGER } },
      { enc: 'gzip' }, { mode: 'broadcast', topic: undefined }, { mode: 'broadcast' }, { mode: 'direct', to: [B.id] }, { mode: 'direct', topic: undefined, to: [A.id] },
      { mode: 'multicast', to: [A.id] }, { mode: 'multicast', topic: undefined, to: Array(256).fill(B.id) }, { mode: 'multicast', to: [A.id, A.id] }
    ]
    for (const over of edges) {
      const f = { ...ok(), ...over }
      for (const k of Object.keys(f)) if (f[k] === undefined) delete f[k]
      assert.equal(checkFields(f), undefined, JSON.stringify(over))
    }
  })

  test('every rule rejects, by checkFields and on the wire (bad-field)', () => {
    const cases: Array<[string, Record<string, unknown>, RegExp]> = [
      ['unknown field', { extra: 1 }, /unknown field "extra"/],
      ['sig is not an unsigned field', { sig: new Uint8Array(64) }, /unknown field "sig"/],
      ['unknown field id', { id: 'b' }, /unknown field "id"/],
      ['version 2', { v: 2 }, /version/], ['version 0', { v: 0 }, /version/], ['version as text', { v: '1' }, /version/], ['no version', { v: undefined }, /version/],
      ['net with capitals', { net: 'Bad' }, /net/], ['net empty', { net: '' }, /net/], ['net 64 chars', { net: 'a' + long(63) }, /net/],
      ['net leading dash', { net: '-a' }, /net/], ['net with slash', { net: 'a/b' }, /net/], ['no net', { net: undefined }, /net/],
      ['mode unknown', { mode: 'shout' }, /mode/], ['mode upper case', { mode: 'TOPIC' }, /mode/], ['no mode', { mode: undefined }, /mode/],
      ['type empty', { type: '' }, /type/], ['type 65 chars', { type: long(65) }, /type/], ['type not text', { type: 1 }, /type/], ['no type', { type: undefined }, /type/],
      ['from not a did', { from: 'did:key:nope' }, /from/], ['from x25519 did', { from: x25519Did }, /from/], ['no from', { from: undefined }, /from/],
      ['to empty', { mode: 'multicast', to: [] }, /to must list/], ['to 257', { mode: 'multicast', to: Array(257).fill(B.id) }, /to must list/],
      ['to as text', { mode: 'direct', to: B.id }, /to must list/], ['to with a non-did', { mode: 'multicast', to: [B.id, 'bob'] }, /did:key/],
      ['to null', { mode: 'direct', to: null }, /to must list/],
      ['topic invalid', { topic: 'a/#' }, /topic/], ['topic empty level', { topic: 'a//b' }, /topic/], ['topic null', { topic: null }, /topic/],
      ['topic mode with recipients', { to: [B.id] }, /topic mode/], ['topic mode without topic', { topic: undefined }, /topic mode/],
      ['direct without recipient', { mode: 'direct' }, /direct mode/], ['direct with two', { mode: 'direct', to: [A.id, B.id] }, /exactly one/],
      ['multicast without recipients', { mode: 'multicast' }, /multicast mode/], ['broadcast with recipients', { mode: 'broadcast', to: [B.id] }, /broadcast/],
      ...(['schema', 'proto', 'conv', 'corr', 'replyTo'] as const).flatMap((k): Array<[string, Record<string, unknown>, RegExp]> => [
        [`${k} empty`, { [k]: '' }, new RegExp(k)], [`${k} 257 chars`, { [k]: long(257) }, new RegExp(k)], [`${k} not text`, { [k]: 5 }, new RegExp(k)], [`${k} null`, { [k]: null }, new RegExp(k)]
      ]),
      ['ts negative', { ts: -1 }, /ts/], ['ts fractional', { ts: 1.5 }, /ts/], ['ts beyond 2^53-1', { ts: 2 ** 53 }, /ts/], ['ts as text', { ts: '1' }, /ts/], ['no ts', { ts: undefined }, /ts/],
      ['nonce 0', { nonce: 0 }, /nonce/], ['nonce negative', { nonce: -1 }, /nonce/], ['nonce fractional', { nonce: 1.5 }, /nonce/],
      ['ttl 0', { ttl: 0 }, /ttl/], ['ttl over 7 days', { ttl: 604_801 }, /ttl/], ['ttl fractional', { ttl: 1.5 }, /ttl/], ['no ttl', { ttl: undefined }, /ttl/],
      ['hops negative', { hops: -1 }, /hops/], ['hops 33', { hops: 33 }, /hops/], ['no hops', { hops: undefined }, /hops/],
      ['prio negative', { prio: -1 }, /prio/], ['prio 4', { prio: 4 }, /prio/], ['prio fractional', { prio: 0.5 }, /prio/], ['no prio', { prio: undefined }, /prio/],
      ['dlv null', { dlv: null }, /dlv must be a map/], ['dlv array', { dlv: [] }, /dlv must be a map/], ['dlv bytes', { dlv: new Uint8Array(1) }, /dlv must be a map/],
      ['dlv text', { dlv: 'ack' }, /dlv must be a map/], ['dlv unknown field', { dlv: { nope: 1 } }, /unknown delivery field "nope"/],
      ['dlv.ack not bool', { dlv: { ack: 'yes' } }, /dlv.ack/], ['dlv.dedup not bool', { dlv: { dedup: 1 } }, /dlv.dedup/],
      ['dlv.maxMs 0', { dlv: { maxMs: 0 } }, /dlv.maxMs/], ['dlv.maxMs too big', { dlv: { maxMs: 604_800_001 } }, /dlv.maxMs/],
      ['dlv.retries negative', { dlv: { retries: -1 } }, /dlv.retries/], ['dlv.retries 17', { dlv: { retries: 17 } }, /dlv.retries/],
      ['dlv.seq negative', { dlv: { seq: -1 } }, /dlv.seq/], ['dlv.seq fractional', { dlv: { seq: 1.5 } }, /dlv.seq/], ['dlv.ack null', { dlv: { ack: null } }, /dlv.ack/],
      ['ct empty', { ct: '' }, /ct/], ['ct 129 chars', { ct: long(129) }, /ct/], ['no ct', { ct: undefined }, /ct/],
      ['enc unknown', { enc: 'zip' }, /enc/], ['enc upper case', { enc: 'GZIP' }, /enc/], ['enc null', { enc: null }, /enc/],
      ['body as text', { body: 'text' }, /body/], ['body as array', { body: [1, 2] }, /body/], ['body null', { body: null }, /body/], ['no body', { body: undefined }, /body/]
    ]
    for (const [name, over, re] of cases) {
      const f = { ...ok(), ...over }
      for (const k of Object.keys(f)) if (f[k] === undefined) delete f[k]
      const problem = checkFields(f)
      assert.match(String(problem), re, name)
      // On the wire the same fields, with a signature-shaped sig, give bad-field with that detail.
      if (name.startsWith('sig is not')) continue
      const res = decodeEnvelope(dagCbor.encode({ ...f, sig: new Uint8Array(64) }))
      assert.equal(reason(res), 'bad-field', name)
      assert.equal(res.ok ? '' : res.detail, problem, name)
    }
  })
})

describe('payload, compression and the JSON form', () => {
  test('gzip round trip', () => {
    const plain = utf8(JSON.stringify({ rows: Array.from({ length: 200 }, (_, i) => ({ i })) }))
    const body = compressPayload(plain)
    assert.ok(body.length < plain.length)
    assert.deepEqual([body[0], body[1]], [0x1f, 0x8b], 'a gzip member')
    const env = signEnvelope(base({ enc: 'gzip', body }), A)
    assert.deepEqual(envelopePayload(env), plain)
    assert.deepEqual(envelopePayload({ body: plain }), plain, 'no enc: the body as is')
  })

  test('a gzip bomb is bounded by maxBytes', () => {
    const bomb = new Uint8Array(gzipSync(new Uint8Array(50 * 1024 * 1024), { level: 9 }))
    assert.ok(bomb.length < 100 * 1024, `bomb is ${bomb.length} bytes`)
    const env = signEnvelope(base({ enc: 'gzip', ct: 'application/octet-stream', body: bomb }), A)
    assert.equal(reason(decodeEnvelope(env.bytes)), 'ok', 'ingress does not decompress')
    assert.throws(() => envelopePayload(env), InvalidEnvelopeError, 'default bound: 1 MiB')
    assert.throws(() => envelopePayload(env, 1000), (e: unknown) => e instanceof InvalidEnvelopeError && /1000 bytes/.test((e as Error).message))
    const exact = compressPayload(new Uint8Array(1000))
    assert.equal(envelopePayload({ enc: 'gzip', body: exact }, 1000).length, 1000, 'exactly maxBytes is fine')
    assert.throws(() => envelopePayload({ enc: 'gzip', body: exact }, 999), InvalidEnvelopeError)
    assert.throws(() => envelopeToJson(env), InvalidEnvelopeError)
  })

  test('a body that is not gzip fails as InvalidEnvelopeError', () => {
    assert.throws(() => envelopePayload({ enc: 'gzip', body: utf8('plain text') }), InvalidEnvelopeError)
    const truncated = compressPayload(utf8('hello hello hello')).subarray(0, 12)
    assert.throws(() => envelopePayload({ enc: 'gzip', body: truncated }), InvalidEnvelopeError)
  })

  test('envelopeToJson: JSON payloads parsed, others in base64, sig in base64, no raw bytes', () => {
    const env = signEnvelope(base({ dlv: { ack: true } }), A)
    const j = envelopeToJson(env)
    assert.equal(Object.keys(j)[0], 'id')
    assert.equal(j.id, env.id)
    assert.deepEqual(j.payload, { x: 1 })
    assert.equal(j.payloadBase64, undefined)
    assert.deepEqual(new Uint8Array(Buffer.from(j.sig, 'base64')), env.sig)
    assert.equal('body' in j, false)
    assert.equal('bytes' in j, false)
    for (const k of ['v', 'net', 'mode', 'type', 'from', 'topic', 'ts', 'ttl', 'hops', 'prio', 'dlv', 'ct'] as const) assert.deepEqual(j[k], env[k], k)
    assert.deepEqual(JSON.parse(JSON.stringify(j)), j, 'plain JSON')

    const bin = envelopeToJson(signEnvelope(base({ ct: 'application/octet-stream', body: Uint8Array.from([0, 1, 255]) }), A))
    assert.equal(bin.payloadBase64, 'AAH/')
    assert.equal(bin.payload, undefined)
    const ld = envelopeToJson(signEnvelope(base({ ct: 'application/ld+json', body: utf8('[1,2]') }), A))
    assert.deepEqual(ld.payload, [1, 2])
    const broken = envelopeToJson(signEnvelope(base({ body: utf8('{not json') }), A))
    assert.equal(broken.payload, undefined)
    assert.equal(Buffer.from(broken.payloadBase64 as string, 'base64').toString(), '{not json')
    const gz = envelopeToJson(signEnvelope(base({ enc: 'gzip', body: compressPayload(utf8('{"z":[1]}')) }), A))
    assert.deepEqual(gz.payload, { z: [1] })
    assert.equal(gz.enc, 'gzip')
  })

  test('the gzip vector decompresses to its documented payload', () => {
    const v = file.vectors.find((x: { fields: { enc?: string } }) => x.fields.enc === 'gzip')
    const res = decodeEnvelope(unhex(v.wire))
    assert.ok(res.ok)
    assert.deepEqual(envelopeToJson(res.envelope).payload, JSON.parse(v.payload))
  })

  test('isJsonContentType', () => {
    for (const ct of ['application/json', 'application/ld+json', 'application/vnd.x+json']) assert.ok(isJsonContentType(ct), ct)
    for (const ct of ['text/plain', 'application/jsonx', 'application/octet-stream', 'json']) assert.equal(isJsonContentType(ct), false, ct)
  })
})
