/**
 * Batch signatures (docs/PROTOCOL.md section 4.1): an agent signs one Merkle root over the
 * ids of the envelopes it creates together, and each envelope carries its inclusion proof
 * (`bp`), so it still verifies alone — in an inbox, relayed, delivered to a subset — while
 * a receiver that verified the root once (VerifiedRoots) checks the others with hashes only.
 *
 *   leaf  = the sha2-256 digest in the envelope's id (sha2-256 of its unsigned bytes)
 *   node  = sha2-256(0x01 || left || right)
 *   root  = the RFC 9162 (Certificate Transparency v2) Merkle tree hash over the leaves
 *   sig   = Ed25519(agent key, "fedmesh/batch/v1" || root)
 *   bp    = [n, i, [sibling hashes, leaf to root]]        (RFC 9162 inclusion proof)
 *
 * A leaf can never pass for an inner node: an inner node hashes 65 bytes starting 0x01,
 * a leaf hashes an envelope's unsigned bytes, which start with a CBOR map head
 * (0xa0–0xbb). So a proof that reaches a signed root proves the leaf is one of the signed
 * ids — the role RFC 9162's 0x00 leaf prefix plays, without a second hash per envelope.
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

/**
 * The sha2-256 digest of `data` as a latin1 string of 32 characters. Digests are taken as
 * strings and copied into small typed arrays: a digest returned as a Buffer costs ~1 µs in
 * its own off-heap allocation, four times the hashing of a 65-byte node; a string of 32
 * one-byte characters, and a typed array of 32 or 34 bytes, are allocated on the V8 heap.
 */
export function sha256Latin1 (data: Uint8Array): string {
  return hash('sha256', data, 'binary') // 'binary' is latin1
}

/** Writes a latin1 digest string into `out` at `o`. */
export function putDigest (out: Uint8Array, o: number, d: string): void {
  for (let i = 0; i < 32; i++) out[o + i] = d.charCodeAt(i)
}

/** The sha2-256 digest of `data`, as 32 bytes. */
export function sha256 (data: Uint8Array): Uint8Array {
  const out = new Uint8Array(32)
  putDigest(out, 0, sha256Latin1(data))
  return out
}

/** An envelope's leaf: the 32-byte digest inside its id's multihash (`0x12 0x20` ‖ digest). */
export function leafOf (multihash: Uint8Array): Uint8Array {
  return multihash.subarray(2, 34)
}

/** The input of every inner-node hash is built here (hashing is synchronous). */
const nodeInput = new Uint8Array(65)

function nodeHash (left: Uint8Array, right: Uint8Array): Uint8Array {
  const buf = nodeInput
  buf[0] = 0x01
  buf.set(left, 1)
  buf.set(right, 33)
  return sha256(buf)
}

/** Largest power of two strictly below n (n ≥ 2). */
function split (n: number): number {
  // 2^⌊log2(n − 1)⌋, in one step (n ≤ MAX_BATCH, far below 2^31): proofLength runs per leaf
  // of every batch (wire sizes the message log records), where a doubling loop per level made
  // it O(log² n).
  return 1 << (31 - Math.clz32(n - 1))
}

/**
 * The root over `leaves` (RFC 9162 Merkle tree hash), without the paths: bottom up, level by
 * level, an odd last node carried up unchanged — the same tree as RFC 9162's split at the
 * largest power of two below n. Inner nodes stay latin1 digest strings (see sha256Latin1).
 */
export function merkleRoot (leaves: readonly Uint8Array[]): Uint8Array {
  let m = leaves.length
  if (m === 0) throw new RangeError('a Merkle tree needs at least one leaf')
  if (m === 1) return leaves[0]
  // Inner nodes as latin1 digest strings (see sha256); leaves as given.
  const level: Array<Uint8Array | string> = leaves.slice()
  const buf = nodeInput
  buf[0] = 0x01
  while (m > 1) {
    let w = 0
    for (let r = 0; r + 1 < m; r += 2) {
      const a = level[r]
      const b = level[r + 1]
      if (typeof a === 'string') putDigest(buf, 1, a)
      else buf.set(a, 1)
      if (typeof b === 'string') putDigest(buf, 33, b)
      else buf.set(b, 33)
      level[w++] = sha256Latin1(buf)
    }
    if ((m & 1) === 1) level[w++] = level[m - 1]
    m = w
  }
  const root = level[0] as string
  const out = new Uint8Array(32)
  putDigest(out, 0, root)
  return out
}

