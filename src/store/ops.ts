/**
 * Write operations, run by the group commit inside one transaction per batch. Consecutive
 * operations of one kind are executed together (one multi-row statement for many appends,
 * one plan for many enqueues); kinds keep their order, so an ack queued after an enqueue
 * sees it. An expected refusal (a quota) is the outcome of that operation alone; anything
 * thrown fails — and rolls back — the whole batch.
 */
import type { InboxQuota } from './types.ts'
import { LOG_RECORD_OVERHEAD } from './config.ts'
import { chunks, num, valuesList, type Dialect, type Row, type Sql } from './backend.ts'
import type { OpOutcome } from './group-commit.ts'
import { heldKey, planEnqueue, usageKeyOf, usageMapKey, type PlanState, type SeqSlot, type Usage, type UsageRow, type UsageScope } from './plan.ts'
import type { NormalizedBatch, NormalizedEntry, NormalizedLogRecord, NormalizedPatch } from './validate.ts'
import { bucketNumbers, bucketsOf, logIdHash } from './query.ts'
import { decodeMembers, encodeMembers, memberIdAt, planLogRows, RUN_ID_SHIFT, type RunMember } from './log-runs.ts'
import { logRange, membersOf } from './reads.ts'
import { INBOX_IDS_GROWTH, INBOX_IDS_TIER0, INBOX_IDS_TIERS, INBOX_IDS_TOP } from './schema.ts'
import type { AckResult, ExpiredEntry, ExpireResult, RetainResult } from './types.ts'
import type { AgentId, MessageId } from '../core/ids.ts'

export type WriteOp =
  | { kind: 'enqueue', entry: NormalizedEntry, quota: InboxQuota }
  | { kind: 'ack', recipient: string, ids: string[] }
  | { kind: 'mark', agent: string, id: string, expiresAt: number }
  | { kind: 'log', records: NormalizedLogRecord[] }
  | { kind: 'update', id: string, patch: NormalizedPatch, event: string | null }
  | { kind: 'expire', now: number, limit: number }
  | { kind: 'retain', maxAgeMs: number | null, maxBytes: number | null, now: number, limit: number }

export interface OpContext {
  sql: Sql
  d: Dialect
  /** The commit's clock reading. */
  now: number
  keepDeliveredMs: number
}

type Outcome = OpOutcome<unknown>

export async function executeOps (ctx: OpContext, ops: WriteOp[]): Promise<Outcome[]> {
  const outcomes: Outcome[] = []
  let i = 0
  while (i < ops.length) {
    const kind = ops[i].kind
    let j = i + 1
    while (j < ops.length && ops[j].kind === kind) j++
    const run = ops.slice(i, j)
    outcomes.push(...await executeRun(ctx, kind, run))
    i = j
  }
  return outcomes
}

async function executeRun (ctx: OpContext, kind: WriteOp['kind'], run: WriteOp[]): Promise<Outcome[]> {
  switch (kind) {
    case 'enqueue': return await enqueueRun(ctx, run as Array<Extract<WriteOp, { kind: 'enqueue' }>>)
    case 'mark': return await markRun(ctx, run as Array<Extract<WriteOp, { kind: 'mark' }>>)
    case 'log': return await logRun(ctx, run as Array<Extract<WriteOp, { kind: 'log' }>>)
    case 'update': return await updateRun(ctx, run as UpdateOp[])
    default: {
      const out: Outcome[] = []
      for (const op of run) out.push({ ok: true, value: await single(ctx, op) })
      return out
    }
  }
}

async function single (ctx: OpContext, op: WriteOp): Promise<unknown> {
  switch (op.kind) {
    case 'ack': return await ack(ctx, op.recipient, op.ids)
    case 'expire': return await expire(ctx, op.now, op.limit)
    case 'retain': return await retain(ctx, op)
    default: throw new Error(`unexpected operation ${op.kind}`)
  }
}

// ---------------------------------------------------------------------------------------
// Counters

async function readCounters (ctx: OpContext, names: string[]): Promise<Map<string, number>> {
  const rows = await ctx.sql.all(`SELECT name, value FROM ${ctx.d.table('counters')} WHERE name IN (${names.map(() => '?').join(', ')})`, names)
  const out = new Map<string, number>()
  for (const r of rows) out.set(String(r.name), num(r.value))
  for (const n of names) if (!out.has(n)) throw new Error(`counter ${n} missing`)
  return out
}

async function writeCounter (ctx: OpContext, name: string, value: number): Promise<void> {
  await ctx.sql.run(`UPDATE ${ctx.d.table('counters')} SET value = ? WHERE name = ?`, [value, name])
}

// ---------------------------------------------------------------------------------------
// Inbox

