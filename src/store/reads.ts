/**
 * Reads, shared by the backends; they see committed data only. Every payload handed out
 * is checked against its stored checksum first: a mismatch is `StoreCorruptError`, never
 * silently wrong bytes. `verifyStored` runs the same check over the store at open.
 */
import type { AgentId, MessageId } from '../core/ids.ts'
import { StoreCorruptError } from './errors.ts'
import { chunks, num, optNum, optStr, type Dialect, type Row, type Sql } from './backend.ts'
import { buildLogQuery, encodeInboxCursor, encodeLogCursor, LOG_COLUMNS, logFrom, type LogPageOptions, type NormalizedFilter } from './query.ts'
import { payloadChecksum, plainBytes } from './validate.ts'
import { decodeMembers, findMembers, RunFormatError, type RunMember } from './log-runs.ts'
import type { StoredBatch } from './inbox-batches.ts'
import type { InboxEntry, LogEvent, LogPage, LogRecord, LogStatus, PendingPage, StoreStats, VerifyMode } from './types.ts'

function verifiedBytes (where: Record<string, unknown>, id: string, payload: unknown, crc: unknown): Uint8Array {
  if (!(payload instanceof Uint8Array)) throw new StoreCorruptError(`stored payload of ${id} is missing`, { details: where })
  const bytes = plainBytes(payload)
  const expected = num(crc)
  const actual = payloadChecksum(id, bytes)
  if (actual !== expected) throw new StoreCorruptError(`stored payload of ${id} fails its checksum`, { details: { ...where, expected, actual } })
  return bytes
}

// ---------------------------------------------------------------------------------------
// Inbox

export async function readPending (sql: Sql, d: Dialect, recipient: string, after: number | null, limit: number, now: number): Promise<PendingPage> {
  const params: unknown[] = [recipient, now]
  let where = 'recipient = ? AND delivered_ts IS NULL AND expires_at > ?'
  if (after != null) { where += ' AND pos > ?'; params.push(after) }
  const rows = await sql.all(`SELECT recipient, id, sender, sender_seq, priority, size, payload, crc, enqueued_ts, expires_at, replica, home, pos, batch, leaf FROM ${d.table('inbox')} WHERE ${where} ORDER BY pos LIMIT ${limit + 1}`, params)
  const more = rows.length > limit
  const page = rows.slice(0, limit)
  const batches = await readBatches(sql, d, page)
  const entries = page.map((r): InboxEntry => {
    const id = String(r.id)
    const where = { table: 'inbox', recipient, id }
    const stored = verifiedBytes(where, id, r.payload, r.crc)
    const e: InboxEntry = {
      recipient: String(r.recipient) as AgentId,
      id: id as MessageId,
      sender: String(r.sender) as AgentId,
      bytes: r.batch == null ? stored : batchOfRow(batches, r).wire(where, id, stored, num(r.leaf)),
      size: num(r.size),
      priority: num(r.priority),
      expiresAt: num(r.expires_at),
      replica: num(r.replica) === 1,
      enqueuedAt: num(r.enqueued_ts)
    }
    if (r.sender_seq != null) e.senderSeq = num(r.sender_seq)
    if (r.home != null) e.home = String(r.home)
    return e
  })
  const lastPos = page.length > 0 ? num(page[page.length - 1].pos) : after
  return { entries, cursor: lastPos == null ? undefined : encodeInboxCursor(recipient, lastPos), more }
}

/**
 * The `inbox_batches` rows (schema 8) the inbox rows given refer to, each checked against its
 * checksum; none (and inbox-batches.ts not loaded) when no row is of a batch.
 */
async function readBatches (sql: Sql, d: Dialect, rows: Row[]): Promise<Map<number, StoredBatch>> {
  const out = new Map<number, StoredBatch>()
  const bids = new Set<number>()
  for (const r of rows) if (r.batch != null) bids.add(num(r.batch))
  if (bids.size === 0) return out
  const { StoredBatch } = await import('./inbox-batches.ts')
  for (const part of chunks([...bids], 1, d.maxParams)) {
    const found = await sql.all(`SELECT bid, sig, leaves, crc FROM ${d.table('inbox_batches')} WHERE bid IN (${part.map(() => '?').join(', ')})`, part)
    for (const b of found) out.set(num(b.bid), new StoredBatch(num(b.bid), b.sig, b.leaves, b.crc))
  }
  return out
}

