/**
 * Ingress verification, applied at every node a message enters. Rejection is normal flow:
 * the check returns a reason value, the caller counts it (RejectionCounter) and drops the
 * message; nothing is thrown and nothing is forwarded.
 */
import type { AgentId, MessageId, NetworkId } from './ids.ts'
import { MAX_BATCH, SignedBatch, batchSigningInput, merkleRootOfDigests, putDigest, sha256Latin1, type VerifiedRoots } from './batch.ts'
import { LeafDecoder, LeafFailure, decodeEnvelope, envelopePayload, idOfDigest, leafEnvelope, LIMITS, type DecodeFailure, type Envelope } from './envelope.ts'
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
  /**
   * A checked batch keeps its Merkle tree's levels, so that the proofs of its envelopes are
   * read from them instead of hashing the tree again: for a node that gives every carried
   * envelope its proof (a home node storing a `putb`'s envelopes with theirs). Off elsewhere:
   * the levels live as long as the batch.
   */
  keepTree?: boolean
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
  // Every leaf's digest, packed (leaf i at 32·i): no array of its own per leaf.
  const digests = new Uint8Array(32 * n)
  const unsigned: Array<Uint8Array | undefined> = new Array(n)
  let carried = 0
  for (let i = 0; i < n; i++) if (elements[i].length !== LEAF_HASH_BYTES) carried++
  if (carried === 0) return { ok: false, reason: 'malformed', detail: 'a batch frame carries at least one envelope' }
  // The carried envelopes in leaf order, each made (id, batch, leaf index) as soon as it is
  // decoded and hashed — none leaves here unless the batch verifies —, then replaced in
  // place by its ingress result: one array of the right size, none per field.
  const out: Array<Envelope | IngressResult> = new Array(carried)
  let k = 0
  const levels: string[][] | undefined = opts.keepTree === true ? [] : undefined
  // Made with the first carried envelope (its sender is the signer); the digests, unsigned
  // bytes and levels it holds are filled in below.
  let batch: SignedBatch | undefined
  const decoder = new LeafDecoder(opts.maxBytes)
  for (let i = 0; i < n; i++) {
    const e = elements[i]
    if (e.length === LEAF_HASH_BYTES) { digests.set(e, 32 * i); continue }
    const f = decoder.decode(e)
    if (f instanceof LeafFailure) return { ok: false, reason: f.reason, detail: `leaf ${i}: ${f.detail}` }
    if (batch === undefined) batch = new SignedBatch(f.from, sig, digests, unsigned, undefined, levels)
    else if (f.from !== batch.signer) return { ok: false, reason: 'bad-field', detail: `leaf ${i} is from ${f.from}, the batch from ${batch.signer}` }
    putDigest(digests, 32 * i, sha256Latin1(e))
    unsigned[i] = e
    out[k++] = leafEnvelope(f, idOfDigest(digests, 32 * i, 32), batch, i)
  }
  const signer = (batch as SignedBatch).signer as AgentId
  const root = merkleRootOfDigests(digests, n, levels)
  const roots = opts.roots
  // Cached as root ‖ signature: a frame is taken as verified only when this very root was
  // signed with this signature — never because it is some inner node of a verified tree.
  if (roots?.has(signer, root, sig) === true) roots.hits += carried
  else {
    if (roots !== undefined) roots.checks++
    if (!verifyByDid(signer, batchSigningInput(root), sig)) return { ok: false, reason: 'bad-signature', detail: `batch signature does not verify for ${signer} over the root of its ${n} leaves` }
    // Envelopes of the batch that come alone, with `bp`, then verify by hashes.
    roots?.add(signer, root, sig)
    if (roots !== undefined) roots.hits += carried - 1
  }
  for (let j = 0; j < carried; j++) out[j] = checkContext(out[j] as Envelope, hopCount, opts, now)
  return { ok: true, batch: batch as SignedBatch, results: out as IngressResult[] }
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
 * caches share the seed so that an id looked up in two of them in a row is hashed once.
 *
 * Layout: a ring of slots in insertion order (hash high, hash low, expiry) and an open-
 * addressing index (linear probing) from hash to slot; each bucket holds its slot and the
 * hash's high half, so a probe touches the ring (another cache miss in a table of millions)
 * only for a bucket whose hash matches. Expired ids are swept at most once a
 * second: from the oldest end, plus a bounded stretch of the ring beyond it (ids with short
 * TTLs behind long-lived ones), so neither an add nor a sweep ever scans the whole cache.
 *
 * Growth (and compaction, when removed ids leave too many holes or index tombstones) never
 * copies the cache in one call: that took 36 ms at 2^19 ids, ~70 ms at 2^20 — a stall of the
 * event loop in a soak. A second ring and index are allocated, and each insert (and each
 * sweep) moves a bounded number of slots from the oldest end of the old ring to the end of
 * the new one (`step`). Meanwhile ids are looked up in both indexes, new ids still go to the
 * old ring's end, and the order of all ids is the new ring's then the old ring's — so the
 * oldest-first order of eviction and sweeping is exactly that of one ring.
 */