async function enqueueRun (ctx: OpContext, run: Array<Extract<WriteOp, { kind: 'enqueue' }>>): Promise<Outcome[]> {
  const { sql, d } = ctx
  const entries = run.map(o => o.entry)
  const inbox = d.table('inbox')

  // The batch's ids held already, found by their hashes (`inbox_ids`, schema version 7): a row
  // whose hash matches but whose (recipient, id) is another's adds a key no entry asks for.
  const held = new Set<string>()
  const hashes = [...new Set(entries.map(e => logIdHash(e.id)))]
  for (let i = 0; i < hashes.length; i += HELD_CHUNK) {
    // Padded to a power of two (at least 8) by repeating the last hash (harmless in an IN
    // list): a few statement texts, each prepared once, serve every batch size.
    const part = padPow2(hashes.slice(i, i + HELD_CHUNK), 8)
    const found = await sql.all(statementText(`held\n${inbox}`, part.length, () => `SELECT i.recipient, i.id FROM ${idRows(d, part.length)}`), part)
    for (const r of found) held.add(heldKey(String(r.recipient), String(r.id)))
  }

  const usageKeys = new Map<string, [UsageScope, string]>()
  const pairsSeen = new Set<string>()
  // A batch is mostly runs of one pair: an entry of the previous entry's pair adds nothing
  // here, and builds no key string.
  let prev: NormalizedEntry | undefined
  for (const e of entries) {
    if (prev !== undefined && e.recipient === prev.recipient && e.sender === prev.sender) continue
    prev = e
    // One pair's three keys are the same for all its entries.
    const pk = usageKeyOf('pair', e.recipient, e.sender)
    if (pairsSeen.has(pk)) continue
    pairsSeen.add(pk)
    for (const scope of ['inbox', 'pair', 'sender'] as const) {
      const key = usageKeyOf(scope, e.recipient, e.sender)
      usageKeys.set(usageMapKey(scope, key), [scope, key])
    }
  }
  const usage = new Map<string, Usage>()
  for (const part of chunks([...usageKeys.values()], 2, d.maxParams)) {
    const rows = await sql.all(`SELECT scope, key, count, bytes FROM ${d.table('usage')} WHERE (scope, key) IN (VALUES ${valuesList(part.length, 2)})`, part.flat())
    for (const r of rows) usage.set(usageMapKey(r.scope as UsageScope, String(r.key)), { count: num(r.count), bytes: num(r.bytes) })
  }

  // Pending sequenced entries that a newcomer may have to move ahead of.
  const minSeq = new Map<string, { recipient: string, sender: string, seq: number }>()
  let cur: { recipient: string, sender: string, seq: number } | undefined
  for (const e of entries) {
    if (e.senderSeq == null) continue
    // The previous sequenced entry's pair: its minimum at hand without a key.
    if (cur === undefined || e.recipient !== cur.recipient || e.sender !== cur.sender) {
      const k = usageKeyOf('pair', e.recipient, e.sender)
      cur = minSeq.get(k)
      if (cur === undefined) { cur = { recipient: e.recipient, sender: e.sender, seq: e.senderSeq }; minSeq.set(k, cur) }
    }
    if (e.senderSeq < cur.seq) cur.seq = e.senderSeq
  }
  const seqSlots = new Map<string, SeqSlot[]>()
  for (const part of chunks([...minSeq.values()], 3, d.maxParams)) {
    const rows = await sql.all(
      `SELECT i.recipient, i.sender, i.id, i.sender_seq, i.pos FROM ${inbox} i JOIN (VALUES ${valuesList(part.length, '(?, ?, CAST(? AS BIGINT))')}) v` +
      ' ON i.recipient = v.column1 AND i.sender = v.column2 AND i.sender_seq > v.column3' +
      ' WHERE i.delivered_ts IS NULL AND i.sender_seq IS NOT NULL ORDER BY i.sender_seq, i.pos',
      part.flatMap(p => [p.recipient, p.sender, p.seq]))
    for (const r of rows) {
      const k = usageKeyOf('pair', String(r.recipient), String(r.sender))
      const list = seqSlots.get(k) ?? []
      list.push({ recipient: String(r.recipient), id: String(r.id), seq: num(r.sender_seq), pos: num(r.pos) })
      seqSlots.set(k, list)
    }
  }

  const counters = await readCounters(ctx, ['inbox_pos'])
  const state: PlanState = { held, usage, seqSlots, nextPos: (counters.get('inbox_pos') ?? 0) + 1 }
  // An enqueue operation is a PlanInput as it is (entry and quota).
  const plan = planEnqueue(run, state)

  const bids = await insertBatches(ctx, plan.inserts)
  const cols = ['idh', 'recipient', 'id', 'sender', 'sender_seq', 'priority', 'size', 'payload', 'crc', 'enqueued_ts', 'expires_at', 'replica', 'home', 'pos', 'batch', 'leaf']
  // SQLite: up to INBOX_ROWS_PER_INSERT rows per statement, OR FAIL. A statement that writes
  // several rows keeps a statement journal only if a constraint of it may ABORT; OR FAIL never does,
  // so none is kept. Nothing half-written stays: any failed statement rolls the whole
  // transaction back (inWriteTransaction). PostgreSQL: as many rows as its parameters allow.
  const insertVerb = d.kind === 'sqlite' ? 'INSERT OR FAIL' : 'INSERT'
  const parts = d.kind === 'sqlite' ? pow2Parts(plan.inserts, INBOX_ROWS_PER_INSERT) : chunks(plan.inserts, cols.length, d.maxParams)
  // SQLite (schema version 10): the rows' keys in `inbox_ids` come from one statement after the
  // inserts, not a trigger per row. The write lock is this transaction's, so the rows past the
  // largest rid before them are exactly the ones inserted here.
  const ridBefore = d.kind === 'sqlite' && plan.inserts.length > 0 ? num((await sql.all(`SELECT COALESCE(MAX(rid), 0) AS m FROM ${inbox}`))[0].m) : 0
  for (const part of parts) {
    const params: unknown[] = new Array(part.length * cols.length)
    let k = 0
    for (const e of part) {
      params[k++] = logIdHash(e.id); params[k++] = e.recipient; params[k++] = e.id; params[k++] = e.sender; params[k++] = e.senderSeq; params[k++] = e.priority; params[k++] = e.size; params[k++] = e.bytes
      params[k++] = e.crc; params[k++] = ctx.now; params[k++] = e.expiresAt; params[k++] = e.replica ? 1 : 0; params[k++] = e.home; params[k++] = e.pos
      params[k++] = e.batch === null ? null : bids.get(e.batch); params[k++] = e.leaf
    }
    await sql.run(statementText(`insert\n${inbox}`, part.length, () => `${insertVerb} INTO ${inbox} (${cols.join(', ')}) VALUES ${valuesList(part.length, cols.length)}`), params)
  }
  if (d.kind === 'sqlite' && plan.inserts.length > 0) {
    await sql.run(`${insertVerb} INTO ${d.table('inbox_ids')} (t, idh, rid) SELECT 0, idh, rid FROM ${inbox} WHERE rid > ? ORDER BY idh, rid`, [ridBefore])
  }
  for (const m of plan.moves) {
    await sql.run(`UPDATE ${inbox} SET pos = ? WHERE rid IN (SELECT rid FROM ${d.table('inbox_ids')} WHERE t IN (${INBOX_IDS_TIERS}) AND idh = ?) AND recipient = ? AND id = ?`, [m.pos, logIdHash(m.id), m.recipient, m.id])
  }
  await setUsage(ctx, plan.usage)
  if (plan.inserts.length > 0) {
    await writeCounter(ctx, 'inbox_pos', plan.nextPos - 1)
    // Only inserts take positions: crossing a multiple of INBOX_IDS_TIER0 means tier 0 has
    // taken that many keys since the last move (fewer right after the migration, which leaves it empty).
    await moveInboxIds(ctx, Math.floor((state.nextPos - 1) / INBOX_IDS_TIER0), Math.floor((plan.nextPos - 1) / INBOX_IDS_TIER0))
  }
  return plan.outcomes.map(o => o instanceof Error ? { ok: false, error: o } : { ok: true, value: o })
}

