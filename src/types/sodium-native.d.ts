// The part of sodium-native (libsodium bindings; the package ships no types) that fedmesh uses.
declare module 'sodium-native' {
  /** Derives an Ed25519 key pair from a 32-byte seed: `publicKey` 32 bytes, `secretKey` 64 (seed ‖ public key). */
  export function crypto_sign_seed_keypair (publicKey: Uint8Array, secretKey: Uint8Array, seed: Uint8Array): void
  /** Writes the 64-byte Ed25519 signature of `message` into `signature`. */
  export function crypto_sign_detached (signature: Uint8Array, message: Uint8Array, secretKey: Uint8Array): void
  /** Strict Ed25519 verification (canonical encodings, no small-order key or R). */
  export function crypto_sign_verify_detached (signature: Uint8Array, message: Uint8Array, publicKey: Uint8Array): boolean
  /** X25519: `q` = the public key of secret `n` (32 bytes each). */
  export function crypto_scalarmult_base (q: Uint8Array, n: Uint8Array): void
  /** X25519: `q` = the shared secret of secret `n` and public key `p`; throws on an all-zero result. */
  export function crypto_scalarmult (q: Uint8Array, n: Uint8Array, p: Uint8Array): void
  /** ChaCha20-Poly1305 (IETF, 12-byte nonce): `c` (plaintext length + 16) = ciphertext ‖ tag. Returns c's length. */
  export function crypto_aead_chacha20poly1305_ietf_encrypt (c: Uint8Array, m: Uint8Array, ad: Uint8Array | null, nsec: null, npub: Uint8Array, k: Uint8Array): number
  /** Checks the tag, then writes the plaintext into `m` (may be `c` itself); throws if the tag is wrong. */
  export function crypto_aead_chacha20poly1305_ietf_decrypt (m: Uint8Array, nsec: null, c: Uint8Array, ad: Uint8Array | null, npub: Uint8Array, k: Uint8Array): number
  const sodium: {
    crypto_sign_seed_keypair: typeof crypto_sign_seed_keypair
    crypto_sign_detached: typeof crypto_sign_detached
    crypto_sign_verify_detached: typeof crypto_sign_verify_detached
    crypto_scalarmult_base: typeof crypto_scalarmult_base
    crypto_scalarmult: typeof crypto_scalarmult
    crypto_aead_chacha20poly1305_ietf_encrypt: typeof crypto_aead_chacha20poly1305_ietf_encrypt
    crypto_aead_chacha20poly1305_ietf_decrypt: typeof crypto_aead_chacha20poly1305_ietf_decrypt
  }
  export default sodium
}
