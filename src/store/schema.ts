/**
 * The schema, one definition for both backends (types from the dialect), and its
 * versioning: `meta.schema_version` says which version a store holds; `migrate` brings
 * an older store up to `SCHEMA_VERSION` step by step, and refuses a newer one.
 * docs/STORE.md describes the tables.
 */
import { StoreVersionError } from './errors.ts'
import { num, type Dialect, type Sql } from './backend.ts'
import { LOG_BUCKET_SHIFT, logIdHash } from './query.ts'

export const SCHEMA_VERSION = 10

/** Keys in tier 0 of `inbox_ids` before they are moved to tier 1 together (version 7). */
export const INBOX_IDS_TIER0 = 4096

/**
 * Tiers of `inbox_ids` (version 9): tier k (1 ≤ k < INBOX_IDS_TOP) moves into tier k + 1 every
 * `INBOX_IDS_TIER0 · INBOX_IDS_GROWTH^k` inserts, so it never holds more keys than that; the top
 * tier takes everything older. A move rewrites at most the pages of the tier it moves into.
 */
export const INBOX_IDS_GROWTH = 8
export const INBOX_IDS_TOP = 3

/** Every tier of `inbox_ids`, as the list of an `IN (…)` (version 9: `0, 1, 2, 3`). */
export const INBOX_IDS_TIERS = Array.from({ length: INBOX_IDS_TOP + 1 }, (_, t) => t).join(', ')

/** Counters kept in the `counters` table. */
export const COUNTERS = ['inbox_pos', 'log_seq', 'log_count', 'log_bytes'] as const

/** The inbox's columns of version 1 (version 5 adds `idh`). */
function inboxColumns (d: Dialect): string {
  const { bigint, blob, autoId } = d.types
  return `
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
      pos ${bigint} NOT NULL`
}

/** The inbox's indexes on its version 1 columns: three of version 1, `inbox_replica` of version 2. */
function inboxIndexes (d: Dialect): string[] {
  const inbox = d.table('inbox')
  return [
    `CREATE INDEX inbox_pending ON ${inbox} (recipient, pos) WHERE delivered_ts IS NULL`,
    `CREATE INDEX inbox_seq ON ${inbox} (recipient, sender, sender_seq) WHERE delivered_ts IS NULL AND sender_seq IS NOT NULL`,
    `CREATE INDEX inbox_expiry ON ${inbox} (expires_at)`,
    `CREATE INDEX inbox_replica ON ${inbox} (recipient) WHERE replica = 1 AND delivered_ts IS NULL`
  ]
}

function schemaV1 (d: Dialect): string[] {
  const t = d.table
  const { bigint, blob, topic, autoId } = d.types
  return [
    `CREATE TABLE ${t('meta')} (key TEXT PRIMARY KEY, value TEXT NOT NULL)`,
    `CREATE TABLE ${t('counters')} (name TEXT PRIMARY KEY, value ${bigint} NOT NULL)`,
    // Inbox entries. `pos` is the delivery position; `payload` is NULL once delivered
    // (unless kept), the row stays until expiry so a retransmission is seen as a duplicate.
    `CREATE TABLE ${t('inbox')} (${inboxColumns(d)},
      UNIQUE (recipient, id)
    )`,
    ...inboxIndexes(d).slice(0, 3),
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
    inboxIndexes(d)[3],
    `DROP INDEX ${t('log_conv')}`,
    `CREATE INDEX log_conv ON ${t('log')} (conv, seq) WHERE conv IS NOT NULL`,
    `DROP INDEX ${t('log_topic')}`,
    `CREATE INDEX log_topic ON ${t('log')} (topic, seq) WHERE topic IS NOT NULL`
  ]
}

/**
 * Version 3: a message-log row that costs little to insert (docs/STORE.md, "The message log").
 * - `log_names`: every agent id, topic and peer id the log mentions, once; log rows hold its
 *   integer `nid` (`sender`, `rcpt`, `topic`, `peer`), so their indexes have integer keys.
 * - `idh`: a 53-bit hash of the message id (`logIdHash`), indexed instead of the id text,
 *   under the bucket of its position (`seq >> 16`): appends touch only the newest bucket's
 *   part of the index. A lookup by id compares the full id too.
 * - `rcpt`: the recipient when a record has one distinct recipient, answered by the partial
 *   index `log_rcpt`; `log_to` keeps rows only for records with two or more.
 * - `recipients`: the JSON list only when `to` is neither empty nor one element (`rcpt`).
 * - `log_spans` instead of the index on `received_ts`: one row per append batch (its
 *   positions and the range of its records' times), what retention by age reads.
 * The rows are copied into the new tables; `idh` is filled in afterwards (`fillIdHashes`).
 */