/**
 * One `inbox_batches` row (schema 8) for each batch the inserted entries belong to, its
 * `refs` their number: their `bid`s by batch object (the entries of one batch share it).
 */
async function insertBatches (ctx: OpContext, inserts: readonly NormalizedEntry[]): Promise<Map<NormalizedBatch, number>> {
  const refs = new Map<NormalizedBatch, number>()
  for (const e of inserts) if (e.batch !== null) refs.set(e.batch, (refs.get(e.batch) ?? 0) + 1)
  const bids = new Map<NormalizedBatch, number>()
  for (const [b, n] of refs) {
    const row = await ctx.sql.all(`INSERT INTO ${ctx.d.table('inbox_batches')} (sig, leaves, refs, crc) VALUES (?, ?, ?, ?) RETURNING bid`, [b.sig, b.leaves, n, b.crc])
    bids.set(b, num(row[0].bid))
  }
  return bids
}

/**
 * The inbox rows whose ids have one of `n` hashes (parameters), as `i`, with the key table
 * as `x`: the FROM … WHERE of a lookup by id (every tier of `inbox_ids`, schema versions 7 and 9).
 */
function idRows (d: Dialect, n: number): string {
  return `${d.table('inbox_ids')} x JOIN ${d.table('inbox')} i ON i.rid = x.rid WHERE x.t IN (${INBOX_IDS_TIERS}) AND x.idh IN (${new Array(n).fill('?').join(', ')})`
}

/**
 * The moves of `inbox_ids` (schema version 9) due when the count of `INBOX_IDS_TIER0` inserts goes
 * from `before` to `after`: tier k (k < INBOX_IDS_TOP) moves into tier k + 1 when a multiple of
 * `INBOX_IDS_GROWTH^k` lies in (before, after]. Higher tiers first, so a key moves one tier per
 * turn and tier k holds at most the keys of `INBOX_IDS_TIER0 · GROWTH^k` inserts. In key order:
 * each leaf page of the tier moved into is written once for all the keys it takes.
 */
async function moveInboxIds (ctx: OpContext, before: number, after: number): Promise<void> {
  const ids = ctx.d.table('inbox_ids')
  for (let k = INBOX_IDS_TOP - 1; k >= 0; k--) {
    const every = INBOX_IDS_GROWTH ** k
    if (Math.floor(after / every) <= Math.floor(before / every)) continue
    await ctx.sql.run(`INSERT INTO ${ids} (t, idh, rid) SELECT ${k + 1}, idh, rid FROM ${ids} WHERE t = ${k} ORDER BY idh, rid`)
    await ctx.sql.run(`DELETE FROM ${ids} WHERE t = ${k}`)
  }
}

async function setUsage (ctx: OpContext, rows: UsageRow[]): Promise<void> {
  const usage = ctx.d.table('usage')
  const live = rows.filter(r => r.count > 0)
  for (const part of chunks(live, 4, ctx.d.maxParams)) {
    await ctx.sql.run(`INSERT INTO ${usage} AS u (scope, key, count, bytes) VALUES ${valuesList(part.length, 4)} ON CONFLICT (scope, key) DO UPDATE SET count = excluded.count, bytes = excluded.bytes`,
      part.flatMap(r => [r.scope, r.key, r.count, r.bytes]))
  }
  const gone = rows.filter(r => r.count <= 0)
  for (const part of chunks(gone, 2, ctx.d.maxParams)) {
    await ctx.sql.run(`DELETE FROM ${usage} WHERE (scope, key) IN (VALUES ${valuesList(part.length, 2)})`, part.flatMap(r => [r.scope, r.key]))
  }
}

/** Takes removed pending entries off the quota usage. */
async function releaseUsage (ctx: OpContext, removed: Array<{ recipient: string, sender: string, size: number }>): Promise<void> {
  if (removed.length === 0) return
  const deltas = new Map<string, UsageRow>()
  for (const r of removed) {
    for (const scope of ['inbox', 'pair', 'sender'] as const) {
      const key = usageKeyOf(scope, r.recipient, r.sender)
      const k = usageMapKey(scope, key)
      const row = deltas.get(k) ?? { scope, key, count: 0, bytes: 0 }
      row.count += 1
      row.bytes += r.size
      deltas.set(k, row)
    }
  }
  const usage = ctx.d.table('usage')
  const rows = [...deltas.values()]
  for (const part of chunks(rows, 4, ctx.d.maxParams)) {
    await ctx.sql.run(`UPDATE ${usage} SET count = count - v.column3, bytes = bytes - v.column4 FROM (VALUES ${valuesList(part.length, '(?, ?, CAST(? AS BIGINT), CAST(? AS BIGINT))')}) AS v WHERE ${usage}.scope = v.column1 AND ${usage}.key = v.column2`,
      part.flatMap(r => [r.scope, r.key, r.count, r.bytes]))
    await ctx.sql.run(`DELETE FROM ${usage} WHERE (scope, key) IN (VALUES ${valuesList(part.length, 2)}) AND count <= 0`, part.flatMap(r => [r.scope, r.key]))
  }
}

