/**
 * Runs of log records (pure): consecutive records of one append that differ only in their
 * message id, size and origin time — the `received` records of a batch frame's publications
 * at a subscriber's node, a publisher's `sent` records of one batch — are stored as one log
 * row that holds all of them (docs/STORE.md, "Runs"). Each record keeps its own log position
 * (the row's `seq` … `seq + n - 1`), and every query returns it as a record of its own.
 *
 * The row's `members` column holds the members in order: per member its id (varint length,
 * UTF-8), its size (varint) and its origin time minus the row's (zigzag varint). The ids are
 * indexed through `log_ids` (one small entry per member), everything else through the row.
 * A member whose status, acknowledgement time or reason changed after the append has a row
 * in `log_status` (keyed by its position) that overrides the run's fields for it alone.
 */
import type { NormalizedLogRecord } from './validate.ts'

/** Most records in one run (a query window reaches back this far for a run that overlaps it). */
export const MAX_RUN = 512

/**
 * Log positions per bucket of `log_ids`, as a shift: the index is on `(s >> 12, idh, s)`, so
 * an append adds its entries to the newest bucket's few pages (4 096 entries) instead of
 * anywhere in an index as large as the log. Part of the stored format.
 */
export const RUN_ID_SHIFT = 12

export interface RunMember { id: string, size: number, originTs: number }

/**
 * Whether `r` can be part of a run at all: no payload, conversation, reason or acknowledgement
 * time of its own, at most one recipient. A member's later status changes are kept apart from
 * the run (`log_status`, one small row per member changed), so records whose status changes —
 * a durable send's `sent`, a home node's `stored` — may share runs too.
 */
export function runnable (r: NormalizedLogRecord): boolean {
  return r.bytes == null && r.conv == null && r.to.length <= 1 && r.reason == null && r.ackedTs == null && r.originTs != null
}

/** Whether `b` may follow `a` in one run (both runnable): every stored field but id, size and origin time equal. */
export function sameRun (a: NormalizedLogRecord, b: NormalizedLogRecord): boolean {
  return a.event === b.event && a.status === b.status && a.from === b.from && a.topic === b.topic && a.receivedTs === b.receivedTs &&
    a.peer === b.peer && a.type === b.type && a.schema === b.schema && a.proto === b.proto && a.to.length === b.to.length && a.to[0] === b.to[0]
}

/**
 * How many of `records[start …]` form one run with `records[start]` (1 when it stands alone);
 * at most `MAX_RUN`. Records that bring their run along (`next`) are not joined.
 */
export function runLength (records: readonly NormalizedLogRecord[], start: number): number {
  const head = records[start]
  if (!runnable(head) || head.next != null) return 1
  let end = start + 1
  while (end < records.length && end - start < MAX_RUN && runnable(records[end]) && records[end].next == null && sameRun(head, records[end])) end++
  return end - start
}

/** One log row to write: its first record (every shared field) and, for a run, all its members. */
export interface LogRow { head: NormalizedLogRecord, members: RunMember[] | null }

/**
 * The rows an append writes, in order: consecutive records that may share a row as runs,
 * a record's own `next` ones as its run (rows of at most MAX_RUN), or — when the record
 * cannot be part of a run (a recipient, a conversation, …) — as records of their own.
 */
export function planLogRows (records: readonly NormalizedLogRecord[]): LogRow[] {
  const rows: LogRow[] = []
  const member = (r: NormalizedLogRecord): RunMember => ({ id: r.id, size: r.size, originTs: r.originTs as number })
  for (let i = 0; i < records.length;) {
    const r = records[i]
    if (r.next != null) {
      const all: Array<{ id: string, size: number, originTs: number | null }> = [{ id: r.id, size: r.size, originTs: r.originTs }]
      for (let k = 0; k < r.next.ids.length; k++) all.push({ id: r.next.ids[k], size: r.next.sizes[k], originTs: r.next.originTs[k] })
      const together = runnable(r)
      for (let k = 0; k < all.length; k += together ? MAX_RUN : 1) {
        const part = all.slice(k, together ? k + MAX_RUN : k + 1)
        const head = { ...r, id: part[0].id, size: part[0].size, originTs: part[0].originTs, next: null }
        rows.push({ head, members: part.length > 1 ? part as RunMember[] : null })
      }
      i++
      continue
    }
    const n = runLength(records, i)
    rows.push({ head: r, members: n > 1 ? records.slice(i, i + n).map(member) : null })
    i += n
  }
  return rows
}

function varintLength (v: number): number {
  let n = 1
  while (v >= 0x80) { v = Math.floor(v / 128); n++ }
  return n
}