function batchOfRow (batches: Map<number, StoredBatch>, r: Row): StoredBatch {
  const b = batches.get(num(r.batch))
  if (b === undefined) throw new StoreCorruptError(`the batch of stored message ${String(r.id)} is missing`, { details: { table: 'inbox', id: String(r.id), batch: num(r.batch) } })
  return b
}

export async function readInboxes (sql: Sql, d: Dialect, replica: boolean | undefined, after: string | undefined, limit: number, now: number): Promise<{ recipients: AgentId[], more: boolean }> {
  const params: unknown[] = [now]
  let where = 'delivered_ts IS NULL AND expires_at > ?'
  // A literal, not a parameter: so SQLite sees that `replica = 1` matches the partial index inbox_replica.
  if (replica !== undefined) where += ` AND replica = ${replica ? 1 : 0}`
  if (after !== undefined) { where += ' AND recipient > ?'; params.push(after) }
  const rows = await sql.all(`SELECT DISTINCT recipient FROM ${d.table('inbox')} WHERE ${where} ORDER BY recipient LIMIT ${limit + 1}`, params)
  return { recipients: rows.slice(0, limit).map(r => String(r.recipient) as AgentId), more: rows.length > limit }
}

/**
 * Whether `expire(now)` has anything to do: an inbox entry or a processed mark whose expiry
 * has passed. Two index probes on the reader, so a maintenance tick with nothing due costs
 * no write transaction (and, on SQLite, does not start the writer thread).
 */
export async function readExpiryDue (sql: Sql, d: Dialect, now: number): Promise<boolean> {
  const inbox = await sql.all(`SELECT 1 AS one FROM ${d.table('inbox')} WHERE expires_at <= ? LIMIT 1`, [now])
  if (inbox.length > 0) return true
  const marks = await sql.all(`SELECT 1 AS one FROM ${d.table('processed')} WHERE expires_at <= ? LIMIT 1`, [now])
  return marks.length > 0
}

export async function readProcessed (sql: Sql, d: Dialect, agent: string, id: string): Promise<boolean> {
  const rows = await sql.all(`SELECT 1 AS one FROM ${d.table('processed')} WHERE agent = ? AND id = ?`, [agent, id])
  return rows.length > 0
}

export async function readStats (sql: Sql, d: Dialect, recipient: string | undefined): Promise<StoreStats> {
  const usage = d.table('usage')
  const inbox = recipient != null
    ? await sql.all(`SELECT count, bytes FROM ${usage} WHERE scope = 'inbox' AND key = ?`, [recipient])
    : await sql.all(`SELECT SUM(count) AS count, SUM(bytes) AS bytes FROM ${usage} WHERE scope = 'inbox'`)
  const counters = await sql.all(`SELECT name, value FROM ${d.table('counters')} WHERE name IN ('log_count', 'log_bytes')`)
  const c = new Map(counters.map(r => [String(r.name), num(r.value)]))
  const processed = await sql.all(`SELECT COUNT(*) AS n FROM ${d.table('processed')}`)
  return {
    inbox: { count: num(inbox[0]?.count), bytes: num(inbox[0]?.bytes) },
    log: { count: c.get('log_count') ?? 0, bytes: c.get('log_bytes') ?? 0 },
    processed: num(processed[0]?.n)
  }
}

// ---------------------------------------------------------------------------------------
// Message log

/** A record's `to`: the JSON list when stored, else its one recipient (`rcpt`), else none. */
function recipientsOf (r: Row): AgentId[] {
  if (r.recipients != null) return JSON.parse(String(r.recipients)) as AgentId[]
  return r.rcpt != null ? [String(r.rcpt) as AgentId] : []
}

