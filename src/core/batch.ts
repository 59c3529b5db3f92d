/**
 * Batch signatures (docs/PROTOCOL.md section 4.1): an agent signs one Merkle root over the
 * ids of the envelopes it creates together, and each envelope carries its inclusion proof
 * (`bp`), so it still verifies alone — in an inbox, relayed, delivered to a subset — while
 * a receiver that verified the root once (VerifiedRoots) checks the others with hashes only.
 *
 *   leaf  = sha2-256(0x00 || multihash of the envelope id)
 *   node  = sha2-256(0x01 || left || right)
 *   root  = the RFC 9162 (Certificate Transparency v2) Merkle tree hash over the leaves
 *   sig   = Ed25519(agent key, "fedmesh/batch/v1" || root)
 *   bp    = [n, i, [sibling hashes, leaf to root]]        (RFC 9162 inclusion proof)
 *
 * The domain bytes 0x00/0x01 keep a leaf from ever passing for an inner node, so a proof
 * that reaches a signed root proves the leaf is one of the signed ids.
 */
import { hash } from 'node:crypto'

export const BATCH_SIGNATURE_DOMAIN = new TextEncoder().encode('fedmesh/batch/v1')
/** Most envelopes under one root (a proof then has at most 10 hashes). */
export const MAX_BATCH = 1024

export interface BatchProof {
  /** Leaves in the batch, 2 … MAX_BATCH. */
  readonly n: number
  /** This envelope's leaf index, 0 … n − 1. */
  readonly i: number
  /** Sibling hashes (32 bytes each) from the leaf up. */
  readonly path: readonly Uint8Array[]
}

const sha256 = (data: Uint8Array): Uint8Array => hash('sha256', data, 'buffer') as unknown as Uint8Array

export function leafHash (multihash: Uint8Array): Uint8Array {
  const buf = new Uint8Array(1 + multihash.length)
  buf[0] = 0x00
  buf.set(multihash, 1)
  return sha256(buf)
}

function nodeHash (left: Uint8Array, right: Uint8Array): Uint8Array {
  const buf = new Uint8Array(65)
  buf[0] = 0x01
  buf.set(left, 1)
  buf.set(right, 33)
  return sha256(buf)
}

/** Largest power of two strictly below n (n ≥ 2). */
function split (n: number): number {
  let k = 1
  while (k * 2 < n) k *= 2
  return k
}

/** The root over `leaves` and every leaf's inclusion path (leaf to root). */
export function merkleTree (leaves: readonly Uint8Array[]): { root: Uint8Array, paths: Uint8Array[][] } {
  if (leaves.length === 0) throw new RangeError('a Merkle tree needs at least one leaf')
  const paths: Uint8Array[][] = leaves.map(() => [])
  const build = (lo: number, hi: number): Uint8Array => {
    if (hi - lo === 1) return leaves[lo]
    const mid = lo + split(hi - lo)
    const left = build(lo, mid)
    const right = build(mid, hi)
    // Post-order: deeper siblings were pushed first, so each path runs leaf to root.
    for (let m = lo; m < mid; m++) paths[m].push(right)
    for (let m = mid; m < hi; m++) paths[m].push(left)
    return nodeHash(left, right)
  }
  return { root: build(0, leaves.length), paths }
}

/**
 * The root an inclusion proof leads to (RFC 9162 section 2.1.3.2), or undefined when the
 * proof does not fit its (i, n): wrong length, index out of range, a hash not 32 bytes.
 */
export function rootFromProof (leaf: Uint8Array, proof: BatchProof): Uint8Array | undefined {
  if (!Number.isSafeInteger(proof.n) || !Number.isSafeInteger(proof.i) || proof.i < 0 || proof.i >= proof.n) return undefined
  let fn = proof.i
  let sn = proof.n - 1
  let r = leaf
  for (const p of proof.path) {
    if (sn === 0 || p.length !== 32) return undefined
    if ((fn & 1) === 1 || fn === sn) {
      r = nodeHash(p, r)
      if ((fn & 1) === 0) while ((fn & 1) === 0 && fn !== 0) { fn = Math.floor(fn / 2); sn = Math.floor(sn / 2) }
    } else {
      r = nodeHash(r, p)
    }
    fn = Math.floor(fn / 2)
    sn = Math.floor(sn / 2)
  }
  return sn === 0 ? r : undefined
}

export function batchSigningInput (root: Uint8Array): Uint8Array {
  const out = new Uint8Array(BATCH_SIGNATURE_DOMAIN.length + root.length)
  out.set(BATCH_SIGNATURE_DOMAIN, 0)
  out.set(root, BATCH_SIGNATURE_DOMAIN.length)
  return out
}

/**
 * Batch roots whose signature this node verified, per signer: a verified root verifies
 * every leaf its proofs lead to. Only successes are kept. Bounded; the oldest go first.
 */
export class VerifiedRoots {
  private readonly keys = new Set<string>()
  private readonly max: number
  hits = 0

  constructor (max: number = 65_536) { this.max = max }

  private key (signer: string, root: Uint8Array): string {
    return signer + '|' + Buffer.from(root.buffer, root.byteOffset, root.length).toString('latin1')
  }

  has (signer: string, root: Uint8Array): boolean {
    const ok = this.keys.has(this.key(signer, root))
    if (ok) this.hits++
    return ok
  }

  add (signer: string, root: Uint8Array): void {
    if (this.keys.size >= this.max) this.keys.delete(this.keys.values().next().value as string)
    this.keys.add(this.key(signer, root))
  }

  get size (): number { return this.keys.size }
}
