/**
 * Small, independent reference implementations for the unit tests: base32 (RFC 4648, lower,
 * no padding), base58btc, and a topic matcher built on regular expressions. They share no
 * code with src/core, so a test that compares the two catches a bug in either.
 */
import { createPublicKey, verify } from 'node:crypto'

export const hex = (u: Uint8Array): string => Buffer.from(u).toString('hex')
export const unhex = (h: string): Uint8Array => new Uint8Array(Buffer.from(h, 'hex'))
export const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s)

export function base32Lower (bytes: Uint8Array): string {
  const alphabet = 'abcdefghijklmnopqrstuvwxyz234567'
  let out = ''
  let bits = 0
  let value = 0
  for (const byte of bytes) {
    value = (value << 8) | byte
    bits += 8
    while (bits >= 5) {
      out += alphabet[(value >>> (bits - 5)) & 31]
      bits -= 5
    }
    value &= (1 << bits) - 1
  }
  if (bits > 0) out += alphabet[(value << (5 - bits)) & 31]
  return out
}

const B58 = '123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz'

export function base58btc (bytes: Uint8Array): string {
  let n = 0n
  for (const byte of bytes) n = n * 256n + BigInt(byte)
  let out = ''
  while (n > 0n) { out = B58[Number(n % 58n)] + out; n /= 58n }
  for (const byte of bytes) { if (byte !== 0) break; out = '1' + out }
  return out
}

export function base58btcDecode (s: string): Uint8Array {
  let n = 0n
  for (const c of s) {
    const d = B58.indexOf(c)
    if (d < 0) throw new Error(`not base58: ${c}`)
    n = n * 58n + BigInt(d)
  }
  const bytes: number[] = []
  while (n > 0n) { bytes.unshift(Number(n % 256n)); n /= 256n }
  for (const c of s) { if (c !== '1') break; bytes.unshift(0) }
  return Uint8Array.from(bytes)
}

/** did:key of a raw Ed25519 public key, computed without src/core. */
export function referenceDid (publicKey: Uint8Array): string {
  return 'did:key:z' + base58btc(Uint8Array.from([0xed, 0x01, ...publicKey]))
}

/** Ed25519 verification straight from a raw public key (no did, no cache). */
export function ed25519Verify (publicKey: Uint8Array, data: Uint8Array, sig: Uint8Array): boolean {
  const key = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(publicKey).toString('base64url') }, format: 'jwk' })
  return verify(null, data, key, sig)
}

/** Topic matching by regular expression, following the rules in PROTOCOL.md §6. */
export function referenceMatch (pattern: string, topic: string): boolean {
  const level = '[^/]+'
  const parts = pattern.split('/').map((p, i, all) => {
    if (p === '*') return level
    if (p === '#' && i === all.length - 1) return `${level}(?:/${level})*`
    return p.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
  })
  return new RegExp(`^${parts.join('/')}$`).test(topic)
}
