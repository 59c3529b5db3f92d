/**
 * Batch signatures (PROTOCOL.md section 4.1): Merkle trees and inclusion proofs as in
 * RFC 9162, batch-signed envelopes verifying alone and through the verified-hash cache,
 * every tampering refused; the one-pass canonical reader and the direct encoders agree
 * byte for byte with DAG-CBOR.
 */
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import * as dagCbor from '@ipld/dag-cbor'
import { agentKeyFromSeed, generateAgentKey } from '../../src/core/keys.ts'
import {
  decodeEnvelope, encodeEnvelopeFields, signEnvelope, signEnvelopes, type EnvelopeFields
} from '../../src/core/envelope.ts'
import { MAX_BATCH, VerifiedRoots, leafOf, merkleTree, rootFromProof, verifyInclusion } from '../../src/core/batch.ts'
import { decodeCanonical, decodeCanonicalMap, mapEntryEnd } from '../../src/core/cbor-fast.ts'
import { base32 } from 'multiformats/bases/base32'
import { randomBytes } from 'node:crypto'
import { base32Multibase } from '../../src/core/envelope.ts'
import { encodeBatchFrame, encodeDataFrame, decodeFrame } from '../../src/net/frames.ts'
import { checkBatch, type IngressOptions } from '../../src/core/ingress.ts'
import { batchOf, decodeUnsigned, leafIndexOf, wireSize } from '../../src/core/envelope.ts'
import { SignedBatch, merkleRoot, merkleRootOfDigests, proofLength } from '../../src/core/batch.ts'
import { VECTORS_FILE } from '../../scripts/gen-vectors.ts'
import type { NetworkId, Topic } from '../../src/core/ids.ts'

const sha = (...parts: Uint8Array[]): Uint8Array => new Uint8Array(createHash('sha256').update(Buffer.concat(parts)).digest())
const hex = (u: Uint8Array): string => Buffer.from(u).toString('hex')
const unhex = (h: string): Uint8Array => new Uint8Array(Buffer.from(h, 'hex'))

/** RFC 9162 section 2.1.1, written straight from the definition as an independent reference. */
function mth (leaves: Uint8Array[]): Uint8Array {
  if (leaves.length === 1) return leaves[0]
  let k = 1
  while (k * 2 < leaves.length) k *= 2
  return sha(Uint8Array.of(1), mth(leaves.slice(0, k)), mth(leaves.slice(k)))
}

const key = generateAgentKey()
const fields = (i: number, over: Partial<EnvelopeFields> = {}): EnvelopeFields => ({
  v: 1, net: 'test' as NetworkId, mode: 'topic', type: 'inform', from: key.id, topic: 'a/b' as Topic, ts: Date.now(), nonce: i + 1,
  ttl: 60, hops: 16, prio: 1, ct: 'application/json', body: new TextEncoder().encode(`{"i":${i}}`), ...over
})