function schemaV3 (d: Dialect): string[] {
  const t = d.table
  const { bigint, topic, autoId } = d.types
  const names = t('log_names')
  const intern = (col: string, from: string): string =>
    `INSERT INTO ${names} (name) SELECT DISTINCT ${col} FROM ${t(from)} WHERE ${col} IS NOT NULL ON CONFLICT (name) DO NOTHING`
  const nidOf = (col: string): string => `(SELECT n.nid FROM ${names} n WHERE n.name = ${col})`
  // Records whose log_to rows name one agent: that agent becomes `rcpt`.
  const single = `(SELECT seq FROM ${t('log_to')} GROUP BY seq HAVING COUNT(*) = 1)`
  return [
    `CREATE TABLE ${names} (nid ${autoId}, name ${topic} NOT NULL UNIQUE)`,
    intern('sender', 'log'),
    intern('topic', 'log'),
    intern('peer', 'log'),
    intern('agent', 'log_to'),
    `CREATE TABLE ${t('log_v3')} (${LOG_V3_COLUMNS(d)})`,
    `INSERT INTO ${t('log_v3')} (seq, idh, id, event, status, sender, rcpt, recipients, topic, schema_uri, proto, conv, type, size, reason, origin_ts, received_ts, acked_ts, peer, payload, payload_crc, stored_bytes)
      SELECT l.seq, 0, l.id, l.event, l.status, ${nidOf('l.sender')},
        CASE WHEN l.seq IN ${single} THEN (SELECT n.nid FROM ${t('log_to')} o JOIN ${names} n ON n.name = o.agent WHERE o.seq = l.seq) END,
        CASE WHEN l.recipients = '[]' THEN NULL ELSE l.recipients END,
        ${nidOf('l.topic')}, l.schema_uri, l.proto, l.conv, l.type, l.size, l.reason, l.origin_ts, l.received_ts, l.acked_ts, ${nidOf('l.peer')},
        l.payload, l.payload_crc, l.stored_bytes
      FROM ${t('log')} l`,
    `CREATE TABLE ${t('log_to_v3')} (agent ${bigint} NOT NULL, seq ${bigint} NOT NULL, PRIMARY KEY (agent, seq))`,
    `INSERT INTO ${t('log_to_v3')} (agent, seq) SELECT n.nid, o.seq FROM ${t('log_to')} o JOIN ${names} n ON n.name = o.agent WHERE o.seq NOT IN ${single}`,
    `DROP TABLE ${t('log_to')}`,
    `DROP TABLE ${t('log')}`,
    `ALTER TABLE ${t('log_v3')} RENAME TO log`,
    `ALTER TABLE ${t('log_to_v3')} RENAME TO log_to`,
    ...LOG_V3_INDEXES(d),
    // The time index: a span per append batch from now on; the records already there get
    // one per 4 096 positions.
    `CREATE TABLE ${t('log_spans')} (seq_lo ${bigint} PRIMARY KEY, seq_hi ${bigint} NOT NULL, ts_min ${bigint} NOT NULL, ts_max ${bigint} NOT NULL)`,
    `INSERT INTO ${t('log_spans')} (seq_lo, seq_hi, ts_min, ts_max) SELECT MIN(seq), MAX(seq), MIN(received_ts), MAX(received_ts) FROM ${t('log')} GROUP BY seq / 4096`,
    `CREATE INDEX log_spans_ts ON ${t('log_spans')} (ts_min)`
  ]
}

function LOG_V3_COLUMNS (d: Dialect): string {
  const { bigint, blob } = d.types
  return `seq ${bigint} PRIMARY KEY,
      idh ${bigint} NOT NULL,
      id TEXT NOT NULL,
      event TEXT NOT NULL,
      status TEXT NOT NULL,
      sender ${bigint},
      rcpt ${bigint},
      recipients TEXT,
      topic ${bigint},
      schema_uri TEXT,
      proto TEXT,
      conv TEXT,
      type TEXT,
      size ${bigint} NOT NULL,
      reason TEXT,
      origin_ts ${bigint},
      received_ts ${bigint} NOT NULL,
      acked_ts ${bigint},
      peer ${bigint},
      payload ${blob},
      payload_crc ${bigint},
      stored_bytes ${bigint} NOT NULL`
}