async function ack (ctx: OpContext, recipient: string, ids: string[]): Promise<AckResult> {
  const inbox = ctx.d.table('inbox')
  const dropPayload = ctx.keepDeliveredMs > 0 ? '' : ', payload = NULL'
  const acked: MessageId[] = []
  const removed: Array<{ recipient: string, sender: string, size: number }> = []
  for (const part of chunks([...new Set(ids)], 1, ctx.d.maxParams - 2)) {
    // The rows by their ids' hashes (`inbox_ids`, the only index that names an id), then by `rid`.
    const wanted = new Set(part)
    const found = await ctx.sql.all(`SELECT i.rid, i.recipient, i.id FROM ${idRows(ctx.d, part.length)}`, part.map(logIdHash))
    const rids = found.filter(r => String(r.recipient) === recipient && wanted.has(String(r.id))).map(r => r.rid)
    if (rids.length === 0) continue
    const rows = await ctx.sql.all(`UPDATE ${inbox} SET delivered_ts = ?${dropPayload} WHERE rid IN (${rids.map(() => '?').join(', ')}) AND delivered_ts IS NULL RETURNING id, sender, size`,
      [ctx.now, ...rids])
    for (const r of rows) {
      acked.push(String(r.id) as MessageId)
      removed.push({ recipient, sender: String(r.sender), size: num(r.size) })
    }
  }
  await releaseUsage(ctx, removed)
  // Report in the order asked.
  const set = new Set<string>(acked)
  return { acked: [...new Set(ids)].filter(id => set.has(id)) as MessageId[] }
}

async function expire (ctx: OpContext, now: number, limit: number): Promise<ExpireResult> {
  const { sql, d } = ctx
  const inbox = d.table('inbox')
  const rows = await sql.all(`SELECT rid, recipient, id, sender, size, expires_at, replica, home FROM ${inbox} WHERE delivered_ts IS NULL AND expires_at <= ? ORDER BY expires_at, rid LIMIT ${limit}`, [now])
  for (const part of chunks(rows, 1, d.maxParams)) {
    await sql.run(`DELETE FROM ${inbox} WHERE rid IN (${part.map(() => '?').join(', ')})`, part.map(r => r.rid))
  }
  await releaseUsage(ctx, rows.map(r => ({ recipient: String(r.recipient), sender: String(r.sender), size: num(r.size) })))
  const expired: ExpiredEntry[] = rows.map(r => {
    const e: ExpiredEntry = { recipient: String(r.recipient) as AgentId, id: String(r.id) as MessageId, sender: String(r.sender) as AgentId, expiresAt: num(r.expires_at), replica: num(r.replica) === 1 }
    if (r.home != null) e.home = String(r.home)
    return e
  })
  // Delivered entries: kept (id only, or with payload while keepDeliveredMs runs) until both have passed.
  const deliveredPruned = await sql.run(`DELETE FROM ${inbox} WHERE rid IN (SELECT rid FROM ${inbox} WHERE delivered_ts IS NOT NULL AND expires_at <= ? AND delivered_ts <= ? LIMIT ${limit})`, [now, now - ctx.keepDeliveredMs])
  const processed = d.table('processed')
  const marksPruned = await sql.run(`DELETE FROM ${processed} WHERE (agent, id) IN (SELECT agent, id FROM ${processed} WHERE expires_at <= ? LIMIT ${limit})`, [now])
  return { expired, pruned: deliveredPruned + marksPruned, more: rows.length === limit || deliveredPruned === limit || marksPruned === limit }
}

// ---------------------------------------------------------------------------------------
// Processed marks

async function markRun (ctx: OpContext, run: Array<Extract<WriteOp, { kind: 'mark' }>>): Promise<Outcome[]> {
  const inserted = new Set<string>()
  for (const part of chunks(run, 3, ctx.d.maxParams)) {
    const rows = await ctx.sql.all(`INSERT INTO ${ctx.d.table('processed')} (agent, id, expires_at) VALUES ${valuesList(part.length, 3)} ON CONFLICT (agent, id) DO NOTHING RETURNING agent, id`,
      part.flatMap(o => [o.agent, o.id, o.expiresAt]))
    for (const r of rows) inserted.add(heldKey(String(r.agent), String(r.id)))
  }
  // The first of several marks of one (agent, id) in a batch is the one that inserted.
  return run.map(o => {
    const k = heldKey(o.agent, o.id)
    const first = inserted.delete(k)
    return { ok: true, value: first }
  })
}

// ---------------------------------------------------------------------------------------
// Message log

const LOG_INSERT_COLUMNS = ['seq', 'idh', 'id', 'event', 'status', 'sender', 'rcpt', 'recipients', 'topic', 'schema_uri', 'proto', 'conv', 'type', 'size', 'reason', 'origin_ts', 'received_ts', 'acked_ts', 'peer', 'payload', 'payload_crc', 'stored_bytes', 'n', 'members']

/**
 * Most rows in one log INSERT: statements of 2^k rows only, so a few prepared statements
 * serve every batch size. SQLite: one row per statement. A statement that writes several
 * rows inside a transaction gets a statement journal — every page it touches is first
 * copied there (a temp file), about as much I/O again as the inserts themselves — and with
 * the statement prepared once, a one-row INSERT costs no more to run than a row of a longer
 * one. PostgreSQL: a round trip per statement, so many rows in each.
 */
