/**
 * Agent keys: Ed25519, named by `did:key` (multicodec ed25519-pub 0xed01, base58btc).
 * Signing and verification use Node's native crypto; public KeyObjects are cached
 * per did because building one costs more than a verification.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto'
import { base58btc } from 'multiformats/bases/base58'
import type { AgentId } from './ids.ts'
import { InvalidArgumentError } from './errors.ts'

const ED25519_PUB_PREFIX = new Uint8Array([0xed, 0x01])
const PKCS8_ED25519_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex')

export interface AgentKey {
  readonly id: AgentId
  readonly publicKey: Uint8Array
  /** 32-byte Ed25519 seed; keep secret. */
  readonly seed: Uint8Array
  sign: (data: Uint8Array) => Uint8Array
}

export function agentKeyFromSeed (seed: Uint8Array): AgentKey {
  if (seed.length !== 32) throw new InvalidArgumentError('Ed25519 seed must be 32 bytes')
  const privateKey = createPrivateKey({ key: Buffer.concat([PKCS8_ED25519_PREFIX, seed]), format: 'der', type: 'pkcs8' })
  const jwk = createPublicKey(privateKey).export({ format: 'jwk' })
  const publicKey = new Uint8Array(Buffer.from(jwk.x as string, 'base64url'))
  const id = didFromPublicKey(publicKey)
  return {
    id,
    publicKey,
    seed: new Uint8Array(seed),
    sign: (data) => new Uint8Array(sign(null, data, privateKey))
  }
}

export function generateAgentKey (): AgentKey {
  const { privateKey } = generateKeyPairSync('ed25519')
  const jwk = privateKey.export({ format: 'jwk' })
  return agentKeyFromSeed(new Uint8Array(Buffer.from(jwk.d as string, 'base64url')))
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
const publicKeyCache = new Map<string, KeyObject>()

function publicKeyObject (did: AgentId): KeyObject {
  let key = publicKeyCache.get(did)
  if (key == null) {
    const raw = publicKeyFromDid(did)
    key = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(raw).toString('base64url') }, format: 'jwk' })
    if (publicKeyCache.size >= MAX_CACHED_KEYS) publicKeyCache.delete(publicKeyCache.keys().next().value as string)
    publicKeyCache.set(did, key)
  }
  return key
}

/** Verifies an Ed25519 signature by the key a did:key names. Never throws on bad input. */
export function verifyByDid (did: AgentId, data: Uint8Array, signature: Uint8Array): boolean {
  if (signature.length !== 64) return false
  try {
    return verify(null, data, publicKeyObject(did), signature)
  } catch {
    return false
  }
}