function LOG_V3_INDEXES (d: Dialect): string[] {
  const log = d.table('log')
  return [
    `CREATE INDEX log_sender ON ${log} (sender, seq) WHERE sender IS NOT NULL`,
    `CREATE INDEX log_rcpt ON ${log} (rcpt, seq) WHERE rcpt IS NOT NULL`,
    `CREATE INDEX log_conv ON ${log} (conv, seq) WHERE conv IS NOT NULL`,
    `CREATE INDEX log_topic ON ${log} (topic, seq) WHERE topic IS NOT NULL`,
    `CREATE INDEX log_to_seq ON ${d.table('log_to')} (seq)`
  ]
}

/** Fills the `idh` column of every row of `table` (the hash of its `id`), a page at a time in `key` order. */
async function fillIdHashes (sql: Sql, table: string, key: 'seq' | 'rid'): Promise<void> {
  const PAGE = 1000
  let after = -1
  // Bounded: each turn advances `after` past a page of rows.
  while (true) {
    const rows = await sql.all(`SELECT ${key}, id FROM ${table} WHERE ${key} > ? ORDER BY ${key} LIMIT ${PAGE}`, [after])
    for (const r of rows) await sql.run(`UPDATE ${table} SET idh = ? WHERE ${key} = ?`, [logIdHash(String(r.id)), r[key]])
    if (rows.length < PAGE) break
    after = num(rows[rows.length - 1][key])
  }
}

/** After the copy of version 3: each log row's `idh`, then its index. */
async function fillLogIdHashes (sql: Sql, d: Dialect): Promise<void> {
  await fillIdHashes(sql, d.table('log'), 'seq')
  await sql.run(`CREATE INDEX log_idh ON ${d.table('log')} ((seq >> ${LOG_BUCKET_SHIFT}), idh)`)
}

/**
 * Version 4: runs (src/store/log-runs.ts, docs/STORE.md "Runs") — one log row for records
 * of one append that differ only in id, size and origin time.
 * - `n`: how many records the row holds (1 for every row before); they have the positions
 *   `seq` … `seq + n - 1`, and `id`, `idh`, `size`, `origin_ts` are the first one's.
 * - `members`: every member's id, size and origin time (NULL when `n` = 1).
 * - `log_ids`: one entry per member of a run (`s`: its position), under the bucket of its
 *   position (`s >> 12`): how a run is found by any of its ids.
 */
function schemaV4 (d: Dialect): string[] {
  const t = d.table
  const { bigint, blob } = d.types
  return [
    `ALTER TABLE ${t('log')} ADD COLUMN n ${bigint} NOT NULL DEFAULT 1`,
    `ALTER TABLE ${t('log')} ADD COLUMN members ${blob}`,
    // Bucket b = s >> RUN_ID_SHIFT (written by the appends, not a generated column: both backends, one statement).
    `CREATE TABLE ${t('log_ids')} (b ${bigint} NOT NULL, idh ${bigint} NOT NULL, s ${bigint} NOT NULL, PRIMARY KEY (b, idh, s))${d.kind === 'sqlite' ? ' WITHOUT ROWID' : ''}`
  ]
}

/** The inbox's columns before version 5 (which adds `idh`). */
const INBOX_V1_COLUMNS = 'rid, recipient, id, sender, sender_seq, priority, size, payload, crc, enqueued_ts, expires_at, delivered_ts, replica, home, pos'

/**
 * Version 5: the inbox finds an id by `idh`, a 53-bit hash of it (`logIdHash`, as the log's), instead of
 * the unique index on (recipient, id). Ids are hashes, so each new entry's key landed on a
 * random page of that index — ≈ 115-byte keys, a page rewritten to the WAL per entry once the
 * index outgrew the page cache, and a page read per duplicate lookup. An integer key is an
 * eighth of the size; every lookup compares recipient and id as well (a hash shared by two
 * ids costs a row read, nothing else). The uniqueness of (recipient, id) is the enqueue
 * planner's, as it always was in practice: writes are serialised (one writer thread on
 * SQLite, the advisory lock on PostgreSQL) and each batch's ids are looked up first.
 * SQLite cannot drop a table constraint, so its inbox is copied into a new table;
 * PostgreSQL drops the constraint and adds the column. `idh` is filled in afterwards.
 */