const MAX_ROWS_PER_INSERT = { sqlite: 1, postgres: 64 } as const

/** Bytes a record accounts for in `retain({ maxBytes })` and the stats. */
export function accountedBytes (storedBytes: number): number {
  return LOG_RECORD_OVERHEAD + storedBytes
}

/**
 * The dictionary keys (`log_names.nid`) of `names`, adding the ones not there yet. A batch
 * mentions few distinct names (its senders, topics, peers, recipients), so this is a
 * statement or two per batch, not per record. Lists are padded to a power of two (by
 * repeating a name) so the same few statements are prepared once and reused.
 */
async function internNames (ctx: OpContext, names: string[]): Promise<Map<string, number>> {
  const { sql, d } = ctx
  const table = d.table('log_names')
  const out = new Map<string, number>()
  const lookup = async (list: string[]): Promise<void> => {
    for (const part of chunks(list, 1, 1024)) {
      const padded = padPow2(part)
      const rows = await sql.all(`SELECT nid, name FROM ${table} WHERE name IN (${padded.map(() => '?').join(', ')})`, padded)
      for (const r of rows) out.set(String(r.name), num(r.nid))
    }
  }
  await lookup(names)
  const missing = names.filter(n => !out.has(n))
  if (missing.length > 0) {
    for (const part of chunks(missing, 1, 1024)) {
      const padded = padPow2(part)
      await sql.run(`INSERT INTO ${table} (name) VALUES ${valuesList(padded.length, 1)} ON CONFLICT (name) DO NOTHING`, padded)
    }
    await lookup(missing)
  }
  return out
}

/** `list` padded to a power of two (at least `min`) by repeating its last item. */
function padPow2<T> (list: T[], min = 1): T[] {
  let n = min
  while (n < list.length) n *= 2
  if (n === list.length) return list
  const out = list.slice()
  while (out.length < n) out.push(list[list.length - 1])
  return out
}

async function logRun (ctx: OpContext, run: Array<Extract<WriteOp, { kind: 'log' }>>): Promise<Outcome[]> {
  const { sql, d } = ctx
  const records = run.length === 1 ? run[0].records : run.flatMap(o => o.records)
  if (records.length > 0) {
    const counters = await readCounters(ctx, ['log_seq', 'log_count', 'log_bytes'])
    let seq = counters.get('log_seq') ?? 0
    let bytes = counters.get('log_bytes') ?? 0

    const nameSet = new Set<string>()
    for (const r of records) {
      if (r.from != null) nameSet.add(r.from)
      if (r.topic != null) nameSet.add(r.topic)
      if (r.peer != null) nameSet.add(r.peer)
      for (const a of r.to) nameSet.add(a)
    }
    const nids = await internNames(ctx, [...nameSet])
    const nidOf = (name: string | null): number | null => name == null ? null : nids.get(name) as number

    const width = LOG_INSERT_COLUMNS.length
    const maxRows = Math.min(MAX_ROWS_PER_INSERT[d.kind], Math.floor(d.maxParams / width))
    const log = d.table('log')
    // Statements of 2^k rows, each text built once (a statement's cache key).
    const statementFor = (n: number): string =>
      statementText(`log\n${log}`, n, () => `INSERT INTO ${log} (${LOG_INSERT_COLUMNS.join(', ')}) VALUES ${valuesList(n, width)}`)
    const to: Array<[number, number]> = []
    // Runs (log-runs.ts): their first position and their members' id hashes, for log_ids.
    const runs: Array<[number, number[]]> = []
    const plan = planLogRows(records)
    const first = seq + 1
    let params: unknown[] = []
    let rows = 0
    let left = plan.length
    // The largest power of two that fits what is left (and the cap).
    const chunkRows = (): number => { let n = maxRows; while (n > left) n = n >>> 1; return n }
    let target = chunkRows()
    for (const { head: r, members } of plan) {
      const n = members?.length ?? 1
      seq += 1
      const stored = r.bytes?.length ?? 0
      bytes += accountedBytes(stored) * n
      // `to`: nothing stored when empty; one recipient as `rcpt`; otherwise the list as JSON,
      // with `rcpt` set when it names one agent, and a `log_to` row per agent when several.
      let rcpt: number | null = null
      let recipients: string | null = null
      if (r.to.length === 1) {
        rcpt = nidOf(r.to[0])
      } else if (r.to.length > 1) {
        recipients = JSON.stringify(r.to)
        const agents = new Set(r.to)
        if (agents.size === 1) rcpt = nidOf(r.to[0])
        else for (const a of agents) to.push([nidOf(a) as number, seq])
      }
      let encoded: Uint8Array | null = null
      if (members != null) {
        encoded = encodeMembers(members, r.originTs as number)
        runs.push([seq, members.map(m => logIdHash(m.id))])
      }
      params.push(seq, logIdHash(r.id), r.id, r.event, r.status, nidOf(r.from), rcpt, recipients, nidOf(r.topic), r.schema, r.proto, r.conv, r.type,
        r.size, r.reason, r.originTs, r.receivedTs, r.ackedTs, nidOf(r.peer), r.bytes, r.crc, stored, n, encoded)
      seq += n - 1
      if (++rows === target) {
        await sql.run(statementFor(rows), params)
        left -= rows
        params = []
        rows = 0
        target = chunkRows()
      }
    }
    for (const [at, hashes] of runs) await insertRunIds(ctx, at, hashes)
    for (const part of chunks(to, 2, d.maxParams)) {
      await sql.run(`INSERT INTO ${d.table('log_to')} (agent, seq) VALUES ${valuesList(part.length, 2)}`, part.flat())
    }
    // The batch's span: the time index of the log (one row per append, not an entry per record).
    let tsMin = records[0].receivedTs
    let tsMax = tsMin
    for (const r of records) {
      if (r.receivedTs < tsMin) tsMin = r.receivedTs
      if (r.receivedTs > tsMax) tsMax = r.receivedTs
    }
    await sql.run(`INSERT INTO ${d.table('log_spans')} (seq_lo, seq_hi, ts_min, ts_max) VALUES (?, ?, ?, ?)`, [first, seq, tsMin, tsMax])
    await writeCounter(ctx, 'log_seq', seq)
    await writeCounter(ctx, 'log_count', (counters.get('log_count') ?? 0) + seq - first + 1)
    await writeCounter(ctx, 'log_bytes', bytes)
  }
  return run.map(() => ({ ok: true, value: undefined }))
}

