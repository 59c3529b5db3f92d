/**
 * Agent keys: Ed25519, named by `did:key` (multicodec ed25519-pub 0xed01, base58btc).
 * Signing and verification use libsodium (sodium-native): on this project's machines it
 * signs and verifies about twice as fast as Node's OpenSSL (PERFORMANCE.md, "Ed25519 and
 * Noise on libsodium, session 9"), and its verification is strict — it refuses
 * non-canonical encodings and small-order public keys or R points, which RFC 8032 leaves
 * open (PROTOCOL.md §4). The public key each did names is cached, decoded, per did.
 */
import { randomBytes } from 'node:crypto'
import sodium from 'sodium-native'
import { base58btc } from 'multiformats/bases/base58'
import type { AgentId } from './ids.ts'
import { InvalidArgumentError } from './errors.ts'

const ED25519_PUB_PREFIX = new Uint8Array([0xed, 0x01])

export interface AgentKey {
  readonly id: AgentId
  readonly publicKey: Uint8Array
  /** 32-byte Ed25519 seed; keep secret. */
  readonly seed: Uint8Array
  sign: (data: Uint8Array) => Uint8Array
}

export function agentKeyFromSeed (seed: Uint8Array): AgentKey {
  if (seed.length !== 32) throw new InvalidArgumentError('Ed25519 seed must be 32 bytes')
  const publicKey = new Uint8Array(32)
  // libsodium's secret key: the seed followed by the public key.
  const secretKey = new Uint8Array(64)
  sodium.crypto_sign_seed_keypair(publicKey, secretKey, seed)
  const id = didFromPublicKey(publicKey)
  return {
    id,
    publicKey,
    seed: new Uint8Array(seed),
    sign: (data) => {
      const signature = new Uint8Array(64)
      sodium.crypto_sign_detached(signature, data, secretKey)
      return signature
    }
  }
}

export function generateAgentKey (): AgentKey {
  return agentKeyFromSeed(new Uint8Array(randomBytes(32)))
}

export function didFromPublicKey (publicKey: Uint8Array): AgentId {
  if (publicKey.length !== 32) throw new InvalidArgumentError('Ed25519 public key must be 32 bytes')
  const bytes = new Uint8Array(34)
  bytes.set(ED25519_PUB_PREFIX, 0)
  bytes.set(publicKey, 2)
  return `did:key:${base58btc.encode(bytes)}` as AgentId
}

export const DID_KEY_RE = /^did:key:z[1-9A-HJ-NP-Za-km-z]{40,60}$/

/** Ids found valid recently: every envelope names one, and most come from a few senders. */
const validIds = new Set<string>()
const MAX_VALID_IDS = 10_000

export function isAgentId (s: unknown): s is AgentId {
  if (typeof s !== 'string') return false
  if (validIds.has(s)) return true
  if (!DID_KEY_RE.test(s)) return false
  try {
    publicKeyFromDid(s as AgentId)
  } catch {
    return false
  }
  if (validIds.size >= MAX_VALID_IDS) validIds.delete(validIds.values().next().value as string)
  validIds.add(s)
  return true
}

export function publicKeyFromDid (did: AgentId): Uint8Array {
  if (!did.startsWith('did:key:z')) throw new InvalidArgumentError(`not a did:key: ${did}`)
  const bytes = base58btc.decode(did.slice('did:key:'.length))
  if (bytes.length !== 34 || bytes[0] !== 0xed || bytes[1] !== 0x01) throw new InvalidArgumentError(`not an Ed25519 did:key: ${did}`)
  return bytes.subarray(2)
}

const MAX_CACHED_KEYS = 10_000
const publicKeyCache = new Map<string, Uint8Array>()

function cachedPublicKey (did: AgentId): Uint8Array {
  let key = publicKeyCache.get(did)
  if (key == null) {
    key = publicKeyFromDid(did)
    if (publicKeyCache.size >= MAX_CACHED_KEYS) publicKeyCache.delete(publicKeyCache.keys().next().value as string)
    publicKeyCache.set(did, key)
  }
  return key
}

/** Verifies an Ed25519 signature by the key a did:key names. Never throws on bad input. */
export function verifyByDid (did: AgentId, data: Uint8Array, signature: Uint8Array): boolean {
  if (signature.length !== 64) return false
  try {
    return sodium.crypto_sign_verify_detached(signature, data, cachedPublicKey(did))
  } catch {
    return false
  }
}