/**
 * merkleRoot over `n` leaves packed back to back in `digests` (32 bytes each, leaf i at
 * 32·i): the same tree, without an array of its own per leaf. The first level's nodes read
 * their two leaves straight from the packed bytes; above it, nodes are latin1 digest strings
 * (see sha256Latin1), as in merkleRoot. With `levels`, every level above the leaves is pushed
 * there (level 1 first, the root's last), for `pathsFromLevels`.
 */
export function merkleRootOfDigests (digests: Uint8Array, n: number, levels?: string[][]): Uint8Array {
  if (n < 1 || digests.length < 32 * n) throw new RangeError(`${n} packed leaves need ${32 * n} bytes (1 at least), not ${digests.length}`)
  if (n === 1) return digests.slice(0, 32)
  const buf = nodeInput
  buf[0] = 0x01
  let level: string[] = new Array((n + 1) >>> 1)
  let w = 0
  for (let r = 0; r + 1 < n; r += 2) {
    const o = 32 * r
    // 0x01 ‖ leaf r ‖ leaf r + 1: 64 consecutive packed bytes.
    for (let i = 0; i < 64; i++) buf[1 + i] = digests[o + i]
    level[w++] = sha256Latin1(buf)
  }
  if ((n & 1) === 1) {
    // An odd last leaf is carried up unchanged: as the latin1 string of its bytes.
    level[w++] = String.fromCharCode.apply(null, digests.subarray(32 * (n - 1), 32 * n) as unknown as number[])
  }
  let m = w
  levels?.push(level)
  while (m > 1) {
    // Kept levels are not overwritten: the next one goes to an array of its own.
    const next = levels !== undefined ? new Array<string>((m + 1) >>> 1) : level
    w = 0
    for (let r = 0; r + 1 < m; r += 2) {
      putDigest(buf, 1, level[r])
      putDigest(buf, 33, level[r + 1])
      next[w++] = sha256Latin1(buf)
    }
    if ((m & 1) === 1) next[w++] = level[m - 1]
    m = w
    level = next
    levels?.push(level)
  }
  const out = new Uint8Array(32)
  putDigest(out, 0, level[0])
  return out
}

/**
 * Every leaf's inclusion path (leaf to root) from the levels `merkleRootOfDigests` kept: at
 * each level the node's sibling, none where the node is an odd last one carried up — the
 * paths merkleTree builds, without hashing the tree again. Each inner node a path holds
 * becomes one 32-byte view into a buffer of them all, shared by the paths that hold it; each
 * path is an array of its exact length.
 */
export function pathsFromLevels (leaves: readonly Uint8Array[], levels: readonly string[][]): Uint8Array[][] {
  const n = leaves.length
  // Inner node j of level k (k ≥ 1) is at 32 · (at[k - 1] + j) in `bytes`, once written.
  const at: number[] = new Array(levels.length)
  let total = 0
  for (let k = 0; k < levels.length; k++) { at[k] = total; total += levels[k].length }
  const bytes = new Uint8Array(32 * total)
  const views: Array<Uint8Array | undefined> = new Array(total)
  const node = (k: number, j: number): Uint8Array => {
    if (k === 0) return leaves[j]
    const x = at[k - 1] + j
    let a = views[x]
    if (a === undefined) {
      putDigest(bytes, 32 * x, levels[k - 1][j])
      a = bytes.subarray(32 * x, 32 * x + 32)
      views[x] = a
    }
    return a
  }
  const paths: Uint8Array[][] = new Array(n)
  for (let i = 0; i < n; i++) {
    let len = 0
    for (let j = i, m = n; m > 1; j >>>= 1, m = (m + 1) >>> 1) if ((j ^ 1) < m) len++
    const path: Uint8Array[] = new Array(len)
    let p = 0
    for (let k = 0, j = i, m = n; m > 1; k++, j >>>= 1, m = (m + 1) >>> 1) if ((j ^ 1) < m) path[p++] = node(k, j ^ 1)
    paths[i] = path
  }
  return paths
}

