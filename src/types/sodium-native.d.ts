// The part of sodium-native (libsodium bindings; the package ships no types) that fedmesh uses.
declare module 'sodium-native' {
  /** Derives an Ed25519 key pair from a 32-byte seed: `publicKey` 32 bytes, `secretKey` 64 (seed ‖ public key). */
  export function crypto_sign_seed_keypair (publicKey: Uint8Array, secretKey: Uint8Array, seed: Uint8Array): void
  /** Writes the 64-byte Ed25519 signature of `message` into `signature`. */
  export function crypto_sign_detached (signature: Uint8Array, message: Uint8Array, secretKey: Uint8Array): void
  /** Strict Ed25519 verification (canonical encodings, no small-order key or R). */
  export function crypto_sign_verify_detached (signature: Uint8Array, message: Uint8Array, publicKey: Uint8Array): boolean
  /** ChaCha20-Poly1305 (IETF, 12-byte nonce): `c` is `m` sealed, its 16-byte tag last (`c.byteLength` = `m.byteLength` + 16). `nsec` is always null. */
  export function crypto_aead_chacha20poly1305_ietf_encrypt (c: Uint8Array, m: Uint8Array, ad: Uint8Array | null, nsec: null, npub: Uint8Array, k: Uint8Array): number
  /** Opens `c` into `m` (`c.byteLength` − 16 bytes); throws when the tag does not match. */
  export function crypto_aead_chacha20poly1305_ietf_decrypt (m: Uint8Array, nsec: null, c: Uint8Array, ad: Uint8Array | null, npub: Uint8Array, k: Uint8Array): number
  const sodium: {
    crypto_sign_seed_keypair: typeof crypto_sign_seed_keypair
    crypto_sign_detached: typeof crypto_sign_detached
    crypto_sign_verify_detached: typeof crypto_sign_verify_detached
    crypto_aead_chacha20poly1305_ietf_encrypt: typeof crypto_aead_chacha20poly1305_ietf_encrypt
    crypto_aead_chacha20poly1305_ietf_decrypt: typeof crypto_aead_chacha20poly1305_ietf_decrypt
  }
  export default sodium
}
