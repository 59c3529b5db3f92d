// The part of sodium-native (libsodium bindings; the package ships no types) that fedmesh uses.
declare module 'sodium-native' {
  /** Derives an Ed25519 key pair from a 32-byte seed: `publicKey` 32 bytes, `secretKey` 64 (seed ‖ public key). */
  export function crypto_sign_seed_keypair (publicKey: Uint8Array, secretKey: Uint8Array, seed: Uint8Array): void
  /** Writes the 64-byte Ed25519 signature of `message` into `signature`. */
  export function crypto_sign_detached (signature: Uint8Array, message: Uint8Array, secretKey: Uint8Array): void
  /** Strict Ed25519 verification (canonical encodings, no small-order key or R). */
  export function crypto_sign_verify_detached (signature: Uint8Array, message: Uint8Array, publicKey: Uint8Array): boolean
  const sodium: {
    crypto_sign_seed_keypair: typeof crypto_sign_seed_keypair
    crypto_sign_detached: typeof crypto_sign_detached
    crypto_sign_verify_detached: typeof crypto_sign_verify_detached
  }
  export default sodium
}
