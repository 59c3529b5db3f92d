/**
 * The storage contract: one `MessageStore` object, the same for every backend (SQLite,
 * PostgreSQL). It holds three things:
 *
 * - **inboxes** (store-and-forward): messages waiting for an offline or busy recipient;
 * - **processed marks**: which messages an agent's handler already ran, so a handler sees
 *   each message once across reconnects and restarts;
 * - **the message log**: what this node sent, received, relayed, stored, delivered or rejected.
 *
 * Every write resolves only once it is durable (see `StoreInfo.durability` and docs/STORE.md).
 * Writes arriving close together share one transaction (group commit), so many concurrent
 * callers cost one disk flush. Every async call takes `{ signal }`: a write aborted before
 * its transaction starts is rejected with `AbortError` and writes nothing; once its
 * transaction has started the write completes and resolves normally.
 *
 * @example
 * ```ts
 * const store = createStore({ path: '/var/lib/fedmesh/store.db' })
 * await store.open()
 * await store.enqueue({ recipient, id: env.id, sender: env.from, bytes: env.bytes, expiresAt: env.ts + env.ttl * 1000 })
 * const { entries } = await store.pending(recipient, { limit: 100 })
 * await store.ack(recipient, entries.map(e => e.id))
 * await store.close()
 * ```
 */
import type { AgentId, MessageId } from '../core/ids.ts'

export interface Abortable {
  signal?: AbortSignal
}

// ---------------------------------------------------------------------------------------
// Configuration

/** Limits on what one inbox may hold. Only undelivered (pending) entries count. */
export interface InboxQuota {
  /** Entries in one recipient's inbox. Default 10 000. */
  inboxCount: number
  /** Wire bytes in one recipient's inbox. Default 64 MiB. */
  inboxBytes: number
  /** Entries from one sender in one recipient's inbox. Default 1 000. */
  senderCount: number
  /** Wire bytes from one sender in one recipient's inbox. Default 16 MiB. */
  senderBytes: number
  /** Entries from one sender across all inboxes of this store. Default 20 000. */
  senderTotalCount: number
  /** Wire bytes from one sender across all inboxes of this store. Default 128 MiB. */
  senderTotalBytes: number
}

export interface GroupCommitOptions {
  /**
   * How long the first write of a batch waits for company, in ms. 0 (default) flushes on
   * the next turn of the event loop: everything submitted meanwhile, and everything that
   * arrives while a flush is under way, shares the next transaction.
   */
  maxDelayMs: number
  /** Most operations in one transaction. Default 2 000. */
  maxBatch: number
}

/**
 * What `open()` checks before the store serves anything.
 * - `quick` (default): the database's own structural check (SQLite `PRAGMA quick_check`),
 *   then the checksum of every stored inbox payload (at most 100 000, newest first) and of a
 *   sample of log payloads (the newest 1 000 and 64 spread over the rest).
 * - `full`: SQLite `PRAGMA integrity_check` and every stored checksum.
 * - `off`: schema and version only (for tools that must open a damaged store).
 */
export type VerifyMode = 'quick' | 'full' | 'off'

export interface CommonStoreConfig {
  /** Default quotas; `enqueue` may override any of them per call. */
  quota?: Partial<InboxQuota>
  /**
   * How long an acknowledged entry keeps its payload (ms). 0 (default): the payload is
   * dropped at ack. The entry's id is kept (without payload) until the message expires either
   * way, so a retransmission of an acknowledged message is recognised as a duplicate.
   */
  keepDeliveredMs?: number
  groupCommit?: Partial<GroupCommitOptions>
  /**
   * `commit` (default): message-log writes are flushed like every write. `deferred`: a
   * transaction holding only message-log writes (appends, status updates, retention)
   * commits without its own disk flush — it survives a killed process and reaches the disk
   * with the next flushed commit (any inbox, ack or processed-mark write) or checkpoint;
   * a power cut may lose such records. Inbox entries, acks and marks are always flushed.
   */
  logSync?: 'commit' | 'deferred'
  verify?: VerifyMode
  /** Clock in ms since the epoch. Default `Date.now`. */
  clock?: () => number
}

export interface SqliteStoreConfig extends CommonStoreConfig {
  kind?: 'sqlite'
  /** Database file. Its directory must exist; `-wal` and `-shm` files sit beside it. */
  path: string
  /**
   * `full` (default): every commit is fsync'd before it resolves — survives power loss.
   * `normal`: WAL without fsync per commit — survives a killed process (the OS holds the
   * write), not a power cut. See docs/STORE.md.
   */
  synchronous?: 'full' | 'normal'
  /** Open without writing (for `fedmesh log` next to a running node). Writes reject with `StoreReadOnlyError`. */
  readOnly?: boolean
  /** How long to wait on another process's lock, ms. Default 5 000. */
  busyTimeoutMs?: number
}

