/**
 * Message-log queries (pure): filter validation, opaque cursors, topic patterns in SQL,
 * and the one SELECT both backends run. Malformed input throws `InvalidQueryError`
 * before anything touches the database.
 */
import { createHash } from 'node:crypto'
import { parsePattern } from '../core/topics.ts'
import { InvalidQueryError } from './errors.ts'
import { LOG_EVENTS, LOG_STATUSES, type LogEvent, type LogFilter, type LogStatus, type QueryOptions } from './types.ts'
import { PAGE_LIMITS, FIELD_LIMITS } from './config.ts'
import { isLogEvent, isLogStatus, pageLimit } from './validate.ts'
import { MAX_RUN, RUN_ID_SHIFT } from './log-runs.ts'

// ---------------------------------------------------------------------------------------
// Topic patterns

export interface TopicFilter {
  pattern: string
  /** No wildcard: plain equality. */
  exact: boolean
  /** The literal levels before the first wildcard, with their trailing `/` ('' if none). */
  prefix: string
}

export function parseTopicFilter (s: unknown): TopicFilter {
  let pattern: string
  try {
    pattern = parsePattern(s)
  } catch (err) {
    throw new InvalidQueryError(`filter.topic: ${(err as Error).message}`, { cause: err, details: { field: 'topic' } })
  }
  const levels = pattern.split('/')
  const firstWild = levels.findIndex(l => l === '*' || l === '#')
  if (firstWild === -1) return { pattern, exact: true, prefix: pattern }
  return { pattern, exact: false, prefix: levels.slice(0, firstWild).map(l => `${l}/`).join('') }
}

/**
 * The smallest string greater than every string starting with `prefix` (bytewise, for
 * a range scan on an index). Prefixes end in '/', so bumping that last character works.
 */
export function prefixUpperBound (prefix: string): string {
  const last = prefix.charCodeAt(prefix.length - 1)
  return prefix.slice(0, -1) + String.fromCharCode(last + 1)
}

const REGEX_SPECIAL = /[\\^$.|?*+()[\]{}]/g

/**
 * A pattern as an anchored regular expression with the semantics of `topicMatches`:
 * `*` is exactly one non-empty level, a final `#` is one or more levels. The syntax is the
 * common subset of JavaScript and PostgreSQL (ARE) regular expressions.
 */
export function patternToRegex (pattern: string): string {
  const levels = pattern.split('/')
  let out = '^'
  levels.forEach((level, i) => {
    const sep = i === 0 ? '' : '/'
    if (level === '#') out += i === 0 ? '.+' : '/.+'
    else if (level === '*') out += `${sep}[^/]+`
    else out += sep + level.replace(REGEX_SPECIAL, '\\$&')
  })
  return out + '$'
}

// ---------------------------------------------------------------------------------------
// Filters

export interface NormalizedFilter {
  id?: string
  agent?: string
  topic?: TopicFilter
  conversation?: string
  since?: number
  until?: number
  status?: LogStatus[]
  type?: string
  event?: LogEvent[]
}

const FILTER_KEYS = ['id', 'agent', 'topic', 'conversation', 'since', 'until', 'status', 'type', 'event']

function bad (field: string, problem: string): never {
  throw new InvalidQueryError(`filter.${field} ${problem}`, { details: { field } })
}

function text (field: string, v: unknown): string {
  if (typeof v !== 'string' || v.length === 0 || v.length > FIELD_LIMITS.maxIdLength) bad(field, `must be a string of 1 … ${FIELD_LIMITS.maxIdLength} characters`)
  return v
}

function time (field: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) bad(field, 'must be an integer ≥ 0 (ms since the epoch)')
  return v
}

function oneOrMany<T extends string> (field: string, v: unknown, ok: (x: unknown) => x is T, allowed: readonly string[]): T[] {
  const list = Array.isArray(v) ? v : [v]
  if (list.length === 0 || list.length > allowed.length) bad(field, `must be one or more of ${allowed.join(', ')}`)
  for (const x of list) if (!ok(x)) bad(field, `must be one or more of ${allowed.join(', ')}`)
  return [...new Set(list as T[])].sort()
}