function toRecord (r: Row, withBytes: boolean): LogRecord {
  const id = String(r.id)
  const seq = num(r.seq)
  const rec: LogRecord = {
    seq,
    id: id as MessageId,
    event: String(r.event) as LogEvent,
    status: String(r.status) as LogStatus,
    to: recipientsOf(r),
    size: num(r.size),
    receivedTs: num(r.received_ts),
    hasBytes: r.payload_crc != null
  }
  const opt: Array<[keyof LogRecord, unknown]> = [
    ['from', optStr(r.sender)], ['topic', optStr(r.topic)], ['schema', optStr(r.schema_uri)], ['proto', optStr(r.proto)],
    ['conv', optStr(r.conv)], ['type', optStr(r.type)], ['reason', optStr(r.reason)], ['originTs', optNum(r.origin_ts)],
    ['ackedTs', optNum(r.acked_ts)], ['peer', optStr(r.peer)]
  ]
  for (const [k, v] of opt) if (v !== undefined) (rec as unknown as Record<string, unknown>)[k] = v
  if (withBytes && r.payload_crc != null) rec.bytes = verifiedBytes({ table: 'log', seq, id }, id, r.payload, r.payload_crc)
  return rec
}

/** A row's members (log-runs.ts), each with its index `k`: the row itself when it holds one record. */
export function membersOf (r: Row): Array<RunMember & { k: number }> {
  return runMembers(r, (bytes, n, baseTs) => {
    const members = decodeMembers(bytes, n, baseTs)
    if (members[0].id !== String(r.id)) throw new RunFormatError('the first member is not the row\'s id')
    return members.map((m, k) => ({ ...m, k }))
  })
}

/** The members of a row whose id is `id`. */
function membersWithId (r: Row, id: string): Array<RunMember & { k: number }> {
  return runMembers(r, (bytes, n, baseTs) => findMembers(bytes, n, baseTs, id))
}

function runMembers (r: Row, read: (bytes: Uint8Array, n: number, baseTs: number) => Array<RunMember & { k: number }>): Array<RunMember & { k: number }> {
  const n = num(r.n)
  if (n <= 1) return [{ k: 0, id: String(r.id), size: num(r.size), originTs: num(r.origin_ts) }]
  if (!(r.members instanceof Uint8Array)) throw new StoreCorruptError(`log row ${num(r.seq)} holds ${n} records but no members`, { details: { table: 'log', seq: num(r.seq) } })
  try {
    return read(r.members, n, num(r.origin_ts))
  } catch (err) {
    if (!(err instanceof RunFormatError)) throw err
    throw new StoreCorruptError(`log row ${num(r.seq)}: ${err.message}`, { cause: err, details: { table: 'log', seq: num(r.seq) } })
  }
}

/** A run member's own status, acknowledgement time and reason (`log_status`; null: the run's). */
interface MemberStatus { status: LogStatus | null, ackedTs: number | null, reason: string | null }

/**
 * The `log_status` entries of the runs among `rows`, by position (only members of runs have
 * entries); undefined when no row is a run. One range read over the positions the rows span.
 */
async function memberStatuses (sql: Sql, d: Dialect, rows: Row[]): Promise<Map<number, MemberStatus> | undefined> {
  let lo = Infinity
  let hi = -Infinity
  for (const r of rows) {
    const n = num(r.n)
    if (n <= 1) continue
    const seq = num(r.seq)
    if (seq < lo) lo = seq
    if (seq + n > hi) hi = seq + n
  }
  if (hi < lo) return undefined
  const found = await sql.all(`SELECT s, status, acked_ts, reason FROM ${d.table('log_status')} WHERE s >= ? AND s < ?`, [lo, hi])
  const out = new Map<number, MemberStatus>()
  for (const o of found) out.set(num(o.s), { status: (optStr(o.status) ?? null) as LogStatus | null, ackedTs: optNum(o.acked_ts) ?? null, reason: optStr(o.reason) ?? null })
  return out
}

/**
 * The records a row holds with `from ≤ seq < to` (and, with `id`, only that message's; with
 * `status`, only those whose own status is one of them), in page order, appended to `out`.
 * A run's members take their entries of `own` over the run's status, ackedTs and reason.
 */
function expandRow (r: Row, withBytes: boolean, window: { from: number, to: number }, id: string | undefined, status: readonly LogStatus[] | undefined,
  own: Map<number, MemberStatus> | undefined, asc: boolean, out: LogRecord[]): void {
  const head = toRecord(r, withBytes)
  if (num(r.n) <= 1) {
    if (head.seq >= window.from && head.seq < window.to) out.push(head)
    return
  }
  // By id: only the members with that id (the others are skipped, not decoded).
  const members = id === undefined ? membersOf(r) : membersWithId(r, id)
  for (let k = 0; k < members.length; k++) {
    const m = members[asc ? k : members.length - 1 - k]
    const seq = head.seq + m.k
    if (seq < window.from || seq >= window.to) continue
    const rec: LogRecord = { ...head, seq, id: m.id as MessageId, size: m.size, originTs: m.originTs }
    const o = own?.get(seq)
    if (o !== undefined) {
      if (o.status != null) rec.status = o.status
      if (o.ackedTs != null) rec.ackedTs = o.ackedTs
      if (o.reason != null) rec.reason = o.reason
    }
    if (status !== undefined && !status.includes(rec.status)) continue
    out.push(rec)
  }
}