function writeVarint (out: Uint8Array, at: number, v: number): number {
  while (v >= 0x80) { out[at++] = (v % 128) | 0x80; v = Math.floor(v / 128) }
  out[at++] = v
  return at
}

const zigzag = (v: number): number => v < 0 ? -2 * v - 1 : 2 * v
const unzigzag = (v: number): number => v % 2 === 1 ? -(v + 1) / 2 : v / 2

/** The `members` column of a run: its members' ids, sizes and origin times relative to `baseTs`. */
export function encodeMembers (members: ReadonlyArray<{ id: string, size: number, originTs: number | null }>, baseTs: number): Uint8Array {
  let total = 0
  const ids: Buffer[] = []
  for (const m of members) {
    const id = Buffer.from(m.id, 'utf8')
    ids.push(id)
    total += varintLength(id.length) + id.length + varintLength(m.size) + varintLength(zigzag((m.originTs ?? baseTs) - baseTs))
  }
  const out = new Uint8Array(total)
  let at = 0
  for (let i = 0; i < members.length; i++) {
    const m = members[i]
    at = writeVarint(out, at, ids[i].length)
    out.set(ids[i], at)
    at += ids[i].length
    at = writeVarint(out, at, m.size)
    at = writeVarint(out, at, zigzag((m.originTs ?? baseTs) - baseTs))
  }
  return out
}

export class RunFormatError extends Error {
  constructor (message: string) { super(message); this.name = 'RunFormatError' }
}

/**
 * The id of member `k` of a run (0-based), reading no further than that member; null when the
 * column ends or is malformed before it (a status update then leaves the run alone; reads
 * report the damage through `decodeMembers`).
 */
export function memberIdAt (bytes: Uint8Array, k: number): string | null {
  let at = 0
  const skipVarint = (): boolean => {
    for (let i = 0; i < 8; i++) {
      if (at >= bytes.length) return false
      if (bytes[at++] < 0x80) return true
    }
    return false
  }
  for (let i = 0; ; i++) {
    let len = 0
    let mul = 1
    for (let j = 0; ; j++) {
      if (j === 8 || at >= bytes.length) return null
      const b = bytes[at++]
      len += (b & 0x7f) * mul
      if (b < 0x80) break
      mul *= 128
    }
    if (len === 0 || at + len > bytes.length) return null
    if (i === k) return Buffer.from(bytes.buffer, bytes.byteOffset + at, len).toString('utf8')
    at += len
    if (!skipVarint() || !skipVarint()) return null
  }
}

/**
 * Walks the `n` members of a run's column: `visit(i, idStart, idLength, size, originDelta)` per
 * member. Throws `RunFormatError` when the column does not hold exactly `n` well-formed members.
 */
function scanMembers (bytes: Uint8Array, n: number, visit: (i: number, idStart: number, idLength: number, size: number, delta: number) => void): void {
  let at = 0
  const varint = (): number => {
    let v = 0
    let mul = 1
    for (let k = 0; k < 8; k++) {
      if (at >= bytes.length) throw new RunFormatError('members end inside a number')
      const b = bytes[at++]
      v += (b & 0x7f) * mul
      if (b < 0x80) return v
      mul *= 128
    }
    throw new RunFormatError('members hold a number that is too long')
  }
  for (let i = 0; i < n; i++) {
    const len = varint()
    if (len === 0 || at + len > bytes.length) throw new RunFormatError('members hold a malformed id')
    const start = at
    at += len
    const size = varint()
    visit(i, start, len, size, unzigzag(varint()))
  }
  if (at !== bytes.length) throw new RunFormatError(`members hold more than ${n} members`)
}

/** The members of a run; throws `RunFormatError` when the column does not hold exactly `n` well-formed members. */
export function decodeMembers (bytes: Uint8Array, n: number, baseTs: number): RunMember[] {
  const out: RunMember[] = []
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  scanMembers(bytes, n, (_, start, len, size, delta) => { out.push({ id: buf.toString('utf8', start, start + len), size, originTs: baseTs + delta }) })
  return out
}

/**
 * The members of a run whose id is `id` (`k`: the index in the run), found by comparing bytes:
 * the others are skipped, not decoded (a lookup by id reads runs of up to 512 members). Throws
 * `RunFormatError` as `decodeMembers` does.
 */
export function findMembers (bytes: Uint8Array, n: number, baseTs: number, id: string): Array<RunMember & { k: number }> {
  const want = Buffer.from(id, 'utf8')
  const out: Array<RunMember & { k: number }> = []
  scanMembers(bytes, n, (k, start, len, size, delta) => {
    if (len !== want.length) return
    for (let j = 0; j < len; j++) if (bytes[start + j] !== want[j]) return
    out.push({ k, id, size, originTs: baseTs + delta })
  })
  return out
}
