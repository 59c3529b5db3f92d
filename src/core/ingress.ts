/**
 * Ingress verification, applied at every node a message enters. Rejection is normal flow:
 * the check returns a reason value, the caller counts it (RejectionCounter) and drops the
 * message; nothing is thrown and nothing is forwarded.
 */
import type { MessageId, NetworkId } from './ids.ts'
import type { VerifiedRoots } from './batch.ts'
import { decodeEnvelope, envelopePayload, LIMITS, type DecodeFailure, type Envelope } from './envelope.ts'

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
  const ctx = checkEnvelopeContext(decoded.envelope, hopCount, opts, now)
  if (!ctx.ok) return ctx
  if (decoded.envelope.enc != null) {
    // A compressed payload must inflate within the size limit here, not fail later in a
    // subscriber (and a gzip bomb must not inflate at all).
    try {
      envelopePayload(decoded.envelope, opts.maxBytes)
    } catch {
      return { ok: false, reason: 'bad-field', detail: `${decoded.envelope.enc} payload does not decompress within ${opts.maxBytes} bytes`, id: decoded.envelope.id }
    }
  }
  return { ok: true, envelope: decoded.envelope }
}

/**
 * Remembers message ids until their expiry. An id is only forgotten once its message
 * would be rejected as expired anyway, so a replay is caught either way — unless the cache
 * is full: it is bounded in count, and then forgets the oldest-inserted ids first.
 * Expired ids are swept at most once a second; eviction when full is O(1) per add, so a
 * flood of valid messages cannot turn every add into a scan of the whole cache.
 */
export class DedupCache {
  private readonly expiries = new Map<string, number>()
  private readonly maxEntries: number
  private lastSweep = 0

  constructor (maxEntries: number = 1_000_000) {
    this.maxEntries = maxEntries
  }

  /** Records `id`; false when it was already present (and not expired). */
  add (id: string, expiresAt: number, now: number = Date.now()): boolean {
    const seen = this.expiries.get(id)
    if (seen !== undefined && seen >= now) return false
    if (now - this.lastSweep > 1000) this.sweep(now)
    if (seen === undefined) {
      // Still full: drop the oldest entries (Map iteration is insertion order).
      for (const old of this.expiries.keys()) {
        if (this.expiries.size < this.maxEntries) break
        this.expiries.delete(old)
      }
    }
    this.expiries.set(id, expiresAt)
    return true
  }

  has (id: string): boolean {
    return this.expiries.has(id)
  }

  /**
   * Forgets `id`: a message refused after it was recorded (by a later check, such as schema
   * validation) must not have its retransmission taken for a duplicate and confirmed.
   */
  delete (id: string): void {
    this.expiries.delete(id)
  }

  get size (): number {
    return this.expiries.size
  }

  private sweep (now: number): void {
    this.lastSweep = now
    for (const [id, exp] of this.expiries) if (exp < now) this.expiries.delete(id)
  }
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
