/**
 * The SQLite write connection on its own thread. `node:sqlite` is synchronous: a commit
 * (its fsync included) and every INSERT of a batch would otherwise block the event loop,
 * and with it the network, the envelope checks and the next batch's intake. Here a worker
 * thread owns the write connection and runs each group-commit batch (`executeOps`, the same
 * code the other backends run) in one transaction; the event loop only posts the batch and
 * takes the outcomes back. While the worker commits, new operations queue in the group
 * commit and go to the worker as the next batch: one fsync per batch.
 *
 * This module is both sides: `startSqliteWriter` (main thread) and the worker's entry
 * (when loaded as a worker, below).
 */
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads'
import { fileURLToPath } from 'node:url'
import { extname } from 'node:path'
import { FedmeshError, InvalidArgumentError } from '../core/errors.ts'
import type { OpOutcome } from './group-commit.ts'
import type { WriteOp } from './ops.ts'
import type { NormalizedBatch, NormalizedEntry, NormalizedLogRecord } from './validate.ts'
import type { InboxQuota } from './types.ts'
import {
  InvalidQueryError, MessageExpiredError, QuotaExceededError, StoreClosedError, StoreCorruptError, StoreIOError,
  StoreReadOnlyError, StoreUnavailableError, StoreVersionError, type QuotaExceededDetails
} from './errors.ts'

export interface SqliteWriterInit {
  path: string
  synchronous: 'full' | 'normal'
  timeout: number
}

/**
 * Enqueues and log appends — nearly every write — cross as arrays of their fields: the
 * structured clone then writes no property names, about half the work of objects. An
 * enqueue is its entry's tuple with the quota last (no object around it); the quota object,
 * the same for a whole batch, is cloned once (the clone writes a reference for each repeat).
 * A batch's operations share two more things that would otherwise be cloned per entry or
 * record: the names (an entry's recipient, sender and home; a record's event, status,
 * agents, topic, schema, protocol, conversation, type and peer — a few distinct strings for
 * hundreds of operations), sent once in `names` and referred to by index, and the enqueues'
 * payloads, copied end to end into one buffer that is transferred (moved, not cloned) and
 * read back as views of it.
 */
type EntryTuple = [number, string, number, number, number, number, number, number, number | null, boolean, number, number, NormalizedBatch | null, number | null, InboxQuota]
type RecordTuple = [string, number, number, number, number[], number, number, number, number, number, number, string | null, number | null, number, number | null, number, Uint8Array | null, number | null, NormalizedLogRecord['next']]
type PackedOp = EntryTuple | { kind: 'log', rs: RecordTuple[] } | Exclude<WriteOp, { kind: 'enqueue' | 'log' }>

/** A batch's operations as they cross: the tuples, the names they refer to, the payloads. */
interface PackedOps { ops: PackedOp[], names: string[], payloads: ArrayBuffer | null }

/** `name`'s index in `names` (added on first sight); -1 for null. */
function nameIndex (name: string | null, names: string[], seen: Map<string, number>): number {
  if (name === null) return -1
  let i = seen.get(name)
  if (i === undefined) {
    i = names.length
    names.push(name)
    seen.set(name, i)
  }
  return i
}

function packOps (ops: WriteOp[]): PackedOps {
  let total = 0
  for (const op of ops) if (op.kind === 'enqueue') total += op.entry.bytes.length
  const payloads = total > 0 ? new ArrayBuffer(total) : null
  const into = payloads === null ? null : new Uint8Array(payloads)
  const names: string[] = []
  const seen = new Map<string, number>()
  const out = new Array<PackedOp>(ops.length)
  let off = 0
  for (let i = 0; i < ops.length; i++) {
    const op = ops[i]
    if (op.kind === 'enqueue') {
      const e = op.entry
      const len = e.bytes.length
      if (len > 0) into?.set(e.bytes, off)
      out[i] = [nameIndex(e.recipient, names, seen), e.id, nameIndex(e.sender, names, seen), off, len, e.size, e.priority, e.expiresAt, e.senderSeq, e.replica,
        nameIndex(e.home, names, seen), e.crc, e.batch, e.leaf, op.quota]
      off += len
    } else if (op.kind === 'log') out[i] = { kind: 'log', rs: op.records.map(r => packRecord(r, names, seen)) }
    else out[i] = op
  }
  return { ops: out, names, payloads }
}