describe('Merkle tree and inclusion proofs', () => {
  test('roots match RFC 9162 and every proof leads to the root, for 1 … 70 leaves', () => {
    for (let n = 1; n <= 70; n++) {
      const leaves = Array.from({ length: n }, (_, i) => sha(Uint8Array.of(0, i)))
      const { root, paths } = merkleTree(leaves)
      assert.equal(hex(root), hex(mth(leaves)), `root of ${n}`)
      assert.equal(hex(merkleRoot(leaves)), hex(root), `merkleRoot (bottom up) of ${n}`)
      for (let i = 0; i < n; i++) {
        assert.ok(paths[i].length <= Math.ceil(Math.log2(n)))
        if (n === 1) continue
        assert.equal(hex(rootFromProof(leaves[i], { n, i, path: paths[i] }) as Uint8Array), hex(root), `leaf ${i} of ${n}`)
      }
    }
  })

  test('packed leaves: the same root as RFC 9162, and a batch made from them has the same leaves and proofs, for 1 … 70 leaves', () => {
    for (let n = 1; n <= 70; n++) {
      const leaves = Array.from({ length: n }, (_, i) => sha(Uint8Array.of(2, i)))
      // Packed at an offset into a larger buffer, as a view: only the n leaves may be read.
      const backing = randomBytes(32 * n + 40)
      const packed = new Uint8Array(backing.buffer, backing.byteOffset + 8, 32 * n)
      leaves.forEach((l, i) => { packed.set(l, 32 * i) })
      assert.equal(hex(merkleRootOfDigests(packed, n)), hex(mth(leaves)), `root of ${n} packed leaves`)
      const batch = new SignedBatch('did:key:x', new Uint8Array(64), packed, new Array(n))
      assert.equal(batch.n, n)
      assert.deepEqual(batch.leaves.map(hex), leaves.map(hex))
      assert.equal(batch.leaves, batch.leaves, 'the leaf arrays are made once')
      if (n > 1) {
        const plain = new SignedBatch('did:key:x', new Uint8Array(64), leaves, new Array(n))
        for (let i = 0; i < n; i++) assert.deepEqual(batch.proof(i).path.map(hex), plain.proof(i).path.map(hex), `proof ${i} of ${n}`)
      }
    }
    assert.throws(() => merkleRootOfDigests(new Uint8Array(32 * 3), 4), RangeError)
    assert.throws(() => merkleRootOfDigests(new Uint8Array(0), 0), RangeError)
    assert.throws(() => new SignedBatch('did:key:x', new Uint8Array(64), new Uint8Array(33), []), RangeError)
  })

  test('proofs from the levels the packed root kept are merkleTree\'s, and lead to the root, for 1 … 70 leaves', () => {
    for (let n = 1; n <= 70; n++) {
      const leaves = Array.from({ length: n }, (_, i) => sha(Uint8Array.of(3, i)))
      const packed = new Uint8Array(32 * n)
      leaves.forEach((l, i) => { packed.set(l, 32 * i) })
      const levels: string[][] = []
      const root = merkleRootOfDigests(packed, n, levels)
      assert.equal(hex(root), hex(mth(leaves)), `root of ${n} with its levels kept`)
      assert.equal(levels.length, n === 1 ? 0 : Math.ceil(Math.log2(n)), `levels of ${n}`)
      const batch = new SignedBatch('did:key:x', new Uint8Array(64), packed, new Array(n), undefined, levels)
      const { paths } = merkleTree(leaves)
      for (let i = 0; i < n; i++) {
        assert.deepEqual(batch.proof(i).path.map(hex), paths[i].map(hex), `proof ${i} of ${n}`)
        if (n > 1) assert.equal(hex(rootFromProof(leaves[i], batch.proof(i)) as Uint8Array), hex(root), `leaf ${i} of ${n}`)
      }
    }
  })

  test('a proof for another index, size, a shorter or longer path or another leaf does not reach the root', () => {
    const leaves = Array.from({ length: 13 }, (_, i) => sha(Uint8Array.of(0, i)))
    const { root, paths } = merkleTree(leaves)
    const reaches = (leaf: Uint8Array, n: number, i: number, path: Uint8Array[]): boolean => {
      const r = rootFromProof(leaf, { n, i, path })
      return r !== undefined && hex(r) === hex(root)
    }
    assert.ok(reaches(leaves[5], 13, 5, paths[5]))
    assert.ok(!reaches(leaves[5], 13, 4, paths[5]))
    assert.ok(!reaches(leaves[5], 8, 5, paths[5]))
    assert.ok(!reaches(leaves[5], 13, 5, paths[5].slice(1)))
    assert.ok(!reaches(leaves[5], 13, 5, [...paths[5], paths[5][0]]))
    assert.ok(!reaches(leaves[6], 13, 5, paths[5]))
    assert.equal(rootFromProof(leaves[0], { n: 13, i: 13, path: paths[0] }), undefined)
    assert.equal(rootFromProof(leaves[0], { n: 13, i: 0, path: [new Uint8Array(31), ...paths[0].slice(1)] }), undefined)
  })
})

