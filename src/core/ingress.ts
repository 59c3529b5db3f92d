/**
 * Ingress verification, applied at every node a message enters. Rejection is normal flow:
 * the check returns a reason value, the caller counts it (RejectionCounter) and drops the
 * message; nothing is thrown and nothing is forwarded.
 */
import type { MessageId, NetworkId } from './ids.ts'
import { MAX_BATCH, SignedBatch, batchSigningInput, merkleRoot, type VerifiedRoots } from './batch.ts'
import { LeafFailure, decodeEnvelope, decodeLeafFields, envelopeDigest, envelopePayload, idOfDigest, leafEnvelope, LIMITS, type DecodeFailure, type Envelope, type EnvelopeFields } from './envelope.ts'
import type { AgentId, MessageId as Id } from './ids.ts'
import { verifyByDid } from './keys.ts'

/** What verifyIngress checks: the envelope itself. */
export const ENVELOPE_REJECTION_REASONS = [
  'too-large', 'malformed', 'non-canonical', 'bad-field', 'bad-signature',
  'wrong-network', 'expired', 'from-future', 'hop-limit', 'duplicate'
] as const
/** The semantic layer's ingress check (src/node/semantic.ts, docs/SEMANTIC.md §6), after verifyIngress. */
export const SEMANTIC_REJECTION_REASONS = ['payload-bomb', 'schema-unknown', 'schema-invalid'] as const
export const REJECTION_REASONS = [...ENVELOPE_REJECTION_REASONS, ...SEMANTIC_REJECTION_REASONS] as const
export type RejectionReason = typeof REJECTION_REASONS[number]

export interface IngressOptions {
  network: NetworkId
  /** Largest accepted envelope in bytes. */
  maxBytes: number
  /**
   * Tolerated clock skew in milliseconds: a message may carry a timestamp at most this far
   * in the future, and is still accepted this long after its TTL ran out.
   */
  clockSkewMs: number
  /** Batch roots already verified (per node): a batch is then verified with one signature check. */
  roots?: VerifiedRoots
}

export const DEFAULT_INGRESS: Omit<IngressOptions, 'network'> = {
  maxBytes: LIMITS.maxEnvelopeBytes,
  clockSkewMs: 30_000
}

export type IngressResult =
  | { ok: true, envelope: Envelope }
  | { ok: false, reason: RejectionReason, detail: string, id?: MessageId }

/** Checks that do not depend on node state beyond the clock. Pure given `now`. */
export function checkEnvelopeContext (env: Envelope, hopCount: number, opts: IngressOptions, now: number): IngressResult {
  if (env.net !== opts.network) return { ok: false, reason: 'wrong-network', detail: `network ${env.net}, this node is on ${opts.network}`, id: env.id }
  if (env.ts > now + opts.clockSkewMs) return { ok: false, reason: 'from-future', detail: `timestamp ${env.ts - now} ms in the future`, id: env.id }
  if (env.ts + env.ttl * 1000 + opts.clockSkewMs < now) return { ok: false, reason: 'expired', detail: `expired ${now - env.ts - env.ttl * 1000} ms ago`, id: env.id }
  if (hopCount > env.hops) return { ok: false, reason: 'hop-limit', detail: `${hopCount} hops > limit ${env.hops}`, id: env.id }
  return { ok: true, envelope: env }
}

/** Full pipeline for bytes off the wire, including dedup. */
export function verifyIngress (bytes: Uint8Array, hopCount: number, opts: IngressOptions, dedup: DedupCache, now: number = Date.now()): IngressResult {
  const res = checkIngress(bytes, hopCount, opts, now)
  if (!res.ok) return res
  const env = res.envelope
  if (!dedup.add(env.id, env.ts + env.ttl * 1000 + opts.clockSkewMs, now)) return { ok: false, reason: 'duplicate', detail: 'already seen', id: env.id }
  return res
}

/**
 * Every ingress check but dedup (checks 1–9 of PROTOCOL.md section 7): for copies that
 * are forwarded before the node decides whether to deliver them.
 */