/**
 * One batch an agent signed (section 4.1), as a node holds it: the signature, every leaf
 * (the 32-byte digests of the envelope ids, in order) and the unsigned bytes of the
 * envelopes it has. From this a batch frame (section 8.2.1) can carry any subset of the
 * envelopes, and an envelope that must travel alone gets its proof (`proof(i)`), computed
 * once per batch and only when asked for.
 */
export class SignedBatch {
  readonly signer: string
  readonly sig: Uint8Array
  /** Unsigned envelope bytes per leaf; undefined for envelopes this node never had. */
  readonly unsigned: ReadonlyArray<Uint8Array | undefined>
  readonly n: number
  private leafArrays: readonly Uint8Array[] | undefined
  /** The leaves packed back to back (32 bytes each), when the batch was made from them. */
  private readonly packed: Uint8Array | undefined
  private paths: Uint8Array[][] | undefined
  /** The tree's levels above the leaves, when the root was computed with them (ingress): proofs without hashing again. */
  private readonly levels: string[][] | undefined
  /** Per leaf, its wire bytes once built (`wire`): made at the first. */
  private wires: Array<Uint8Array | undefined> | undefined

  /**
   * `leaves`: one 32-byte array per leaf, or all of them packed in one array (leaf i at
   * 32·i) — the form ingress and signing make them in; the per-leaf arrays (`leaves`) are
   * then made only if a node reads them (to relay a subset, to build proofs).
   */
  constructor (signer: string, sig: Uint8Array, leaves: readonly Uint8Array[] | Uint8Array, unsigned: ReadonlyArray<Uint8Array | undefined>, paths?: Uint8Array[][], levels?: string[][]) {
    this.signer = signer
    this.sig = sig
    if (leaves instanceof Uint8Array) {
      if (leaves.length % 32 !== 0) throw new RangeError(`packed leaves are 32 bytes each, not ${leaves.length} bytes in all`)
      this.packed = leaves
      this.n = leaves.length >>> 5
    } else {
      this.leafArrays = leaves
      this.n = leaves.length
    }
    this.unsigned = unsigned
    this.paths = paths
    this.levels = levels
  }

  /** Every leaf (the 32-byte digests of the envelope ids), in order. */
  get leaves (): readonly Uint8Array[] {
    if (this.leafArrays === undefined) {
      const p = this.packed as Uint8Array
      const out: Uint8Array[] = new Array(this.n)
      for (let i = 0; i < this.n; i++) out[i] = p.subarray(32 * i, 32 * i + 32)
      this.leafArrays = out
    }
    return this.leafArrays
  }

  /** Every leaf packed back to back (leaf i at 32·i): the array the batch was made from, or a new one. */
  packedLeaves (): Uint8Array {
    if (this.packed !== undefined) return this.packed
    const out = new Uint8Array(32 * this.n)
    this.leaves.forEach((l, i) => { out.set(l, 32 * i) })
    return out
  }

  /** The inclusion proof of leaf `i`. */
  proof (i: number): BatchProof {
    this.paths ??= this.levels !== undefined ? pathsFromLevels(this.leaves, this.levels) : merkleTree(this.leaves).paths
    return { n: this.n, i, path: this.paths[i] }
  }

  /** Leaf `i`'s wire bytes (with `sig` and `bp`), built by `make(this, i)` once and kept. */
  wire (i: number, make: (batch: SignedBatch, i: number) => Uint8Array): Uint8Array {
    const wires = (this.wires ??= new Array(this.n))
    let w = wires[i]
    if (w === undefined) { w = make(this, i); wires[i] = w }
    return w
  }
}

/** How many hashes the inclusion proof of leaf `i` of `n` has, without building it. */
export function proofLength (n: number, i: number): number {
  let len = 0
  while (n > 1) {
    const k = split(n)
    if (i < k) n = k
    else { i -= k; n -= k }
    len++
  }
  return len
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
  return walkProof(leaf, proof)
}

function fits (proof: BatchProof): boolean {
  return Number.isSafeInteger(proof.n) && Number.isSafeInteger(proof.i) && proof.i >= 0 && proof.i < proof.n
}