/** The log's first and last position (a run's last record), or null when the log is empty. */
export async function logRange (sql: Sql, d: Pick<Dialect, 'table'>): Promise<{ lo: number, hi: number } | null> {
  const log = d.table('log')
  const rows = await sql.all(`SELECT (SELECT MIN(seq) FROM ${log}) AS lo, (SELECT seq + n - 1 FROM ${log} ORDER BY seq DESC LIMIT 1) AS hi`)
  if (rows[0]?.hi == null) return null
  return { lo: num(rows[0].lo), hi: num(rows[0].hi) }
}

/** Log positions one query window covers, and how many windows one page may scan. */
export const SCAN_WINDOW = 10_000
export const MAX_WINDOWS = 10

/**
 * A page of the log. The scan walks the log in windows of `SCAN_WINDOW` positions and stops
 * after `MAX_WINDOWS`, so no query — however unselective its filter — reads more than about
 * 100 000 records (SQLite runs on the event loop). A page can therefore hold fewer records than
 * the limit while `more` is true; its cursor then marks how far the scan got. Rows that hold
 * a run give a record per member (in the window, and of the id asked for).
 */
export async function readLogPage (sql: Sql, d: Dialect, filter: NormalizedFilter, page: LogPageOptions): Promise<LogPage> {
  const range = await logRange(sql, d)
  const records: LogRecord[] = []
  const cursorAt = (pos: number): string => encodeLogCursor(page.order, pos, page.key)
  if (range == null) return { records, cursor: page.after == null ? undefined : cursorAt(page.after), more: false }
  const { lo, hi } = range
  const asc = page.order === 'asc'
  // The scan position: in `asc` everything ≤ pos is done, in `desc` everything ≥ pos.
  let pos = asc ? Math.max(page.after ?? 0, lo - 1) : Math.min(page.after ?? hi + 1, hi + 1)
  // Bounded: each turn either ends the page or moves `pos` on by at least one position
  // (a full window, or past the last row read); the windows are counted.
  for (let w = 0; w < MAX_WINDOWS && (asc ? pos < hi : pos > lo);) {
    const from = asc ? pos + 1 : Math.max(pos - SCAN_WINDOW, lo)
    const to = asc ? Math.min(pos + SCAN_WINDOW, hi) + 1 : pos
    const take = page.limit - records.length
    const q = buildLogQuery(filter, page, { from, to, take }, d)
    const rows = await sql.all(q.sql, q.params)
    const found: LogRecord[] = []
    const own = await memberStatuses(sql, d, rows)
    for (const r of rows) expandRow(r, page.includeBytes, { from, to }, filter.id, filter.status, own, asc, found)
    if (found.length > take) {
      records.push(...found.slice(0, take))
      return { records, cursor: cursorAt(records[records.length - 1].seq), more: true }
    }
    records.push(...found)
    if (rows.length > take) {
      // As many rows as asked but fewer records (rows that held none of the id): go on
      // after the last row read, in the same window.
      const last = rows[rows.length - 1]
      pos = asc ? Math.min(num(last.seq) + num(last.n) - 1, to - 1) : Math.max(num(last.seq), from)
      continue
    }
    pos = asc ? to - 1 : from
    w++
    if (records.length === page.limit) break
  }
  if (records.length === page.limit) {
    // Full page: continue after its last record (the window may reach further, unread).
    return { records, cursor: cursorAt(records[records.length - 1].seq), more: asc ? records[records.length - 1].seq < hi : records[records.length - 1].seq > lo }
  }
  return { records, cursor: cursorAt(pos), more: asc ? pos < hi : pos > lo }
}

