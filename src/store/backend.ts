/**
 * What a storage backend provides to the shared store logic (internal, not exported from
 * the package): a connection, a durable write transaction, reads of committed data, the
 * SQL details that differ, and error mapping. The rules of the store (quotas, ordering,
 * log queries, checksums) live once, in `ops.ts`, `reads.ts` and `plan.ts`, over this.
 *
 * Shared SQL is written with `?` placeholders; the PostgreSQL backend renumbers them.
 */
import type { Durability, StoreKind, VerifyMode } from './types.ts'
import type { QueryDialect } from './query.ts'
import type { OpOutcome } from './group-commit.ts'
import type { WriteOp } from './ops.ts'

export type Row = Record<string, unknown>

/** A connection (or transaction) that runs SQL. */
export interface Sql {
  all: (sql: string, params?: unknown[]) => Promise<Row[]>
  /** Resolves with the number of rows changed. */
  run: (sql: string, params?: unknown[]) => Promise<number>
}

export interface Dialect extends QueryDialect {
  readonly kind: StoreKind
  /** Most bound parameters in one statement (kept well below the driver's limit). */
  readonly maxParams: number
  /** DDL type names. */
  readonly types: {
    bigint: string
    blob: string
    /** Text compared bytewise (topic prefix ranges). */
    topic: string
    /** A primary key the database assigns. */
    autoId: string
  }
  tableExists: (sql: Sql, name: string) => Promise<boolean>
}

export interface BackendOpenResult {
  durability: Durability
}

export interface Backend {
  readonly kind: StoreKind
  readonly dialect: Dialect
  readonly readOnly: boolean
  /** Where the data lives, without credentials. */
  readonly location: string
  /** Connects and runs the database's own structural check (before any schema work). */
  open: (verify: VerifyMode, signal?: AbortSignal) => Promise<BackendOpenResult>
  /**
   * Runs `fn` in one write transaction, serialised with every other writer of this store
   * (also in other processes). Resolves only once the commit is durable; on a throw
   * everything `fn` did is rolled back. `flush: false` (message-log-only transactions with
   * `logSync: 'deferred'`): the commit survives a killed process but is not flushed to the
   * disk on its own (SQLite: no fsync for it; PostgreSQL: `synchronous_commit = off`).
   */
  transaction: <T>(fn: (sql: Sql) => Promise<T>, options?: { flush?: boolean }) => Promise<T>
  /**
   * Where present, the group commit's batches go here instead of `transaction` + `executeOps`
   * on the calling thread: the same operations, one transaction, the same outcomes and the
   * same durability (SQLite: run on its writer thread).
   */
  executeBatch?: (ops: WriteOp[], ctx: { now: number, keepDeliveredMs: number }, options: { flush: boolean }) => Promise<Array<OpOutcome<unknown>>>
  /** Reads that see only committed data. */
  readonly reader: Sql
  close: () => Promise<void>
  /** A driver error as a typed store error (typed errors pass through). */
  mapError: (err: unknown, what: string) => Error
}

/**
 * A VALUES list of `rows` rows: `(?, ?), (?, ?)` for a column count, or repeating a row
 * template such as `(?, CAST(? AS BIGINT))` where PostgreSQL needs a type.
 */
export function valuesList (rows: number, row: number | string): string {
  const one = typeof row === 'number' ? `(${new Array(row).fill('?').join(', ')})` : row
  return new Array(rows).fill(one).join(', ')
}

/** Splits `items` so that each chunk binds at most `maxParams` parameters at `perItem` each. */
export function chunks<T> (items: readonly T[], perItem: number, maxParams: number): T[][] {
  const size = Math.max(1, Math.floor(maxParams / perItem))
  const out: T[][] = []
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size))
  return out
}

/** A number from a driver value (PostgreSQL returns int8 and numeric as strings). */
export function num (v: unknown): number {
  if (typeof v === 'number') return v
  if (typeof v === 'bigint' || typeof v === 'string') return Number(v)
  if (v == null) return 0
  throw new TypeError(`not a number: ${typeof v}`)
}

export function optNum (v: unknown): number | undefined {
  return v == null ? undefined : num(v)
}

export function optStr (v: unknown): string | undefined {
  return v == null ? undefined : String(v)
}