/** Validates a log filter (as given by a caller, the CLI or the HTTP API). */
export function parseLogFilter (input: LogFilter | unknown): NormalizedFilter {
  if (input == null || typeof input !== 'object' || Array.isArray(input)) throw new InvalidQueryError('filter must be an object')
  const f = input as Record<string, unknown>
  const out: NormalizedFilter = {}
  for (const key of Object.keys(f)) {
    if (!FILTER_KEYS.includes(key)) throw new InvalidQueryError(`filter.${key} is not a known filter (known: ${FILTER_KEYS.join(', ')})`, { details: { field: key } })
    const v = f[key]
    if (v === undefined) continue
    switch (key) {
      case 'id': out.id = text(key, v); break
      case 'agent': out.agent = text(key, v); break
      case 'conversation': out.conversation = text(key, v); break
      case 'type': out.type = text(key, v); break
      case 'topic': out.topic = parseTopicFilter(v); break
      case 'since': out.since = time(key, v); break
      case 'until': out.until = time(key, v); break
      case 'status': out.status = oneOrMany(key, v, isLogStatus, LOG_STATUSES); break
      case 'event': out.event = oneOrMany(key, v, isLogEvent, LOG_EVENTS); break
    }
  }
  if (out.since != null && out.until != null && out.since > out.until) throw new InvalidQueryError('filter.since is after filter.until', { details: { field: 'since' } })
  return out
}

/** A short fingerprint of a normalized filter: a cursor only continues the query it came from. */
export function filterKey (f: NormalizedFilter): string {
  const canonical = JSON.stringify([f.id, f.agent, f.topic?.pattern, f.conversation, f.since, f.until, f.status, f.type, f.event])
  return createHash('sha256').update(canonical).digest('base64url').slice(0, 12)
}

// ---------------------------------------------------------------------------------------
// Cursors: opaque to callers (base64url text), strictly parsed here.

const CURSOR_VERSION = 'fm1'
const MAX_CURSOR_LENGTH = 200

function encodeCursor (parts: Array<string | number>): string {
  return Buffer.from([CURSOR_VERSION, ...parts].join('|'), 'utf8').toString('base64url')
}

function decodeCursor (cursor: unknown, kind: string, count: number): string[] {
  if (typeof cursor !== 'string' || cursor.length === 0 || cursor.length > MAX_CURSOR_LENGTH || !/^[A-Za-z0-9_-]+$/.test(cursor)) {
    throw new InvalidQueryError('cursor is malformed', { details: { field: 'cursor' } })
  }
  const parts = Buffer.from(cursor, 'base64url').toString('utf8').split('|')
  if (parts.length !== count + 2 || parts[0] !== CURSOR_VERSION || parts[1] !== kind) {
    throw new InvalidQueryError(`cursor is not a ${kind} cursor`, { details: { field: 'cursor' } })
  }
  return parts.slice(2)
}

function cursorPosition (s: string): number {
  if (!/^(0|[1-9][0-9]{0,15})$/.test(s)) throw new InvalidQueryError('cursor is malformed', { details: { field: 'cursor' } })
  const n = Number(s)
  if (!Number.isSafeInteger(n)) throw new InvalidQueryError('cursor is malformed', { details: { field: 'cursor' } })
  return n
}

export type Order = 'asc' | 'desc'

export function encodeLogCursor (order: Order, seq: number, key: string): string {
  return encodeCursor(['log', order, seq, key])
}

/** The log position after which the next page starts; the cursor must come from the same filter and order. */
export function decodeLogCursor (cursor: unknown, order: Order, key: string): number {
  const [o, seq, k] = decodeCursor(cursor, 'log', 3)
  if (o !== order) throw new InvalidQueryError(`cursor was made for order ${o}, not ${order}`, { details: { field: 'cursor' } })
  if (k !== key) throw new InvalidQueryError('cursor was made for another filter', { details: { field: 'cursor' } })
  return cursorPosition(seq)
}

function recipientKey (recipient: string): string {
  return createHash('sha256').update(recipient).digest('base64url').slice(0, 12)
}

export function encodeInboxCursor (recipient: string, pos: number): string {
  return encodeCursor(['inbox', recipientKey(recipient), pos])
}

export function decodeInboxCursor (cursor: unknown, recipient: string): number {
  const [k, pos] = decodeCursor(cursor, 'inbox', 2)
  if (k !== recipientKey(recipient)) throw new InvalidQueryError('cursor was made for another inbox', { details: { field: 'afterCursor' } })
  return cursorPosition(pos)
}

// ---------------------------------------------------------------------------------------
// Page options

export interface LogPageOptions {
  limit: number
  order: Order
  /** Continue after this log position. */
  after: number | null
  includeBytes: boolean
  key: string
}

