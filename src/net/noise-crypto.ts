/**
 * The cryptography under the Noise channel (XX handshake, then ChaCha20-Poly1305 per
 * transport message), on libsodium and Node's crypto.
 *
 * js-libp2p-noise's own default seals messages under 1,200 bytes in WebAssembly
 * (as-chacha20poly1305) and larger ones with Node's per-call cipher objects. A
 * request–reply round trip is a few such small messages each way; libsodium seals and
 * opens them about four times faster than the WebAssembly (PERFORMANCE.md, "Noise on
 * libsodium, session 9") and with no cipher object per call. Messages of 16 KiB and more
 * stay with Node (OpenSSL's vectorised ChaCha20 is as fast or faster there). The
 * handshake's X25519 is libsodium's, its hash and HKDF Node's. Same wire bytes as any Noise
 * implementation: the tests interoperate with the library's pure-JS crypto.
 */
import { createCipheriv, createDecipheriv, createHash, hkdfSync, randomBytes } from 'node:crypto'
import sodium from 'sodium-native'
import type { ICryptoInterface } from '@chainsafe/libp2p-noise'

const TAG = 16
/** From this plaintext size on, Node's cipher (OpenSSL) seals and opens. */
export const NODE_CIPHER_FROM = 16 * 1024

/** Bytes as Noise hands them over (its own uint8arraylist copy's type). */
type NoiseBytes = Parameters<ICryptoInterface['chaCha20Poly1305Encrypt']>[0]

const flat = (data: NoiseBytes): Uint8Array => data instanceof Uint8Array ? data : data.subarray()

function x25519KeyPair (secret: Uint8Array): { publicKey: Uint8Array, privateKey: Uint8Array } {
  const publicKey = new Uint8Array(32)
  sodium.crypto_scalarmult_base(publicKey, secret)
  return { publicKey, privateKey: secret }
}

function nodeSeal (plaintext: Uint8Array, nonce: Uint8Array, ad: Uint8Array, k: Uint8Array): Uint8Array {
  const cipher = createCipheriv('chacha20-poly1305', k, nonce, { authTagLength: TAG })
  cipher.setAAD(ad, { plaintextLength: plaintext.byteLength })
  const body = cipher.update(plaintext)
  cipher.final()
  return Buffer.concat([body, cipher.getAuthTag()], body.byteLength + TAG)
}

function nodeOpen (ciphertext: Uint8Array, nonce: Uint8Array, ad: Uint8Array, k: Uint8Array): Uint8Array {
  const text = ciphertext.subarray(0, ciphertext.byteLength - TAG)
  const decipher = createDecipheriv('chacha20-poly1305', k, nonce, { authTagLength: TAG })
  decipher.setAAD(ad, { plaintextLength: text.byteLength })
  decipher.setAuthTag(ciphertext.subarray(text.byteLength))
  const out = decipher.update(text)
  decipher.final()
  return out
}

export const noiseCrypto: ICryptoInterface = {
  hashSHA256 (data) {
    const hash = createHash('sha256')
    if (data instanceof Uint8Array) return hash.update(data).digest()
    for (const buf of data) hash.update(buf)
    return hash.digest()
  },

  getHKDF (ck, ikm) {
    const okm = new Uint8Array(hkdfSync('sha256', ikm, ck, new Uint8Array(0), 96))
    return [okm.subarray(0, 32), okm.subarray(32, 64), okm.subarray(64, 96)]
  },

  generateX25519KeyPair: () => x25519KeyPair(new Uint8Array(randomBytes(32))),
  generateX25519KeyPairFromSeed: (seed) => x25519KeyPair(seed),

  generateX25519SharedKey (privateKey, publicKey) {
    const shared = new Uint8Array(32)
    sodium.crypto_scalarmult(shared, flat(privateKey), flat(publicKey))
    return shared
  },

  chaCha20Poly1305Encrypt (plaintext, nonce, ad, k) {
    const m = flat(plaintext)
    if (m.byteLength >= NODE_CIPHER_FROM) return nodeSeal(m, nonce, ad, k)
    const c = Buffer.allocUnsafe(m.byteLength + TAG)
    sodium.crypto_aead_chacha20poly1305_ietf_encrypt(c, m, ad, null, nonce, k)
    return c
  },

  chaCha20Poly1305Decrypt (ciphertext, nonce, ad, k, dst) {
    const c = flat(ciphertext)
    if (c.byteLength < TAG) throw new Error('Invalid chacha20poly1305 decryption: shorter than its tag')
    if (c.byteLength - TAG >= NODE_CIPHER_FROM) return nodeOpen(c, nonce, ad, k)
    // In place when the caller offers the ciphertext's own bytes (the library does).
    const m = dst != null && dst.byteLength >= c.byteLength - TAG ? dst.subarray(0, c.byteLength - TAG) : Buffer.allocUnsafe(c.byteLength - TAG)
    sodium.crypto_aead_chacha20poly1305_ietf_decrypt(m, null, c, ad, nonce, k)
    return m
  }
}
