/**
 * The `MessageStore` over any backend: lifecycle, argument checks, the group commit for
 * writes, reads of committed data. Backends supply connections and SQL details only.
 */
import { abortReason, InvalidArgumentError } from '../core/errors.ts'
import type { AgentId, MessageId } from '../core/ids.ts'
import type { Backend } from './backend.ts'
import { FIELD_LIMITS, mergeQuota, PAGE_LIMITS, type StoreSettings } from './config.ts'
import { InvalidQueryError, MessageExpiredError, StoreClosedError, StoreReadOnlyError, StoreVersionError } from './errors.ts'
import { createGroupCommit } from './group-commit.ts'
import { executeOps, type WriteOp } from './ops.ts'
import { decodeInboxCursor, parseLogFilter, parseQueryOptions } from './query.ts'
import { attachBatch } from './inbox-batches.ts'
import { readConversation, readExpiryDue, readInboxes, readLogPage, readPending, readProcessed, readStats, verifyStored } from './reads.ts'
import { migrate, readSchemaVersion, rebuildUsage, SCHEMA_VERSION } from './schema.ts'
import type {
  Abortable, AckResult, ConversationOptions, EnqueueOptions, EnqueueOutcome, EnqueueResult, ExpireOptions, ExpireResult, InboxEntryInit, InboxesOptions, InboxesPage, InboxQuota,
  LogFilter, LogPage, LogRecord, LogRecordInit, MessageStore, PendingOptions, PendingPage, QueryOptions, RetainLimits,
  RetainOptions, RetainResult, StatusPatch, StoreInfo, StoreStats, UpdateStatusOptions
} from './types.ts'
import { checkId, checkIdList, checkTime, isLogEvent, KnownNames, normalizeEntry, normalizeLogRecords, normalizePatch, pageLimit, recordCount } from './validate.ts'

type State = 'new' | 'opening' | 'open' | 'closing' | 'closed'