export function parseQueryOptions (filter: NormalizedFilter, options: QueryOptions): LogPageOptions {
  if (options == null || typeof options !== 'object') throw new InvalidQueryError('options must be an object')
  const limit = pageLimit('limit', options.limit, PAGE_LIMITS.query, InvalidQueryError)
  const order = options.order ?? 'asc'
  if (order !== 'asc' && order !== 'desc') throw new InvalidQueryError('order must be asc or desc', { details: { field: 'order' } })
  const includeBytes = options.includeBytes ?? false
  if (typeof includeBytes !== 'boolean') throw new InvalidQueryError('includeBytes must be a boolean', { details: { field: 'includeBytes' } })
  const key = filterKey(filter)
  const after = options.cursor === undefined ? null : decodeLogCursor(options.cursor, order, key)
  return { limit, order, after, includeBytes, key }
}

// ---------------------------------------------------------------------------------------
// SQL

/** How the backends differ in the log SELECT. Parameters are always written `?`. */
export interface QueryDialect {
  /** A table name, qualified as the backend needs. */
  table: (name: string) => string
  /** The condition "column matches this topic pattern" and its one parameter value. */
  topicMatch: (column: string, pattern: string) => { sql: string, value: unknown }
}

export interface SqlQuery {
  sql: string
  params: unknown[]
}

/**
 * The key the log and the inbox index a message id by (their column `idh`): a 53-bit hash of the id's UTF-16
 * code units (two 32-bit FNV-1a lanes, mixed), a non-negative safe integer the same on
 * every platform and in both backends. Part of the stored format: never change it without
 * a migration. Lookups compare the full id as well, so a collision costs a row read, never
 * a wrong answer.
 */
export function logIdHash (id: string): number {
  let a = 0x811c9dc5
  let b = 0x6b43a9b5
  for (let i = 0; i < id.length; i++) {
    const c = id.charCodeAt(i)
    a = Math.imul(a ^ c, 0x01000193)
    b = Math.imul(b ^ c, 0x5bd1e995)
  }
  a ^= a >>> 15
  a = Math.imul(a, 0x2c1b3c6d)
  a ^= a >>> 12
  b ^= b >>> 13
  b = Math.imul(b, 0x297a2d39)
  b ^= b >>> 15
  return (a >>> 0) * 0x200000 + (b >>> 11)
}

/**
 * Log positions per bucket of the id index: `log_idh` is on `(seq >> 16, idh)`, so the
 * entries a batch adds land in the newest bucket's part of the index (a bounded set of
 * pages) rather than anywhere in an index as large as the log: a random key costs one
 * dirtied page per record once the index outgrows a batch. A lookup names its buckets —
 * a query window spans one or two.
 */
export const LOG_BUCKET_SHIFT = 16

/** The bucket numbers of log positions `from ≤ seq < to` at `shift` bits per bucket. */
export function bucketNumbers (from: number, to: number, shift: number): number[] {
  const out: number[] = []
  const last = Math.floor((Math.max(to, from + 1) - 1) / 2 ** shift)
  for (let b = Math.floor(from / 2 ** shift); b <= last; b++) out.push(b)
  return out
}

/** The id-index buckets of log positions `from ≤ seq < to`, as SQL (an IN list) and its parameters. */
export function bucketsOf (from: number, to: number, seqColumn = 'l.seq'): { sql: string, params: number[] } {
  const params = bucketNumbers(from, to, LOG_BUCKET_SHIFT)
  return { sql: `(${seqColumn} >> ${LOG_BUCKET_SHIFT}) IN (${params.map(() => '?').join(', ')})`, params }
}

/**
 * The columns of a log record, with the interned names resolved (`logFrom` joins them).
 * `rcpt` and `recipients` together give `to` (see `recipientsOf` in reads.ts).
 */
export const LOG_COLUMNS = 'l.seq, l.id, l.event, l.status, ns.name AS sender, nr.name AS rcpt, l.recipients, nt.name AS topic, l.schema_uri, l.proto, l.conv, l.type, l.size, l.reason, l.origin_ts, l.received_ts, l.acked_ts, np.name AS peer, l.stored_bytes, l.payload_crc, l.n, l.members'

/** The log table aliased `l`, with the name dictionary joined for `LOG_COLUMNS`. */
export function logFrom (d: Pick<QueryDialect, 'table'>): string {
  const names = d.table('log_names')
  return `${d.table('log')} l LEFT JOIN ${names} ns ON ns.nid = l.sender LEFT JOIN ${names} nr ON nr.nid = l.rcpt` +
    ` LEFT JOIN ${names} nt ON nt.nid = l.topic LEFT JOIN ${names} np ON np.nid = l.peer`
}