describe('batch-signed envelopes', () => {
  test('one signature for the batch; each envelope verifies alone with its proof', () => {
    const envs = signEnvelopes(Array.from({ length: 5 }, (_, i) => fields(i)), key)
    assert.equal(new Set(envs.map(e => hex(e.sig))).size, 1)
    for (const [i, e] of envs.entries()) {
      assert.deepEqual({ n: e.bp?.n, i: e.bp?.i }, { n: 5, i })
      const d = decodeEnvelope(e.bytes)
      assert.ok(d.ok, JSON.stringify(d))
      assert.equal(d.envelope.id, e.id)
      assert.deepEqual(d.envelope.bp, e.bp)
      // The id does not cover the signature or the proof: the same fields signed alone give the same id.
      assert.equal(signEnvelope(fields(i, { ts: e.ts }), key).id, e.id)
    }
    // A batch of one is an ordinary envelope.
    const [single] = signEnvelopes([fields(0)], key)
    assert.equal(single.bp, undefined)
    assert.ok(decodeEnvelope(single.bytes).ok)
  })

  test('the cache verifies the rest of a batch with hashes only, and only for the same signer', () => {
    const envs = signEnvelopes(Array.from({ length: 64 }, (_, i) => fields(i)), key)
    const roots = new VerifiedRoots()
    for (const e of envs) assert.ok(decodeEnvelope(e.bytes, undefined, roots).ok)
    assert.equal(roots.checks, 1, 'one signature check for 64 envelopes')
    assert.equal(roots.hits, 63)
    // Another signer claiming the same tree is not helped by the cache.
    const mallory = generateAgentKey()
    const { sig, bp, id: _i, bytes: _b, ...rest } = envs[3]
    const forged = dagCbor.encode({ ...rest, from: mallory.id, sig, bp: [bp?.n, bp?.i, bp?.path] })
    const r = decodeEnvelope(forged, undefined, roots)
    assert.ok(!r.ok && r.reason === 'bad-signature')
  })

  test('the cache of verified roots is bounded in time and in count', () => {
    const root = (i: number): Uint8Array => { const r = new Uint8Array(32); new DataView(r.buffer).setUint32(0, i); return r }
    const sig = new Uint8Array(64).fill(7)
    // Time: kept for at least keepMs / 2 and at most keepMs.
    const timed = new VerifiedRoots(1000, 10_000, 0)
    timed.add('s', root(1), sig, 0)
    timed.add('s', root(2), sig, 4_999)
    assert.ok(timed.has('s', root(1), sig) && timed.has('s', root(2), sig))
    timed.add('s', root(3), sig, 5_000) // a new generation: 1 and 2 are the previous one
    assert.ok(timed.has('s', root(1), sig))
    timed.add('s', root(4), sig, 10_000) // another: 1 and 2 are gone, 3 is kept
    assert.ok(!timed.has('s', root(1), sig) && !timed.has('s', root(2), sig))
    assert.ok(timed.has('s', root(3), sig) && timed.has('s', root(4), sig))
    assert.ok(!timed.has('t', root(4), sig), 'per signer')
    // Count: never more than max, the newest kept.
    const counted = new VerifiedRoots(100, 3_600_000, 0)
    for (let i = 0; i < 1000; i++) {
      counted.add(`s${i % 3}`, root(i), sig, 1)
      assert.ok(counted.size <= 100)
    }
    assert.ok(counted.has('s0', root(999), sig) && !counted.has('s0', root(0), sig))
  })

  test('tampered proofs, signatures and fields are refused; malformed proofs are bad fields', () => {
    const envs = signEnvelopes(Array.from({ length: 6 }, (_, i) => fields(i)), key)
    const e = envs[2]
    const { sig, bp, id: _i, bytes: _b, ...rest } = e
    const wire = (over: Record<string, unknown>): Uint8Array => dagCbor.encode({ ...rest, sig, bp: [bp?.n, bp?.i, bp?.path], ...over })
    const flipped = bp?.path.map(h => new Uint8Array(h)) as Uint8Array[]
    flipped[0][7] ^= 1
    const reason = (bytes: Uint8Array): string | undefined => { const r = decodeEnvelope(bytes, undefined, new VerifiedRoots()); return r.ok ? undefined : r.reason }
    assert.equal(reason(wire({ bp: [6, 2, flipped] })), 'bad-signature')
    assert.equal(reason(wire({ bp: [6, 3, bp?.path] })), 'bad-signature')
    assert.equal(reason(wire({ bp: [6, 2, bp?.path.slice(1)] })), 'bad-signature')
    assert.equal(reason(wire({ body: new TextEncoder().encode('{"i":99}') })), 'bad-signature')
    const sig2 = new Uint8Array(sig)
    sig2[0] ^= 1
    assert.equal(reason(wire({ sig: sig2 })), 'bad-signature')
    assert.equal(reason(wire({ bp: [1, 0, []] })), 'bad-field')
    assert.equal(reason(wire({ bp: [MAX_BATCH + 1, 2, bp?.path] })), 'bad-field')
    assert.equal(reason(wire({ bp: [6, 2, [new Uint8Array(31)]] })), 'bad-field')
    assert.equal(reason(wire({ bp: 'x' })), 'bad-field')
    // And the cache never turns a bad proof into a good one (a proof only has to reach a
    // hash verified for the signer: bp is evidence of inclusion, not covered by the id).
    const roots = new VerifiedRoots()
    assert.ok(decodeEnvelope(envs[0].bytes, undefined, roots).ok)
    assert.equal(decodeEnvelope(wire({ bp: [6, 2, flipped] }), undefined, roots).ok, false)
  })

  test('verifyInclusion walks every proof to its root; the cache holds signed roots only', () => {
    const leaves = Array.from({ length: 8 }, (_, i) => sha(Uint8Array.of(0, i)))
    const { root, paths } = merkleTree(leaves)
    const sig = new Uint8Array(64).fill(7)
    const cache = new VerifiedRoots()
    let checks = 0
    const ok = (r: Uint8Array): boolean => { checks++; return hex(r) === hex(root) }
    assert.ok(verifyInclusion('s', leaves[0], { n: 8, i: 0, path: paths[0] }, sig, ok, cache))
    assert.ok(verifyInclusion('s', leaves[1], { n: 8, i: 1, path: paths[1] }, sig, ok, cache))
    assert.ok(verifyInclusion('s', leaves[6], { n: 8, i: 6, path: paths[6] }, sig, ok, cache))
    assert.equal(checks, 1)
    assert.equal(cache.size, 1)
    assert.ok(!verifyInclusion('t', leaves[6], { n: 8, i: 6, path: paths[6] }, sig, () => false, cache), 'cache is per signer')
    assert.ok(!verifyInclusion('s', leaves[6], { n: 8, i: 6, path: paths[6] }, new Uint8Array(64), () => false, cache), 'and per signature')
    const other = sha(Uint8Array.of(9))
    assert.ok(!verifyInclusion('s', other, { n: 8, i: 6, path: paths[6] }, sig, () => false, cache))
    // Leaf 1's proof with its first step right (its parent is a node of the verified tree)
    // and the rest wrong: refused, however much of the tree was verified before.
    const bent = [paths[1][0], sha(Uint8Array.of(1)), paths[1][2]]
    assert.ok(!verifyInclusion('s', leaves[1], { n: 8, i: 1, path: bent }, sig, () => false, cache))
  })

  test('an envelope whose proof reaches a node of a verified tree but not its root is refused (and not relayed)', () => {
    const envs = signEnvelopes(Array.from({ length: 8 }, (_, i) => fields(i)), key)
    const roots = new VerifiedRoots()
    for (const e of envs.slice(0, 4)) assert.ok(decodeEnvelope(e.bytes, undefined, roots).ok)
    const { sig, bp, id: _i, bytes: _b, ...rest } = envs[1]
    // The first sibling is right, so the walk passes through nodes an earlier proof had;
    // the rest of the path is junk that fails at any node without this cache.
    const bent = [bp?.path[0] as Uint8Array, new Uint8Array(32).fill(1), new Uint8Array(32).fill(2)]
    const forged = dagCbor.encode({ ...rest, sig, bp: [8, 1, bent] })
    const r = decodeEnvelope(forged, undefined, roots)
    assert.ok(!r.ok && r.reason === 'bad-signature', 'a bent proof is refused with a warm cache')
    assert.equal(decodeEnvelope(forged, undefined, new VerifiedRoots()).ok, false)
  })

  test('the batch vector: leaves, root and signature recomputed independently', () => {
    const file = JSON.parse(readFileSync(VECTORS_FILE, 'utf8'))
    const a = agentKeyFromSeed(unhex(file.seeds.A))
    const leaves: Uint8Array[] = []
    for (const [i, e] of file.batch.envelopes.entries()) {
      const d = decodeEnvelope(unhex(e.wire))
      assert.ok(d.ok)
      assert.equal(d.envelope.id, e.id)
      const mh = Buffer.concat([Buffer.from([0x12, 0x20]), sha(encodeEnvelopeFields({ ...e.fields, body: unhex(e.fields.body) }))])
      assert.equal(hex(mh.subarray(2)), file.batch.leaves[i], 'the leaf is the id digest')
      assert.ok(unhex(e.wire)[0] >= 0xa0 && unhex(e.wire)[0] <= 0xbb, 'unsigned and wire bytes start with a map head, never 0x01')
      leaves.push(unhex(file.batch.leaves[i]))
    }
    assert.equal(hex(mth(leaves)), file.batch.root)
    assert.equal(hex(a.sign(unhex(file.batch.signingInput))), file.batch.sig)
    assert.equal(hex(leafOf(Buffer.concat([Buffer.from([0x12, 0x20]), new Uint8Array(32).fill(5)]))), hex(new Uint8Array(32).fill(5)))
  })
})

