/**
 * The SQLite backend (Node's built-in `node:sqlite`), the default.
 *
 * - WAL journal; `synchronous=FULL` by default, so a commit is fsync'd to the WAL before
 *   it resolves (durable against power loss). `normal` skips that fsync: a commit then
 *   survives the process being killed (it is in the OS page cache) but not a power cut.
 * - Two connections: the writer, used only by the group commit (and open), and a
 *   query-only reader. `node:sqlite` is synchronous, so a transaction runs to its end
 *   without interleaving anything else on the writer, and reads on their own connection
 *   see committed data only (WAL snapshots).
 * - At open, `PRAGMA quick_check` (or `integrity_check`) before anything is served: a torn
 *   or overwritten page is reported as `StoreCorruptError`.
 * - `application_id` marks the file as a fedmesh store.
 */
import { DatabaseSync, type StatementSync, type SQLInputValue } from 'node:sqlite'
import { topicMatches } from '../core/topics.ts'
import { FedmeshError } from '../core/errors.ts'
import { StoreCorruptError, StoreIOError, StoreVersionError } from './errors.ts'
import type { Backend, Dialect, Row, Sql } from './backend.ts'
import type { SqliteStoreConfig, VerifyMode } from './types.ts'
import { startSqliteWriter, type SqliteWriter } from './sqlite-writer.ts'

/** 'fmsh' */
export const SQLITE_APPLICATION_ID = 0x666d7368

// SQLite primary result codes (https://sqlite.org/rescode.html).
const SQLITE_BUSY = 5
const SQLITE_LOCKED = 6
const SQLITE_IOERR = 10
const SQLITE_CORRUPT = 11
const SQLITE_FULL = 13
const SQLITE_CANTOPEN = 14
const SQLITE_NOTADB = 26

const STATEMENT_CACHE = 256

/**
 * Page size of a new store, bytes (SQLite's default is 4 096). An inbox row — an envelope of
 * ≈ 870 bytes with its columns, ≈ 1 100 — fills 4 KB pages three to a page, a fifth of each
 * page unused; 8 KB pages hold seven. Each commit also writes half as many WAL frames (two
 * `pwrite`s each) and its checkpoint copies half as many pages. Measured: docs/PERFORMANCE.md,
 * "Durable store, session 8".
 */
export const NEW_STORE_PAGE_SIZE = 8192

export const sqliteDialect: Dialect = {
  kind: 'sqlite',
  // SQLite allows 32 766 bound parameters; stay well below.
  maxParams: 30_000,
  types: { bigint: 'INTEGER', blob: 'BLOB', topic: 'TEXT', autoId: 'INTEGER PRIMARY KEY' },
  table: (name) => name,
  topicMatch: (column, pattern) => ({ sql: `fm_topic_match(?, ${column}) = 1`, value: pattern }),
  tableExists: async (sql, name) => (await sql.all("SELECT 1 AS one FROM sqlite_master WHERE type = 'table' AND name = ?", [name])).length > 0
}

/** Statements prepared once and reused, at most `STATEMENT_CACHE` of them (least recently used goes). */
export function sqlOf (db: DatabaseSync): Sql {
  const cache = new Map<string, StatementSync>()
  const prepare = (sql: string): StatementSync => {
    let stmt = cache.get(sql)
    if (stmt != null) {
      cache.delete(sql)
    } else {
      stmt = db.prepare(sql)
      if (cache.size >= STATEMENT_CACHE) cache.delete(cache.keys().next().value as string)
    }
    cache.set(sql, stmt)
    return stmt
  }
  return {
    all: async (sql, params = []) => prepare(sql).all(...params as SQLInputValue[]) as Row[],
    run: async (sql, params = []) => Number(prepare(sql).run(...params as SQLInputValue[]).changes)
  }
}

function sqliteCode (err: unknown): number | null {
  const e = err as { code?: string, errcode?: number }
  if (e?.code === 'ERR_SQLITE_ERROR' && typeof e.errcode === 'number') return e.errcode & 0xff
  return null
}

