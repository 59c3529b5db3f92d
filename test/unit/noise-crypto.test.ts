import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { Uint8ArrayList } from 'uint8arraylist'
import { defaultCrypto } from '@chainsafe/libp2p-noise/crypto'
import { sodiumNoiseCrypto, sealChaCha20Poly1305, openChaCha20Poly1305 } from '../../src/net/noise-crypto.ts'

const k = randomBytes(32)
const nonce = new Uint8Array(12)
nonce[4] = 7 // Noise's nonce: 4 zero bytes, then the counter (little-endian)
const ad = new Uint8Array(0)
// Both sides of the library's 1,200-byte switch between WebAssembly and Node's cipher.
const SIZES = [0, 1, 48, 400, 1199, 1200, 4000, 65519]

describe('Noise AEAD on libsodium', () => {
  it('seals to the same bytes as the library default', () => {
    for (const n of SIZES) {
      const m = randomBytes(n)
      const ours = sealChaCha20Poly1305(m, nonce, ad, k)
      const theirs = defaultCrypto.chaCha20Poly1305Encrypt(m, nonce, ad, k)
      assert.deepEqual(new Uint8Array(ours), new Uint8Array(theirs.subarray()), `size ${n}`)
      // A list of parts (a yamux header, then its data), sealed in place in the output buffer.
      const parts = new Uint8ArrayList(m.subarray(0, Math.min(12, n)), m.subarray(Math.min(12, n))) as unknown as Parameters<typeof sealChaCha20Poly1305>[0]
      assert.deepEqual(new Uint8Array(sealChaCha20Poly1305(parts, nonce, ad, k)), new Uint8Array(theirs.subarray()), `size ${n}, list`)
    }
  })

  it('opens what the library default sealed, from a list and in place', () => {
    for (const n of SIZES) {
      const m = randomBytes(n)
      const sealed = new Uint8Array(defaultCrypto.chaCha20Poly1305Encrypt(m, nonce, ad, k).subarray())
      assert.deepEqual(new Uint8Array(openChaCha20Poly1305(sealed, nonce, ad, k)), new Uint8Array(m), `size ${n}`)
      // (Noise's own copy of uint8arraylist is another type to the compiler.)
      const split = new Uint8ArrayList(sealed.subarray(0, sealed.length >> 1), sealed.subarray(sealed.length >> 1)) as unknown as Parameters<typeof openChaCha20Poly1305>[0]
      assert.deepEqual(new Uint8Array(openChaCha20Poly1305(split, nonce, ad, k)), new Uint8Array(m), `size ${n}, list`)
      // As Noise's decrypt does: the plaintext written over the ciphertext's own bytes.
      const inPlace = sealed.slice()
      const out = openChaCha20Poly1305(inPlace, nonce, ad, k, inPlace.subarray(0, n))
      assert.equal(out.buffer, inPlace.buffer)
      assert.deepEqual(new Uint8Array(out), new Uint8Array(m), `size ${n}, in place`)
    }
  })

  it('refuses a tampered message, a wrong nonce or a short one', () => {
    const m = randomBytes(300)
    const sealed = new Uint8Array(sealChaCha20Poly1305(m, nonce, ad, k))
    const bad = sealed.slice()
    bad[10] ^= 1
    assert.throws(() => openChaCha20Poly1305(bad, nonce, ad, k), /Invalid chacha20poly1305 decryption/)
    assert.throws(() => openChaCha20Poly1305(sealed, new Uint8Array(12), ad, k), /Invalid chacha20poly1305 decryption/)
    assert.throws(() => openChaCha20Poly1305(sealed.subarray(0, 15), nonce, ad, k), /Invalid chacha20poly1305 decryption/)
    assert.throws(() => defaultCrypto.chaCha20Poly1305Decrypt(bad, nonce, ad, k))
  })

  it('keeps the rest of the default crypto', () => {
    assert.equal(sodiumNoiseCrypto.hashSHA256, defaultCrypto.hashSHA256)
    assert.equal(sodiumNoiseCrypto.getHKDF, defaultCrypto.getHKDF)
    assert.equal(sodiumNoiseCrypto.generateX25519SharedKey, defaultCrypto.generateX25519SharedKey)
  })
})