/** One record per message (its first in the log), in log order, with the first payload kept for it. */
export async function readConversation (sql: Sql, d: Dialect, conv: string, limit: number): Promise<LogRecord[]> {
  const log = d.table('log')
  const firsts = await sql.all(
    `SELECT ${LOG_COLUMNS}, l.payload FROM ${logFrom(d)} WHERE l.seq IN (SELECT MIN(m.seq) FROM ${log} m WHERE m.conv = ? GROUP BY m.id) ORDER BY l.seq LIMIT ${limit}`,
    [conv])
  const records = firsts.map(r => toRecord(r, true))
  const missing = records.filter(r => r.bytes == null).map(r => r.id as string)
  const found = new Map<string, Uint8Array>()
  for (const part of chunks(missing, 1, d.maxParams - 1)) {
    const rows = await sql.all(`SELECT seq, id, payload, payload_crc FROM ${log} WHERE conv = ? AND payload_crc IS NOT NULL AND id IN (${part.map(() => '?').join(', ')}) ORDER BY seq`, [conv, ...part])
    for (const r of rows) {
      const id = String(r.id)
      if (!found.has(id)) found.set(id, verifiedBytes({ table: 'log', seq: num(r.seq), id }, id, r.payload, r.payload_crc))
    }
  }
  for (const r of records) {
    const b = found.get(r.id)
    if (b != null) { r.bytes = b; r.hasBytes = true }
  }
  return records
}

// ---------------------------------------------------------------------------------------
// Checksum verification at open

const QUICK_INBOX_ROWS = 100_000
const QUICK_LOG_NEWEST = 1_000
const QUICK_LOG_SAMPLES = 64
const PAGE = 1_000

/**
 * Checks stored payloads against their checksums: in `quick` mode every inbox payload (at
 * most 100 000, newest first) and a sample of the log; in `full` mode everything.
 * Throws `StoreCorruptError` at the first mismatch.
 */
export async function verifyStored (sql: Sql, d: Dialect, mode: VerifyMode): Promise<void> {
  if (mode === 'off') return
  const inbox = d.table('inbox')
  const log = d.table('log')
  const inboxBudget = mode === 'full' ? Number.MAX_SAFE_INTEGER : QUICK_INBOX_ROWS
  let checked = 0
  let before = Number.MAX_SAFE_INTEGER
  // Bounded: each turn advances `before` past a page of rows.
  while (checked < inboxBudget) {
    const rows = await sql.all(`SELECT rid, recipient, id, payload, crc, batch, leaf FROM ${inbox} WHERE payload IS NOT NULL AND rid < ? ORDER BY rid DESC LIMIT ${PAGE}`, [before])
    // Batch entries: their batch rows too (checksums), and each row's leaf is its id's.
    const batches = await readBatches(sql, d, rows)
    for (const r of rows) {
      const id = String(r.id)
      const where = { table: 'inbox', recipient: String(r.recipient), id }
      verifiedBytes(where, id, r.payload, r.crc)
      if (r.batch != null) batchOfRow(batches, r).checkLeaf(where, id, num(r.leaf))
    }
    checked += rows.length
    if (rows.length < PAGE) break
    before = num(rows[rows.length - 1].rid)
  }

  const checkLog = (rows: Row[]): void => {
    for (const r of rows) verifiedBytes({ table: 'log', seq: num(r.seq), id: String(r.id) }, String(r.id), r.payload, r.payload_crc)
  }
  const cols = `seq, id, payload, payload_crc FROM ${log} WHERE payload_crc IS NOT NULL`
  if (mode === 'full') {
    let after = -1
    // Bounded: each turn advances `after` past a page of rows.
    while (true) {
      const rows = await sql.all(`SELECT ${cols} AND seq > ? ORDER BY seq LIMIT ${PAGE}`, [after])
      checkLog(rows)
      if (rows.length < PAGE) break
      after = num(rows[rows.length - 1].seq)
    }
    return
  }
  checkLog(await sql.all(`SELECT ${cols} ORDER BY seq DESC LIMIT ${QUICK_LOG_NEWEST}`))
  const range = await logRange(sql, d)
  if (range == null || range.hi - range.lo <= QUICK_LOG_NEWEST) return
  const { lo, hi } = range
  for (let i = 0; i < QUICK_LOG_SAMPLES; i++) {
    const at = lo + Math.floor(Math.random() * (hi - lo))
    checkLog(await sql.all(`SELECT ${cols} AND seq >= ? AND seq < ? ORDER BY seq LIMIT 1`, [at, at + PAGE]))
  }
}
