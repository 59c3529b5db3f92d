/**
 * The message log's writer: the router and the durable service report what happens to
 * each message (`observe`), and this turns the reports into log records appended in
 * batches, off the hot path — `observe` only pushes to an array; one append per window
 * (1 s, or at once past 8,192 records) carries everything reported meanwhile, handed to the
 * store in slices over a few event-loop turns (and the store's group commit merges it with
 * the inbox writes of the same moment). Retention by age and size runs on a timer.
 *
 * Memory is bounded: past `maxBuffered` unwritten records, new ones are counted in
 * `dropped` rather than held (the log is an audit trail, never a reason to stall traffic).
 */
import type { AgentId, MessageId } from '../core/ids.ts'
import { wireSize, type Envelope } from '../core/envelope.ts'
import type { Logger } from '../node/types.ts'
import type { LogEvent, LogRecordInit, LogRunNext, LogStatus, MessageStore } from '../store/types.ts'
import { MAX_RUN } from '../store/log-runs.ts'

/** One thing that happened to a message at this node. */
export interface MessageObservation {
  event: LogEvent
  /** The envelope, when it was decoded. */
  env?: Envelope
  /** The id, when there is no envelope (a rejection after decoding failed partway). */
  id?: string
  status?: LogStatus
  reason?: string
  /** The peer it came from or went to. */
  peer?: string
  /** Recipient(s) to record instead of the envelope's `to` (a local delivery, an inbox). */
  to?: AgentId[]
}

export type Observe = (o: MessageObservation) => void

export interface LogRetention {
  /** Delete records older than this (ms); 0 = keep forever. */
  maxAgeMs: number
  /** Keep the log under this many accounted bytes; 0 = no limit. */
  maxBytes: number
}

export interface RecorderOptions {
  store: MessageStore
  logger: Logger
  retention: LogRetention
  /** Which wire bytes the log keeps for replay: of messages in a conversation (default), all, or none. */
  payloads?: 'conversation' | 'all' | 'none'
  maxBuffered?: number
  /** How often retention runs, ms. Default 60 000. */
  retainEveryMs?: number
  /**
   * How long records gather before one append, ms. Default 1,000: the log then costs one
   * or two commits per interval, not one per message, and the writer thread wakes about once
   * a second under steady traffic. A crash loses at most this much of the log (an audit
   * trail: messages and their acknowledgements are the inbox's). Queries through the node
   * flush first, so they always see what was observed.
   */
  flushEveryMs?: number
  /** Append at once when this many records (run members included) are buffered. Default 8,192. */
  flushAtRecords?: number
}

export interface RecorderStats { written: number, dropped: number, failed: number, buffered: number }

/**
 * The append window. Each append wakes the writer thread, which then competes with the
 * event loops for the cores, and costs the event loop a share that delays whatever message is
 * being handled at that moment; at 50 ms those moments made 57–118 of 3,000 request–reply
 * round trips slower than 2 ms, at 200 ms 12–39 (PERFORMANCE.md, "Request–reply, session
 * 5"), at 1 s, with an append's records handed over in slices, fewer still ("Request–reply
 * tail, session 8").
 */
const FLUSH_EVERY_MS = 1000
/**
 * Bulk traffic appends by count before the window closes: memory and batch size stay bounded.
 * Each append has costs that do not grow with its records — a commit, the counters and the
 * time span, and the `log_ids` pages of the newest bucket, which a run's random id hashes
 * touch all over and every commit writes again — so at 8,192 (under the store's 10,000 per
 * call) a topic stream's record costs ~20 % less on both threads than at 2,048
 * (PERFORMANCE.md, "Message log, session 7"). An append of 8,192 records in runs holds the
 * event loop ~1 ms; request–reply traffic, whose records are not runs, stays under it.
 */
const FLUSH_AT_RECORDS = 8192

/**
 * Records of one `store.log()` call, a run counting as one (its members cost the store's checks
 * little: ids and sizes): an append hands over a slice per event-loop turn. A topic stream's
 * append of 8,192 in runs of up to 512 stays one call.
 */
const SLICE_RECORDS = 256

/** Most records (run members included) in one `store.log()` call: the store's limit. */
const MAX_BATCH = 10_000

/**
 * The record that later observations may join as its run (`LogRecordInit.next`): what they
 * must share with it (compared with `!==`, which is quick here: the envelope reader hands out
 * one string per distinct `from`, `topic`, … value, so equal fields are usually one string).
 */
interface OpenRun {
  rec: LogRecordInit
  /** Made when the first record joins (most records stay alone where traffic is mixed). */
  next: LogRunNext | undefined
  event: LogEvent
  status: LogStatus | undefined
  /** The one recipient (a durable send's `sent`, a home node's `stored`), if any. */
  to: string | undefined
  from: string
  topic: string | undefined
  schema: string | undefined
  proto: string | undefined
  type: string
  peer: string | undefined
}