export class DedupCache {
  private readonly maxEntries: number
  // Where ids are appended. During a move, also the younger ids still to be moved.
  private cur: Ring
  // During a move only: the new ring, holding the older ids (moved from `cur`'s oldest end).
  private next: Ring | undefined
  // The ring of the slot the last `lookup` found.
  private at: Ring
  private live = 0
  private lastSweep = 0
  private cursor = 0
  private addsSinceSweep = 0
  // The hash of the id being looked at (set by hash()).
  private h1 = 0
  private h2 = 0
  /** Ring slots moved between generations so far (a measure of the work `add`/`sweep` did). */
  movedSlots = 0

  constructor (maxEntries: number = 1_000_000) {
    if (!Number.isInteger(maxEntries) || maxEntries < 1) throw new RangeError('maxEntries must be a positive integer')
    this.maxEntries = maxEntries
    this.cur = this.at = new Ring(Math.min(1024, ceilPow2(maxEntries)))
  }

  /** Records `id`; false when it was already present (and not expired). */
  add (id: string, expiresAt: number, now: number = Date.now()): boolean {
    this.hash(id)
    let slot = this.lookup()
    if (slot >= 0 && this.at.exp[slot] >= now) return false
    if (now - this.lastSweep > 1000) {
      this.sweep(now)
      // The sweep may have removed the id, or moved it to the new ring.
      slot = this.lookup()
    }
    if (slot >= 0) {
      // Known but expired: remembered again in its place (as a Map keeps a re-set key's order).
      this.at.exp[slot] = expiresAt
      return true
    }
    this.addsSinceSweep++
    // Still full: drop the oldest entries.
    while (this.live >= this.maxEntries) this.removeOldest()
    this.insert(expiresAt)
    return true
  }

  /** Whether `id` is held (and, given `now`, not expired). */
  has (id: string, now?: number): boolean {
    this.hash(id)
    const slot = this.lookup()
    return slot >= 0 && (now === undefined || this.at.exp[slot] >= now)
  }

  /**
   * Forgets `id`: a message refused after it was recorded (by a later check, such as schema
   * validation) must not have its retransmission taken for a duplicate and confirmed.
   */
  delete (id: string): void {
    this.hash(id)
    const slot = this.lookup()
    if (slot >= 0) this.removeAt(this.at, slot)
  }

  get size (): number {
    return this.live
  }

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

  /** The slot holding the current hash (in `this.at`), or -1. */
  private lookup (): number {
    this.at = this.cur
    const slot = this.cur.find(this.h1, this.h2)
    if (slot >= 0 || this.next === undefined) return slot
    this.at = this.next
    return this.next.find(this.h1, this.h2)
  }