export function checkIngress (bytes: Uint8Array, hopCount: number, opts: IngressOptions, now: number = Date.now()): IngressResult {
  const decoded = decodeEnvelope(bytes, opts.maxBytes, opts.roots)
  if (!decoded.ok) return { ok: false, reason: decoded.reason satisfies DecodeFailure, detail: decoded.detail }
  return checkContext(decoded.envelope, hopCount, opts, now)
}

/** A leaf element of exactly this many bytes is a leaf hash, not an envelope (section 8.2.1). */
export const LEAF_HASH_BYTES = 32

export type BatchIngressResult =
  | {
    ok: true
    batch: SignedBatch
    /** Per carried envelope, in leaf order: its ingress result (context checks, as for a data frame). */
    results: IngressResult[]
  }
  | { ok: false, reason: RejectionReason, detail: string }

/**
 * Ingress for a batch frame (PROTOCOL.md section 8.2.1): every carried envelope decoded and
 * checked (canonical, well formed, one signer), every leaf hashed, the root rebuilt and the
 * batch signature verified over it — once per batch: a root in `opts.roots` is taken as
 * verified. A frame that fails any of these is refused whole. Then each envelope gets the
 * per-envelope context checks (network, clock, hops, compression) like a data frame's.
 */
export function checkBatch (sig: Uint8Array, elements: readonly Uint8Array[], hopCount: number, opts: IngressOptions, now: number = Date.now()): BatchIngressResult {
  const n = elements.length
  if (n < 2 || n > MAX_BATCH) return { ok: false, reason: 'malformed', detail: `a batch has 2–${MAX_BATCH} leaves, not ${n}` }
  if (sig.length !== 64) return { ok: false, reason: 'bad-field', detail: 'batch signature must be 64 bytes' }
  const leaves: Uint8Array[] = new Array(n)
  const unsigned: Array<Uint8Array | undefined> = new Array(n)
  // The carried envelopes: fields, leaf index and id, in leaf order.
  const fields: EnvelopeFields[] = []
  const index: number[] = []
  const ids: Id[] = []
  let signer: AgentId | undefined
  for (let i = 0; i < n; i++) {
    const e = elements[i]
    if (e.length === LEAF_HASH_BYTES) { leaves[i] = e; continue }
    const f = decodeLeafFields(e, opts.maxBytes)
    if (f instanceof LeafFailure) return { ok: false, reason: f.reason, detail: `leaf ${i}: ${f.detail}` }
    if (signer === undefined) signer = f.from
    else if (f.from !== signer) return { ok: false, reason: 'bad-field', detail: `leaf ${i} is from ${f.from}, the batch from ${signer}` }
    const digest = envelopeDigest(e)
    leaves[i] = digest
    unsigned[i] = e
    fields.push(f)
    index.push(i)
    ids.push(idOfDigest(digest))
  }
  if (signer === undefined) return { ok: false, reason: 'malformed', detail: 'a batch frame carries at least one envelope' }
  const root = merkleRoot(leaves)
  const roots = opts.roots
  // Cached as root ‖ signature: a frame is taken as verified only when this very root was
  // signed with this signature — never because it is some inner node of a verified tree.
  if (roots?.has(signer, root, sig) === true) roots.hits += fields.length
  else {
    if (roots !== undefined) roots.checks++
    if (!verifyByDid(signer, batchSigningInput(root), sig)) return { ok: false, reason: 'bad-signature', detail: `batch signature does not verify for ${signer} over the root of its ${n} leaves` }
    // Envelopes of the batch that come alone, with `bp`, then verify by hashes.
    roots?.add(signer, root, sig)
    if (roots !== undefined) roots.hits += fields.length - 1
  }
  const batch = new SignedBatch(signer, sig, leaves, unsigned)
  const results: IngressResult[] = new Array(fields.length)
  for (let k = 0; k < fields.length; k++) results[k] = checkContext(leafEnvelope(fields[k], ids[k], batch, index[k]), hopCount, opts, now)
  return { ok: true, batch, results }
}

