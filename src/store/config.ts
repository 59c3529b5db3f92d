/**
 * Store parameters: documented defaults, `createStoreSettings(partial)` fills and validates.
 */
import { InvalidArgumentError } from '../core/errors.ts'
import type { GroupCommitOptions, InboxQuota, StoreConfig, VerifyMode } from './types.ts'

const MiB = 1024 * 1024

export const defaultQuota: Readonly<InboxQuota> = Object.freeze({
  inboxCount: 10_000,
  inboxBytes: 64 * MiB,
  senderCount: 1_000,
  senderBytes: 16 * MiB,
  senderTotalCount: 20_000,
  senderTotalBytes: 128 * MiB
})

export const defaultGroupCommit: Readonly<GroupCommitOptions> = Object.freeze({ maxDelayMs: 0, maxBatch: 2_000 })

/** Bounds of the paging options (inclusive). */
export const PAGE_LIMITS = Object.freeze({
  pending: { default: 100, max: 1_000 },
  inboxes: { default: 100, max: 1_000 },
  query: { default: 100, max: 1_000 },
  conversation: { default: 1_000, max: 10_000 },
  expire: { default: 10_000, max: 100_000 },
  retain: { default: 10_000, max: 100_000 }
})

/** Field bounds for stored values. */
export const FIELD_LIMITS = Object.freeze({
  /** Agent ids, message ids, peer ids, conversation ids, schema, protocol, type. */
  maxIdLength: 256,
  maxReasonLength: 1_024,
  maxTopicLength: 256,
  /** One stored payload (the envelope size limit). */
  maxPayloadBytes: 1024 * 1024,
  maxRecipients: 256,
  /** Records in one `log()` call. */
  maxLogBatch: 10_000,
  /** Ids in one `ack()` call. */
  maxAckIds: 10_000
})

/**
 * The log accounts this many bytes per record for its metadata (plus the payload it holds),
 * for `retain({ maxBytes })` and `stats().log.bytes`: an estimate of a row with its indexes.
 */
export const LOG_RECORD_OVERHEAD = 256

export interface StoreSettings {
  logSync: 'commit' | 'deferred'
  quota: InboxQuota
  keepDeliveredMs: number
  groupCommit: GroupCommitOptions
  verify: VerifyMode
  clock: () => number
}

function checkCount (name: string, v: unknown, min: number): number {
  if (typeof v !== 'number' || !(Number.isSafeInteger(v) || v === Infinity) || v < min) {
    throw new InvalidArgumentError(`${name} must be an integer ≥ ${min} (or Infinity)`, { details: { field: name } })
  }
  return v
}

/** Validates quota overrides (integers ≥ 0, or Infinity) and merges them over `base`. */
export function mergeQuota (base: InboxQuota, partial: Partial<InboxQuota> | undefined): InboxQuota {
  if (partial == null) return base
  if (typeof partial !== 'object') throw new InvalidArgumentError('quota must be an object')
  const out: InboxQuota = { ...base }
  for (const [k, v] of Object.entries(partial)) {
    if (!(k in defaultQuota)) throw new InvalidArgumentError(`unknown quota ${JSON.stringify(k)}`, { details: { field: k } })
    if (v === undefined) continue
    out[k as keyof InboxQuota] = checkCount(`quota.${k}`, v, 0)
  }
  return out
}

export function createStoreSettings (config: StoreConfig): StoreSettings {
  const gc = { ...defaultGroupCommit, ...config.groupCommit }
  checkCount('groupCommit.maxDelayMs', gc.maxDelayMs, 0)
  if (gc.maxDelayMs > 1_000) throw new InvalidArgumentError('groupCommit.maxDelayMs must be ≤ 1000')
  checkCount('groupCommit.maxBatch', gc.maxBatch, 1)
  if (!Number.isSafeInteger(gc.maxBatch) || gc.maxBatch > 100_000) throw new InvalidArgumentError('groupCommit.maxBatch must be ≤ 100000')
  const keepDeliveredMs = config.keepDeliveredMs ?? 0
  if (!Number.isSafeInteger(keepDeliveredMs) || keepDeliveredMs < 0) throw new InvalidArgumentError('keepDeliveredMs must be an integer ≥ 0')
  const verify = config.verify ?? 'quick'
  if (!['quick', 'full', 'off'].includes(verify)) throw new InvalidArgumentError('verify must be quick, full or off')
  const clock = config.clock ?? Date.now
  if (typeof clock !== 'function') throw new InvalidArgumentError('clock must be a function')
  const logSync = config.logSync ?? 'commit'
  if (logSync !== 'commit' && logSync !== 'deferred') throw new InvalidArgumentError('logSync must be commit or deferred')
  return { logSync, quota: mergeQuota({ ...defaultQuota }, config.quota), keepDeliveredMs, groupCommit: gc, verify, clock }
}