/**
 * The `log_ids` entries of a run whose first record has position `first`: one per member,
 * `(s >> RUN_ID_SHIFT, hash of its id, s)`, in one statement (the hashes travel as a JSON list).
 */
async function insertRunIds (ctx: OpContext, first: number, hashes: number[]): Promise<void> {
  await ctx.sql.run(runIdsInsert(ctx.d), [first, first, JSON.stringify(hashes)])
}

/**
 * The statement of `insertRunIds`. SQLite: `OR FAIL`, as the inbox's INSERT (STORE.md): a
 * statement that writes several rows and may ABORT halfway gets a statement journal, a copy
 * of every page it touches first, which for a run's 256–512 entries spills to a temp file —
 * 60 % of a topic append's writes (PERFORMANCE.md, "Topic 1→1, session 9"). FAIL keeps the
 * rows written before a failure, but a failure (no entry is NULL or there yet: `s` is a new
 * position) fails the append, whose transaction the writer then rolls back whole.
 */
export function runIdsInsert (d: Dialect): string {
  const table = d.table('log_ids')
  return d.kind === 'sqlite'
    ? `INSERT OR FAIL INTO ${table} (b, idh, s) SELECT (? + key) >> ${RUN_ID_SHIFT}, value, ? + key FROM json_each(?)`
    : `INSERT INTO ${table} (b, idh, s) SELECT (CAST(? AS BIGINT) + o - 1) >> ${RUN_ID_SHIFT}, CAST(v AS BIGINT), CAST(? AS BIGINT) + o - 1 FROM jsonb_array_elements_text(CAST(? AS JSONB)) WITH ORDINALITY AS t(v, o)`
}

/** Removes the `log_ids` entries of positions `lo ≤ s < hi` (members of runs leaving the log). */
async function deleteRunIds (ctx: OpContext, lo: number, hi: number): Promise<void> {
  const buckets = bucketNumbers(lo, hi, RUN_ID_SHIFT)
  await ctx.sql.run(`DELETE FROM ${ctx.d.table('log_ids')} WHERE b IN (${buckets.map(() => '?').join(', ')}) AND s >= ? AND s < ?`, [...buckets, lo, hi])
}

/** Every column of a log row, as stored (for rewriting a run). */
const LOG_ROW_COLUMNS = LOG_INSERT_COLUMNS.join(', ')

/**
 * Writes `row` (every stored column, as read) again as the records `members[a … b)` of its
 * run: a row of its own for one record, a shorter run for several. A record left on its own
 * takes its `log_status` entry (if any) into its row: only members of runs have entries.
 */
async function writeRunPart (ctx: OpContext, row: Row, members: RunMember[], a: number, b: number): Promise<void> {
  const { sql, d } = ctx
  const seq = num(row.seq) + a
  const first = members[a]
  const part = members.slice(a, b)
  const values: Record<string, unknown> = {
    ...row,
    seq,
    idh: logIdHash(first.id),
    id: first.id,
    size: first.size,
    origin_ts: first.originTs,
    n: part.length,
    members: part.length > 1 ? encodeMembers(part, first.originTs) : null
  }
  if (part.length === 1) {
    const status = d.table('log_status')
    const own = (await sql.all(`SELECT status, acked_ts, reason FROM ${status} WHERE s = ?`, [seq]))[0]
    if (own != null) {
      if (own.status != null) values.status = own.status
      if (own.acked_ts != null) values.acked_ts = own.acked_ts
      if (own.reason != null) values.reason = own.reason
      await sql.run(`DELETE FROM ${status} WHERE s = ?`, [seq])
    }
  }
  await sql.run(`INSERT INTO ${d.table('log')} (${LOG_ROW_COLUMNS}) VALUES ${valuesList(1, LOG_INSERT_COLUMNS.length)}`, LOG_INSERT_COLUMNS.map(c => values[c] ?? null))
  // `log_ids` holds the members of runs only: a record on its own is found by the row's `idh`.
  // By its whole key: a range of positions alone scans the bucket's 4 096 entries.
  if (part.length === 1) await sql.run(`DELETE FROM ${d.table('log_ids')} WHERE b = ? AND idh = ? AND s = ?`, [Math.floor(seq / 2 ** RUN_ID_SHIFT), values.idh, seq])
}

/** A status update as the group commit hands it over. */
type UpdateOp = Extract<WriteOp, { kind: 'update' }>

/**
 * Consecutive status updates of one batch (a receipt's ids, typically), in order, each with
 * its count of records changed. Records of their own: an UPDATE of their row each. Members of
 * runs: one `log_ids` probe for every id of the batch, each run read once however many of its
 * members are updated, and a small upsert per member into `log_status` — fields the patch
 * leaves out keep an earlier entry's value, or the run's; the run's row is never rewritten.
 */