export interface PostgresStoreConfig extends CommonStoreConfig {
  kind: 'postgres'
  /** Connection string, e.g. `postgres://user@host:5432/db`. */
  url: string
  /** PostgreSQL schema holding the tables (created if missing). Default `fedmesh`. */
  schema?: string
  /** Connections in the pool. Default 8. */
  poolSize?: number
  /** Connection timeout, ms. Default 5 000. */
  connectTimeoutMs?: number
}

export type StoreConfig = SqliteStoreConfig | PostgresStoreConfig

export type StoreKind = 'sqlite' | 'postgres'

/**
 * What an acknowledged write survives.
 * - `power-loss`: the commit was flushed to stable storage (fsync) before it resolved.
 * - `process-crash`: the commit reached the operating system (or the database server) but was
 *   not flushed; it survives the process being killed, not an OS crash or power cut.
 */
export type Durability = 'power-loss' | 'process-crash'

export interface StoreInfo {
  kind: StoreKind
  /** File path, or the PostgreSQL URL without credentials plus schema. */
  location: string
  schemaVersion: number
  durability: Durability
  readOnly: boolean
}

// ---------------------------------------------------------------------------------------
// Inboxes

/** A message to hold for a recipient. */
export interface InboxEntryInit {
  recipient: AgentId
  id: MessageId
  sender: AgentId
  /** Canonical wire bytes of the envelope (re-verifiable with `decodeEnvelope`). */
  bytes: Uint8Array
  /** When the message expires, ms since the epoch (envelope `ts + ttl * 1000`). */
  expiresAt: number
  /** 0 (lowest) … 3 (highest). Default 1. Kept and returned; delivery order does not depend on it. */
  priority?: number
  /** The sender's sequence number towards this recipient (`dlv.seq`), if it sent one. */
  senderSeq?: number
  /** This is a replica held for another home node. Default false. */
  replica?: boolean
  /** The home node (peer id) a replica is held for. */
  home?: string
  /**
   * The batch this message was signed in (schema 8): `bytes` are then the unsigned bytes of
   * its leaf `leaf`, and the store keeps the batch's signature and leaves once for all its
   * entries; `pending` hands out the wire bytes (with `sig` and `bp`) rebuilt from them,
   * byte-identical to the signer's. The same object for every entry of one batch.
   */
  batch?: InboxBatch
  /** With `batch`: the entry's leaf index in it. */
  leaf?: number
}

/** A signed batch as the inbox keeps it (docs/STORE.md, schema 8). */
export interface InboxBatch {
  /** The batch signature (64 bytes). */
  sig: Uint8Array
  /** Every leaf of the batch (its envelopes' 32-byte digests), packed in order: 32·n bytes, n ≥ 2. */
  leaves: Uint8Array
}

export interface InboxEntry {
  recipient: AgentId
  id: MessageId
  sender: AgentId
  bytes: Uint8Array
  size: number
  priority: number
  expiresAt: number
  senderSeq?: number
  replica: boolean
  home?: string
  /** When the store accepted it, ms since the epoch. */
  enqueuedAt: number
}

export interface EnqueueOptions extends Abortable {
  /**
   * Overrides of the store's default quotas for this call. A frozen object passed again
   * (the same object) is merged with the defaults once, not per call.
   */
  quota?: Partial<InboxQuota>
  /**
   * The entry's `bytes` are handed to the store: the caller never changes them afterwards,
   * so the store need not copy them before the (batched, later) write. Default false.
   */
  owned?: boolean
}

export interface EnqueueResult {
  /** `duplicate`: this (recipient, id) was already held (pending, or acknowledged and not yet expired); nothing changed. */
  status: 'stored' | 'duplicate'
}

/** One entry's outcome in `enqueueMany`: its result, or the error `enqueue` would have thrown. */
export type EnqueueOutcome = { ok: true, status: 'stored' | 'duplicate' } | { ok: false, error: Error }

export interface PendingOptions extends Abortable {
  /** 1 … 1 000, default 100. */
  limit?: number
  /** `cursor` of a previous page for the same recipient: continue after it. */
  afterCursor?: string
}

export interface PendingPage {
  /**
   * Undelivered, unexpired entries in delivery order: enqueue order, except that a sender's
   * entries carrying `senderSeq` are ordered by it among that sender's pending entries
   * (a late lower sequence number moves ahead of the higher ones).
   */
  entries: InboxEntry[]
  /** Position after the last entry (or the `afterCursor` given); pass as `afterCursor`. */
  cursor?: string
  /** The page was full: more entries may follow. */
  more: boolean
}