/** checkEnvelopeContext, and a compressed payload must inflate within the size limit. */
function checkContext (env: Envelope, hopCount: number, opts: IngressOptions, now: number): IngressResult {
  const ctx = checkEnvelopeContext(env, hopCount, opts, now)
  if (!ctx.ok || env.enc == null) return ctx
  // A compressed payload must inflate within the size limit here, not fail later in a
  // subscriber (and a gzip bomb must not inflate at all).
  try {
    envelopePayload(env, opts.maxBytes)
  } catch {
    return { ok: false, reason: 'bad-field', detail: `${env.enc} payload does not decompress within ${opts.maxBytes} bytes`, id: env.id }
  }
  return ctx
}

/**
 * Remembers message ids until their expiry. An id is only forgotten once its message
 * would be rejected as expired anyway, so a replay is caught either way — unless the cache
 * is full: it is bounded in count, and then forgets the oldest-inserted ids first.
 *
 * Memory: ids are kept as 64-bit keyed hashes in typed arrays — 24 bytes per id instead of
 * the ~200 a Map of id strings costs, and nothing for the garbage collector to trace. At
 * 2,000 msgs/s and the default TTL (300 s + 30 s skew) that is 16 MB instead of ~130 MB.
 * Two different ids share a hash with probability n / 2^64 per lookup (n ids held; the hash
 * seed is random per process, so collisions cannot be aimed) — about 10^-13 when full. The
 * caches share the seed so that an id looked up in two of them in a row (the dissemination
 * core's window, then the router's dedup) is hashed once.
 *
 * Layout: a ring of slots in insertion order (hash high, hash low, expiry) and an open-
 * addressing index (linear probing) from hash to slot; each bucket holds its slot and the
 * hash's high half, so a probe touches the ring (another cache miss in a table of millions)
 * only for a bucket whose hash matches. Expired ids are swept at most once a
 * second: from the oldest end, plus a bounded stretch of the ring beyond it (ids with short
 * TTLs behind long-lived ones), so neither an add nor a sweep ever scans the whole cache.
 */
export class DedupCache {
  private readonly maxEntries: number
  // Ring of slots in insertion order: [head, head + used) modulo capacity. A removed slot
  // inside the ring is a hole (expiry NaN) until the head passes it or the ring is compacted.
  private hi: Uint32Array
  private lo: Uint32Array
  private exp: Float64Array
  private head = 0
  private used = 0
  private live = 0
  // Index: per bucket, slot + 1 (0 empty, -1 deleted) and the high hash half (as int32).
  private index: Int32Array
  private buckets: number
  private deleted = 0
  private lastSweep = 0
  private cursor = 0
  private addsSinceSweep = 0
  // The hash of the id being looked at (set by hash()).
  private h1 = 0
  private h2 = 0

  constructor (maxEntries: number = 1_000_000) {
    if (!Number.isInteger(maxEntries) || maxEntries < 1) throw new RangeError('maxEntries must be a positive integer')
    this.maxEntries = maxEntries
    const capacity = Math.min(1024, ceilPow2(maxEntries))
    this.hi = new Uint32Array(capacity)
    this.lo = new Uint32Array(capacity)
    this.exp = new Float64Array(capacity)
    this.buckets = capacity * 2
    this.index = new Int32Array(this.buckets * 2)
  }

  /** Records `id`; false when it was already present (and not expired). */
  add (id: string, expiresAt: number, now: number = Date.now()): boolean {
    this.hash(id)
    const slot = this.find()
    if (slot >= 0 && this.exp[slot] >= now) return false
    if (now - this.lastSweep > 1000) this.sweep(now)
    if (slot >= 0 && !Number.isNaN(this.exp[slot])) {
      // Known but expired: remembered again in its place (as a Map keeps a re-set key's order).
      this.exp[slot] = expiresAt
      return true
    }
    this.addsSinceSweep++
    // Still full: drop the oldest entries.
    while (this.live >= this.maxEntries) this.removeSlot(this.head)
    this.insert(expiresAt)
    return true
  }

  /** Whether `id` is held (and, given `now`, not expired). */
  has (id: string, now?: number): boolean {
    this.hash(id)
    const slot = this.find()
    return slot >= 0 && (now === undefined || this.exp[slot] >= now)
  }