function schemaV5 (d: Dialect): string[] {
  const t = d.table
  const inbox = t('inbox')
  const { bigint } = d.types
  if (d.kind === 'postgres') {
    return [
      `ALTER TABLE ${inbox} DROP CONSTRAINT IF EXISTS inbox_recipient_id_key`,
      `ALTER TABLE ${inbox} ADD COLUMN idh ${bigint} NOT NULL DEFAULT 0`
    ]
  }
  return [
    `CREATE TABLE ${t('inbox_v5')} (${inboxColumns(d)},
      idh ${bigint} NOT NULL
    )`,
    `INSERT INTO ${t('inbox_v5')} (idh, ${INBOX_V1_COLUMNS}) SELECT 0, ${INBOX_V1_COLUMNS} FROM ${inbox}`,
    `DROP TABLE ${inbox}`,
    `ALTER TABLE ${t('inbox_v5')} RENAME TO inbox`,
    ...inboxIndexes(d)
  ]
}

/** After version 5's statements: each inbox row's `idh`, then its index. */
async function fillInboxIdHashes (sql: Sql, d: Dialect): Promise<void> {
  await fillIdHashes(sql, d.table('inbox'), 'rid')
  await sql.run(`CREATE INDEX inbox_idh ON ${d.table('inbox')} (idh)`)
}

/**
 * Version 6 (message log only): per-member status of runs. `log_status` holds, for a member of
 * a run whose status, acknowledgement time or reason changed after the append, the fields
 * that changed (NULL: the run's), keyed by the member's log position `s`. A status update of
 * k members is k small upserts; the run's row (up to 512 members) is never rewritten. Only
 * positions inside runs (n > 1) have entries: a record of its own is updated in its row, and a
 * run part left with one member (retention) takes its entry into its row. No existing rows
 * change, so the step is quick at any size. Self-contained: it touches nothing else.
 */
function schemaLogStatus (d: Dialect): string[] {
  const { bigint } = d.types
  // SQLite: an INTEGER PRIMARY KEY is the rowid, so the table is its own index.
  return [`CREATE TABLE ${d.table('log_status')} (s ${bigint} PRIMARY KEY, status TEXT, acked_ts ${bigint}, reason TEXT)`]
}

/**
 * Version 7: the inbox finds an id through `inbox_ids (t, idh, rid)` instead of the index on
 * `idh`. A new entry's key goes to tier 0 (t = 0): at most a few thousand keys, a few dozen
 * pages, so a commit of a few hundred entries dirties those pages and not one random leaf of a
 * large index per entry. When tier 0 holds `INBOX_IDS_TIER0` keys the writer moves them all to
 * tier 1 in one statement (key order: each leaf of tier 1 is written once for many keys).
 * Lookups ask `t IN (0, 1)`. The keys are kept by triggers on the inbox (SQLite: per row;
 * PostgreSQL: per statement, over its transition table), so an INSERT or DELETE of rows is
 * still one statement: nothing can write a row without its key or leave a key behind. Existing keys go to tier 1; the index on `idh` is dropped. `rid` is never changed.
 */