/** Walks a proof up from `leaf` (RFC 9162 §2.1.3.2): the root, or undefined when the proof does not fit its (i, n). */
function walkProof (leaf: Uint8Array, proof: BatchProof): Uint8Array | undefined {
  if (!fits(proof)) return undefined
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
 * Batch signatures this node has verified, per signer: each as root ‖ signature (96 bytes).
 * A later envelope of the batch (alone with `bp`, or in another batch frame) whose leaves
 * lead to the same root under the same signature is verified with hashes only. Only
 * successes are kept.
 *
 * Bounded in time and count: entries live in two generations, and `add` starts a new one
 * every `keepMs / 2` or when the current one holds `max / 2` (the oldest generation is
 * dropped), so a root is remembered for at least `keepMs / 2` (unless `max` roots are
 * verified within that time) and at most `keepMs`, at most `max` in all. A copy of a batch
 * arriving later is verified by its signature again, which only costs time: the copies of a
 * batch arrive together (one frame) or within seconds (another path). Kept by count alone
 * (before), the cache grew with every batch a node ever verified until it held 262,144 of
 * them (~45 MB of strings on the heap); at 2,000 msgs/s that was +1 MB/min of heap over a
 * ten-minute soak (docs/PERFORMANCE.md).
 *
 * Only whole roots are kept, never the inner nodes of a verified tree: a proof that reached
 * a cached inner node would be accepted without the rest of its path — and relayed with a
 * proof that fails at the next node. Every proof is walked to its root (at most 10 hashes).
 */
export class VerifiedRoots {
  private current = new Map<string, Set<string>>()
  private previous = new Map<string, Set<string>>()
  private currentCount = 0
  private previousCount = 0
  private generationStart: number
  private readonly max: number
  private readonly keepMs: number
  /** Envelopes verified from the cache / by a signature check. */
  hits = 0
  checks = 0

  constructor (max: number = 262_144, keepMs: number = 60_000, now: number = Date.now()) {
    this.max = max
    this.keepMs = keepMs
    this.generationStart = now
  }

  /** The cache key of a signature over a root. */
  private static key (root: Uint8Array, sig: Uint8Array): string {
    return Buffer.from(root.buffer, root.byteOffset, root.length).toString('latin1') + Buffer.from(sig.buffer, sig.byteOffset, sig.length).toString('latin1')
  }

  /** Whether `sig` by `signer` over `root` verified here before. */
  has (signer: string, root: Uint8Array, sig: Uint8Array): boolean {
    const k = VerifiedRoots.key(root, sig)
    return this.current.get(signer)?.has(k) === true || this.previous.get(signer)?.has(k) === true
  }

  /** Records that `sig` by `signer` over `root` verified. */
  add (signer: string, root: Uint8Array, sig: Uint8Array, now: number = Date.now()): void {
    if (now - this.generationStart >= this.keepMs / 2 || this.currentCount >= Math.max(1, this.max >>> 1)) {
      this.previous = this.current
      this.previousCount = this.currentCount
      this.current = new Map()
      this.currentCount = 0
      this.generationStart = now
    }
    let set = this.current.get(signer)
    if (set === undefined) {
      set = new Set()
      this.current.set(signer, set)
    }
    const k = VerifiedRoots.key(root, sig)
    if (!set.has(k)) {
      set.add(k)
      this.currentCount++
    }
  }

  get size (): number { return this.currentCount + this.previousCount }
}

/**
 * Is the envelope with this leaf in a batch `signer` signed with `sig`? Walks the whole
 * proof (RFC 9162) to its root; a root verified before under this signature (`cache`) is
 * taken, otherwise `verifyRoot` checks the signature over it and a success is remembered.
 */
export function verifyInclusion (signer: string, leaf: Uint8Array, proof: BatchProof, sig: Uint8Array, verifyRoot: (root: Uint8Array) => boolean, cache?: VerifiedRoots): boolean {
  const r = rootFromProof(leaf, proof)
  if (r === undefined) return false
  if (cache?.has(signer, r, sig) === true) { cache.hits++; return true }
  if (cache !== undefined) cache.checks++
  if (!verifyRoot(r)) return false
  cache?.add(signer, r, sig)
  return true
}
