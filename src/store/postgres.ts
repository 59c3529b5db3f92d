/**
 * The PostgreSQL backend (`pg` with a pool), selected by a connection string.
 *
 * - Every table lives in one PostgreSQL schema (option `schema`, default `fedmesh`), so
 *   several stores — or test runs — share a database without touching each other.
 * - Writes: one transaction per group-commit batch on one pooled connection, with multi-row
 *   statements. `SET LOCAL synchronous_commit = on` makes COMMIT return only after the WAL
 *   is flushed on the server, whatever the server's default; `fsync = off` on the server is
 *   reported by `info().durability` as `process-crash`.
 * - A transaction-scoped advisory lock (keyed by the schema name) serialises writers, also
 *   across processes: log positions and delivery positions are handed out in commit order.
 * - Reads go through the pool and see committed data only.
 * - PostgreSQL checks its own pages (enable data checksums with `initdb -k`); the store
 *   checks its payload checksums on every read and samples them at open.
 */
// pg is loaded when a PostgreSQL store opens: a node on the default SQLite store never loads it.
import type pg from 'pg'
import { FedmeshError, InvalidArgumentError } from '../core/errors.ts'
import { StoreCorruptError, StoreIOError, StoreUnavailableError } from './errors.ts'
import { patternToRegex } from './query.ts'
import type { Backend, Dialect, Row, Sql } from './backend.ts'
import type { PostgresStoreConfig } from './types.ts'

export const SCHEMA_NAME_RE = /^[a-z_][a-z0-9_]{0,62}$/

// First key of the advisory lock: 'fm'.
const LOCK_CLASS = 0x666d

/** Rewrites `?` placeholders as `$1, $2, …` (outside quoted literals). */
export function numberPlaceholders (sql: string): string {
  let n = 0
  let out = ''
  let quoted = false
  for (const ch of sql) {
    if (ch === "'") quoted = !quoted
    out += ch === '?' && !quoted ? `$${++n}` : ch
  }
  return out
}

/** A 32-bit FNV-1a hash as a signed int (the advisory lock's second key). */
function lockKey (s: string): number {
  let h = 0x811c9dc5
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i)
    h = Math.imul(h, 0x01000193)
  }
  return h | 0
}

export function postgresDialect (schema: string): Dialect {
  const q = `"${schema}"`
  return {
    kind: 'postgres',
    // PostgreSQL allows 65 535 bound parameters; stay well below.
    maxParams: 30_000,
    types: { bigint: 'BIGINT', blob: 'BYTEA', topic: 'TEXT COLLATE "C"', autoId: 'BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY' },
    table: (name) => `${q}.${name}`,
    topicMatch: (column, pattern) => ({ sql: `${column} ~ ?`, value: patternToRegex(pattern) }),
    tableExists: async (sql, name) => (await sql.all('SELECT 1 AS one FROM information_schema.tables WHERE table_schema = ? AND table_name = ?', [schema, name])).length > 0
  }
}

const UNAVAILABLE_NODE_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'ENOTFOUND', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN'])

export function mapPostgresError (err: unknown, what: string, location: string): Error {
  if (err instanceof FedmeshError) return err
  const e = err as { code?: string, message?: string }
  const code = typeof e?.code === 'string' ? e.code : undefined
  const message = e?.message ?? String(err)
  const details = { location, code }
  if (code != null && (code.startsWith('08') || ['57P01', '57P02', '57P03', '53300', '3D000', '28000', '28P01'].includes(code) || UNAVAILABLE_NODE_CODES.has(code))) {
    return new StoreUnavailableError(`${what}: PostgreSQL unavailable at ${location} (${message})`, { cause: err, details })
  }
  if (/Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error|Connection ended/i.test(message)) {
    return new StoreUnavailableError(`${what}: PostgreSQL unavailable at ${location} (${message})`, { cause: err, details })
  }
  if (code === 'XX001' || code === 'XX002') return new StoreCorruptError(`${what}: PostgreSQL reports corruption (${message})`, { cause: err, details })
  return new StoreIOError(`${what}: ${message}`, { cause: err, details })
}

function redact (url: string): string {
  try {
    const u = new URL(url)
    u.password = ''
    return u.toString()
  } catch {
    return '(unparsable url)'
  }
}

function sqlOf (q: { query: (text: string, values?: unknown[]) => Promise<pg.QueryResult> }): Sql {
  return {
    all: async (sql, params = []) => (await q.query(numberPlaceholders(sql), params)).rows as Row[],
    run: async (sql, params = []) => (await q.query(numberPlaceholders(sql), params)).rowCount ?? 0
  }
}

export function createPostgresBackend (config: PostgresStoreConfig): Backend {
  const schema = config.schema ?? 'fedmesh'
  if (!SCHEMA_NAME_RE.test(schema)) throw new InvalidArgumentError(`postgres schema must match ${String(SCHEMA_NAME_RE)}`, { details: { field: 'schema' } })
  const poolSize = config.poolSize ?? 8
  if (!Number.isInteger(poolSize) || poolSize < 1 || poolSize > 100) throw new InvalidArgumentError('poolSize must be 1 … 100')
  const dialect = postgresDialect(schema)
  const location = `${redact(config.url)} schema=${schema}`
  const lockWith = (sync: 'on' | 'off'): string => `BEGIN; SET LOCAL synchronous_commit = ${sync}; SELECT pg_advisory_xact_lock(${LOCK_CLASS}, ${lockKey(schema)})`
  const lock = lockWith('on')
  const lockDeferred = lockWith('off')
  let pool: pg.Pool | null = null
  let readerSql: Sql | null = null

  function ensurePool (): pg.Pool {
    if (pool == null) throw new StoreUnavailableError('store is not open')
    return pool
  }

  async function transaction<T> (fn: (sql: Sql) => Promise<T>, options: { flush?: boolean } = {}): Promise<T> {
    const client = await ensurePool().connect()
    let broken: Error | undefined
    try {
      await client.query(options.flush === false ? lockDeferred : lock)
      const result = await fn(sqlOf(client))
      await client.query('COMMIT')
      return result
    } catch (err) {
      try { await client.query('ROLLBACK') } catch (e) { broken = e as Error }
      throw err
    } finally {
      // A connection that failed mid-transaction is discarded, not reused.
      client.release(broken)
    }
  }

  const backend: Backend = {
    kind: 'postgres',
    dialect,
    readOnly: false,
    location,

    async open () {
      await backend.close()
      const { default: pgModule } = await import('pg')
      const p = new pgModule.Pool({ connectionString: config.url, max: poolSize, connectionTimeoutMillis: config.connectTimeoutMs ?? 5_000, idleTimeoutMillis: 10_000, allowExitOnIdle: true })
      // An idle connection that dies (server restart) must not crash the process; the next
      // query fails with a typed error instead.
      p.on('error', () => {})
      pool = p
      readerSql = sqlOf(p)
      try {
        const rows = await readerSql.all("SELECT current_setting('fsync') AS fsync")
        await transaction(async sql => { await sql.run(`CREATE SCHEMA IF NOT EXISTS "${schema}"`) })
        return { durability: rows[0]?.fsync === 'on' ? 'power-loss' : 'process-crash' }
      } catch (err) {
        await backend.close()
        throw mapPostgresError(err, 'open', location)
      }
    },

    transaction,

    get reader (): Sql {
      if (readerSql == null) throw new StoreUnavailableError('store is not open')
      return readerSql
    },

    async close () {
      const p = pool
      pool = null
      readerSql = null
      if (p != null) await p.end().catch(() => {})
    },

    mapError: (err, what) => mapPostgresError(err, what, location)
  }
  return backend
}