/** An entry again, its bytes a view of the batch's payloads (an empty one made anew: see below). */
function unpackEntry (t: EntryTuple, names: string[], payloads: ArrayBuffer | null): NormalizedEntry {
  const bytes = t[4] === 0 || payloads === null ? new Uint8Array(0) : new Uint8Array(payloads, t[3], t[4])
  return {
    recipient: names[t[0]], id: t[1], sender: names[t[2]], bytes, size: t[5], priority: t[6], expiresAt: t[7], senderSeq: t[8], replica: t[9],
    home: nameAt(names, t[10]), crc: t[11], batch: t[12], leaf: t[13]
  }
}

function packRecord (r: NormalizedLogRecord, names: string[], seen: Map<string, number>): RecordTuple {
  const to = new Array<number>(r.to.length)
  for (let i = 0; i < to.length; i++) to[i] = nameIndex(r.to[i], names, seen)
  return [r.id, nameIndex(r.event, names, seen), nameIndex(r.status, names, seen), nameIndex(r.from, names, seen), to, nameIndex(r.topic, names, seen),
    nameIndex(r.schema, names, seen), nameIndex(r.proto, names, seen), nameIndex(r.conv, names, seen), nameIndex(r.type, names, seen),
    r.size, r.reason, r.originTs, r.receivedTs, r.ackedTs, nameIndex(r.peer, names, seen), r.bytes, r.crc, r.next]
}

/** The name at index `i` of `names`; null for -1 (nameIndex's null). */
function nameAt (names: string[], i: number): string | null {
  return i === -1 ? null : names[i]
}

function unpackRecord (t: RecordTuple, names: string[]): NormalizedLogRecord {
  const to = new Array<string>(t[4].length)
  for (let i = 0; i < to.length; i++) to[i] = names[t[4][i]]
  return {
    id: t[0], event: names[t[1]] as NormalizedLogRecord['event'], status: names[t[2]] as NormalizedLogRecord['status'], from: nameAt(names, t[3]), to,
    topic: nameAt(names, t[5]), schema: nameAt(names, t[6]), proto: nameAt(names, t[7]), conv: nameAt(names, t[8]), type: nameAt(names, t[9]),
    size: t[10], reason: t[11], originTs: t[12], receivedTs: t[13], ackedTs: t[14], peer: nameAt(names, t[15]), bytes: t[16], crc: t[17], next: t[18]
  }
}

/** Back to operations; an empty byte array is made anew (see below). */
function unpackOps (p: PackedOps): WriteOp[] {
  return p.ops.map((op): WriteOp => {
    if (Array.isArray(op)) return { kind: 'enqueue', entry: unpackEntry(op, p.names, p.payloads), quota: op[14] }
    if (op.kind === 'log') {
      return {
        kind: 'log',
        records: op.rs.map(t => {
          const r = unpackRecord(t, p.names)
          if (r.bytes != null && r.bytes.length === 0) r.bytes = new Uint8Array(0)
          return r
        })
      }
    }
    return op
  })
}

/** One batch for the worker. */
interface BatchRequest { t: 'batch', id: number, ops: PackedOps, now: number, keepDeliveredMs: number, flush: boolean }
type Request = BatchRequest | { t: 'close' }

/** An error as it crosses the thread boundary. */
interface WireError { code: string | null, message: string, details?: Record<string, unknown> }
/**
 * A batch's outcomes as they cross back: the values in operation order (undefined where one
 * failed) and the failures by index — no `{ok, value}` object per operation to clone.
 */
interface WireOutcomes { values: unknown[], errors?: Array<[number, WireError]> }

type Reply =
  | { t: 'ready' }
  | { t: 'open-failed', error: WireError }
  | { t: 'done', id: number, outcomes: WireOutcomes }
  | { t: 'failed', id: number, error: WireError }
  | { t: 'closed' }