function schemaInboxIds (d: Dialect): string[] {
  const t = d.table
  const { bigint } = d.types
  const ids = t('inbox_ids')
  const inbox = t('inbox')
  const common = [
    `CREATE TABLE ${ids} (t ${bigint} NOT NULL, idh ${bigint} NOT NULL, rid ${bigint} NOT NULL, PRIMARY KEY (t, idh, rid))${d.kind === 'sqlite' ? ' WITHOUT ROWID' : ''}`,
    `INSERT INTO ${ids} (t, idh, rid) SELECT 1, idh, rid FROM ${inbox}`,
    `DROP INDEX IF EXISTS ${t('inbox_idh')}`
  ]
  if (d.kind === 'sqlite') {
    return [
      ...common,
      `CREATE TRIGGER inbox_ids_add AFTER INSERT ON inbox BEGIN INSERT INTO ${ids} (t, idh, rid) VALUES (0, NEW.idh, NEW.rid); END`,
      `CREATE TRIGGER inbox_ids_drop AFTER DELETE ON inbox BEGIN DELETE FROM ${ids} WHERE t IN (0, 1) AND idh = OLD.idh AND rid = OLD.rid; END`
    ]
  }
  // PostgreSQL: statement-level triggers over the transition tables (one call per INSERT of up
  // to 64 rows, or per DELETE), not a PL/pgSQL call per row.
  const fn = (name: string, body: string): string =>
    `CREATE FUNCTION ${t(name)}() RETURNS trigger LANGUAGE plpgsql AS $body$ BEGIN ${body}; RETURN NULL; END $body$`
  return [
    ...common,
    fn('inbox_ids_add', `INSERT INTO ${ids} (t, idh, rid) SELECT 0, idh, rid FROM new_rows`),
    fn('inbox_ids_drop', `DELETE FROM ${ids} x USING old_rows o WHERE x.t IN (0, 1) AND x.idh = o.idh AND x.rid = o.rid`),
    `CREATE TRIGGER inbox_ids_add AFTER INSERT ON ${inbox} REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION ${t('inbox_ids_add')}()`,
    `CREATE TRIGGER inbox_ids_drop AFTER DELETE ON ${inbox} REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION ${t('inbox_ids_drop')}()`
  ]
}

/**
 * Version 8: batch-signed entries keep their batch's signature and leaves once (docs/STORE.md,
 * "Batches"). `inbox_batches` holds one row per stored batch (per commit that stored entries of
 * it): the 64-byte signature, every leaf digest packed (32·n bytes), `refs` — how many inbox
 * rows of it still hold a payload — and a checksum. An entry of a batch holds its unsigned
 * leaf bytes as `payload` (the checksum over them), `batch` (the row's `bid`) and `leaf` (its
 * index): ≈ 350 bytes of signature and proof less per row; reads rebuild the wire bytes.
 * Triggers take a row's reference off when its payload goes (acknowledged, expired, removed)
 * and delete the batch row with its last one, so no code path can leave one behind. Rows
 * stored before keep their full wire bytes (`batch` NULL) and read as they are.
 */
function schemaBatches (d: Dialect): string[] {
  const t = d.table
  const { bigint, blob, autoId } = d.types
  const batches = t('inbox_batches')
  const inbox = t('inbox')
  const common = [
    `CREATE TABLE ${batches} (bid ${autoId}, sig ${blob} NOT NULL, leaves ${blob} NOT NULL, refs ${bigint} NOT NULL, crc ${bigint} NOT NULL)`,
    `ALTER TABLE ${inbox} ADD COLUMN batch ${bigint}`,
    `ALTER TABLE ${inbox} ADD COLUMN leaf ${bigint}`
  ]
  if (d.kind === 'sqlite') {
    const release = `BEGIN UPDATE ${batches} SET refs = refs - 1 WHERE bid = OLD.batch; DELETE FROM ${batches} WHERE bid = OLD.batch AND refs <= 0; END`
    return [
      ...common,
      `CREATE TRIGGER inbox_batches_update AFTER UPDATE OF payload ON inbox WHEN OLD.batch IS NOT NULL AND OLD.payload IS NOT NULL AND NEW.payload IS NULL ${release}`,
      `CREATE TRIGGER inbox_batches_delete AFTER DELETE ON inbox WHEN OLD.batch IS NOT NULL AND OLD.payload IS NOT NULL ${release}`
    ]
  }
  // PostgreSQL: per statement, over the transition tables (a trigger with transition tables
  // takes no column list: every UPDATE of the inbox runs it, and it looks for payloads gone).
  const fn = (name: string, gone: string): string =>
    `CREATE FUNCTION ${t(name)}() RETURNS trigger LANGUAGE plpgsql AS $body$ BEGIN ` +
    `UPDATE ${batches} b SET refs = b.refs - g.c FROM (SELECT o.batch, COUNT(*) AS c FROM ${gone} GROUP BY o.batch) g WHERE b.bid = g.batch; ` +
    `DELETE FROM ${batches} b WHERE b.refs <= 0 AND b.bid IN (SELECT o.batch FROM ${gone}); RETURN NULL; END $body$`
  return [
    ...common,
    fn('inbox_batches_update', 'old_rows o JOIN new_rows n ON n.rid = o.rid WHERE o.batch IS NOT NULL AND o.payload IS NOT NULL AND n.payload IS NULL'),
    fn('inbox_batches_delete', 'old_rows o WHERE o.batch IS NOT NULL AND o.payload IS NOT NULL'),
    `CREATE TRIGGER inbox_batches_update AFTER UPDATE ON ${inbox} REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION ${t('inbox_batches_update')}()`,
    `CREATE TRIGGER inbox_batches_delete AFTER DELETE ON ${inbox} REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION ${t('inbox_batches_delete')}()`
  ]
}