/** Conditions of a normalized filter on the log table aliased `l`, for log positions `from ≤ seq < to`. */
export function filterConditions (f: NormalizedFilter, d: QueryDialect, params: unknown[], window: { from: number, to: number }): string[] {
  const where: string[] = []
  const add = (v: unknown): string => { params.push(v); return '?' }
  const names = d.table('log_names')
  // A name's dictionary key (NULL when the log never mentioned it: then nothing matches).
  const nid = (name: string): string => `(SELECT nid FROM ${names} WHERE name = ${add(name)})`
  if (f.id != null) {
    // A record of its own (or a run's first) by the row's id index; a run's member by
    // `log_ids`, whose entry names the member's position: the row is the last one at or
    // before it (the member's id itself is compared when the run is read, reads.ts).
    const h = logIdHash(f.id)
    const b = bucketsOf(window.from, window.to)
    params.push(...b.params)
    const single = `${b.sql} AND l.idh = ${add(h)} AND l.id = ${add(f.id)}`
    const rb = bucketNumbers(window.from, window.to, RUN_ID_SHIFT)
    const inRun = `l.n > 1 AND l.seq IN (SELECT (SELECT MAX(g.seq) FROM ${d.table('log')} g WHERE g.seq <= x.s) FROM ${d.table('log_ids')} x` +
      ` WHERE x.b IN (${rb.map(add).join(', ')}) AND x.idh = ${add(h)} AND x.s >= ${add(window.from)} AND x.s < ${add(window.to)})`
    where.push(`((${single}) OR (${inRun}))`)
  }
  if (f.agent != null) {
    where.push(`(l.sender = ${nid(f.agent)} OR l.rcpt = ${nid(f.agent)} OR EXISTS (SELECT 1 FROM ${d.table('log_to')} t WHERE t.agent = ${nid(f.agent)} AND t.seq = l.seq))`)
  }
  if (f.topic != null) {
    if (f.topic.exact) {
      where.push(`l.topic = ${nid(f.topic.pattern)}`)
    } else {
      // The matching topics, from the dictionary: the literal prefix narrows the scan of its
      // index to a range, the match decides.
      const conds: string[] = []
      if (f.topic.prefix !== '') conds.push(`n.name >= ${add(f.topic.prefix)} AND n.name < ${add(prefixUpperBound(f.topic.prefix))}`)
      const m = d.topicMatch('n.name', f.topic.pattern)
      params.push(m.value)
      conds.push(m.sql)
      where.push(`l.topic IN (SELECT n.nid FROM ${names} n WHERE ${conds.join(' AND ')})`)
    }
  }
  if (f.conversation != null) where.push(`l.conv = ${add(f.conversation)}`)
  if (f.since != null) where.push(`l.received_ts >= ${add(f.since)}`)
  if (f.until != null) where.push(`l.received_ts < ${add(f.until)}`)
  if (f.status != null) {
    // A run's members may have statuses of their own (`log_status`): the row is read when its
    // status or one of theirs matches, and its members are filtered when it is expanded (reads.ts).
    const row = `l.status IN (${f.status.map(add).join(', ')})`
    const member = `o.s >= l.seq AND o.s < l.seq + l.n AND o.status IN (${f.status.map(add).join(', ')})`
    where.push(`(${row} OR (l.n > 1 AND EXISTS (SELECT 1 FROM ${d.table('log_status')} o WHERE ${member})))`)
  }
  if (f.type != null) where.push(`l.type = ${add(f.type)}`)
  if (f.event != null) where.push(`l.event IN (${f.event.map(add).join(', ')})`)
  return where
}

/**
 * One window of a page: the rows matching the filter that hold records with `from ≤ seq < to`
 * (a run that starts before `from` may reach into it), in page order, at most `take + 1`
 * rows (one more, to tell whether more follow).
 */
export function buildLogQuery (f: NormalizedFilter, page: LogPageOptions, window: { from: number, to: number, take: number }, d: QueryDialect): SqlQuery {
  const params: unknown[] = []
  const where = filterConditions(f, d, params, window)
  params.push(window.from - MAX_RUN, window.to, window.from)
  where.push('l.seq > ? AND l.seq < ? AND l.seq + l.n > ?')
  const cols = page.includeBytes ? `${LOG_COLUMNS}, l.payload` : LOG_COLUMNS
  const sql = `SELECT ${cols} FROM ${logFrom(d)} WHERE ${where.join(' AND ')} ORDER BY l.seq ${page.order === 'asc' ? 'ASC' : 'DESC'} LIMIT ${window.take + 1}`
  return { sql, params }
}