  /**
   * Forgets `id`: a message refused after it was recorded (by a later check, such as schema
   * validation) must not have its retransmission taken for a duplicate and confirmed.
   */
  delete (id: string): void {
    this.hash(id)
    const slot = this.find()
    if (slot >= 0) this.removeSlot(slot)
  }

  get size (): number {
    return this.live
  }

  private get capacity (): number { return this.exp.length }

  /**
   * Two independent 32-bit hashes of `id` (Murmur3-style mixing, per-process random seeds).
   * A message id (`b` + base32 of a sha2-256 multihash, 56 characters) is hashed over 16
   * characters of its digest — 80 bits that its sender cannot choose, beyond the 64 the hash
   * keeps; any other string over all of it.
   */
  private hash (id: string): void {
    if (id === memoId) { this.h1 = memoH1; this.h2 = memoH2; return }
    let a = SEED_A ^ id.length
    let b = SEED_B
    const digestPart = id.length === MESSAGE_ID_LENGTH && id.charCodeAt(0) === 0x62
    const end = digestPart ? DIGEST_CHARS_FROM + 16 : id.length
    for (let i = digestPart ? DIGEST_CHARS_FROM : 0; i < end; i++) {
      const c = id.charCodeAt(i)
      a = Math.imul(a ^ c, 0x5bd1e995)
      a ^= a >>> 15
      b = Math.imul(b ^ c, 0x27d4eb2f) + 0x165667b1
      b ^= b >>> 13
    }
    a = Math.imul(a ^ (a >>> 16), 0x85ebca6b)
    a = Math.imul(a ^ (a >>> 13), 0xc2b2ae35)
    b = Math.imul(b ^ (b >>> 16), 0x7feb352d)
    b = Math.imul(b ^ (b >>> 15), 0x846ca68b)
    this.h1 = memoH1 = (a ^ (a >>> 16)) >>> 0
    this.h2 = memoH2 = (b ^ (b >>> 16)) >>> 0
    memoId = id
  }

  /** The slot holding the current hash, or -1. */
  private find (): number {
    const mask = this.buckets - 1
    const idx = this.index
    const tag = this.h1 | 0
    for (let i = this.h2 & mask; ; i = (i + 1) & mask) {
      const v = idx[2 * i]
      if (v === 0) return -1
      if (v > 0 && idx[2 * i + 1] === tag && this.lo[v - 1] === this.h2) return v - 1
    }
  }

  /** The index bucket pointing at `slot` (which must be indexed). */
  private bucketOf (slot: number): number {
    const mask = this.buckets - 1
    for (let i = this.lo[slot] & mask; ; i = (i + 1) & mask) {
      if (this.index[2 * i] === slot + 1) return i
    }
  }

  private insert (expiresAt: number): void {
    if (this.used === this.capacity) this.resize(this.live * 2 > this.capacity ? this.capacity * 2 : this.capacity)
    const slot = (this.head + this.used) % this.capacity
    this.hi[slot] = this.h1
    this.lo[slot] = this.h2
    this.exp[slot] = expiresAt
    this.used++
    this.live++
    this.indexSlot(slot)
    if ((this.live + this.deleted) * 4 > this.buckets * 3) this.resize(this.capacity)
  }

  private indexSlot (slot: number): void {
    const mask = this.buckets - 1
    let i = this.lo[slot] & mask
    while (this.index[2 * i] > 0) i = (i + 1) & mask
    if (this.index[2 * i] === -1) this.deleted--
    this.index[2 * i] = slot + 1
    this.index[2 * i + 1] = this.hi[slot] | 0
  }

  /** Forgets the id in `slot` (a live one); a hole stays in the ring unless it is the head. */
  private removeSlot (slot: number): void {
    this.index[2 * this.bucketOf(slot)] = -1
    this.deleted++
    this.exp[slot] = Number.NaN
    this.live--
    this.trimHead()
  }

  /** Moves the head past holes. */
  private trimHead (): void {
    while (this.used > 0 && Number.isNaN(this.exp[this.head])) {
      this.head = (this.head + 1) % this.capacity
      this.used--
    }
    if (this.used === 0) this.head = 0
  }

