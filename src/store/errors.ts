/**
 * Typed errors of the storage layer. Each has a stable `code` (also its `name`), a
 * `cause` where one exists, and `details` for the fields a caller acts on.
 */
import { FedmeshError, errorClass } from '../core/errors.ts'

/** Which quota an enqueue would exceed. */
export type QuotaKind =
  | 'inbox-count' | 'inbox-bytes'
  | 'sender-count' | 'sender-bytes'
  | 'sender-total-count' | 'sender-total-bytes'

export interface QuotaExceededDetails {
  quota: QuotaKind
  limit: number
  /** Usage before this message. */
  current: number
  /** What this message would add (1 for counts, its size for bytes). */
  requested: number
  recipient: string
  sender: string
}

/** An enqueue would exceed a quota; nothing was written. */
export class QuotaExceededError extends FedmeshError {
  static readonly code = 'QuotaExceededError'
  readonly quota: QuotaKind
  readonly limit: number
  readonly current: number

  constructor (details: QuotaExceededDetails, options: { cause?: unknown } = {}) {
    super('QuotaExceededError', `${details.quota} quota exceeded for ${details.recipient}: ${details.current} + ${details.requested} > ${details.limit}`, { ...options, details: { ...details } })
    this.quota = details.quota
    this.limit = details.limit
    this.current = details.current
  }
}

/** The store's files or rows fail an integrity or checksum check; the data is not served. */
export const StoreCorruptError = errorClass('StoreCorruptError', 'store is corrupt')

/** The store is not open (never opened, closing or closed). */
export const StoreClosedError = errorClass('StoreClosedError', 'store is closed')

/** A log filter, page option or cursor is malformed; nothing was read or changed. */
export const InvalidQueryError = errorClass('InvalidQueryError', 'invalid query')

/** The message was already past its expiry when it reached the store; nothing was written. */
export const MessageExpiredError = errorClass('MessageExpiredError', 'message expired')

/** The database cannot be reached (PostgreSQL down, connection refused or lost). */
export const StoreUnavailableError = errorClass('StoreUnavailableError', 'store unavailable')

/** A read or write failed in the database (I/O error, disk full, lock timeout); a failed write wrote nothing. */
export const StoreIOError = errorClass('StoreIOError', 'store I/O error')

/** The stored schema is newer than this code understands, or not a fedmesh store at all. */
export const StoreVersionError = errorClass('StoreVersionError', 'unsupported store schema version')

/** A write was attempted on a store opened read-only. */
export const StoreReadOnlyError = errorClass('StoreReadOnlyError', 'store is read-only')

/**
 * Every error code this layer defines, for the API's status table. Besides these the store
 * throws core's `InvalidArgumentError` (a malformed entry, record or option) and `AbortError`.
 */
export const STORE_ERROR_CODES = [
  'QuotaExceededError', 'StoreCorruptError', 'StoreClosedError', 'InvalidQueryError', 'MessageExpiredError',
  'StoreUnavailableError', 'StoreIOError', 'StoreVersionError', 'StoreReadOnlyError'
] as const