describe('one-pass canonical reader and direct encoders', () => {
  const samples = (): EnvelopeFields[] => [
    fields(0),
    fields(1, { mode: 'multicast', topic: undefined, to: [key.id, generateAgentKey().id], replyTo: key.id, conv: 'c-ü-1', corr: 'x', schema: 's/x@1.0.0', proto: 'fipa', dlv: { ack: true, seq: 300, dedup: false, maxMs: 70000, retries: 16 } }),
    fields(2, { type: 'ünïcödé ✓', ct: 'text/plain', enc: 'gzip', ttl: 604800, ts: 2 ** 52, prio: 3, body: new Uint8Array(70000) }),
    fields(3, { nonce: undefined, hops: 0, body: new Uint8Array(0), dlv: {} })
  ]

  test('encodeEnvelopeFields is byte-identical to DAG-CBOR, with and without sig and bp', () => {
    for (const f of samples()) {
      const clean = JSON.parse(JSON.stringify({ ...f, body: undefined })) as Record<string, unknown>
      clean.body = f.body
      const sig = new Uint8Array(64).fill(7)
      const bp = { n: 300, i: 299, path: [new Uint8Array(32).fill(1), new Uint8Array(32).fill(2)] }
      assert.equal(hex(encodeEnvelopeFields(f)), hex(dagCbor.encode(clean)))
      assert.equal(hex(encodeEnvelopeFields(f, sig, bp)), hex(dagCbor.encode({ ...clean, sig, bp: [300, 299, bp.path] })))
    }
  })

  test('a field the direct encoder does not lay out falls back to the generic encoder', () => {
    const f = { ...fields(9), dlv: { ack: true, zz: 1 } } as unknown as EnvelopeFields
    const clean = { ...f } as Record<string, unknown>
    assert.equal(hex(encodeEnvelopeFields(f)), hex(dagCbor.encode(clean)))
    const sig = new Uint8Array(64).fill(3)
    assert.equal(hex(encodeEnvelopeFields(f, sig)), hex(dagCbor.encode({ ...clean, sig })))
  })

  test('mapEntryEnd: where each entry of an envelope map ends, as DAG-CBOR lays it out; -1 for a key it lacks', () => {
    for (const f of samples()) {
      const bytes = encodeEnvelopeFields(f)
      const value = dagCbor.decode(bytes) as Record<string, unknown>
      const keys = Object.keys(value)
      // DAG-CBOR writes the entries in canonical order after the map head.
      let end = bytes.length - keys.reduce((n, k) => n + dagCbor.encode({ [k]: value[k] }).length - 1, 0)
      const ordered = keys.slice().sort((a, b) => a.length - b.length || Buffer.compare(Buffer.from(a), Buffer.from(b)))
      for (const k of ordered) {
        end += dagCbor.encode({ [k]: value[k] }).length - 1
        assert.equal(mapEntryEnd(bytes, k), end, k)
      }
      assert.equal(mapEntryEnd(bytes, 'sig'), -1)
      assert.equal(mapEntryEnd(bytes.subarray(0, bytes.length - 1), ordered[ordered.length - 1]), -1)
    }
  })

  test('signed envelopes (alone and batched) decode the same on the fast and the general path', () => {
    const envs = [...samples().map(f => signEnvelope(f, key)), ...signEnvelopes(samples(), key)]
    for (const e of envs) {
      const fast = decodeCanonicalMap(e.bytes, ['sig', 'bp'])
      assert.ok(fast !== undefined)
      const general = dagCbor.decode(e.bytes) as Record<string, unknown>
      const { sig, bp, ...rest } = general
      assert.deepEqual(fast.value, rest)
      assert.deepEqual(fast.omitted, bp === undefined ? { sig } : { sig, bp })
      assert.equal(hex(fast.without), hex(dagCbor.encode(rest)))
    }
  })

  test('short ASCII strings (kept by their bytes, up to 7 characters) read back as they were, each length and value apart', () => {
    const strings = ['', '\u0000', 'a', '\u0000a', 'a\u0000', '\u007f\u007f\u007f\u007f\u007f\u007f', '\u0000\u0000\u0000\u0000\u0000\u0000\u0001',
      'durable', 'durablf', 'retries', 'replyTo', '\u007f\u007f\u007f\u007f\u007f\u007f\u007f', 'eightchr', 'ab', 'ba', 'abcdefg', 'abcdefh', 'bcdefga']
    for (let round = 0; round < 2; round++) {
      const got = decodeCanonical(dagCbor.encode(strings)) as string[]
      assert.deepEqual(got, strings, `round ${round}`)
      const m = decodeCanonical(dagCbor.encode(Object.fromEntries(strings.map((k, i) => [k, i])))) as Record<string, number>
      for (const [i, k] of strings.entries()) assert.equal(m[k], i, JSON.stringify(k))
    }
  })

  test('the fast reader refuses every non-canonical or unsupported encoding (the general path then decides)', () => {
    const cases: Record<string, string> = {
      'non-minimal int': 'a1617618 01',
      'non-minimal length': 'a1617678 0161',
      'unsorted keys': 'a2626262016161 02',
      'duplicate keys': 'a2616101616102',
      'indefinite map': 'bf616101ff',
      'float': 'a16176f93c00',
      'negative int': 'a1617620',
      'null': 'a16176f6',
      'tag': 'a16176d82a4100',
      'invalid utf-8': 'a1617661ff',
      'trailing byte': 'a161760100',
      'truncated': 'a16176',
      'int above 2^53': 'a161761b0020000000000000',
      '__proto__ key': 'a1695f5f70726f746f5f5f01'
    }
    for (const [name, h] of Object.entries(cases)) assert.equal(decodeCanonical(unhex(h.replace(/ /g, ''))), undefined, name)
    assert.deepEqual(decodeCanonical(unhex('a2617601626374f5')), { v: 1, ct: true })
  })

  test('message ids: the base32 encoder matches multiformats', () => {
    for (let n = 0; n < 70; n++) for (let k = 0; k < 20; k++) {
      const b = new Uint8Array(randomBytes(n))
      assert.equal(base32Multibase(b), base32.encode(b), `${n} bytes`)
    }
  })

  test('data frames: the direct encoder matches DAG-CBOR and decodes back', () => {
    const e = signEnvelope(fields(0), key).bytes
    for (const [h, x] of [[1, undefined], [31, [0, 23, 24, 255, 256, 65536]], [0, []]] as const) {
      const bytes = encodeDataFrame(h, e, x)
      assert.equal(hex(bytes), hex(dagCbor.encode(x === undefined ? { t: 6, h, e } : { t: 6, h, e, x })))
      const f = decodeFrame(bytes)
      assert.ok(f?.t === 6)
      assert.equal(hex(f.e), hex(e))
      assert.deepEqual(f.x, x)
    }
    assert.equal(decodeFrame(dagCbor.encode({ t: 6, h: 1, e, x: [-1] })), undefined)
    assert.equal(decodeFrame(dagCbor.encode({ t: 6, h: 1, e: 'x' })), undefined)
  })

  test('batch frames: the direct encoder matches DAG-CBOR and decodes back; bad shapes are not frames', () => {
    const envs = signEnvelopes([0, 1, 2].map(i => fields(i)), key)
    const l = envs.map(e => (batchOf(e)?.unsigned[e.bp?.i ?? -1]) as Uint8Array)
    l[1] = leafOf(dagCborId(l[1]))
    const s = envs[0].sig
    for (const [h, x] of [[1, undefined], [31, [0, 24, 65536]]] as const) {
      const bytes = encodeBatchFrame(h, s, l, x)
      assert.equal(hex(bytes), hex(dagCbor.encode(x === undefined ? { t: 7, h, l, s } : { t: 7, h, l, s, x })))
      const f = decodeFrame(bytes)
      assert.ok(f?.t === 7)
      assert.deepEqual(f.l.map(hex), l.map(hex))
      assert.deepEqual(f.x, x)
    }
    assert.equal(decodeFrame(dagCbor.encode({ t: 7, h: 1, l: l.slice(0, 1), s })), undefined, 'one leaf')
    assert.equal(decodeFrame(dagCbor.encode({ t: 7, h: 1, l, s: s.subarray(1) })), undefined, 'short signature')
    assert.equal(decodeFrame(dagCbor.encode({ t: 7, h: 1, l: [...l, 'x'], s })), undefined, 'a leaf not bytes')
    assert.equal(decodeFrame(dagCbor.encode({ t: 7, h: 1, l: Array.from({ length: MAX_BATCH + 1 }, () => l[1]), s })), undefined, 'too many leaves')
  })

  test('checkBatch: one signature check per batch, carried envelopes in leaf order, every tampering refused', () => {
    const n = 37
    const envs = signEnvelopes(Array.from({ length: n }, (_, i) => fields(i)), key)
    const unsigned = envs.map(e => batchOf(e)?.unsigned[e.bp?.i ?? -1] as Uint8Array)
    const opts: IngressOptions = { network: 'test' as NetworkId, maxBytes: 1 << 20, clockSkewMs: 30_000, roots: new VerifiedRoots() }
    // Every third leaf by its hash only.
    const l = unsigned.map((u, i) => i % 3 === 0 ? leafOf(dagCborId(u)) : u)
    const r = checkBatch(envs[0].sig, l, 1, opts)
    assert.ok(r.ok)
    const got = r.results.map(x => { assert.ok(x.ok); return x.envelope })
    assert.deepEqual(got.map(e => e.id), envs.filter((_, i) => i % 3 !== 0).map(e => e.id))
    assert.equal(opts.roots?.checks, 1)
    // Each carried envelope is made as its leaf is read: frozen, of the returned batch, at its own leaf index.
    for (const e of got) assert.ok(Object.isFrozen(e) && batchOf(e) === r.batch && leafIndexOf(e) === envs.findIndex(x => x.id === e.id))
    for (const e of got) {
      // Derived on demand: the same proof and wire bytes the signer made.
      const orig = envs[e.bp?.i ?? -1]
      assert.deepEqual(e.bp, orig.bp)
      assert.equal(hex(e.bytes), hex(orig.bytes))
      assert.equal(wireSize(e), orig.bytes.length)
    }
    // With the tree's levels kept (a home node's putb): the same proofs and wire bytes.
    const kept = checkBatch(envs[0].sig, l, 1, { ...opts, keepTree: true })
    assert.ok(kept.ok)
    for (const x of kept.results) {
      assert.ok(x.ok)
      const orig = envs[x.envelope.bp?.i ?? -1]
      assert.deepEqual(x.envelope.bp, orig.bp)
      assert.equal(hex(x.envelope.bytes), hex(orig.bytes))
    }
    // The same batch again: verified from the cache.
    assert.ok(checkBatch(envs[0].sig, l, 1, opts).ok)
    assert.equal(opts.roots?.checks, 1)
    // A sub-tree of the batch (its root a verified inner node) does not pass for the batch.
    const sub = checkBatch(envs[0].sig, [unsigned[2], unsigned[3]], 1, opts)
    assert.equal(reason(sub), 'bad-signature', 'two leaves whose node is a cached inner node')
    const fresh = (): IngressOptions => ({ ...opts, roots: new VerifiedRoots() })
    const tampered = l.map(u => new Uint8Array(u))
    tampered[4][tampered[4].length - 2] ^= 1
    assert.equal(reason(checkBatch(envs[0].sig, tampered, 1, fresh())), 'bad-signature', 'a changed leaf')
    assert.equal(reason(checkBatch(envs[0].sig, l.slice(0, n - 1), 1, fresh())), 'bad-signature', 'a leaf left out')
    assert.equal(reason(checkBatch(envs[0].sig, [l[1], l[2], ...l.slice(3)], 1, fresh())), 'bad-signature', 'leaves reordered')
    const otherSig = signEnvelopes([fields(100), fields(101)], key)[0].sig
    assert.equal(reason(checkBatch(otherSig, l, 1, fresh())), 'bad-signature', 'another batch\'s signature')
    assert.equal(reason(checkBatch(envs[0].sig, l.map(u => u.length === 32 ? u : leafOf(dagCborId(u))), 1, fresh())), 'malformed', 'nothing carried')
    const other = generateAgentKey()
    const foreign = signEnvelopes([fields(0, { from: other.id }), fields(1, { from: other.id })], other)
    assert.equal(reason(checkBatch(envs[0].sig, [l[1], batchOf(foreign[0])?.unsigned[0] as Uint8Array], 1, fresh())), 'bad-field', 'two signers')
    assert.equal(reason(checkBatch(envs[0].sig, [envs[1].bytes, l[2]], 1, fresh())), 'bad-field', 'a leaf with its own sig and bp')
    assert.equal(reason(checkBatch(envs[0].sig, l, 1, { ...fresh(), maxBytes: 40 })), 'too-large')
    // Context is checked per envelope: a wrong network refuses each envelope, not the frame.
    const wrong = checkBatch(envs[0].sig, l, 1, { ...fresh(), network: 'other' as NetworkId })
    assert.ok(wrong.ok && wrong.results.every(x => !x.ok && x.reason === 'wrong-network'))
  })

  test('proof lengths and wire sizes without building the proof', () => {
    for (let n = 2; n <= 300; n += 7) {
      const paths = merkleTree(Array.from({ length: n }, (_, i) => sha(Uint8Array.of(i & 255, i >> 8)))).paths
      for (let i = 0; i < n; i++) assert.equal(proofLength(n, i), paths[i].length, `${i} of ${n}`)
    }
    // Against RFC 9162's recursion written out with its own split (a doubling loop): every
    // batch size up to MAX_BATCH, leaves at both ends and around each power of two.
    const depth = (n: number, i: number): number => {
      if (n <= 1) return 0
      let k = 1
      while (k * 2 < n) k *= 2
      return 1 + (i < k ? depth(k, i) : depth(n - k, i - k))
    }
    for (let n = 1; n <= 1024; n++) {
      for (const i of [0, 1, n >> 1, n - 2, n - 1, 511, 512, 513]) {
        if (i >= 0 && i < n) assert.equal(proofLength(n, i), depth(n, i), `${i} of ${n}`)
      }
    }
    const envs = signEnvelopes(Array.from({ length: 300 }, (_, i) => fields(i, { conv: 'c', corr: 'x', schema: 's@1.0.0', proto: 'p', replyTo: key.id, dlv: { seq: i } })), key)
    for (const e of envs) assert.equal(wireSize(e), e.bytes.length)
    assert.equal(hex(merkleRoot(envs.map(e => leafOf(dagCborId(batchOf(e)?.unsigned[e.bp?.i ?? -1] as Uint8Array))))), hex(rootFromProof(leafOf(dagCborId(batchOf(envs[0])?.unsigned[0] as Uint8Array)), envs[0].bp!) as Uint8Array))
    const u = decodeUnsigned(batchOf(envs[3])?.unsigned[3] as Uint8Array)
    assert.ok(u.ok && u.id === envs[3].id)
  })
})

/** The multihash of unsigned envelope bytes (0x12 0x20 ‖ sha2-256). */
function dagCborId (unsigned: Uint8Array): Uint8Array {
  return Uint8Array.of(0x12, 0x20, ...sha(unsigned))
}

function reason (r: ReturnType<typeof checkBatch>): string {
  return r.ok ? 'ok' : r.reason
}
