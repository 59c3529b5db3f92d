/**
 * Noise's ChaCha20-Poly1305 on libsodium (sodium-native, already the project's Ed25519).
 *
 * js-libp2p-noise seals and opens every transport message below 1,200 bytes with
 * @chainsafe/as-chacha20poly1305 (WebAssembly), and larger ones with Node's cipher objects.
 * On a request–reply link every message is small: the WebAssembly code and its copies in
 * and out of its memory were 4–5 % of each node's busy time per round trip (PERFORMANCE.md,
 * "Request–reply, session 9"), where libsodium's one native call is a fraction of that.
 * Everything else (hashing, HKDF, X25519 of the handshake) stays the library's default.
 * Same construction (IETF: 96-bit nonce, 16-byte tag after the ciphertext), same bytes on
 * the wire.
 */
import sodium from 'sodium-native'
import { defaultCrypto } from '@chainsafe/libp2p-noise/crypto'
import type { ICryptoInterface } from '@chainsafe/libp2p-noise'

const TAG_BYTES = 16

/** A Uint8Array, or Noise's Uint8ArrayList (of its own copy of the package). */
type Bytes = Parameters<ICryptoInterface['chaCha20Poly1305Encrypt']>[0]

function contiguous (data: Bytes): Uint8Array {
  return data instanceof Uint8Array ? data : data.subarray()
}

/**
 * Seals `plaintext`: the ciphertext followed by its tag, in a new buffer. A list (what
 * Noise gets from yamux: a frame header, then its data) is copied into that buffer and
 * sealed in place (libsodium reads each byte before it writes it), not joined into a
 * buffer of its own first.
 */
export function sealChaCha20Poly1305 (plaintext: Bytes, nonce: Uint8Array, ad: Uint8Array, k: Uint8Array): Uint8Array {
  const c = Buffer.allocUnsafe(plaintext.byteLength + TAG_BYTES)
  let m: Uint8Array
  if (plaintext instanceof Uint8Array) m = plaintext
  else {
    let at = 0
    for (const part of plaintext) { c.set(part, at); at += part.byteLength }
    m = c.subarray(0, at)
  }
  sodium.crypto_aead_chacha20poly1305_ietf_encrypt(c, m, ad, null, nonce, k)
  return c
}

/**
 * Opens `ciphertext` (tag last) into `dst` when given — Noise passes the ciphertext's own
 * bytes, decrypted in place as the WebAssembly code does (libsodium checks the tag before it
 * writes) — else into a new buffer. Throws when the tag does not match.
 */
export function openChaCha20Poly1305 (ciphertext: Bytes, nonce: Uint8Array, ad: Uint8Array, k: Uint8Array, dst?: Uint8Array): Uint8Array {
  const c = contiguous(ciphertext)
  if (c.byteLength < TAG_BYTES) throw new Error('Invalid chacha20poly1305 decryption')
  const m = dst !== undefined && dst.byteLength === c.byteLength - TAG_BYTES ? dst : Buffer.allocUnsafe(c.byteLength - TAG_BYTES)
  try {
    sodium.crypto_aead_chacha20poly1305_ietf_decrypt(m, null, c, ad, nonce, k)
  } catch {
    throw new Error('Invalid chacha20poly1305 decryption')
  }
  return m
}

/** The library's default Noise crypto with the AEAD on libsodium: pass as `noise({ crypto })`. */
export const sodiumNoiseCrypto: ICryptoInterface = {
  ...defaultCrypto,
  chaCha20Poly1305Encrypt: sealChaCha20Poly1305,
  chaCha20Poly1305Decrypt: openChaCha20Poly1305
}