function toWire (err: unknown): WireError {
  if (err instanceof FedmeshError) return { code: err.code, message: err.message, ...(err.details != null ? { details: err.details } : {}) }
  return { code: null, message: (err as Error)?.message ?? String(err) }
}

const CLASSES: Record<string, new (message?: string, options?: { details?: Record<string, unknown> }) => Error> = {
  StoreCorruptError, StoreClosedError, InvalidQueryError, MessageExpiredError, StoreUnavailableError, StoreIOError, StoreVersionError, StoreReadOnlyError, InvalidArgumentError
}

/** The typed error again, on the calling thread. */
function fromWire (e: WireError): Error {
  if (e.code === 'QuotaExceededError' && e.details != null) return new QuotaExceededError(e.details as unknown as QuotaExceededDetails)
  const cls = e.code == null ? undefined : CLASSES[e.code]
  if (cls != null) return new cls(e.message, e.details != null ? { details: e.details } : {})
  return new StoreIOError(`write: ${e.message}`)
}

function toWireOutcomes (outcomes: Array<OpOutcome<unknown>>): WireOutcomes {
  const values = new Array<unknown>(outcomes.length)
  let errors: Array<[number, WireError]> | undefined
  for (let i = 0; i < outcomes.length; i++) {
    const o = outcomes[i]
    if (o.ok) values[i] = o.value
    else (errors ??= []).push([i, toWire(o.error)])
  }
  return errors === undefined ? { values } : { values, errors }
}

function fromWireOutcomes (w: WireOutcomes): Array<OpOutcome<unknown>> {
  const out = new Array<OpOutcome<unknown>>(w.values.length)
  for (let i = 0; i < out.length; i++) out[i] = { ok: true, value: w.values[i] }
  if (w.errors !== undefined) for (const [i, e] of w.errors) out[i] = { ok: false, error: fromWire(e) }
  return out
}

// ---------------------------------------------------------------------------------------
// Main thread

export interface SqliteWriter {
  /** Runs `ops` in one transaction on the writer thread; per-operation outcomes, or throws for the batch. */
  execute: (ops: WriteOp[], ctx: { now: number, keepDeliveredMs: number }, flush: boolean) => Promise<Array<OpOutcome<unknown>>>
  /** Checkpoints the WAL, closes the connection and ends the thread. */
  close: () => Promise<void>
}

/** The worker's module: this file (`.ts` from the sources, `.js` from dist/). */
function workerUrl (): URL {
  return new URL(`./sqlite-writer${extname(fileURLToPath(import.meta.url))}`, import.meta.url)
}

/** Starts the writer thread and opens its connection (the database exists and is in WAL mode). */
export async function startSqliteWriter (init: SqliteWriterInit): Promise<SqliteWriter> {
  const worker = new Worker(workerUrl(), { workerData: { fedmeshSqliteWriter: init }, stderr: false, stdout: false })
  const waiting = new Map<number, { resolve: (o: Array<OpOutcome<unknown>>) => void, reject: (e: Error) => void }>()
  let nextId = 1
  let dead: Error | null = null
  let onClosed: (() => void) | null = null
  let onReady: { resolve: () => void, reject: (e: Error) => void } | null = null

  const fail = (err: Error): void => {
    if (dead != null) return
    dead = err
    for (const w of waiting.values()) w.reject(err)
    waiting.clear()
    onReady?.reject(err)
    onReady = null
    onClosed?.()
  }

  /** The caller waiting on batch `id`, removed; idle again, the thread stops holding the process. */
  const settle = (id: number): { resolve: (o: Array<OpOutcome<unknown>>) => void, reject: (e: Error) => void } | undefined => {
    const w = waiting.get(id)
    if (w === undefined) return undefined
    waiting.delete(id)
    if (waiting.size === 0) worker.unref()
    return w
  }

  worker.on('message', (m: Reply) => {
    switch (m.t) {
      case 'ready': onReady?.resolve(); onReady = null; break
      case 'open-failed': fail(fromWire(m.error)); break
      case 'done': settle(m.id)?.resolve(fromWireOutcomes(m.outcomes)); break
      case 'failed': settle(m.id)?.reject(fromWire(m.error)); break
      case 'closed': onClosed?.(); break
    }
  })
  worker.on('error', (err) => { fail(new StoreIOError(`store writer thread failed: ${err.message}`, { cause: err })) })
  worker.on('exit', (code) => { fail(new StoreIOError(`store writer thread exited (${code})`)) })

  await new Promise<void>((resolve, reject) => { onReady = { resolve, reject } })
  // Idle, the thread does not keep the process alive (as the connection on the main thread did not).
  worker.unref()

  return {
    async execute (ops, ctx, flush) {
      if (dead != null) throw dead
      const id = nextId++
      return await new Promise((resolve, reject) => {
        if (waiting.size === 0) worker.ref()
        waiting.set(id, { resolve, reject })
        const packed = packOps(ops)
        const req: Request = { t: 'batch', id, ops: packed, now: ctx.now, keepDeliveredMs: ctx.keepDeliveredMs, flush }
        worker.postMessage(req, packed.payloads === null ? [] : [packed.payloads])
      })
    },

    async close () {
      if (dead == null) {
        worker.ref()
        await new Promise<void>(resolve => {
          onClosed = resolve
          worker.postMessage({ t: 'close' } satisfies Request)
        })
      }
      await worker.terminate()
    }
  }
}