/** The one recipient of a runnable observation, if it has one. */
function recipientOf (ob: MessageObservation): string | undefined {
  return (ob.to ?? ob.env?.to)?.[0]
}

export class LogRecorder {
  private readonly o: RecorderOptions
  private buffer: LogRecordInit[] = []
  /** Records in `buffer`, run members included. */
  private buffered = 0
  private open: OpenRun | undefined
  private flushing?: Promise<void>
  /** The window's timer, while records wait for it. */
  private timer: NodeJS.Timeout | undefined
  private immediate: NodeJS.Immediate | undefined
  private retainTimer?: NodeJS.Timeout
  private readonly counts = { written: 0, dropped: 0, failed: 0 }
  private readonly maxBuffered: number
  private stopped = false
  private readonly updates = new Set<Promise<unknown>>()

  constructor (o: RecorderOptions) {
    this.o = o
    this.maxBuffered = o.maxBuffered ?? 100_000
  }

  start (): void {
    const every = this.o.retainEveryMs ?? 60_000
    if (this.o.retention.maxAgeMs > 0 || this.o.retention.maxBytes > 0) {
      this.retainTimer = setInterval(() => { void this.retain() }, every)
      this.retainTimer.unref()
    }
  }

  stats (): RecorderStats {
    return { ...this.counts, buffered: this.buffered }
  }

  /** Records one observation; never throws, never waits. */
  readonly observe: Observe = (ob) => {
    if (this.stopped) return
    if (this.buffered >= this.maxBuffered) { this.counts.dropped++; return }
    const runnable = this.runnable(ob)
    if (!runnable || !this.joinRun(ob)) {
      const rec = this.toRecord(ob)
      if (rec == null) return
      this.buffer.push(rec)
      this.open = runnable ? this.openRun(ob, rec) : undefined
    }
    this.buffered++
    // While an append is under way it takes these records too (it runs until the buffer is empty).
    if (this.buffered >= (this.o.flushAtRecords ?? FLUSH_AT_RECORDS) && this.flushing === undefined) this.handOff()
    else if (this.timer === undefined) {
      this.timer = setTimeout(this.handOff, this.o.flushEveryMs ?? FLUSH_EVERY_MS)
      this.timer.unref()
    }
  }

  /**
   * Starts the append of what is buffered, in the event loop's check phase: a request or
   * reply already readable when the window closed is read, handled and written first (the
   * append's own main-thread work, validation and the hand-off to the writer thread, would
   * otherwise delay it by up to a millisecond).
   */
  private readonly handOff = (): void => {
    clearTimeout(this.timer)
    this.timer = undefined
    if (this.immediate !== undefined) return
    this.immediate = setImmediate(() => { this.immediate = undefined; void this.flush() })
    this.immediate.unref()
  }

  /**
   * Adds `ob` to the open run when it differs from the run's record only in id, size and
   * origin time (the next publication of the same batch frame, typically); false otherwise.
   */
  private joinRun (ob: MessageObservation): boolean {
    const run = this.open
    const env = ob.env
    if (run === undefined || env === undefined) return false
    if (run.event !== ob.event || run.from !== env.from || run.topic !== env.topic || run.peer !== ob.peer || run.type !== env.type ||
      run.schema !== env.schema || run.proto !== env.proto || run.status !== ob.status || run.to !== recipientOf(ob)) return false
    let next = run.next
    if (next === undefined) {
      next = run.next = { ids: [], sizes: [], originTs: [] }
      run.rec.next = next
    }
    next.ids.push(env.id)
    next.sizes.push(wireSize(env))
    next.originTs.push(env.ts)
    if (next.ids.length >= MAX_RUN - 1) this.open = undefined
    return true
  }

  /**
   * Whether the record of `ob` may head or join a run: an envelope, nothing of its own but id,
   * size and time, at most one recipient. A status given here is shared by the run; a later
   * change of one member's (`updateStatus`) is stored for that member alone.
   */
  private runnable (ob: MessageObservation): boolean {
    const env = ob.env
    if (env === undefined || ob.reason != null || env.conv != null || (this.o.payloads ?? 'conversation') === 'all') return false
    const to = ob.to ?? env.to
    return to == null || to.length <= 1
  }

  /** The run `rec` heads (`ob` runnable). */
  private openRun (ob: MessageObservation, rec: LogRecordInit): OpenRun {
    const env = ob.env as Envelope
    return { rec, next: undefined, event: ob.event, status: ob.status, to: recipientOf(ob), from: env.from, topic: env.topic, schema: env.schema, proto: env.proto, type: env.type, peer: ob.peer }
  }