export interface InboxesOptions extends Abortable {
  /** Only recipients holding replica entries (`true`) or home entries (`false`). Default: both. */
  replica?: boolean
  /** 1 … 1 000, default 100. */
  limit?: number
  /** Continue after this recipient (the last one of the previous page). */
  after?: AgentId
}

export interface InboxesPage {
  /** Recipients with pending, unexpired entries, in ascending order. */
  recipients: AgentId[]
  more: boolean
}

export interface AckResult {
  /** The ids that were pending and are now delivered; unknown or already acknowledged ids are skipped. */
  acked: MessageId[]
}

export interface ExpiredEntry {
  recipient: AgentId
  id: MessageId
  sender: AgentId
  expiresAt: number
  replica: boolean
  home?: string
}

export interface ExpireOptions extends Abortable {
  /** Most expired entries removed (and reported) by this call; 1 … 100 000, default 10 000. */
  limit?: number
}

export interface ExpireResult {
  /** Undelivered entries removed because they expired: tell their senders. */
  expired: ExpiredEntry[]
  /** Acknowledged entries and processed marks removed because they expired. */
  pruned: number
  /** A limit was reached: call again. */
  more: boolean
}

export interface StoreStats {
  /** Pending inbox entries: of the recipient given, else of every inbox. */
  inbox: { count: number, bytes: number }
  /** The whole message log: records and accounted bytes (see `retain`). */
  log: { count: number, bytes: number }
  /** Processed marks held. */
  processed: number
}

// ---------------------------------------------------------------------------------------
// Message log

export const LOG_EVENTS = ['sent', 'received', 'relayed', 'stored', 'delivered', 'rejected'] as const
/** What happened to the message at this node. */
export type LogEvent = typeof LOG_EVENTS[number]

export const LOG_STATUSES = ['ok', 'pending', 'delivered', 'acked', 'expired', 'failed', 'rejected'] as const
/** Where the message stands, as far as this node knows; `updateStatus` moves it on. */
export type LogStatus = typeof LOG_STATUSES[number]

export interface LogRecordInit {
  id: MessageId
  event: LogEvent
  /** Default `ok` (`rejected` for a `rejected` event). */
  status?: LogStatus
  from?: AgentId
  to?: AgentId[]
  topic?: string
  schema?: string
  proto?: string
  conv?: string
  type?: string
  /** Wire size of the message. Defaults to `bytes.length` when bytes are given. */
  size?: number
  /** Why it was rejected or failed. */
  reason?: string
  /** Envelope `ts`. */
  originTs?: number
  /** When this node recorded the event (received, sent, relayed, …). Default now. */
  receivedTs?: number
  ackedTs?: number
  /** The peer it came from or went to. */
  peer?: string
  /** Wire bytes, kept for replay (`conversation`, `query({ includeBytes })`). */
  bytes?: Uint8Array
  /**
   * More records that differ from this one only in id, size and origin time, appended right
   * after it in this order — the publications of one batch frame, say; the store keeps them
   * as one row (docs/STORE.md, "Runs"), each still a record of its own. Not with `bytes`.
   */
  next?: LogRunNext
}

/** The records that follow a `LogRecordInit` in its run: three lists of one length. */
export interface LogRunNext {
  ids: MessageId[]
  sizes: number[]
  originTs: number[]
}

export interface LogRecord {
  /** Position in the log: increases with every append, never reused. */
  seq: number
  id: MessageId
  event: LogEvent
  status: LogStatus
  from?: AgentId
  to: AgentId[]
  topic?: string
  schema?: string
  proto?: string
  conv?: string
  type?: string
  size: number
  reason?: string
  originTs?: number
  receivedTs: number
  ackedTs?: number
  peer?: string
  /** The record holds the wire bytes. */
  hasBytes: boolean
  /** The wire bytes, when asked for and held (checksum verified). */
  bytes?: Uint8Array
}

export interface LogFilter {
  id?: string
  /** As sender or as one of the recipients. */
  agent?: string
  /** A topic or a pattern with `*` (one level) and `#` (one or more levels, last), as in `topicMatches`. */
  topic?: string
  conversation?: string
  /** receivedTs ≥ since (ms). */
  since?: number
  /** receivedTs < until (ms). */
  until?: number
  status?: LogStatus | LogStatus[]
  type?: string
  event?: LogEvent | LogEvent[]
}