export function mapSqliteError (err: unknown, what: string, path: string): Error {
  if (err instanceof FedmeshError) return err
  const code = sqliteCode(err)
  const message = (err as Error)?.message ?? String(err)
  const details = { path, sqliteCode: code }
  if (code === SQLITE_CORRUPT || code === SQLITE_NOTADB) return new StoreCorruptError(`${what}: ${path} is corrupt (${message})`, { cause: err, details })
  if (code === SQLITE_FULL) return new StoreIOError(`${what}: disk full (${message})`, { cause: err, details })
  if (code === SQLITE_BUSY || code === SQLITE_LOCKED) return new StoreIOError(`${what}: database is locked by another process (${message})`, { cause: err, details })
  if (code === SQLITE_IOERR || code === SQLITE_CANTOPEN) return new StoreIOError(`${what}: I/O error on ${path} (${message})`, { cause: err, details })
  return new StoreIOError(`${what}: ${message}`, { cause: err, details })
}

/**
 * The write connection of an open store (WAL mode already set), as the writer thread opens
 * it: its own `synchronous` setting, the busy timeout, the SQL functions.
 */
export function openWriterConnection (path: string, synchronous: 'full' | 'normal', timeout: number): DatabaseSync {
  const db = new DatabaseSync(path, { timeout, enableForeignKeyConstraints: false })
  try {
    db.exec(`PRAGMA synchronous = ${synchronous === 'full' ? 'FULL' : 'NORMAL'}`)
    db.exec('PRAGMA journal_size_limit = 67108864')
    registerFunctions(db)
  } catch (err) {
    try { db.close() } catch {}
    throw err
  }
  return db
}

function registerFunctions (db: DatabaseSync): void {
  db.function('fm_topic_match', { deterministic: true }, (pattern, topic) =>
    typeof pattern === 'string' && typeof topic === 'string' && topicMatches(pattern, topic) ? 1 : 0)
}

/** Runs the structural check; throws StoreCorruptError listing the first problems. */
function integrityCheck (db: DatabaseSync, mode: VerifyMode, path: string): void {
  if (mode === 'off') return
  const pragma = mode === 'full' ? 'integrity_check' : 'quick_check'
  const rows = db.prepare(`PRAGMA ${pragma}(20)`).all() as Array<Record<string, unknown>>
  const problems = rows.map(r => String(Object.values(r)[0]))
  if (problems.length !== 1 || problems[0] !== 'ok') {
    throw new StoreCorruptError(`${path} fails ${pragma}: ${problems.slice(0, 3).join('; ')}`, { details: { path, check: pragma, problems } })
  }
}

/**
 * Runs `fn` in one write transaction on `db` (`BEGIN IMMEDIATE` … `COMMIT`, rolled back if it
 * throws). A deferred flush (`deferFlush`, only meaningful with `synchronous = FULL`) commits
 * to the WAL without an fsync: it survives a killed process, and the next flushed commit or
 * checkpoint takes it to the disk with its own. Used on the event loop (open, migrations)
 * and on the writer thread (every group-commit batch).
 */
export async function inWriteTransaction<T> (db: DatabaseSync, deferFlush: boolean, fn: () => Promise<T>): Promise<T> {
  if (deferFlush) db.exec('PRAGMA synchronous = NORMAL')
  try {
    db.exec('BEGIN IMMEDIATE')
    try {
      const result = await fn()
      db.exec('COMMIT')
      return result
    } catch (err) {
      if (db.isTransaction) {
        try { db.exec('ROLLBACK') } catch {}
      }
      throw err
    }
  } finally {
    if (deferFlush) db.exec('PRAGMA synchronous = FULL')
  }
}