/**
 * Version 9: `inbox_ids` in levels. Version 7's tier 1 took every key ever moved, and each move
 * of tier 0 (4 096 random keys) rewrote all of its pages: a cost per message growing with the
 * number of stored entries (≈ 30 WAL pages per commit at 220 000). Now tier k (1 ≤ k <
 * `INBOX_IDS_TOP`) moves into tier k + 1 every `INBOX_IDS_TIER0 · INBOX_IDS_GROWTH^k` inserts,
 * before the lower tiers move (ops.ts, `moveInboxIds`), so a move rewrites a bounded tier, and
 * the top tier, which is unbounded, takes a move once per `INBOX_IDS_TIER0 · GROWTH^(TOP-1)`
 * inserts. Lookups and the delete trigger ask every tier. The keys of tier 1 go to the top tier.
 */
function schemaInboxIdLevels (d: Dialect): string[] {
  const t = d.table
  const ids = t('inbox_ids')
  const inbox = t('inbox')
  const common = [
    `INSERT INTO ${ids} (t, idh, rid) SELECT ${INBOX_IDS_TOP}, idh, rid FROM ${ids} WHERE t = 1 ORDER BY idh, rid`,
    `DELETE FROM ${ids} WHERE t = 1`
  ]
  if (d.kind === 'sqlite') {
    return [
      `DROP TRIGGER inbox_ids_drop`,
      `CREATE TRIGGER inbox_ids_drop AFTER DELETE ON inbox BEGIN DELETE FROM ${ids} WHERE t IN (${INBOX_IDS_TIERS}) AND idh = OLD.idh AND rid = OLD.rid; END`,
      ...common
    ]
  }
  return [
    `CREATE OR REPLACE FUNCTION ${t('inbox_ids_drop')}() RETURNS trigger LANGUAGE plpgsql AS $body$ BEGIN DELETE FROM ${ids} x USING old_rows o WHERE x.t IN (${INBOX_IDS_TIERS}) AND x.idh = o.idh AND x.rid = o.rid; RETURN NULL; END $body$`,
    ...common
  ]
}

/**
 * Version 10 (SQLite): no `inbox_ids_add` trigger. It ran a trigger program per inserted row —
 * about a quarter of the INSERT's cost on the writer thread — where one statement writes the
 * keys of all the rows an enqueue batch inserted (ops.ts, `enqueueRun`: `INSERT … SELECT` of
 * the rows past the largest `rid` before the batch, in key order, in the same transaction).
 * The enqueue is the only writer of inbox rows. PostgreSQL keeps its statement-level trigger
 * (one call per INSERT already, and its identity values do not let a writer know its own rows
 * by a bound): nothing to do there.
 */
function schemaInboxIdsByStatement (d: Dialect): string[] {
  return d.kind === 'sqlite' ? ['DROP TRIGGER inbox_ids_add'] : []
}

interface Migration {
  statements: (d: Dialect) => string[]
  /** Work that needs code, after the statements. */
  after?: (sql: Sql, d: Dialect) => Promise<void>
}

/** Steps from version n-1 to n; index 0 creates version 1. */
const MIGRATIONS: Migration[] = [{ statements: schemaV1 }, { statements: schemaV2 }, { statements: schemaV3, after: fillLogIdHashes }, { statements: schemaV4 }, { statements: schemaV5, after: fillInboxIdHashes }, { statements: schemaLogStatus }, { statements: schemaInboxIds }, { statements: schemaBatches }, { statements: schemaInboxIdLevels }, { statements: schemaInboxIdsByStatement }]

/** The statements that create version `version` from nothing (without its `after` steps; for tests of migrations). */
export function schemaStatements (d: Dialect, version: number): string[] {
  return MIGRATIONS.slice(0, version).flatMap(m => m.statements(d))
}

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
    for (const stmt of MIGRATIONS[v].statements(d)) await sql.run(stmt)
    await MIGRATIONS[v].after?.(sql, d)
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
