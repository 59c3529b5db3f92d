import { test, describe } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import {
  agentKeyFromSeed, generateAgentKey, didFromPublicKey, publicKeyFromDid, isAgentId, verifyByDid
} from '../../src/core/keys.ts'
import type { AgentId } from '../../src/core/ids.ts'
import { InvalidArgumentError } from '../../src/core/errors.ts'
import { base58btc, ed25519Verify, hex, referenceDid, unhex, utf8 } from '../helpers/reference.ts'

const vectors = JSON.parse(readFileSync(new URL('../vectors/envelopes.json', import.meta.url), 'utf8'))

describe('agent keys', () => {
  test('RFC 8032 test 1: seed → public key and signature of the empty message', () => {
    const key = agentKeyFromSeed(unhex('9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60'))
    assert.equal(hex(key.publicKey), 'd75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a')
    const sig = key.sign(new Uint8Array(0))
    assert.equal(hex(sig), 'e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b')
    assert.ok(verifyByDid(key.id, new Uint8Array(0), sig))
  })

  test('third-party did:key vectors', () => {
    // transmute-industries/did-key.js README: seed → did:key
    const k = agentKeyFromSeed(unhex('4f66b355aa7b0980ff901f2295b9c562ac3061be4df86703eb28c612faae6578'))
    assert.equal(k.id, 'did:key:z6Mkk7yqnGF3YwTrLpqrW6PGsKci7dNqh1CjnvMbzrMerSeL')
    assert.equal(Buffer.from(k.publicKey).toString('base64url'), 'VDXDwuGKVq91zxU6q7__jLDUq8_C5cuxECgd-1feFTE')
    // did:key document with publicKeyBase58 (Ed25519VerificationKey2018)
    const did = 'did:key:z6MkmjY8GnV5i9YTDtPETC2uUAW6ejw3nk5mXF5yci5ab7th' as AgentId
    assert.equal(base58btc(publicKeyFromDid(did)), '8HH5gYEeNc3z7PYXmd54d4x6qAfCNrqQqEB3nS7Zfu7K')
    assert.equal(didFromPublicKey(publicKeyFromDid(did)), did)
  })

  test('test-vector seeds give the documented dids, also by an independent encoder', () => {
    for (const name of ['A', 'B']) {
      const key = agentKeyFromSeed(unhex(vectors.seeds[name]))
      assert.equal(key.id, vectors.agents[name])
      assert.equal(hex(key.publicKey), vectors.publicKeys[name])
      assert.equal(referenceDid(key.publicKey), key.id)
      assert.match(key.id, /^did:key:z6Mk[1-9A-HJ-NP-Za-km-z]{44}$/)
    }
    assert.equal(vectors.seeds.A, hex(Uint8Array.from({ length: 32 }, (_, i) => i + 1)))
    assert.equal(vectors.seeds.B, hex(Uint8Array.from({ length: 32 }, (_, i) => i + 0x21)))
  })

  test('did:key round trip', () => {
    for (let i = 0; i < 20; i++) {
      const key = generateAgentKey()
      assert.equal(key.seed.length, 32)
      assert.equal(didFromPublicKey(key.publicKey), key.id)
      assert.equal(referenceDid(key.publicKey), key.id)
      assert.deepEqual(publicKeyFromDid(key.id), key.publicKey)
      assert.ok(isAgentId(key.id))
      const again = agentKeyFromSeed(key.seed)
      assert.equal(again.id, key.id)
      assert.equal(key.id.length, 56)
    }
  })

  test('signatures are deterministic and verify only for the signer and the data', () => {
    const a = agentKeyFromSeed(unhex(vectors.seeds.A))
    const b = agentKeyFromSeed(unhex(vectors.seeds.B))
    const data = utf8('fedmesh')
    const sig = a.sign(data)
    assert.deepEqual(a.sign(data), sig)
    assert.ok(ed25519Verify(a.publicKey, data, sig), 'independent verification')
    assert.ok(verifyByDid(a.id, data, sig))
    assert.equal(verifyByDid(b.id, data, sig), false)
    assert.equal(verifyByDid(a.id, utf8('fedmesH'), sig), false)
    const bad = new Uint8Array(sig)
    bad[10] ^= 1
    assert.equal(verifyByDid(a.id, data, bad), false)
  })

  test('libsodium and an independent implementation (OpenSSL) agree on keys, signatures and verification', () => {
    for (let i = 0; i < 200; i++) {
      const key = generateAgentKey()
      const data = new Uint8Array(i * 7)
      for (let j = 0; j < data.length; j++) data[j] = (i * 31 + j * 17) & 0xff
      const sig = key.sign(data)
      assert.equal(sig.length, 64)
      assert.ok(ed25519Verify(key.publicKey, data, sig), `OpenSSL verifies signature ${i}`)
      assert.ok(verifyByDid(key.id, data, sig))
      // A signature over a view into a larger buffer is the signature of the view.
      const framed = new Uint8Array(data.length + 9)
      framed.set(data, 5)
      assert.deepEqual(key.sign(framed.subarray(5, 5 + data.length)), sig)
      assert.ok(verifyByDid(key.id, framed.subarray(5, 5 + data.length), sig))
      const flipped = new Uint8Array(sig)
      flipped[i % 64] ^= 1 << (i % 8)
      assert.equal(verifyByDid(key.id, data, flipped), false)
      assert.equal(ed25519Verify(key.publicKey, data, flipped), false)
    }
  })

  test('verification is strict: small-order keys and R, and non-canonical S, are refused', () => {
    // The identity point as the public key with R = identity and S = 0 satisfies the
    // cofactorless equation for every message, so OpenSSL (RFC 8032 §5.1.7 as written)
    // accepts it: anyone could sign as that did. libsodium refuses small-order keys.
    const identity = new Uint8Array(32)
    identity[0] = 1
    const forged = new Uint8Array(64)
    forged.set(identity, 0)
    const weak = didFromPublicKey(identity)
    assert.equal(ed25519Verify(identity, utf8('anything'), forged), true, 'OpenSSL accepts the forgery')
    assert.equal(verifyByDid(weak, utf8('anything'), forged), false)
    assert.equal(verifyByDid(weak, utf8('something else'), forged), false)
    // A real key's signature with S + L (same value mod L, not canonical) is refused.
    const a = agentKeyFromSeed(unhex(vectors.seeds.A))
    const data = utf8('fedmesh')
    const sig = a.sign(data)
    const L = [0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
      0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10]
    const big = new Uint8Array(sig)
    let carry = 0
    for (let i = 0; i < 32; i++) {
      const v = big[32 + i] + L[i] + carry
      big[32 + i] = v & 0xff
      carry = v >> 8
    }
    if (carry === 0) assert.equal(verifyByDid(a.id, data, big), false, 'S + L')
    // R replaced by a small-order point (the identity) is refused too.
    const smallR = new Uint8Array(sig)
    smallR.set(identity, 0)
    assert.equal(verifyByDid(a.id, data, smallR), false)
  })

  test('seeds and public keys must be 32 bytes', () => {
    assert.throws(() => agentKeyFromSeed(new Uint8Array(31)), InvalidArgumentError)
    assert.throws(() => agentKeyFromSeed(new Uint8Array(33)), InvalidArgumentError)
    assert.throws(() => didFromPublicKey(new Uint8Array(31)), InvalidArgumentError)
    assert.throws(() => didFromPublicKey(new Uint8Array(33)), InvalidArgumentError)
  })

  test('isAgentId and publicKeyFromDid refuse what is not an Ed25519 did:key', () => {
    const good = agentKeyFromSeed(unhex(vectors.seeds.A))
    const raw = publicKeyFromDid(good.id)
    const bad: unknown[] = [
      undefined, null, 42, {}, '', 'did:key:', 'did:key:z', good.id + ' ', ' ' + good.id, good.id.toUpperCase(),
      good.id.replace('did:key:', 'did:web:'), good.id.replace('did:key:z', 'did:key:m'),
      good.id.slice(0, -1) + '0', // '0' is not in the base58 alphabet
      'did:key:z' + base58btc(Uint8Array.from([0xec, 0x01, ...raw])), // x25519-pub multicodec
      'did:key:z' + base58btc(Uint8Array.from([0xe7, 0x01, 0x02, ...raw])), // secp256k1-pub, 33-byte key
      'did:key:z' + base58btc(Uint8Array.from([0xed, 0x01, ...raw, 0])), // 33-byte key
      'did:key:z' + base58btc(Uint8Array.from([0xed, 0x01, ...raw.subarray(1)])), // 31-byte key
      'did:key:z' + base58btc(Uint8Array.from([0xed, 0x81, 0x01, ...raw.subarray(1)])) // 0xed01 not as the prefix
    ]
    for (const s of bad) {
      assert.equal(isAgentId(s), false, String(s))
      if (typeof s === 'string') assert.throws(() => publicKeyFromDid(s as AgentId), String(s))
    }
    assert.throws(() => publicKeyFromDid('did:web:example.com' as AgentId), InvalidArgumentError)
  })

  test('verifyByDid never throws on garbage, it returns false', () => {
    const a = agentKeyFromSeed(unhex(vectors.seeds.A))
    const data = utf8('x')
    const sig = a.sign(data)
    const dids = [
      '', 'did:key:', 'did:key:zzzz', 'not a did', 'did:key:z0OIl', a.id + 'x',
      referenceDid(new Uint8Array(32)), referenceDid(new Uint8Array(32).fill(0xff)), // not valid curve points / small order
      'did:key:z' + base58btc(Uint8Array.from([0xec, 0x01, ...a.publicKey]))
    ]
    for (const did of dids) {
      assert.doesNotThrow(() => verifyByDid(did as AgentId, data, sig))
      assert.equal(verifyByDid(did as AgentId, data, sig), false, did)
    }
    for (const s of [new Uint8Array(0), new Uint8Array(63), new Uint8Array(65), new Uint8Array(64), new Uint8Array(64).fill(0xff), sig.subarray(0, 63)]) {
      assert.equal(verifyByDid(a.id, data, s), false, `sig of ${s.length} bytes`)
    }
    assert.equal(verifyByDid(a.id, new Uint8Array(0), sig), false)
    // The key cache does not turn a failure into a success or vice versa.
    assert.equal(verifyByDid(a.id, data, sig), true)
    assert.equal(verifyByDid(a.id, data, sig), true)
  })
})