// ---------------------------------------------------------------------------------------
// Worker thread

// An empty byte array that crossed the thread boundary has no backing store, and
// `node:sqlite` binds that as NULL rather than an empty BLOB; a fresh one binds as a BLOB
// (unpackEntry and unpackOps make it anew).

async function runWorker (): Promise<void> {
  const port = parentPort
  if (port == null) return
  const init = (workerData as { fedmeshSqliteWriter: SqliteWriterInit }).fedmeshSqliteWriter
  // node:sqlite announces itself with an ExperimentalWarning; the main thread already did.
  const emit = process.emitWarning
  process.emitWarning = (() => {}) as typeof process.emitWarning
  const { openWriterConnection, sqlOf, sqliteDialect, mapSqliteError, inWriteTransaction } = await import('./sqlite.ts')
  const { executeOps } = await import('./ops.ts')
  process.emitWarning = emit

  const reply = (m: Reply): void => { port.postMessage(m) }
  let db: import('node:sqlite').DatabaseSync
  try {
    db = openWriterConnection(init.path, init.synchronous, init.timeout)
  } catch (err) {
    reply({ t: 'open-failed', error: toWire(mapSqliteError(err, 'open', init.path)) })
    return
  }
  const sql = sqlOf(db)
  reply({ t: 'ready' })

  // Requests run one after another: a batch's transaction ends before the next one begins.
  let chain: Promise<void> = Promise.resolve()
  port.on('message', (req: Request) => {
    chain = chain.then(async () => {
      if (req.t === 'close') {
        // Fold the WAL into the database so the file stands alone after a clean close.
        try { db.exec('PRAGMA wal_checkpoint(TRUNCATE)') } catch {}
        try { db.close() } catch {}
        reply({ t: 'closed' })
        port.close()
        return
      }
      try {
        const ops = unpackOps(req.ops)
        const outcomes = await inWriteTransaction(db, !req.flush && init.synchronous === 'full',
          async () => await executeOps({ sql, d: sqliteDialect, now: req.now, keepDeliveredMs: req.keepDeliveredMs }, ops))
        reply({ t: 'done', id: req.id, outcomes: toWireOutcomes(outcomes) })
      } catch (err) {
        reply({ t: 'failed', id: req.id, error: toWire(mapSqliteError(err, 'write', init.path)) })
      }
    })
  })
}

if (!isMainThread && parentPort != null && (workerData as { fedmeshSqliteWriter?: unknown } | null)?.fedmeshSqliteWriter != null) {
  // Not awaited: runWorker imports sqlite.ts, which imports this module.
  runWorker().catch((err: unknown) => {
    parentPort?.postMessage({ t: 'open-failed', error: toWire(err) } satisfies Reply)
  })
}