  private toRecord (ob: MessageObservation): LogRecordInit | undefined {
    const env = ob.env
    const id = env?.id ?? ob.id
    if (id == null) return undefined
    const rec: LogRecordInit = { id: id as MessageId, event: ob.event, size: env !== undefined ? wireSize(env) : 0 }
    if (ob.status != null) rec.status = ob.status
    if (ob.reason != null) rec.reason = ob.reason
    if (ob.peer != null) rec.peer = ob.peer
    if (env != null) {
      rec.from = env.from
      const to = ob.to ?? env.to
      if (to != null) rec.to = to.slice(0, 256)
      if (env.topic != null) rec.topic = env.topic
      if (env.schema != null) rec.schema = env.schema
      if (env.proto != null) rec.proto = env.proto
      if (env.conv != null) rec.conv = env.conv
      rec.type = env.type
      rec.originTs = env.ts
      const keep = this.o.payloads ?? 'conversation'
      if (keep === 'all' || (keep === 'conversation' && env.conv != null)) rec.bytes = env.bytes
    } else if (ob.to != null) rec.to = ob.to
    return rec
  }

  /** Writes everything buffered so far (and the status updates under way); resolves once durable (or failed). */
  async flush (): Promise<void> {
    await this.appends()
    while (this.updates.size > 0) await Promise.all([...this.updates])
  }

  private async appends (): Promise<void> {
    while (this.flushing != null) await this.flushing
    if (this.buffer.length === 0) return
    this.flushing = (async () => {
      // What is buffered now. Records observed meanwhile wait for their own window: a pass that
      // went on until the buffer was empty chased steady traffic with appends of the few records
      // that came in during each commit — 3–8 appends per window instead of one, each with a
      // commit's fixed costs and a wake-up of the writer thread.
      let left = this.buffer.length
      const writes: Array<Promise<void>> = []
      while (left > 0) {
        // The store checks every record of a call within the call (~1 µs a request–reply
        // record): one call with a window's records held the event loop 1–4 ms, and the round
        // trip it landed in was slow. So a slice of SLICE_RECORDS per event-loop turn (~0.2 ms);
        // the store's group commit commits the slices that come while the first one commits
        // together, so an append stays one or two transactions. Up to the store's limit of
        // records per call, run members included.
        if (writes.length > 0) await new Promise<void>(resolve => { setImmediate(resolve) })
        // A run taken here is closed to joiners.
        this.open = undefined
        let end = 0
        let count = 0
        while (end < left) {
          const n = 1 + (this.buffer[end].next?.ids.length ?? 0)
          if (end > 0 && (end === SLICE_RECORDS || count + n > MAX_BATCH)) break
          count += n
          end++
        }
        const slice = this.buffer.splice(0, end)
        left -= end
        this.buffered -= count
        // (An async wrapper, so that a store throwing at once is counted like one that rejects.)
        writes.push((async () => { await this.o.store.log(slice) })().then(() => { this.counts.written += count }, (err: Error) => {
          this.counts.failed += count
          this.o.logger.warn({ err: err.message, records: count }, 'message log write failed')
        }))
      }
      await Promise.all(writes)
    })()
    try { await this.flushing } finally { this.flushing = undefined }
  }

  /**
   * Moves every record of `id` (or those of one event) to `status` (batched by the store's
   * group commit). With `only.from`, only when the log holds a record of `id` sent by that
   * agent — a notice from another node cannot touch records it has no business with.
   * Resolves (never rejects) once the update is durable — true — or has failed (logged) or
   * the recorder is stopped — false.
   */
  updateStatus (id: MessageId, status: LogStatus, ackedTs?: number, only: { event?: LogEvent, from?: AgentId, to?: AgentId } = {}): Promise<boolean> {
    if (this.stopped) return Promise.resolve(false)
    // After the append of the same message, so the update finds its records.
    const p: Promise<boolean> = this.appends().then(async () => {
      if (only.from != null || only.to != null) {
        // Newest first: the record is a recent one, and a page scans a bounded stretch of the log.
        const { records } = await this.o.store.query({ id, event: only.event ?? 'sent' }, { limit: 1, order: 'desc' })
        const r = records[0]
        if (r == null || (only.from != null && r.from !== only.from) || (only.to != null && !r.to.includes(only.to))) return
      }
      await this.o.store.updateStatus(id, { status, ...(ackedTs != null ? { ackedTs } : {}) }, only.event != null ? { event: only.event } : {})
    })
      .then(() => true, (err: Error) => { this.o.logger.debug({ err: err.message, id }, 'log status update failed'); return false })
      .finally(() => { this.updates.delete(p) })
    this.updates.add(p)
    return p
  }

  /** Applies the retention limits (bounded work per call; more next time). */
  async retain (): Promise<void> {
    const { maxAgeMs, maxBytes } = this.o.retention
    if (maxAgeMs <= 0 && maxBytes <= 0) return
    try {
      await this.o.store.retain({ ...(maxAgeMs > 0 ? { maxAgeMs } : {}), ...(maxBytes > 0 ? { maxBytes } : {}) })
    } catch (err) {
      this.o.logger.warn({ err: (err as Error).message }, 'log retention failed')
    }
  }

  async stop (): Promise<void> {
    clearInterval(this.retainTimer)
    await this.flush()
    this.stopped = true
    clearTimeout(this.timer)
    if (this.immediate !== undefined) clearImmediate(this.immediate)
  }
}