export function createMessageStore (backend: Backend, settings: StoreSettings): MessageStore {
  const d = backend.dialect
  let state: State = 'new'
  let opening: Promise<void> | null = null
  let closing: Promise<void> | null = null
  let info: StoreInfo | null = null
  // The names this store's log appends and enqueues have already checked (validate.ts).
  const knownNames = new KnownNames()

  const commit = createGroupCommit<WriteOp, unknown>({
    ...settings.groupCommit,
    // Committing on another thread: start a batch at once, and take in the next while it commits.
    eager: backend.executeBatch != null,
    execute: async (ops) => {
      // Only message-log work in this batch: with logSync 'deferred' it need not wait for the disk.
      const flush = settings.logSync === 'commit' || !ops.every(op => op.kind === 'log' || op.kind === 'update' || op.kind === 'retain')
      const now = settings.clock()
      try {
        if (backend.executeBatch != null) return await backend.executeBatch(ops, { now, keepDeliveredMs: settings.keepDeliveredMs }, { flush })
        return await backend.transaction(async sql => await executeOps({ sql, d, now, keepDeliveredMs: settings.keepDeliveredMs }, ops), { flush })
      } catch (err) {
        throw backend.mapError(err, 'write')
      }
    }
  })

  function checkSignal (signal: AbortSignal | undefined, what: string): void {
    if (signal?.aborted === true) throw abortReason(signal, what)
  }

  function ensureOpen (): void {
    if (state !== 'open') throw new StoreClosedError(state === 'new' || state === 'opening' ? 'store is not open' : 'store is closed')
  }

  async function read<T> (what: string, signal: AbortSignal | undefined, fn: () => Promise<T>): Promise<T> {
    ensureOpen()
    checkSignal(signal, what)
    try {
      return await fn()
    } catch (err) {
      throw backend.mapError(err, what)
    }
  }

  // The last frozen quota override and its merge: a caller that passes the same frozen
  // object on every enqueue (the durable service) has it merged and checked once.
  let lastQuota: { partial: Partial<InboxQuota>, merged: InboxQuota } | undefined
  function quotaFor (partial: Partial<InboxQuota> | undefined): InboxQuota {
    if (partial != null && partial === lastQuota?.partial) return lastQuota.merged
    const merged = mergeQuota(settings.quota, partial)
    if (partial != null && Object.isFrozen(partial)) lastQuota = { partial, merged }
    return merged
  }

  async function write<T> (op: WriteOp, signal: AbortSignal | undefined): Promise<T> {
    return await commit.submit(op, signal) as T
  }

  function ensureWritable (signal: AbortSignal | undefined, what: string): void {
    ensureOpen()
    if (backend.readOnly) throw new StoreReadOnlyError(`${what}: store is open read-only`)
    checkSignal(signal, what)
  }

  async function doOpen (signal: AbortSignal | undefined): Promise<void> {
    try {
      checkSignal(signal, 'store open')
      const { durability } = await backend.open(settings.verify, signal)
      let version: number
      if (backend.readOnly) {
        const v = await readSchemaVersion(backend.reader, d)
        if (v == null) throw new StoreVersionError(`no fedmesh store at ${backend.location}`)
        if (v !== SCHEMA_VERSION) throw new StoreVersionError(`the store has schema version ${v}; read-only access needs ${SCHEMA_VERSION}`, { details: { version: v, supported: SCHEMA_VERSION } })
        version = v
      } else {
        version = await backend.transaction(async sql => {
          const v = await migrate(sql, d, settings.clock())
          await rebuildUsage(sql, d)
          return v
        })
      }
      checkSignal(signal, 'store open')
      await verifyStored(backend.reader, d, settings.verify)
      info = { kind: backend.kind, location: backend.location, schemaVersion: version, durability, readOnly: backend.readOnly }
      state = 'open'
    } catch (err) {
      state = 'new'
      await backend.close().catch(() => {})
      throw backend.mapError(err, 'open')
    }
  }

  async function doClose (): Promise<void> {
    await commit.drain()
    await backend.close()
    state = 'closed'
  }

  const store: MessageStore = {
    kind: backend.kind,

    async open (options: Abortable = {}) {
      if (state === 'open') return
      if (state === 'opening' && opening != null) return await opening
      if (state !== 'new') throw new StoreClosedError('store was closed; create a new one')
      state = 'opening'
      opening = doOpen(options.signal)
      try {
        await opening
      } finally {
        opening = null
      }
    },

    async close () {
      if (state === 'opening' && opening != null) await opening.catch(() => {})
      if (state === 'closing' && closing != null) return await closing
      if (state !== 'open') { state = 'closed'; return }
      state = 'closing'
      closing = doClose()
      await closing
    },

    info () {
      if (info == null || state !== 'open') throw new StoreClosedError('store is not open')
      return { ...info }
    },

    async enqueue (entry: InboxEntryInit, options: EnqueueOptions = {}): Promise<EnqueueResult> {
      ensureWritable(options.signal, 'enqueue')
      // The caller's own object: the plan's outcomes are shared (plan.ts).
      const { status } = await write<EnqueueResult>(enqueueOp(entry, options.owned === true, quotaFor(options.quota), settings.clock(), knownNames), options.signal)
      return { status }
    },

    async enqueueMany (entries: InboxEntryInit[], options: EnqueueOptions = {}): Promise<EnqueueOutcome[]> {
      ensureWritable(options.signal, 'enqueue')
      if (!Array.isArray(entries)) throw new InvalidArgumentError('entries must be an array')
      const quota = quotaFor(options.quota)
      const now = settings.clock()
      const outcomes = new Array<EnqueueOutcome>(entries.length)
      const ops: WriteOp[] = []
      const at: number[] = []
      entries.forEach((entry, i) => {
        try {
          ops.push(enqueueOp(entry, options.owned === true, quota, now, knownNames))
          at.push(i)
        } catch (err) {
          outcomes[i] = { ok: false, error: err as Error }
        }
      })
      const committed = await commit.submitMany(ops, options.signal)
      committed.forEach((o, j) => {
        outcomes[at[j]] = o.ok ? { ok: true, status: (o.value as EnqueueResult).status } : o
      })
      return outcomes
    },

    async pending (recipient: AgentId, options: PendingOptions = {}): Promise<PendingPage> {
      ensureOpen()
      const r = checkId('recipient', recipient)
      const limit = pageLimit('limit', options.limit, PAGE_LIMITS.pending, InvalidQueryError)
      const after = options.afterCursor === undefined ? null : decodeInboxCursor(options.afterCursor, r)
      return await read('pending', options.signal, async () => await readPending(backend.reader, d, r, after, limit, settings.clock()))
    },

    async inboxes (options: InboxesOptions = {}): Promise<InboxesPage> {
      ensureOpen()
      if (options.replica !== undefined && typeof options.replica !== 'boolean') throw new InvalidQueryError('replica must be a boolean')
      const limit = pageLimit('limit', options.limit, PAGE_LIMITS.inboxes, InvalidQueryError)
      const after = options.after === undefined ? undefined : checkId('after', options.after)
      return await read('inboxes', options.signal, async () => await readInboxes(backend.reader, d, options.replica, after, limit, settings.clock()))
    },

    async ack (recipient: AgentId, ids: MessageId[], options: Abortable = {}): Promise<AckResult> {
      ensureWritable(options.signal, 'ack')
      const r = checkId('recipient', recipient)
      const list = checkIdList('ids', ids, FIELD_LIMITS.maxAckIds)
      if (list.length === 0) return { acked: [] }
      return await write({ kind: 'ack', recipient: r, ids: list }, options.signal)
    },

    async expire (now?: number, options: ExpireOptions = {}): Promise<ExpireResult> {
      ensureWritable(options.signal, 'expire')
      const at = now === undefined ? settings.clock() : checkTime('now', now)
      const limit = pageLimit('limit', options.limit, PAGE_LIMITS.expire)
      // Nothing due: no write (a node's maintenance tick runs every second).
      if (!await read('expire', options.signal, async () => await readExpiryDue(backend.reader, d, at))) return { expired: [], pruned: 0, more: false }
      return await write({ kind: 'expire', now: at, limit }, options.signal)
    },

    async stats (recipient?: AgentId, options: Abortable = {}): Promise<StoreStats> {
      ensureOpen()
      const r = recipient === undefined ? undefined : checkId('recipient', recipient)
      return await read('stats', options.signal, async () => await readStats(backend.reader, d, r))
    },

    async markProcessed (agent: AgentId, id: MessageId, expiresAt: number, options: Abortable = {}): Promise<boolean> {
      ensureWritable(options.signal, 'markProcessed')
      const op: WriteOp = { kind: 'mark', agent: checkId('agent', agent), id: checkId('id', id), expiresAt: checkTime('expiresAt', expiresAt) }
      return await write(op, options.signal)
    },

    async isProcessed (agent: AgentId, id: MessageId, options: Abortable = {}): Promise<boolean> {
      ensureOpen()
      const a = checkId('agent', agent)
      const i = checkId('id', id)
      return await read('isProcessed', options.signal, async () => await readProcessed(backend.reader, d, a, i))
    },

    async log (records: LogRecordInit[], options: Abortable = {}): Promise<void> {
      ensureWritable(options.signal, 'log')
      if (!Array.isArray(records)) throw new InvalidArgumentError('records must be an array')
      let count = 0
      for (const r of records) count += recordCount(r)
      if (count > FIELD_LIMITS.maxLogBatch) throw new InvalidArgumentError(`more than ${FIELD_LIMITS.maxLogBatch} records in one call`)
      if (records.length === 0) return
      const now = settings.clock()
      const normalized = normalizeLogRecords(records, now, knownNames)
      await write({ kind: 'log', records: normalized }, options.signal)
    },

    async updateStatus (id: MessageId, patch: StatusPatch, options: UpdateStatusOptions = {}): Promise<number> {
      ensureWritable(options.signal, 'updateStatus')
      const i = checkId('id', id)
      const p = normalizePatch(patch)
      if (options.event !== undefined && !isLogEvent(options.event)) throw new InvalidArgumentError('event is not a log event', { details: { field: 'event' } })
      return await write({ kind: 'update', id: i, patch: p, event: options.event ?? null }, options.signal)
    },

    async query (filter: LogFilter, options: QueryOptions = {}): Promise<LogPage> {
      ensureOpen()
      const f = parseLogFilter(filter)
      const page = parseQueryOptions(f, options)
      return await read('query', options.signal, async () => await readLogPage(backend.reader, d, f, page))
    },

    async conversation (conv: string, options: ConversationOptions = {}): Promise<LogRecord[]> {
      ensureOpen()
      if (typeof conv !== 'string' || conv.length === 0 || conv.length > FIELD_LIMITS.maxIdLength) throw new InvalidQueryError('conversation must be a non-empty string', { details: { field: 'conversation' } })
      const limit = pageLimit('limit', options.limit, PAGE_LIMITS.conversation, InvalidQueryError)
      return await read('conversation', options.signal, async () => await readConversation(backend.reader, d, conv, limit))
    },

    async retain (limits: RetainLimits, options: RetainOptions = {}): Promise<RetainResult> {
      ensureWritable(options.signal, 'retain')
      if (limits == null || typeof limits !== 'object') throw new InvalidArgumentError('limits must be an object')
      const maxAgeMs = limits.maxAgeMs === undefined ? null : checkTime('maxAgeMs', limits.maxAgeMs)
      const maxBytes = limits.maxBytes === undefined ? null : checkTime('maxBytes', limits.maxBytes)
      if (maxAgeMs == null && maxBytes == null) throw new InvalidArgumentError('retain needs maxAgeMs or maxBytes')
      const now = options.now === undefined ? settings.clock() : checkTime('now', options.now)
      const limit = pageLimit('limit', options.limit, PAGE_LIMITS.retain)
      return await write({ kind: 'retain', maxAgeMs, maxBytes, now, limit }, options.signal)
    },

    async [Symbol.asyncDispose] () {
      await store.close()
    }
  }
  return store
}

/** An inbox entry checked and normalized for the writer; throws its typed error (invalid, or expired at `now`). */
function enqueueOp (entry: InboxEntryInit, owned: boolean, quota: InboxQuota, now: number, known: KnownNames): WriteOp {
  const e = normalizeEntry(entry, owned, known)
  if (entry.batch !== undefined || entry.leaf !== undefined) attachBatch(e, entry.batch, entry.leaf, owned)
  if (e.expiresAt <= now) throw new MessageExpiredError(`message ${e.id} expired at ${e.expiresAt}`, { details: { recipient: e.recipient, id: e.id, expiresAt: e.expiresAt, now } })
  return { kind: 'enqueue', entry: e, quota }
}
