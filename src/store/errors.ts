/**
 * Typed errors of the storage layer. Each has a stable `code` (also its `name`), a
 * `cause` where one exists, and `details` for the fields a caller acts on.
 */
import { FedmeshError } from '../core/errors.ts'

interface ErrorOptions { cause?: unknown, details?: Record<string, unknown> }

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
export class StoreCorruptError extends FedmeshError {
  static readonly code = 'StoreCorruptError'
  constructor (message = 'store is corrupt', options: ErrorOptions = {}) { super('StoreCorruptError', message, options) }
}

/** The store is not open (never opened, closing or closed). */
export class StoreClosedError extends FedmeshError {
  static readonly code = 'StoreClosedError'
  constructor (message = 'store is closed', options: ErrorOptions = {}) { super('StoreClosedError', message, options) }
}

/** A log filter, page option or cursor is malformed; nothing was read or changed. */
export class InvalidQueryError extends FedmeshError {
  static readonly code = 'InvalidQueryError'
  constructor (message = 'invalid query', options: ErrorOptions = {}) { super('InvalidQueryError', message, options) }
}

/** The message was already past its expiry when it reached the store; nothing was written. */
export class MessageExpiredError extends FedmeshError {
  static readonly code = 'MessageExpiredError'
  constructor (message = 'message expired', options: ErrorOptions = {}) { super('MessageExpiredError', message, options) }
}

/** The database cannot be reached (PostgreSQL down, connection refused or lost). */
export class StoreUnavailableError extends FedmeshError {
  static readonly code = 'StoreUnavailableError'
  constructor (message = 'store unavailable', options: ErrorOptions = {}) { super('StoreUnavailableError', message, options) }
}

/** A read or write failed in the database (I/O error, disk full, lock timeout); a failed write wrote nothing. */
export class StoreIOError extends FedmeshError {
  static readonly code = 'StoreIOError'
  constructor (message = 'store I/O error', options: ErrorOptions = {}) { super('StoreIOError', message, options) }
}

/** The stored schema is newer than this code understands, or not a fedmesh store at all. */
export class StoreVersionError extends FedmeshError {
  static readonly code = 'StoreVersionError'
  constructor (message = 'unsupported store schema version', options: ErrorOptions = {}) { super('StoreVersionError', message, options) }
}

/** A write was attempted on a store opened read-only. */
export class StoreReadOnlyError extends FedmeshError {
  static readonly code = 'StoreReadOnlyError'
  constructor (message = 'store is read-only', options: ErrorOptions = {}) { super('StoreReadOnlyError', message, options) }
}

/**
 * Every error code this layer defines, for the API's status table. Besides these the store
 * throws core's `InvalidArgumentError` (a malformed entry, record or option) and `AbortError`.
 */
export const STORE_ERROR_CODES = [
  'QuotaExceededError', 'StoreCorruptError', 'StoreClosedError', 'InvalidQueryError', 'MessageExpiredError',
  'StoreUnavailableError', 'StoreIOError', 'StoreVersionError', 'StoreReadOnlyError'
] as const