export interface QueryOptions extends Abortable {
  /** 1 … 1 000, default 100. */
  limit?: number
  /** `cursor` of the previous page, from the same filter and order. */
  cursor?: string
  /** By log position: `asc` (default, oldest first) or `desc`. */
  order?: 'asc' | 'desc'
  includeBytes?: boolean
}

export interface LogPage {
  records: LogRecord[]
  /**
   * Opaque position after the last record (or the cursor given). Rows appended later sort
   * after it in `asc` order and before the first page in `desc`, so paging never repeats or
   * skips a record.
   */
  cursor?: string
  /** The page was full: more records may follow. */
  more: boolean
}

export interface StatusPatch {
  status?: LogStatus
  ackedTs?: number
  reason?: string
}

export interface UpdateStatusOptions extends Abortable {
  /** Only the records of this event (default: every record of the message). */
  event?: LogEvent
}

export interface ConversationOptions extends Abortable {
  /** Most messages returned; 1 … 10 000, default 1 000. Longer conversations: `query({ conversation })`. */
  limit?: number
}

export interface RetainLimits {
  /** Delete records whose receivedTs is older than this. */
  maxAgeMs?: number
  /** Delete the oldest records until the log accounts at most this many bytes. */
  maxBytes?: number
}

export interface RetainOptions extends Abortable {
  /** Most records deleted by this call; default 10 000. */
  limit?: number
  now?: number
}

export interface RetainResult {
  deleted: number
  /** Accounted bytes freed. */
  bytes: number
  /** The limit was reached: call again. */
  more: boolean
}

// ---------------------------------------------------------------------------------------
// The store

export interface MessageStore extends AsyncDisposable {
  readonly kind: StoreKind
  /** Creates or migrates the schema, checks integrity; throws `StoreCorruptError` rather than serve a damaged store. */
  open (options?: Abortable): Promise<void>
  /** Finishes the writes already accepted, then closes. Later calls reject with `StoreClosedError`. */
  close (): Promise<void>
  /** Only meaningful once open. */
  info (): StoreInfo

  /**
   * Durably holds a message for its recipient. Resolves after the commit; rejects with
   * `QuotaExceededError` (nothing written) when a quota would be exceeded, `MessageExpiredError`
   * when already expired. Idempotent on (recipient, id).
   */
  enqueue (entry: InboxEntryInit, options?: EnqueueOptions): Promise<EnqueueResult>
  /**
   * `enqueue` of several entries with one call: each is checked, stored or refused on its
   * own (its own typed error, its own quota accounting, in order), all in the group commit
   * that takes them. Resolves, once every entry's commit is done, with one outcome per
   * entry in the order given; a `stored` outcome is committed (flushed) like `enqueue`'s.
   */
  enqueueMany (entries: InboxEntryInit[], options?: EnqueueOptions): Promise<Array<EnqueueOutcome>>
  /** Undelivered, unexpired entries in delivery order; payload checksums verified. */
  pending (recipient: AgentId, options?: PendingOptions): Promise<PendingPage>
  /** Recipients that have pending entries (e.g. to hand replicas over to their home nodes). */
  inboxes (options?: InboxesOptions): Promise<InboxesPage>
  /** Marks entries delivered (durably): they leave `pending` and stop counting against quotas. */
  ack (recipient: AgentId, ids: MessageId[], options?: Abortable): Promise<AckResult>
  /** Removes entries past their expiry and reports the undelivered ones; prunes old marks. */
  expire (now?: number, options?: ExpireOptions): Promise<ExpireResult>
  stats (recipient?: AgentId, options?: Abortable): Promise<StoreStats>

  /** Durably records that `agent` processed `id`; kept until `expiresAt`. Resolves true when newly marked. */
  markProcessed (agent: AgentId, id: MessageId, expiresAt: number, options?: Abortable): Promise<boolean>
  isProcessed (agent: AgentId, id: MessageId, options?: Abortable): Promise<boolean>

  /** Appends records (group commit). Resolves when durable. */
  log (records: LogRecordInit[], options?: Abortable): Promise<void>
  /** Updates every record of message `id` (or of one event); resolves with how many changed. */
  updateStatus (id: MessageId, patch: StatusPatch, options?: UpdateStatusOptions): Promise<number>
  /** Filtered, cursor-paginated log records; malformed filters or cursors reject with `InvalidQueryError`. */
  query (filter: LogFilter, options?: QueryOptions): Promise<LogPage>
  /** A conversation's messages in log order, one per message id, with wire bytes where kept. */
  conversation (conv: string, options?: ConversationOptions): Promise<LogRecord[]>
  /** Deletes the oldest records beyond the limits. */
  retain (limits: RetainLimits, options?: RetainOptions): Promise<RetainResult>
}