export function createSqliteBackend (config: SqliteStoreConfig): Backend {
  const path = config.path
  const readOnly = config.readOnly ?? false
  const synchronous = config.synchronous ?? 'full'
  const timeout = config.busyTimeoutMs ?? 5_000
  let writer: DatabaseSync | null = null
  let reader: DatabaseSync | null = null
  let writerSql: Sql | null = null
  let readerSql: Sql | null = null

  // The writer thread: group-commit batches run there. It starts with the first batch, not
  // at open: an idle thread costs ~13 MB of RSS, and a node that writes nothing (idle, or
  // only reading its store) should not pay it. A failure to start surfaces at that write.
  let writerThread: Promise<SqliteWriter> | null = null
  let writable = false

  const closeAll = (): void => {
    for (const db of [reader, writer]) {
      try { db?.close() } catch {}
    }
    reader = writer = null
    readerSql = writerSql = null
    writable = false
  }

  const backend: Backend = {
    kind: 'sqlite',
    dialect: sqliteDialect,
    readOnly,
    location: path,

    async open (verify) {
      closeAll()
      try {
        const main = new DatabaseSync(path, { readOnly, timeout, enableForeignKeyConstraints: false })
        if (readOnly) reader = main
        else writer = main
        const appId = Number((main.prepare('PRAGMA application_id').get() as Record<string, unknown>).application_id)
        if (appId !== 0 && appId !== SQLITE_APPLICATION_ID) throw new StoreVersionError(`${path} is not a fedmesh store (application_id ${appId})`)
        integrityCheck(main, verify, path)
        if (!readOnly) {
          // A new file gets NEW_STORE_PAGE_SIZE pages; an existing store keeps its own (WAL mode
          // cannot change it).
          if (Number((main.prepare('PRAGMA page_count').get() as Record<string, unknown>).page_count) === 0) main.exec(`PRAGMA page_size = ${NEW_STORE_PAGE_SIZE}`)
          const mode = (main.prepare('PRAGMA journal_mode = WAL').get() as Record<string, unknown>).journal_mode
          if (mode !== 'wal') throw new StoreIOError(`${path}: cannot switch to WAL mode (${String(mode)})`)
          main.exec(`PRAGMA synchronous = ${synchronous === 'full' ? 'FULL' : 'NORMAL'}`)
          // Keep the WAL file from growing without bound after a burst.
          main.exec('PRAGMA journal_size_limit = 67108864')
          if (appId === 0) main.exec(`PRAGMA application_id = ${SQLITE_APPLICATION_ID}`)
          registerFunctions(main)
          writerSql = sqlOf(main)
          reader = new DatabaseSync(path, { timeout, enableForeignKeyConstraints: false })
          reader.exec('PRAGMA query_only = 1')
        }
        registerFunctions(reader as DatabaseSync)
        readerSql = sqlOf(reader as DatabaseSync)
        writable = !readOnly
      } catch (err) {
        closeAll()
        throw mapSqliteError(err, 'open', path)
      }
      return { durability: synchronous === 'full' ? 'power-loss' : 'process-crash' }
    },

    async transaction (fn, options = {}) {
      if (writer == null || writerSql == null) throw new StoreIOError('store is not open for writing')
      const sql = writerSql
      return await inWriteTransaction(writer, options.flush === false && synchronous === 'full', async () => await fn(sql))
    },

    async executeBatch (ops, ctx, options) {
      if (!writable) throw new StoreIOError('store is not open for writing')
      writerThread ??= startSqliteWriter({ path, synchronous, timeout })
      const thread = await writerThread
      return await thread.execute(ops, ctx, options.flush)
    },

    get reader (): Sql {
      if (readerSql == null) throw new StoreIOError('store is not open')
      return readerSql
    },

    async close () {
      writable = false
      if (writerThread != null) {
        const thread = writerThread
        writerThread = null
        try { await (await thread).close() } catch {}
      }
      if (writer != null) {
        // Fold the WAL into the database so the file stands alone after a clean close.
        try { writer.exec('PRAGMA wal_checkpoint(TRUNCATE)') } catch {}
      }
      closeAll()
    },

    mapError: (err, what) => mapSqliteError(err, what, path)
  }
  return backend
}
