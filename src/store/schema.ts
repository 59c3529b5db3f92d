/**
 * The schema, one definition for both backends (types from the dialect), and its
 * versioning: `meta.schema_version` says which version a store holds; `migrate` brings
 * an older store up to `SCHEMA_VERSION` step by step, and refuses a newer one.
 * docs/STORE.md describes the tables.
 */
import { StoreVersionError } from './errors.ts'
import type { Dialect, Sql } from './backend.ts'

export const SCHEMA_VERSION = 2

/** Counters kept in the `counters` table. */
export const COUNTERS = ['inbox_pos', 'log_seq', 'log_count', 'log_bytes'] as const

function schemaV1 (d: Dialect): string[] {
  const t = d.table
  const { bigint, blob, topic, autoId } = d.types
  return [
    `CREATE TABLE ${t('meta')} (key TEXT PRIMARY KEY, value TEXT NOT NULL)`,
    `CREATE TABLE ${t('counters')} (name TEXT PRIMARY KEY, value ${bigint} NOT NULL)`,
    // Inbox entries. `pos` is the delivery position; `payload` is NULL once delivered
    // (unless kept), the row stays until expiry so a retransmission is seen as a duplicate.
    `CREATE TABLE ${t('inbox')} (
      rid ${autoId},
      recipient TEXT NOT NULL,
      id TEXT NOT NULL,
      sender TEXT NOT NULL,
      sender_seq ${bigint},
      priority ${bigint} NOT NULL,
      size ${bigint} NOT NULL,
      payload ${blob},
      crc ${bigint} NOT NULL,
      enqueued_ts ${bigint} NOT NULL,
      expires_at ${bigint} NOT NULL,
      delivered_ts ${bigint},
      replica ${bigint} NOT NULL,
      home TEXT,
      pos ${bigint} NOT NULL,
      UNIQUE (recipient, id)
    )`,
    `CREATE INDEX inbox_pending ON ${t('inbox')} (recipient, pos) WHERE delivered_ts IS NULL`,
    `CREATE INDEX inbox_seq ON ${t('inbox')} (recipient, sender, sender_seq) WHERE delivered_ts IS NULL AND sender_seq IS NOT NULL`,
    `CREATE INDEX inbox_expiry ON ${t('inbox')} (expires_at)`,
    // Quota usage of pending entries: scope 'inbox' (key recipient), 'pair' (recipient \n sender), 'sender'.
    `CREATE TABLE ${t('usage')} (scope TEXT NOT NULL, key TEXT NOT NULL, count ${bigint} NOT NULL, bytes ${bigint} NOT NULL, PRIMARY KEY (scope, key))`,
    `CREATE TABLE ${t('processed')} (agent TEXT NOT NULL, id TEXT NOT NULL, expires_at ${bigint} NOT NULL, PRIMARY KEY (agent, id))`,
    `CREATE INDEX processed_expiry ON ${t('processed')} (expires_at)`,
    // The message log. `seq` is assigned from the `log_seq` counter inside the write lock,
    // so it grows in commit order and is never reused (cursors rely on both).
    `CREATE TABLE ${t('log')} (
      seq ${bigint} PRIMARY KEY,
      id TEXT NOT NULL,
      event TEXT NOT NULL,
      status TEXT NOT NULL,
      sender TEXT,
      recipients TEXT NOT NULL,
      topic ${topic},
      schema_uri TEXT,
      proto TEXT,
      conv TEXT,
      type TEXT,
      size ${bigint} NOT NULL,
      reason TEXT,
      origin_ts ${bigint},
      received_ts ${bigint} NOT NULL,
      acked_ts ${bigint},
      peer TEXT,
      payload ${blob},
      payload_crc ${bigint},
      stored_bytes ${bigint} NOT NULL
    )`,
    `CREATE INDEX log_id ON ${t('log')} (id, seq)`,
    `CREATE INDEX log_sender ON ${t('log')} (sender, seq)`,
    `CREATE INDEX log_conv ON ${t('log')} (conv, seq)`,
    `CREATE INDEX log_topic ON ${t('log')} (topic, seq)`,
    `CREATE INDEX log_received ON ${t('log')} (received_ts)`,
    // One row per recipient of a log record, for the `agent` filter.
    `CREATE TABLE ${t('log_to')} (agent TEXT NOT NULL, seq ${bigint} NOT NULL, PRIMARY KEY (agent, seq))`,
    `CREATE INDEX log_to_seq ON ${t('log_to')} (seq)`
  ]
}