  private insert (expiresAt: number): void {
    if (this.next !== undefined) this.step(MOVE_PER_INSERT)
    else {
      const cur = this.cur
      // The ring is full (of ids, or of holes left by removed ones), or the index of ids and
      // tombstones would be over 3/4 full with this id: move to a ring twice the size if
      // more than half of it is ids, else to one of the same size (that leaves the holes and
      // tombstones behind).
      if (cur.used === cur.capacity || (this.live + 1 + cur.deleted) * 4 > cur.buckets * 3) {
        this.next = new Ring(this.live * 2 > cur.capacity ? cur.capacity * 2 : cur.capacity)
        this.step(MOVE_PER_INSERT)
      }
    }
    this.cur.append(this.h1, this.h2, expiresAt)
    this.live++
  }

  /**
   * Moves up to `budget` slots from the oldest end of `cur` to the end of `next` (holes are
   * dropped, not moved); when `cur` is empty, `next` takes its place.
   *
   * Why a move always ends before it could run out of room: let the old ring have capacity C
   * and hold u ≤ C slots when the move starts. Every insert first moves min(64, what is left)
   * slots, then appends one id to the old ring, so while a move lasts the old ring shrinks by
   * at least 63 slots per insert: it never overflows, and the move is done within u / 63 ≤ C / 63
   * inserts, having moved at most u + C / 63 slots in all. The new ring has capacity 2C when more
   * than C / 2 ids were held at the start, else C with at most C / 2 + C / 63 ids ever moved in —
   * it never fills during the move either. The old index starts the move at most 3/4 full
   * (ids + tombstones, a bucket per id) and takes one bucket per insert, C / 63 more of its 2C
   * buckets (never full, so probing ends); the new one holds at most ~0.52 of its buckets.
   * Nor can another move be due before this one ends (the condition is only checked then).
   * A single `add` thus moves at most MOVE_PER_INSERT + MOVE_PER_SWEEP slots (an insert, and
   * the sweep it may run). Measured at 1M ids (bench/dedup-growth.ts): an add during a move
   * takes ~6 µs (median; 60 µs at p99, the first writes to the new ring's and index's pages),
   * a sweep that moves 1,024 slots 0.1–4 ms — against 36 ms for the whole copy at 2^19 ids.
   */
  private step (budget: number): void {
    const from = this.cur
    const to = this.next as Ring
    const mask = from.capacity - 1
    const moved = Math.min(budget, from.used)
    for (let n = 0; n < moved; n++) {
      const s = from.head
      const e = from.exp[s]
      if (e === e) {
        to.append(from.hi[s], from.lo[s], e)
        from.index[2 * from.bucketOf(s)] = -1
        from.deleted++
      }
      from.exp[s] = Number.NaN
      from.head = (s + 1) & mask
      from.used--
    }
    this.movedSlots += moved
    to.prefill(2 * budget)
    if (from.used === 0) {
      this.cur = to
      this.next = undefined
      this.cursor = 0
    }
  }

  /** Forgets the id in `slot` of `ring` (a live one). */
  private removeAt (ring: Ring, slot: number): void {
    ring.remove(slot)
    this.live--
  }

  /** Forgets the oldest id (there must be one). */
  private removeOldest (): void {
    const ring = this.next !== undefined && this.next.used > 0 ? this.next : this.cur
    this.removeAt(ring, ring.head)
  }

  /** Forgets expired ids (bounded work; `add` does this by itself at most once a second). */
  sweep (now: number): void {
    this.lastSweep = now
    if (this.next !== undefined) this.step(MOVE_PER_SWEEP)
    // The oldest end first: with one TTL for all, ids expire in insertion order.
    for (;;) {
      const ring = this.next !== undefined && this.next.used > 0 ? this.next : this.cur
      if (!(ring.used > 0 && ring.exp[ring.head] < now)) break
      this.removeAt(ring, ring.head)
    }
    // Then a stretch of the rest, at least twice what was added since the last sweep, so
    // that short-lived ids behind long-lived ones are found within a few passes. Positions
    // count from the oldest id: the new ring's, then the old ring's.
    let budget = Math.max(4096, 2 * this.addsSinceSweep)
    this.addsSinceSweep = 0
    for (; budget > 0; budget--) {
      const older = this.next !== undefined ? this.next.used : 0
      if (this.cursor >= older + this.cur.used) { this.cursor = 0; break }
      const ring = this.cursor < older ? this.next as Ring : this.cur
      const s = (ring.head + this.cursor - (ring === this.cur ? older : 0)) & (ring.capacity - 1)
      this.cursor++
      if (ring.exp[s] < now) {
        const before = ring.head
        this.removeAt(ring, s)
        // Removing at the head moved it: positions are relative to the head.
        if (ring.head !== before) this.cursor = 0
      }
    }
  }
}