  /** Copies the live slots, in order, into rings of `capacity` and a fresh index. */
  private resize (capacity: number): void {
    const hi = new Uint32Array(capacity)
    const lo = new Uint32Array(capacity)
    const exp = new Float64Array(capacity)
    // Written through once, so the whole ring is resident from here: the cache's memory steps
    // up when it grows, instead of creeping up page by page until the ring first wraps
    // (minutes later, at the default window — a slope in a soak's RSS that is no leak).
    hi.fill(0); lo.fill(0); exp.fill(0)
    let n = 0
    for (let k = 0; k < this.used; k++) {
      const s = (this.head + k) % this.capacity
      if (Number.isNaN(this.exp[s])) continue
      hi[n] = this.hi[s]; lo[n] = this.lo[s]; exp[n] = this.exp[s]
      n++
    }
    this.hi = hi
    this.lo = lo
    this.exp = exp
    this.head = 0
    this.used = n
    this.cursor = 0
    this.buckets = capacity * 2
    this.index = new Int32Array(this.buckets * 2)
    this.deleted = 0
    for (let s = 0; s < n; s++) this.indexSlot(s)
  }

  /** Forgets expired ids (bounded work; `add` does this by itself at most once a second). */
  sweep (now: number): void {
    this.lastSweep = now
    // The oldest end first: with one TTL for all, ids expire in insertion order.
    while (this.used > 0 && this.exp[this.head] < now) this.removeSlot(this.head)
    // Then a stretch of the rest, at least twice what was added since the last sweep, so
    // that short-lived ids behind long-lived ones are found within a few passes.
    let budget = Math.max(4096, 2 * this.addsSinceSweep)
    this.addsSinceSweep = 0
    if (this.cursor >= this.used) this.cursor = 0
    for (; budget > 0 && this.used > 0; budget--) {
      if (this.cursor >= this.used) { this.cursor = 0; break }
      const s = (this.head + this.cursor) % this.capacity
      this.cursor++
      if (this.exp[s] < now) {
        const before = this.head
        this.removeSlot(s)
        // Removing at the head moved it: positions are relative to the head.
        if (this.head !== before) this.cursor = 0
      }
    }
  }
}

/** Length of a message id, and where the characters that are only digest bits begin (after "bciq" and one more). */
const MESSAGE_ID_LENGTH = 56
const DIGEST_CHARS_FROM = 5

// Shared by every DedupCache of the process (see the class comment), and the last id hashed.
const SEED_A = (Math.random() * 0x100000000) >>> 0
const SEED_B = (Math.random() * 0x100000000) >>> 0
let memoId: string | undefined
let memoH1 = 0
let memoH2 = 0

function ceilPow2 (n: number): number {
  let p = 1
  while (p < n) p *= 2
  return p
}

export interface RejectionRecord {
  at: number
  reason: RejectionReason
  detail: string
  id?: MessageId
  peer?: string
}

/** Counts rejections per reason and keeps the most recent ones for inspection. */
export class RejectionCounter {
  readonly counts: Record<RejectionReason, number>
  private readonly recent: RejectionRecord[] = []
  private readonly keep: number
  private readonly onReject?: (r: RejectionRecord) => void

  constructor (opts: { keep?: number, onReject?: (r: RejectionRecord) => void } = {}) {
    this.keep = opts.keep ?? 200
    this.onReject = opts.onReject
    this.counts = Object.fromEntries(REJECTION_REASONS.map(r => [r, 0])) as Record<RejectionReason, number>
  }

  record (r: Omit<RejectionRecord, 'at'>): void {
    const rec = { at: Date.now(), ...r }
    this.counts[r.reason]++
    this.recent.push(rec)
    if (this.recent.length > this.keep) this.recent.shift()
    this.onReject?.(rec)
  }

  total (): number {
    return Object.values(this.counts).reduce((a, b) => a + b, 0)
  }

  list (filter: { reason?: RejectionReason, limit?: number } = {}): RejectionRecord[] {
    const rows = filter.reason != null ? this.recent.filter(r => r.reason === filter.reason) : this.recent
    return rows.slice(-(filter.limit ?? this.keep)).reverse()
  }
}
