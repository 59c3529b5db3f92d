import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { pureJsCrypto, type ICryptoInterface } from '@chainsafe/libp2p-noise'
import { Uint8ArrayList } from 'uint8arraylist'
import { noiseCrypto, NODE_CIPHER_FROM } from '../../src/net/noise-crypto.ts'

const bytes = (n: number, seed: number): Uint8Array => Uint8Array.from({ length: n }, (_, i) => (i * 131 + seed * 7) & 0xff)
type NoiseBytes = Parameters<ICryptoInterface['chaCha20Poly1305Encrypt']>[0]
const flat = (x: NoiseBytes): Uint8Array => x instanceof Uint8Array ? new Uint8Array(x) : x.subarray()
/** A list of pieces, as Noise may hand one over (its own copy of uint8arraylist). */
const pieces = (...parts: Uint8Array[]): NoiseBytes => new Uint8ArrayList(...parts) as unknown as NoiseBytes

describe('Noise crypto on libsodium (net/noise-crypto.ts)', () => {
  const k = bytes(32, 1)
  const nonce = bytes(12, 2)
  const ad = bytes(32, 3)
  const sizes = [0, 1, 15, 16, 100, 1199, 1200, 4000, NODE_CIPHER_FROM - 1, NODE_CIPHER_FROM, 65519]

  it('seals and opens exactly as the library\'s pure-JS crypto does, on both sides of the size switch', () => {
    for (const n of sizes) {
      const m = bytes(n, n)
      const ours = flat(noiseCrypto.chaCha20Poly1305Encrypt(m, nonce, ad, k))
      const theirs = flat(pureJsCrypto.chaCha20Poly1305Encrypt(m, nonce, ad, k))
      assert.deepEqual(ours, theirs, `ciphertext of ${n} bytes`)
      assert.deepEqual(flat(noiseCrypto.chaCha20Poly1305Decrypt(theirs, nonce, ad, k)), m, `opened ${n}`)
      assert.deepEqual(flat(pureJsCrypto.chaCha20Poly1305Decrypt(ours, nonce, ad, k)), m, `opened by pure JS ${n}`)
      // A message handed over as a list of pieces.
      const list = pieces(m.subarray(0, n >> 1), m.subarray(n >> 1))
      assert.deepEqual(flat(noiseCrypto.chaCha20Poly1305Encrypt(list, nonce, ad, k)), theirs, `list of ${n}`)
    }
  })

  it('opens in place into the ciphertext\'s own bytes, as the library asks', () => {
    for (const n of [1, 300, 1199, NODE_CIPHER_FROM + 10]) {
      const m = bytes(n, 9)
      const sealed = flat(pureJsCrypto.chaCha20Poly1305Encrypt(m, nonce, ad, k))
      const buf = new Uint8Array(sealed.byteLength + 8)
      buf.set(sealed, 4)
      const c = buf.subarray(4, 4 + sealed.byteLength)
      const out = noiseCrypto.chaCha20Poly1305Decrypt(c, nonce, ad, k, buf.subarray(4, 4 + n))
      assert.deepEqual(flat(out), m)
      assert.deepEqual([...buf.subarray(0, 4)], [0, 0, 0, 0], 'nothing written before the message')
    }
  })

  it('refuses a wrong tag, key, nonce or associated data (throws)', () => {
    for (const n of [0, 64, NODE_CIPHER_FROM]) {
      const sealed = flat(noiseCrypto.chaCha20Poly1305Encrypt(bytes(n, 4), nonce, ad, k))
      const bad = new Uint8Array(sealed)
      bad[bad.length - 1] ^= 1
      assert.throws(() => noiseCrypto.chaCha20Poly1305Decrypt(bad, nonce, ad, k))
      assert.throws(() => noiseCrypto.chaCha20Poly1305Decrypt(sealed, nonce, ad, bytes(32, 5)))
      assert.throws(() => noiseCrypto.chaCha20Poly1305Decrypt(sealed, bytes(12, 6), ad, k))
      assert.throws(() => noiseCrypto.chaCha20Poly1305Decrypt(sealed, nonce, bytes(32, 7), k))
    }
    assert.throws(() => noiseCrypto.chaCha20Poly1305Decrypt(new Uint8Array(15), nonce, ad, k))
  })

  it('X25519, SHA-256 and HKDF agree with the pure-JS crypto', () => {
    for (let i = 0; i < 20; i++) {
      const a = noiseCrypto.generateX25519KeyPair()
      const b = pureJsCrypto.generateX25519KeyPair()
      assert.deepEqual(flat(noiseCrypto.generateX25519KeyPairFromSeed(a.privateKey).publicKey), flat(pureJsCrypto.generateX25519KeyPairFromSeed(a.privateKey).publicKey))
      const ab = flat(noiseCrypto.generateX25519SharedKey(a.privateKey, b.publicKey))
      const ba = flat(pureJsCrypto.generateX25519SharedKey(b.privateKey, a.publicKey))
      assert.deepEqual(ab, ba)
      const ikm = bytes(32 + i, i)
      const ours = noiseCrypto.getHKDF(ab, ikm).map(flat)
      const theirs = pureJsCrypto.getHKDF(ab, ikm).map(flat)
      assert.deepEqual(ours, theirs)
      assert.deepEqual(flat(noiseCrypto.hashSHA256(ikm)), flat(pureJsCrypto.hashSHA256(ikm)))
      assert.deepEqual(flat(noiseCrypto.hashSHA256(pieces(ikm.subarray(0, 5), ikm.subarray(5)))), flat(pureJsCrypto.hashSHA256(ikm)))
    }
  })
})