/**
 * Version 2: indexes that a message does not pay for when it has nothing to index.
 * - `inbox_replica`: the replica handover (every tick) asks which recipients have replica
 *   copies pending; version 1 answered by scanning every pending entry.
 * - `log_conv`, `log_topic`: most records have no conversation or no topic; they no longer
 *   add an index entry for NULL (every query on these columns compares them, so it implies
 *   NOT NULL and the partial index serves it).
 */
function schemaV2 (d: Dialect): string[] {
  const t = d.table
  return [
    `CREATE INDEX inbox_replica ON ${t('inbox')} (recipient) WHERE replica = 1 AND delivered_ts IS NULL`,
    `DROP INDEX ${t('log_conv')}`,
    `CREATE INDEX log_conv ON ${t('log')} (conv, seq) WHERE conv IS NOT NULL`,
    `DROP INDEX ${t('log_topic')}`,
    `CREATE INDEX log_topic ON ${t('log')} (topic, seq) WHERE topic IS NOT NULL`
  ]
}

/** Steps from version n-1 to n; index 0 creates version 1. */
const MIGRATIONS: Array<(d: Dialect) => string[]> = [schemaV1, schemaV2]

export async function readSchemaVersion (sql: Sql, d: Dialect): Promise<number | null> {
  if (!await d.tableExists(sql, 'meta')) {
    // Tables of ours without a meta table: not a store this code made.
    if (await d.tableExists(sql, 'inbox') || await d.tableExists(sql, 'log')) throw new StoreVersionError('the database holds inbox/log tables but no fedmesh schema version')
    return null
  }
  const rows = await sql.all(`SELECT value FROM ${d.table('meta')} WHERE key = 'schema_version'`)
  const v = Number(rows[0]?.value)
  if (!Number.isSafeInteger(v) || v < 1) throw new StoreVersionError('the store has no valid schema version')
  return v
}

/** Creates or upgrades the schema inside the caller's write transaction; returns the version. */
export async function migrate (sql: Sql, d: Dialect, now: number): Promise<number> {
  const from = await readSchemaVersion(sql, d) ?? 0
  if (from > SCHEMA_VERSION) throw new StoreVersionError(`the store has schema version ${from}; this code knows up to ${SCHEMA_VERSION}`, { details: { version: from, supported: SCHEMA_VERSION } })
  for (let v = from; v < SCHEMA_VERSION; v++) {
    for (const stmt of MIGRATIONS[v](d)) await sql.run(stmt)
  }
  if (from === 0) {
    await sql.run(`INSERT INTO ${d.table('meta')} (key, value) VALUES ('created_ts', ?)`, [String(now)])
    await sql.run(`INSERT INTO ${d.table('meta')} (key, value) VALUES ('schema_version', ?)`, [String(SCHEMA_VERSION)])
    for (const c of COUNTERS) await sql.run(`INSERT INTO ${d.table('counters')} (name, value) VALUES (?, 0)`, [c])
  } else if (from < SCHEMA_VERSION) {
    await sql.run(`UPDATE ${d.table('meta')} SET value = ? WHERE key = 'schema_version'`, [String(SCHEMA_VERSION)])
  }
  return SCHEMA_VERSION
}

/**
 * Recomputes quota usage from the pending entries. Usage is derived data kept in step with
 * every write; rebuilding it at open makes it exact whatever happened before.
 */
export async function rebuildUsage (sql: Sql, d: Dialect): Promise<void> {
  const inbox = d.table('inbox')
  const usage = d.table('usage')
  const pending = 'delivered_ts IS NULL'
  await sql.run(`DELETE FROM ${usage}`)
  await sql.run(`INSERT INTO ${usage} (scope, key, count, bytes) SELECT 'inbox', recipient, COUNT(*), SUM(size) FROM ${inbox} WHERE ${pending} GROUP BY recipient`)
  await sql.run(`INSERT INTO ${usage} (scope, key, count, bytes) SELECT 'pair', recipient || ? || sender, COUNT(*), SUM(size) FROM ${inbox} WHERE ${pending} GROUP BY recipient, sender`, ['\n'])
  await sql.run(`INSERT INTO ${usage} (scope, key, count, bytes) SELECT 'sender', sender, COUNT(*), SUM(size) FROM ${inbox} WHERE ${pending} GROUP BY sender`)
}