async function updateRun (ctx: OpContext, ops: UpdateOp[]): Promise<Outcome[]> {
  const { sql, d } = ctx
  const counts = ops.map(() => 0)
  // Every bucket of the id index the log spans (one per 65 536 positions).
  const range = await logRange(sql, d)
  if (range != null) {
    const b = bucketsOf(range.lo, range.hi + 1, 'seq')
    for (let i = 0; i < ops.length; i++) {
      const { id, patch, event } = ops[i]
      const sets: string[] = []
      const params: unknown[] = []
      if (patch.status != null) { sets.push('status = ?'); params.push(patch.status) }
      if (patch.ackedTs != null) { sets.push('acked_ts = ?'); params.push(patch.ackedTs) }
      if (patch.reason != null) { sets.push('reason = ?'); params.push(patch.reason) }
      params.push(...b.params, logIdHash(id), id)
      let where = `${b.sql} AND idh = ? AND id = ? AND n = 1`
      if (event != null) { where += ' AND event = ?'; params.push(event) }
      counts[i] = await sql.run(`UPDATE ${d.table('log')} SET ${sets.join(', ')} WHERE ${where}`, params)
    }
    await updateInRuns(ctx, ops, counts, range.lo, range.hi)
  }
  return counts.map(value => ({ ok: true, value }))
}

interface RunRead { seq: number, n: number, event: unknown, members: Uint8Array | null, hits: number, ids?: string[] }

/** The members of runs that are records of the updates' ids get their patches (`updateRun`); adds to `counts`. */
async function updateInRuns (ctx: OpContext, ops: UpdateOp[], counts: number[], lo: number, hi: number): Promise<void> {
  const { sql, d } = ctx
  const hashes = ops.map(o => logIdHash(o.id))
  // Positions of members by id hash, from every log_ids bucket the log spans.
  const at = new Map<number, number[]>()
  const buckets = bucketNumbers(lo, hi + 1, RUN_ID_SHIFT)
  for (const bs of chunks(buckets, 1, 500)) {
    for (const part of chunks([...new Set(hashes)], 1, d.maxParams - bs.length)) {
      const rows = await sql.all(`SELECT idh, s FROM ${d.table('log_ids')} WHERE b IN (${bs.map(() => '?').join(', ')}) AND idh IN (${part.map(() => '?').join(', ')})`, [...bs, ...part])
      for (const r of rows) {
        const h = num(r.idh)
        const list = at.get(h) ?? []
        list.push(num(r.s))
        at.set(h, list)
      }
    }
  }
  if (at.size === 0) return
  // The run holding each position, read once per batch; a member's id is compared with the one
  // asked for (the hash only narrows the search). Ids are decoded when a run is hit twice.
  const runs: RunRead[] = []
  const runAt = async (s: number): Promise<RunRead | undefined> => {
    for (const r of runs) if (s >= r.seq && s < r.seq + r.n) return r
    const row = (await sql.all(`SELECT seq, n, event, members FROM ${d.table('log')} WHERE seq <= ? ORDER BY seq DESC LIMIT 1`, [s]))[0]
    if (row == null || num(row.n) <= 1 || s >= num(row.seq) + num(row.n)) return undefined
    const run: RunRead = { seq: num(row.seq), n: num(row.n), event: row.event, members: row.members instanceof Uint8Array ? row.members : null, hits: 0 }
    runs.push(run)
    return run
  }
  const idAt = (run: RunRead, k: number): string | null => {
    if (run.members == null) return null
    if (run.ids === undefined) {
      if (run.hits++ === 0) return memberIdAt(run.members, k)
      // Hit again: decode all of its ids once (a batch of acknowledgements lands in few runs).
      try { run.ids = decodeMembers(run.members, run.n, 0).map(m => m.id) } catch { run.members = null; return null }
    }
    return run.ids[k] ?? null
  }
  const upsert = `INSERT INTO ${d.table('log_status')} AS o (s, status, acked_ts, reason) VALUES (?, ?, ?, ?) ON CONFLICT (s) DO UPDATE SET ` +
    'status = COALESCE(excluded.status, o.status), acked_ts = COALESCE(excluded.acked_ts, o.acked_ts), reason = COALESCE(excluded.reason, o.reason)'
  for (let i = 0; i < ops.length; i++) {
    const { id, patch, event } = ops[i]
    for (const s of at.get(hashes[i]) ?? []) {
      const run = await runAt(s)
      if (run === undefined || (event != null && run.event !== event) || idAt(run, s - run.seq) !== id) continue
      await sql.run(upsert, [s, patch.status, patch.ackedTs, patch.reason])
      counts[i]++
    }
  }
}

/** Bytes one record of `row` accounts for (a run's records keep no payload). */
function recordBytes (row: Row): number {
  return accountedBytes(num(row.stored_bytes))
}

/**
 * Deletes the first `count` records of each row (`seq`, `n`, `stored_bytes` read): the row
 * when that is all of them, else the rest of its run is written again from the next position.
 */
async function deleteLogRecords (ctx: OpContext, parts: Array<{ row: Row, count: number }>): Promise<{ deleted: number, bytes: number }> {
  const { sql, d } = ctx
  const log = d.table('log')
  let deleted = 0
  let bytes = 0
  const whole: number[] = []
  for (const { row, count } of parts) {
    const seq = num(row.seq)
    const n = num(row.n)
    deleted += count
    bytes += recordBytes(row) * count
    if (n > 1) {
      await deleteRunIds(ctx, seq, seq + count)
      await sql.run(`DELETE FROM ${d.table('log_status')} WHERE s >= ? AND s < ?`, [seq, seq + count])
    }
    if (count >= n) { whole.push(seq); continue }
    const full = (await sql.all(`SELECT ${LOG_ROW_COLUMNS} FROM ${log} WHERE seq = ?`, [seq]))[0]
    const members = membersOf(full)
    await sql.run(`DELETE FROM ${log} WHERE seq = ?`, [seq])
    await writeRunPart(ctx, full, members, count, n)
  }
  for (const seqs of chunks(whole, 1, d.maxParams)) {
    const marks = seqs.map(() => '?').join(', ')
    await sql.run(`DELETE FROM ${d.table('log_to')} WHERE seq IN (${marks})`, seqs)
    await sql.run(`DELETE FROM ${log} WHERE seq IN (${marks})`, seqs)
  }
  return { deleted, bytes }
}