/** Slots a move takes per insert, and per sweep (see DedupCache.step for why these suffice). */
const MOVE_PER_INSERT = 64
const MOVE_PER_SWEEP = 1024

/**
 * One generation of a DedupCache: the ring of slots [head, head + used) modulo capacity (a
 * power of two) in insertion order — a removed slot inside it is a hole (expiry NaN) until the
 * head passes it — and its index: per bucket, slot + 1 (0 empty, -1 deleted) and the high hash
 * half (as int32).
 */
class Ring {
  readonly hi: Uint32Array
  readonly lo: Uint32Array
  readonly exp: Float64Array
  readonly index: Int32Array
  readonly buckets: number
  head = 0
  used = 0
  deleted = 0
  // Slots [0, filled) have been written through (prefill).
  private filled = 0

  constructor (capacity: number) {
    this.hi = new Uint32Array(capacity)
    this.lo = new Uint32Array(capacity)
    this.exp = new Float64Array(capacity)
    this.buckets = capacity * 2
    this.index = new Int32Array(this.buckets * 2)
  }

  get capacity (): number { return this.exp.length }

  /** The slot holding the hash (h1, h2), or -1. */
  find (h1: number, h2: number): number {
    const mask = this.buckets - 1
    const idx = this.index
    const tag = h1 | 0
    for (let i = h2 & mask; ; i = (i + 1) & mask) {
      const v = idx[2 * i]
      if (v === 0) return -1
      if (v > 0 && idx[2 * i + 1] === tag && this.lo[v - 1] === h2) return v - 1
    }
  }

  /** The index bucket pointing at `slot` (which must be indexed). */
  bucketOf (slot: number): number {
    const mask = this.buckets - 1
    for (let i = this.lo[slot] & mask; ; i = (i + 1) & mask) {
      if (this.index[2 * i] === slot + 1) return i
    }
  }

  /** Writes an id at the end of the ring (which must have room) and indexes it. */
  append (h1: number, h2: number, expiresAt: number): void {
    const slot = (this.head + this.used) & (this.capacity - 1)
    this.hi[slot] = h1
    this.lo[slot] = h2
    this.exp[slot] = expiresAt
    this.used++
    const mask = this.buckets - 1
    let i = h2 & mask
    while (this.index[2 * i] > 0) i = (i + 1) & mask
    if (this.index[2 * i] === -1) this.deleted--
    this.index[2 * i] = slot + 1
    this.index[2 * i + 1] = h1 | 0
  }

  /** Forgets the id in `slot` (a live one); a hole stays in the ring unless it is the head. */
  remove (slot: number): void {
    this.index[2 * this.bucketOf(slot)] = -1
    this.deleted++
    this.exp[slot] = Number.NaN
    // Move the head past holes.
    while (this.used > 0 && Number.isNaN(this.exp[this.head])) {
      this.head = (this.head + 1) & (this.capacity - 1)
      this.used--
    }
    if (this.used === 0) this.head = 0
  }

  /**
   * Writes through up to `count` more slots beyond the end of a ring being moved into (it
   * has not wrapped), so that the cache's memory steps up while it grows instead of creeping
   * up page by page until the ring first wraps (minutes later, at the default window — a
   * slope in a soak's RSS that is no leak).
   */
  prefill (count: number): void {
    const from = Math.max(this.filled, this.head + this.used)
    const to = Math.min(this.capacity, from + count)
    if (from >= to) return
    this.hi.fill(0, from, to)
    this.lo.fill(0, from, to)
    this.exp.fill(0, from, to)
    this.filled = to
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