/**
 * After records in positions lo … hi were deleted: spans there with no record left go, the
 * others get the earliest time they still hold (a span's `ts_min` never exceeds a record's).
 */
async function refreshSpans (ctx: OpContext, lo: number, hi: number): Promise<void> {
  const spans = ctx.d.table('log_spans')
  const log = ctx.d.table('log')
  const overlap = 's.seq_lo <= ? AND s.seq_hi >= ?'
  await ctx.sql.run(`DELETE FROM ${spans} AS s WHERE ${overlap} AND NOT EXISTS (SELECT 1 FROM ${log} l WHERE l.seq >= s.seq_lo AND l.seq <= s.seq_hi)`, [hi, lo])
  await ctx.sql.run(`UPDATE ${spans} AS s SET ts_min = (SELECT MIN(l.received_ts) FROM ${log} l WHERE l.seq >= s.seq_lo AND l.seq <= s.seq_hi) WHERE ${overlap}`, [hi, lo])
}

/** Spans read per age-retention call (each holds one append batch). */
const RETAIN_SPANS = 1000

async function retain (ctx: OpContext, op: Extract<WriteOp, { kind: 'retain' }>): Promise<RetainResult> {
  const { sql, d } = ctx
  const log = d.table('log')
  const counters = await readCounters(ctx, ['log_count', 'log_bytes'])
  let count = counters.get('log_count') ?? 0
  let total = counters.get('log_bytes') ?? 0
  let deleted = 0
  let freed = 0
  let more = false
  const drop = async (rows: Array<{ row: Row, count: number }>): Promise<void> => {
    const r = await deleteLogRecords(ctx, rows)
    deleted += r.deleted
    freed += r.bytes
    count -= r.deleted
    total -= r.bytes
  }
  if (op.maxAgeMs != null) {
    // The spans holding records older than the cutoff, oldest first; in each, those records.
    const cutoff = op.now - op.maxAgeMs
    const spans = await sql.all(`SELECT seq_lo, seq_hi FROM ${d.table('log_spans')} WHERE ts_min < ? ORDER BY ts_min, seq_lo LIMIT ${RETAIN_SPANS}`, [cutoff])
    for (const span of spans) {
      if (deleted >= op.limit) break
      const lo = num(span.seq_lo)
      const hi = num(span.seq_hi)
      const rows = await sql.all(`SELECT seq, stored_bytes, n FROM ${log} WHERE seq >= ? AND seq <= ? AND received_ts < ? ORDER BY seq LIMIT ${op.limit - deleted}`, [lo, hi, cutoff])
      // Whole rows while the limit allows; the last one's first records when it does not.
      const take: Array<{ row: Row, count: number }> = []
      let budget = op.limit - deleted
      for (const row of rows) {
        if (budget <= 0) break
        const count = Math.min(num(row.n), budget)
        take.push({ row, count })
        budget -= count
      }
      await drop(take)
      await refreshSpans(ctx, lo, hi)
    }
    if (deleted >= op.limit || spans.length === RETAIN_SPANS) more = true
  }
  if (op.maxBytes != null) {
    // Oldest first, a bounded chunk at a time, until the log fits or the limit is reached.
    const CHUNK = 1000
    while (total > op.maxBytes && deleted < op.limit) {
      const rows = await sql.all(`SELECT seq, stored_bytes, n FROM ${log} ORDER BY seq LIMIT ${Math.min(CHUNK, op.limit - deleted)}`)
      if (rows.length === 0) break
      const take: Array<{ row: Row, count: number }> = []
      let t = total
      let budget = op.limit - deleted
      for (const row of rows) {
        if (t <= op.maxBytes || budget <= 0) break
        // Records of the row, oldest first, until the log fits (or the limit is reached).
        const per = recordBytes(row)
        const count = Math.min(num(row.n), budget, Math.ceil((t - op.maxBytes) / per))
        t -= count * per
        take.push({ row, count })
        budget -= count
      }
      await drop(take)
      if (take.length > 0) {
        const last = take[take.length - 1]
        await refreshSpans(ctx, num(take[0].row.seq), num(last.row.seq) + num(last.row.n) - 1)
      }
    }
    if (total > op.maxBytes && count > 0) more = true
  }
  if (deleted > 0) {
    await writeCounter(ctx, 'log_count', count)
    await writeCounter(ctx, 'log_bytes', total)
  }
  return { deleted, bytes: freed, more }
}

/**
 * Inbox rows in one SQLite INSERT. Against one row per statement, 16 saved ≈ 1.3 µs per row of
 * the writer thread's CPU (docs/PERFORMANCE.md, "Durable store, session 8"): the statement's
 * step, reset and trigger set-up are shared.
 */
const INBOX_ROWS_PER_INSERT = 16

/** `items` in parts of `max` (a power of two), the rest in smaller powers of two: a few statement texts serve every count. */
function pow2Parts<T> (items: readonly T[], max: number): T[][] {
  const out: T[][] = []
  let i = 0
  for (let size = max; size >= 1; size >>= 1) {
    while (items.length - i >= size) { out.push(items.slice(i, i + size)); i += size }
  }
  return out
}

/** Most (recipient, id) pairs one duplicate lookup binds. */
const HELD_CHUNK = 256
const statementTexts = new Map<string, string>()

/**
 * The SQL text of statement `kind` for `rows` rows, built once and then the same string:
 * the backends cache prepared statements by their text, and a text built anew per row or
 * per batch costs its building and hashing every time.
 */
function statementText (kind: string, rows: number, build: () => string): string {
  const key = `${kind}\n${rows}`
  let text = statementTexts.get(key)
  if (text === undefined) {
    text = build()
    if (statementTexts.size < 1024) statementTexts.set(key, text)
  }
  return text
}
