/**
 * Durable delivery (store-and-forward), docs/ARCHITECTURE.md "Durable delivery":
 *
 *   sender's node ──put──▶ recipient's home node: enqueue (durable) ──put(home)──▶ k replicas
 *        ▲                         │ confirm after the home write and the replicas' answers
 *        └──────── ok / typed refusal (quota, expired, unknown recipient) ◀┘
 *   home node ──deliver──▶ agent ──receipt (signed by the agent)──▶ home: ack ──ack──▶ replicas
 *                                                       └──────▶ sender (end-to-end proof)
 *
 * - A sender is acknowledged only after the write committed (never ack-then-drop). When the
 *   home node cannot be reached the message goes to the replica set instead (k storage-role
 *   nodes chosen by XOR distance, replicas.ts), and is acknowledged once one of them stored it.
 *   The sender's node keeps a copy as well and hands it to the home before its next direct
 *   put for that recipient, so that put never overtakes the fall-back (settleFallBack).
 * - Replicas hand their copies to the home node when it is reachable (and at once when a
 *   home node asks, `pull`, before delivering to an agent that just attached), and deliver
 *   themselves when the agent attaches to them. A copy stays until the home node reports the
 *   message acknowledged (`ack`) or processed.
 * - Delivery to an attached agent follows the store's order (per-sender `seq`), a bounded
 *   window of unacknowledged messages at a time, redelivered after `redeliverMs`.
 * - `expire()` runs on a timer; senders learn of expiries through the message log
 *   (status `expired`, pushed to the sender's node with an `expired` request).
 */
import { setTimeout as sleep } from 'node:timers/promises'
import * as dagCbor from '@ipld/dag-cbor'
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import type { Stream } from '@libp2p/interface'
import type { AgentId, MessageId, NetworkId } from '../core/ids.ts'
import { batchOf, decodeEnvelope, envelopePayload, leafIndexOf, wireSize, type Envelope } from '../core/envelope.ts'
import { checkBatch, checkEnvelopeContext, type IngressOptions, type IngressResult } from '../core/ingress.ts'
import { VerifiedRoots, type SignedBatch } from '../core/batch.ts'
import * as core from '../core/errors.ts'
import {
  AgentNotFoundError, ClosedError, FedmeshError, InvalidArgumentError, InvalidEnvelopeError, MessageTooLargeError, UnreachableError
} from '../core/errors.ts'
import type { Net } from '../net/libp2p.ts'
import { decodeAgentRecord, decodeNodeRecord, encodeAgentRecord, encodeNodeRecord, type AgentRecord, type NodeRecord, type NodeRole } from '../net/records.ts'
import type { Endpoint, SubmitSink } from '../routing/types.ts'
import type { AbortOptions, Logger, SendResult } from '../node/types.ts'
import * as storeErrors from '../store/errors.ts'
import { MessageExpiredError, QuotaExceededError } from '../store/errors.ts'
import type { EnqueueOutcome, InboxBatch, InboxEntry, InboxQuota, MessageStore } from '../store/types.ts'
import type { LogRecorder, Observe } from '../log/recorder.ts'
import { chooseReplicas, type StorageCandidate } from './replicas.ts'
import { decodeReceiptList, encodeReceiptList, isReceipt, parseReceipt, PENDING_RECEIPTS_FILE, verifyReceipt } from './receipts.ts'
import { DataFile } from './data-file.ts'
import { PutBatcher, PUTS_PER_REQUEST, type PutTarget, type PutWaiter } from './put-batch.ts'
import { DurableClient, durableProtocol, MAX_ACK_IDS, MAX_PUTS_BYTES, serveDurable, type DurableAnswer, type DurableRequest, type DurableResponse } from './wire.ts'

/** What a durable send reports (in `SendResult.durable`). */
export interface DurableOutcome {
  /** `duplicate`: the same message was already held (a retransmission); nothing changed. */
  status: 'stored' | 'duplicate'
  /** The home node that holds it, when it was reached. */
  home?: string
  /** Replica nodes that confirmed a copy. */
  replicas: number
}

export interface DurableInit {
  /** Replica count k (storage-role nodes besides the home). Default 2. */
  replicas: number
  quota?: Partial<InboxQuota>
  /** How long a delivered, unacknowledged message waits before redelivery, ms. Default 5 000. */
  redeliverMs?: number
  /** Messages delivered to one agent and not yet acknowledged. Default 512. */
  window?: number
  /** Per attempt to reach one node, ms. Default 10 000. */
  requestTimeoutMs?: number
  /** How often expiry, redelivery and replica handover run, ms. Default 1 000. */
  tickMs?: number
  /**
   * For this long after start, while fewer than `replicas` storage nodes are known, a home
   * node waits for their records before it replicates (and answers the sender), and before
   * an attached agent's first pull. Default 2 000 ms; 0 does not wait.
   */
  replicaWaitMs?: number
}

export interface DurableComponents {
  net: Net
  network: NetworkId
  peerId: string
  roles: readonly NodeRole[]
  store: MessageStore
  ingress: IngressOptions
  logger: Logger
  observe: Observe
  recorder?: LogRecorder
  /** Known node records (roles) for replica choice. */
  nodeRecords: () => NodeRecord[]
  knownAgent: (id: AgentId) => AgentRecord | undefined
  findAgent: (id: AgentId, options?: AbortOptions) => Promise<AgentRecord>
  /** Routes a non-durable envelope (receipts on their way to the sender). */
  route: (env: Envelope) => Promise<SendResult>
  /** True for agents whose key lives in this node's data dir. */
  hostsKey: (id: AgentId) => boolean
  /**
   * The node's data dir: the storage nodes' records it knows (STORAGE_NODES_FILE) and the
   * receipts it could not forward yet (PENDING_RECEIPTS_FILE) are kept there for after a restart.
   */
  dir?: string
}

interface Delivery { endpoint: Endpoint, inflight: Map<string, number>, draining?: Promise<void>, again: boolean, ready: boolean }
/** A receipt kept for another try at its sender (DurableService.forwardReceipt). */
interface PendingReceipt { env: Envelope, to: AgentId, attempts: number, nextAt: number, /** Kept before its first forward, which has not failed (yet). */ first?: boolean }

/**
 * Forwarding receipts to senders that were unreachable: the first retry after 1 s, then
 * twice the delay each time up to 30 s, until the receipt's own ttl runs out; at most 10,000
 * receipts and 16 MiB of them kept per node (in memory and in PENDING_RECEIPTS_FILE, which
 * is rewritten whole: a receipt of 256 ids is about 15 KiB) and 256 retried per maintenance
 * tick.
 */
export const RECEIPT_RETRY = { firstDelayMs: 1_000, maxDelayMs: 30_000, maxPending: 10_000, maxBytes: 16 * 1024 * 1024, perTick: 256 } as const

/** How long a home node waits for its replicas' answers before answering the sender. */
const REPLICA_TIMEOUT_MS = 3_000
/** A peer that failed to answer is not asked again for this long. */
const DOWN_BACKOFF_MS = 2_000
/** How often a holder that did not take an `ack` notice is asked again (after 1, 2, 4 s). */
const ACK_NOTICE_RETRIES = 3
/** How long an attached agent's delivery waits for the pulls to its replica set. */
const PULL_TIMEOUT_MS = 3_000
/**
 * The signed records of the storage nodes this node knows, kept in its data dir (a DAG-CBOR
 * list of record bytes, at most MAX_REMEMBERED) so that after a restart it replicates to and
 * pulls from the same replica sets before it hears the records again.
 */
export const STORAGE_NODES_FILE = 'storage-nodes.cbor'
const MAX_REMEMBERED = 256

const DEFINITE = new Set(['QuotaExceededError', 'MessageExpiredError', 'AgentNotFoundError', 'InvalidEnvelopeError', 'MessageTooLargeError', 'InvalidArgumentError', 'StoreReadOnlyError'])

const ERROR_CLASSES = new Map<string, new (message?: string, options?: { details?: Record<string, unknown> }) => FedmeshError>()
for (const mod of [core, storeErrors]) {
  for (const v of Object.values(mod)) {
    const code = (v as { code?: unknown }).code
    if (typeof v === 'function' && typeof code === 'string' && v.prototype instanceof FedmeshError && code !== 'QuotaExceededError') ERROR_CLASSES.set(code, v as never)
  }
}

/** Rebuilds a typed error from a durable response. */
export function errorFromResponse (code: string, msg: string, details?: Record<string, unknown>): FedmeshError {
  if (code === 'QuotaExceededError' && details != null) return new QuotaExceededError(details as never)
  const Cls = ERROR_CLASSES.get(code)
  return Cls != null ? new Cls(msg, { details }) : new FedmeshError(code, msg, { details })
}

/** The typed refusal of an envelope that failed ingress (PROTOCOL.md §8.4.1). */
function refusalOf (reason: string, detail: string, id?: string): FedmeshError {
  if (reason === 'too-large') return new MessageTooLargeError(detail)
  if (reason === 'expired') return new MessageExpiredError(`message ${id ?? ''} expired: ${detail}`)
  return new InvalidEnvelopeError(`${reason}: ${detail}`)
}

/** Each signed batch as the store takes it (its leaves packed): one object per batch, so one stored row. */
const inboxBatches = new WeakMap<SignedBatch, InboxBatch>()

function inboxBatchOf (batch: SignedBatch): InboxBatch {
  let b = inboxBatches.get(batch)
  if (b === undefined) {
    b = { sig: batch.sig, leaves: batch.packedLeaves() }
    inboxBatches.set(batch, b)
  }
  return b
}

/** A durable put carries a direct envelope with `dlv.durable`. */
function durableOnly (env: Envelope): Envelope {
  if (env.dlv?.durable !== true || env.mode !== 'direct') throw new InvalidEnvelopeError('a durable put carries a direct envelope with dlv.durable')
  return env
}

/** The answers `stored` and `duplicate` of a `putb`'s envelopes, sent or received: one object each, never changed. */
const STORED: DurableAnswer = Object.freeze({ ok: true, st: 'stored' })
const DUPLICATE: DurableAnswer = Object.freeze({ ok: true, st: 'duplicate' })

function responseOf (err: unknown): DurableAnswer {
  const e = err as Partial<FedmeshError>
  // Through JSON: CBOR has no Infinity (an unlimited quota), JSON turns it into null.
  const d = e.details != null ? JSON.parse(JSON.stringify(e.details)) as Record<string, unknown> : undefined
  return { ok: false, code: e.code ?? 'InternalError', msg: e.message ?? String(err), ...(d != null ? { d } : {}) }
}

/** Copies in `puts` requests of at most PUTS_PER_REQUEST envelopes and MAX_PUTS_BYTES, in the order given. */
function requestsOf (entries: InboxEntry[]): InboxEntry[][] {
  const out: InboxEntry[][] = []
  let cur: InboxEntry[] = []
  let bytes = 0
  for (const e of entries) {
    if (cur.length > 0 && (cur.length >= PUTS_PER_REQUEST || bytes + e.bytes.length > MAX_PUTS_BYTES)) {
      out.push(cur)
      cur = []
      bytes = 0
    }
    cur.push(e)
    bytes += e.bytes.length
  }
  if (cur.length > 0) out.push(cur)
  return out
}

function outcomeOf (a: DurableAnswer & { ok: true }, home: string): DurableOutcome {
  return { status: a.st === 'stored' || a.st == null ? 'stored' : 'duplicate', home, replicas: a.n ?? 0 }
}

/**
 * A durable send in flight to its recipient's first home (DurableService.send): the put's
 * waiter, holding all the send needs — one object where a promise chain was (the agent's
 * `then`, the batcher's promise and resolvers, the answer's mapping), the caller's own
 * promise settled from here through its sink.
 */
class DurableSend implements PutWaiter<Envelope> {
  readonly e: Envelope
  readonly rec: AgentRecord
  readonly options: AbortOptions
  readonly sink: SubmitSink
  private readonly svc: DurableService

  constructor (svc: DurableService, e: Envelope, rec: AgentRecord, options: AbortOptions, sink: SubmitSink) {
    this.svc = svc
    this.e = e
    this.rec = rec
    this.options = options
    this.sink = sink
  }

  answered (a: DurableAnswer): void {
    if (a.ok) this.sink.resolve({ id: this.e.id, confirmed: [], durable: outcomeOf(a, this.rec.home[0].id) })
    else this.svc.sendOn(this, errorFromResponse(a.code, a.msg, a.d))
  }

  failed (err: Error): void {
    this.svc.sendOn(this, err)
  }
}

export class DurableService {
  private readonly c: DurableComponents
  private readonly o: Required<DurableInit>
  private readonly clients = new Map<string, Promise<DurableClient>>()
  /** Puts to the same node within one turn of the event loop go out as one `putb` / `puts` request. */
  private readonly puts = new PutBatcher<Envelope>(async (target, envs) => await this.sendPuts(target, envs), wireSize)
  /** Put targets of agent records' home entries (`targetOf`). */
  private readonly homeTargets = new WeakMap<object, PutTarget>()
  private readonly deliveries = new Map<AgentId, Delivery>()
  /** Replica copies recently handed to a home node: id → when (re-pushed after a while). */
  private readonly handedOver = new Map<string, number>()
  /** Peers that handed copies of a recipient's messages to us: told when they are acknowledged. */
  private readonly holders = new Map<AgentId, Set<string>>()
  /** Peers that just failed to answer: not asked again until then (a dead replica must not stall every send). */
  private readonly downUntil = new Map<string, number>()
  private timer?: NodeJS.Timeout
  private ticking = false
  private stopped = false
  private startedAt = Date.now()
  /** Storage-node records read from the data dir at start, used until the node hears them again (or they expire). */
  private readonly remembered = new Map<string, NodeRecord>()
  /** What STORAGE_NODES_FILE holds (peer:seq of each record), to write it only when that changes. */
  private savedRecords = ''
  /** STORAGE_NODES_FILE (the tick's and stop's writes never interleave). */
  private readonly storageNodesFile?: DataFile
  /** Batch roots (and tree hashes) whose signature this node verified: a batch of durable sends costs one signature check. */
  private readonly roots: VerifiedRoots
  /**
   * The node's ingress options with `roots`, for a `putb`: `ingress` keeps the batch's tree
   * levels (`keepTree`: the proofs of envelopes whose wire bytes are read here — forwarded to
   * replicas or another home), `ingressAsHome` does not (stored as home with no replicas,
   * schema 8 rows need no proof: no level strings built per batch).
   */
  private readonly ingress: IngressOptions
  private readonly ingressAsHome: IngressOptions
  readonly counters = { stored: 0, replicated: 0, delivered: 0, acked: 0, expired: 0, refused: 0, handedOver: 0, receiptsRetried: 0, receiptsDropped: 0 }
  /** Receipts whose forward to their sender failed, by receipt id (oldest first): retried from the maintenance tick. */
  private readonly pendingReceipts = new Map<string, PendingReceipt>()
  /** The wire bytes of `pendingReceipts`, in all. */
  private pendingReceiptBytes = 0
  /** PENDING_RECEIPTS_FILE, when the node has a data dir. */
  private readonly receiptsFile?: DataFile
  /** Changes to `pendingReceipts`, and how many of them the file holds (-1: its last write failed). */
  private receiptsChanged = 0
  private receiptsSaved = 0
  /**
   * Recipients this node put messages for to the replica set (its home unreachable) and
   * holds its own copies of, not handed to the home since: each with the fall-back's number
   * (a newer fall-back while a hand-over runs keeps it) and that fall-back's local write.
   * The next direct put to such a recipient's home waits for that hand-over (settleFallBack).
   */
  private readonly fellBack = new Map<AgentId, { n: number, written: Promise<unknown> }>()
  private fallBacks = 0
  /** Hand-overs of fall-back copies under way, by recipient: concurrent sends wait for the same one. */
  private readonly settling = new Map<AgentId, Promise<void>>()

  constructor (components: DurableComponents, init: DurableInit) {
    this.c = components
    this.roots = components.ingress.roots ?? new VerifiedRoots()
    this.ingress = { ...components.ingress, roots: this.roots, keepTree: true }
    this.ingressAsHome = { ...components.ingress, roots: this.roots, keepTree: false }
    this.o = {
      replicas: init.replicas,
      // Frozen: the store merges it with its defaults once, not per message.
      quota: Object.freeze({ ...init.quota }),
      redeliverMs: init.redeliverMs ?? 5_000,
      window: init.window ?? 512,
      requestTimeoutMs: init.requestTimeoutMs ?? 10_000,
      tickMs: init.tickMs ?? 1_000,
      replicaWaitMs: init.replicaWaitMs ?? 2_000
    }
    if (components.dir != null) {
      this.storageNodesFile = new DataFile(components.dir, STORAGE_NODES_FILE, () => this.storageNodesContents())
      this.receiptsFile = new DataFile(components.dir, PENDING_RECEIPTS_FILE, () => {
        if (this.receiptsSaved === this.receiptsChanged) return undefined
        this.receiptsSaved = this.receiptsChanged
        return encodeReceiptList([...this.pendingReceipts.values()].map(p => p.env.bytes))
      })
    }
  }

  async start (): Promise<void> {
    this.startedAt = Date.now()
    await this.loadStorageNodes()
    await this.loadReceipts()
    await this.recallFallBacks()
    await this.c.net.handle(durableProtocol(this.c.network), (stream, connection) => {
      const peer = connection.remotePeer.toString()
      void serveDurable(stream, async (req) => await this.serve(req, peer), (detail) => {
        this.c.logger.debug({ peer, detail }, 'bad durable request')
      })
    }, { maxInboundStreams: 32 })
    this.timer = setInterval(() => { void this.tick() }, this.o.tickMs)
    this.timer.unref()
  }

  async stop (): Promise<void> {
    this.stopped = true
    clearInterval(this.timer)
    // The storage nodes heard since the last maintenance tick are kept for the restart too.
    await this.saveStorageNodes().catch((err: Error) => { this.c.logger.warn({ err: err.message }, 'storage nodes not written to the data dir') })
    await this.storageNodesFile?.close().catch(() => {})
    // Receipts still waiting for their senders (and those on their way): the next start forwards them.
    await this.saveReceipts()
    await this.receiptsFile?.close().catch(() => {})
    await this.c.net.unhandle(durableProtocol(this.c.network)).catch(() => {})
    const clients = await Promise.allSettled([...this.clients.values()])
    await Promise.allSettled(clients.flatMap(c => c.status === 'fulfilled' ? [c.value.close()] : []))
  }

  /** Envelopes the durable service takes over from the router: durable sends and receipts. */
  handles (env: Envelope): boolean {
    return env.dlv?.durable === true || isReceipt(env)
  }

  // ---- sending --------------------------------------------------------------------------

  /** Submits an envelope signed by a local agent: a durable send, or a receipt. A check that fails rejects it. */
  submit (env: Envelope, options: AbortOptions = {}): Promise<SendResult> {
    if (isReceipt(env)) return this.onReceipt(env)
    return new Promise<SendResult>((resolve, reject) => { this.send(env, options, { resolve, reject }) })
  }

  /**
   * `submit`, its outcome told to `sink` (AgentTransport.submitTo): a durable send in flight
   * to its first home is then one record (DurableSend, the put's waiter), no promise.
   */
  submitTo (env: Envelope, options: AbortOptions, sink: SubmitSink): void {
    if (isReceipt(env)) { this.onReceipt(env).then(sink.resolve, sink.reject); return }
    try {
      this.send(env, options, sink)
    } catch (err) {
      sink.reject(err as Error)
    }
  }

  /** Checks a durable send (throws its typed error, nothing sent) and places it; a failure to place it records it `failed`. */
  private send (env: Envelope, options: AbortOptions, sink: SubmitSink): void {
    if (env.mode !== 'direct') throw new InvalidArgumentError('durable delivery is for direct messages (one recipient)')
    if (env.replyTo != null && env.corr == null) throw new InvalidArgumentError('a request cannot be durable: its reply is awaited now')
    // wireSize: a batch-signed envelope's wire bytes (with its proof) are not built to tell its size.
    const size = wireSize(env)
    if (size > this.c.ingress.maxBytes) throw new MessageTooLargeError(`envelope is ${size} bytes, this node's limit is ${this.c.ingress.maxBytes}`)
    const to = (env.to as AgentId[])[0]
    this.c.observe({ event: 'sent', env, status: 'pending' })
    // The common case — the recipient's record known, its first home another node, no
    // fall-back copies of this node's to hand over first (settleFallBack) — without a
    // promise: the put's answer goes to the send's record (DurableSend), which tells the
    // sink; a failure goes on with the next home as `placeFrom` would have (sendOn).
    const rec = this.deliveries.has(to) || this.c.hostsKey(to) ? undefined : this.c.knownAgent(to)
    const first = rec?.home[0]
    if (rec === undefined || first === undefined || this.fellBack.has(to) || rec.home.some(h => h.id === this.c.peerId)) {
      this.placed(env, this.place(env, to, options)).then(sink.resolve, sink.reject)
      return
    }
    this.puts.putTo(this.targetOf(first), new DurableSend(this, env, rec, options, sink), options.signal)
  }

  /**
   * A durable send whose first home did not take it (`err`: its refusal or the request's
   * failure): the next homes, then the replica set, as `placeFrom`; its sink told the outcome.
   * For DurableSend only.
   */
  sendOn (s: DurableSend, err: Error): void {
    const env = s.e
    this.placed(env, this.placeFrom(env, (env.to as AgentId[])[0], s.rec, 1, err, s.rec.home[0].id, s.options)).then(s.sink.resolve, s.sink.reject)
  }

  /** A home of an agent record as a put's target (one object per home entry, not per send). */
  private targetOf (home: AgentRecord['home'][number]): PutTarget {
    let t = this.homeTargets.get(home)
    if (t === undefined) {
      t = { peer: home.id, addrs: home.addrs }
      this.homeTargets.set(home, t)
    }
    return t
  }

  /** The send's result once `placing` settles; its failure is recorded (`failed`) and thrown. */
  private async placed (env: Envelope, placing: Promise<DurableOutcome>): Promise<SendResult> {
    try {
      return { id: env.id, confirmed: [], durable: await placing }
    } catch (err) {
      this.c.recorder?.updateStatus(env.id, 'failed')
      throw err
    }
  }

  private async place (env: Envelope, to: AgentId, options: AbortOptions): Promise<DurableOutcome> {
    if (this.hostsAgent(to)) return await this.storeAsHome(env)
    const rec = this.c.knownAgent(to) ?? await this.c.findAgent(to, options)
    if (rec.home.some(h => h.id === this.c.peerId)) return await this.storeAsHome(env)
    return await this.placeFrom(env, to, rec, 0, undefined, undefined, options)
  }

  /**
   * Puts `env` to the record's homes from `from` on, in order (`failed` the error of the one
   * before, tried as `failedHome`), then, when none took it, to the recipient's replica set.
   */
  private async placeFrom (env: Envelope, to: AgentId, rec: AgentRecord, from: number, failed: Error | undefined, failedHome: string | undefined, options: AbortOptions): Promise<DurableOutcome> {
    let lastError = failed
    if (failed !== undefined) this.failedHome(failed, failedHome as string, options)
    for (let i = from; i < rec.home.length; i++) {
      const home = rec.home[i]
      try {
        if (this.fellBack.has(to)) await this.settleFallBack(to, home)
        return outcomeOf(await this.put({ peer: home.id, addrs: home.addrs }, env, options), home.id)
      } catch (err) {
        this.failedHome(err as Error, home.id, options)
        lastError = err as Error
      }
    }
    // The home node is down: hold the message on the replica set until it is back.
    const homes = rec.home.map(h => h.id)
    const replicas = await this.replicaSetSoon(to, new Set(homes), true)
    // This node keeps a copy too (as a member of the set, or for order only), handed to the
    // home before this sender's next direct put there (settleFallBack).
    const puts = replicas.map(async peer => await this.putReplica(peer, env, homes[0], options))
    const self = replicas.indexOf(this.c.peerId)
    const kept = self < 0 ? this.keepForOrder(env, homes[0]) : undefined
    const written = this.fellBackTo(to, kept ?? puts[self])
    const results = await Promise.allSettled(puts)
    await written
    const stored = results.filter(r => r.status === 'fulfilled')
    if (stored.length > 0) {
      const status = stored.every(r => (r as PromiseFulfilledResult<'stored' | 'duplicate'>).value === 'duplicate') ? 'duplicate' : 'stored'
      return { status, replicas: stored.length }
    }
    // Not placed: the copy kept for order goes too (the sender learns the send failed).
    if (kept != null && await kept) await this.c.store.ack(to, [env.id]).catch(() => {})
    const definite = results.map(r => (r as PromiseRejectedResult).reason).find(e => e instanceof FedmeshError && DEFINITE.has(e.code))
    if (definite != null) throw definite
    throw new UnreachableError(`home node of ${to} unreachable (${lastError?.message ?? 'no address'}) and no storage node took the message (${replicas.length} tried)`, { cause: lastError })
  }

  /** A home's failure to take a put: rethrown when it is definite (a refusal) or the caller gave up; else logged, and the next one is tried. */
  private failedHome (err: Error, home: string, options: AbortOptions): void {
    if (err instanceof FedmeshError && DEFINITE.has(err.code)) throw err
    if (options.signal?.aborted === true) throw err
    this.c.logger.debug({ home, err: err.message }, 'home node unreachable for a durable send')
  }

  /**
   * Stores a fall-back message here as a replica copy for `home` when this node is not in the
   * replica set: not counted as a replica (the sender's acknowledgement still needs one of
   * the set), it is what lets this node hand the message to the home before the sender's next
   * direct put there, whichever replica is down by then. Resolves whether it was stored.
   */
  private async keepForOrder (env: Envelope, home: string): Promise<boolean> {
    try {
      const { status } = await this.c.store.enqueue(this.entryOf(env, home), { quota: this.o.quota, owned: true })
      return status === 'stored'
    } catch (err) {
      this.c.logger.warn({ id: env.id, err: (err as Error).message }, 'fall-back message not kept here: a later direct send may overtake it')
      return false
    }
  }

  /** Notes a fall-back for `to`, its copy here being written by `own` (resolves once it is, stored or not). */
  private async fellBackTo (to: AgentId, own: Promise<unknown>): Promise<void> {
    const prev = this.fellBack.get(to)?.written
    const written = Promise.all([prev, own.catch(() => false)])
    this.fellBack.set(to, { n: ++this.fallBacks, written })
    await written
  }

  /**
   * Before a direct put to `home` for a recipient this node fell back for: hands this node's
   * copies for that recipient to the home (all of them, in delivery order, one request after
   * the other: PROTOCOL.md §8.4.2) and waits until the home stored them, so that the direct
   * put comes after them there — whenever the replicas' own hand-over comes. A hand-over that
   * fails makes the home count as unreachable for this send (it falls back too, behind the
   * earlier ones); one the home answered, refusals included, settles the recipient.
   */
  private async settleFallBack (to: AgentId, home: { id: string, addrs: string[] }): Promise<void> {
    let p = this.settling.get(to)
    if (p == null) {
      p = (async () => {
        const noted = this.fellBack.get(to)
        await noted?.written
        const { failed } = await this.handOver(to, { peer: home.id, addrs: home.addrs })
        if (failed != null) throw new UnreachableError(`home node ${home.id} did not take the messages held for ${to} since a fall-back: ${failed.message}`, { cause: failed })
        if (this.fellBack.get(to)?.n === noted?.n) this.fellBack.delete(to)
      })().finally(() => { this.settling.delete(to) })
      this.settling.set(to, p)
    }
    await p
  }

  /**
   * At start: every recipient this node holds replica copies for counts as fallen back for
   * (its own fall-back copies from before a restart are among them), so the first direct put
   * to each hands them over first.
   */
  private async recallFallBacks (): Promise<void> {
    for await (const r of this.replicaRecipients()) this.fellBack.set(r, { n: ++this.fallBacks, written: Promise.resolve() })
  }

  private async putReplica (peer: string, env: Envelope, home: string, options: AbortOptions): Promise<'stored' | 'duplicate'> {
    if (peer === this.c.peerId) return await this.storeAsReplica(env, home)
    const res = await this.put({ peer, addrs: [], home }, env, options)
    return res.st === 'stored' || res.st == null ? 'stored' : 'duplicate'
  }

  /**
   * Storage nodes known besides this one, counted up to k: with none, a message stored here
   * as home gets no replicas (every recipient's replica set is empty).
   */
  private storageNodes (): number {
    if (this.o.replicas <= 0) return 0
    let n = 0
    for (const r of this.candidates(Date.now())) if (r.peer !== this.c.peerId && r.roles.includes('storage') && ++n >= this.o.replicas) break
    return n
  }

  /** The replica set of a recipient: k storage nodes by XOR distance, this node included if it has the role. */
  private replicaSet (recipient: AgentId, exclude: Set<string>, includeSelf: boolean): string[] {
    const candidates = this.candidates(Date.now())
    if (includeSelf) candidates.push({ peer: this.c.peerId, roles: [...this.c.roles] })
    return chooseReplicas(recipient, candidates, this.o.replicas, exclude)
  }

  /**
   * The replica set as `replicaSet`, but just after start (within `replicaWaitMs`) and while
   * it has fewer than k nodes, first waits (polling, bounded by that window) for more storage
   * nodes' records: a node that has just started may not have heard them yet.
   */
  private async replicaSetSoon (recipient: AgentId, exclude: Set<string>, includeSelf: boolean): Promise<string[]> {
    let set = this.replicaSet(recipient, exclude, includeSelf)
    if (set.length < this.o.replicas && this.starting()) await this.startWait(() => (set = this.replicaSet(recipient, exclude, includeSelf)).length >= this.o.replicas)
    return set
  }

  /** Whether the node started less than `replicaWaitMs` ago. */
  private starting (): boolean {
    return Date.now() < this.startedAt + this.o.replicaWaitMs
  }

  /** Within `replicaWaitMs` of the start: waits (polling every 50 ms) until `enough()` holds or that time is over. */
  private async startWait (enough: () => boolean): Promise<void> {
    const end = this.startedAt + this.o.replicaWaitMs
    while (!enough() && Date.now() < end && !this.stopped) await sleep(Math.max(1, Math.min(50, end - Date.now())), undefined, { ref: false })
  }

  /** Unexpired node records this node knows, with the storage nodes remembered from before its restart that it has not heard again. */
  private candidates (now: number): StorageCandidate[] {
    const out: StorageCandidate[] = []
    for (const r of this.c.nodeRecords()) if (r.exp > now) out.push({ peer: r.peer, roles: r.roles })
    if (this.remembered.size > 0) {
      const heard = new Set(out.map(r => r.peer))
      for (const r of this.remembered.values()) if (r.exp > now && !heard.has(r.peer)) out.push({ peer: r.peer, roles: r.roles })
    }
    return out
  }

  /** Reads STORAGE_NODES_FILE: each record's signature is checked again; expired, foreign or damaged ones are left out. */
  private async loadStorageNodes (): Promise<void> {
    if (this.storageNodesFile == null) return
    let list: unknown
    try {
      const bytes = await this.storageNodesFile.read()
      if (bytes == null) return
      list = dagCbor.decode(bytes)
    } catch (err) {
      this.c.logger.warn({ err: (err as Error).message }, 'remembered storage nodes unreadable; waiting for their records instead')
      return
    }
    if (!Array.isArray(list)) return
    const kept: string[] = []
    for (const bytes of list.slice(0, MAX_REMEMBERED)) {
      if (!(bytes instanceof Uint8Array)) continue
      try {
        const r = await decodeNodeRecord(bytes)
        if (r.net !== this.c.network || r.peer === this.c.peerId || !r.roles.includes('storage')) continue
        this.remembered.set(r.peer, r)
        kept.push(`${r.peer}:${r.seq}`)
      } catch { /* expired or not verifying: its node is heard again or not at all */ }
    }
    this.savedRecords = kept.sort().join(',')
  }

  /**
   * Writes STORAGE_NODES_FILE (atomically: a temporary file flushed, then renamed) when the
   * storage nodes known (heard, or remembered and not heard again yet) changed since it was
   * last written.
   */
  private async saveStorageNodes (): Promise<void> {
    try {
      await this.storageNodesFile?.save()
    } catch (err) {
      this.savedRecords = ''
      throw err
    }
  }

  /** STORAGE_NODES_FILE's contents now, or undefined when they are what it holds. */
  private storageNodesContents (): Uint8Array | undefined {
    const now = Date.now()
    const records = new Map<string, NodeRecord>()
    const heard = new Set<string>()
    for (const r of this.c.nodeRecords()) {
      if (r.exp <= now) continue
      heard.add(r.peer)
      if (r.peer !== this.c.peerId && r.roles.includes('storage') && records.size < MAX_REMEMBERED) records.set(r.peer, r)
    }
    // A remembered record gives way to the one heard again (whatever its roles now), and to its expiry.
    for (const [peer, r] of this.remembered) {
      if (r.exp <= now || heard.has(peer)) this.remembered.delete(peer)
      else if (records.size < MAX_REMEMBERED) records.set(peer, r)
    }
    const key = [...records.values()].map(r => `${r.peer}:${r.seq}`).sort().join(',')
    if (key === this.savedRecords) return undefined
    this.savedRecords = key
    return dagCbor.encode([...records.values()].map(encodeNodeRecord))
  }

  // ---- storing --------------------------------------------------------------------------

  private checkInbound (bytes: Uint8Array): Envelope {
    const res = decodeEnvelope(bytes, this.c.ingress.maxBytes, this.roots)
    if (!res.ok) throw refusalOf(res.reason, res.detail)
    const env = res.envelope
    const ctx = checkEnvelopeContext(env, 0, this.c.ingress, Date.now())
    if (!ctx.ok) {
      this.c.observe({ event: 'rejected', env, reason: ctx.reason })
      throw refusalOf(ctx.reason, ctx.detail, env.id)
    }
    if (env.enc != null) {
      try { envelopePayload(env, this.c.ingress.maxBytes) } catch { throw new InvalidEnvelopeError('payload does not decompress within the size limit') }
    }
    return durableOnly(env)
  }

  /**
   * A `putb` (PROTOCOL.md §8.4.1): the batch checked as a batch frame is (§8.2.1: every
   * carried envelope decoded, the root rebuilt from the leaves, the signature verified once),
   * then each carried envelope stored or refused on its own, like a `put` of it. One answer
   * per carried envelope, in leaf order — or `{ok: true, st}` when all were answered so.
   */
  private async servePutBatch (req: Extract<DurableRequest, { op: 'putb' }>, peer: string): Promise<DurableAnswer> {
    // As home with no replicas to make (none configured, or no storage node known, after the
    // start wait) and no hand-over: one `enqueueMany` for the batch.
    const asHome = req.home == null && req.ho !== true
    // The tree's levels only where an envelope may be forwarded (its proof read); should that
    // still happen (a storage node heard during the start wait), the proof is hashed again.
    const res = checkBatch(req.s, req.l, 0, asHome && (this.o.replicas === 0 || (!this.starting() && this.storageNodes() === 0)) ? this.ingressAsHome : this.ingress)
    if (!res.ok) throw refusalOf(res.reason, res.detail)
    if (asHome && this.starting()) await this.startWait(() => this.storageNodes() >= this.o.replicas)
    if (asHome && this.storageNodes() === 0) return await this.storeBatchAsHome(res.results, res.batch, peer)
    const rs = await Promise.all(res.results.map(async (r): Promise<DurableAnswer> => {
      try {
        return await this.serveEnvelope(this.carried(r), req.home, req.ho, peer)
      } catch (err) {
        return responseOf(err)
      }
    }))
    const first = rs[0]
    if (first.ok && first.n == null && rs.every(a => a.ok && a.st === first.st && a.n == null)) return { ok: true, st: first.st }
    return { ok: true, rs }
  }

  /**
   * The envelopes of a `putb` stored as their recipients' home node, as `storeAsHome` with
   * no replicas would store each, but with one `enqueueMany` (one group-commit submission,
   * one await) instead of a promise chain per envelope. Each envelope keeps its own answer:
   * refused at the batch check, not hosted here, over a quota, expired, or stored/duplicate
   * once its commit is flushed. The `putb`'s answer: `{ok: true, st}` when every envelope was
   * answered so (told while storing: no second pass over the answers), else one per envelope.
   */
  private async storeBatchAsHome (results: readonly IngressResult[], batch: SignedBatch, peer: string): Promise<DurableAnswer> {
    const rs = new Array<DurableAnswer>(results.length)
    // Every carried envelope is of `batch`: its stored form made here once, not looked up per envelope.
    const stored: InboxBatch = { sig: batch.sig, leaves: batch.packedLeaves() }
    const envs: Envelope[] = []
    const entries: Array<Parameters<MessageStore['enqueue']>[0]> = []
    const at: number[] = []
    // A batch is mostly for one recipient: the last one found hosted here is not looked up again.
    let hosted: AgentId | undefined
    for (let i = 0; i < results.length; i++) {
      try {
        const env = this.carried(results[i])
        const recipient = (env.to as AgentId[])[0]
        if (recipient !== hosted) { this.checkHome(recipient); hosted = recipient }
        envs.push(env)
        entries.push(this.entryOf(env, undefined, stored))
        at.push(i)
      } catch (err) {
        rs[i] = responseOf(err)
      }
    }
    if (envs.length === 0) return { ok: true, rs }
    let outcomes: EnqueueOutcome[]
    try {
      outcomes = await this.c.store.enqueueMany(entries, { quota: this.o.quota, owned: true })
    } catch (err) {
      outcomes = envs.map(() => ({ ok: false, error: err as Error }))
    }
    // Recipients to kick once the batch is stored: the batch's recipient, and any others (rare).
    let reached: AgentId | undefined
    let others: Set<AgentId> | undefined
    // The answer every envelope got so far (`null`: they differ, or one was refused at the check).
    let same: DurableAnswer | null | undefined = envs.length === results.length ? undefined : null
    for (let j = 0; j < outcomes.length; j++) {
      const o = outcomes[j]
      const env = envs[j]
      let a: DurableAnswer
      if (o.ok) {
        this.noteStored(env, o.status, peer)
        const recipient = (env.to as AgentId[])[0]
        if (reached === undefined) reached = recipient
        else if (recipient !== reached) (others ??= new Set()).add(recipient)
        a = o.status === 'stored' ? STORED : DUPLICATE
      } else {
        this.noteRefused(env, peer, o.error)
        a = responseOf(o.error)
      }
      rs[at[j]] = a
      if (same !== null && same !== a) same = same === undefined ? a : null
    }
    if (reached !== undefined) this.kick(reached)
    if (others !== undefined) for (const recipient of others) this.kick(recipient)
    return same === STORED ? { ok: true, st: 'stored' } : same === DUPLICATE ? { ok: true, st: 'duplicate' } : { ok: true, rs }
  }

  /** A `putb`'s carried envelope as checked with its batch: the durable envelope, or its refusal (logged) thrown. */
  private carried (r: IngressResult): Envelope {
    if (!r.ok) {
      this.c.observe({ event: 'rejected', id: r.id, reason: r.reason })
      throw refusalOf(r.reason, r.detail, r.id)
    }
    return durableOnly(r.envelope)
  }

  private checkHome (recipient: AgentId): void {
    if (!this.isHome(recipient)) throw new AgentNotFoundError(`agent ${recipient} is not hosted on node ${this.c.peerId}`, { details: { agent: recipient } })
  }

  private noteStored (env: Envelope, status: 'stored' | 'duplicate', peer: string | undefined, replicaOf?: string): void {
    if (status !== 'stored') return
    this.counters.stored++
    if (replicaOf == null) this.c.observe({ event: 'stored', env, status: 'pending', peer })
    else this.c.observe({ event: 'stored', env, status: 'pending', peer, reason: `replica for ${replicaOf}` })
  }

  private noteRefused (env: Envelope, peer: string | undefined, err: unknown): void {
    this.counters.refused++
    const e = err as FedmeshError
    this.c.observe({ event: 'rejected', env, peer, reason: `${e.code ?? 'Error'}: ${e.message}` })
  }

  /** Whether this node takes messages for `agent` as its home. */
  private isHome (agent: AgentId): boolean {
    if (this.hostsAgent(agent)) return true
    const rec = this.c.knownAgent(agent)
    // Without a record we cannot tell: the sender found us in a signed record, and quotas bound the cost.
    return rec == null || rec.home.some(h => h.id === this.c.peerId)
  }

  /**
   * One shape for every entry (absent fields undefined, as the store reads them): no spread
   * objects per message. An envelope of a batch this node holds goes in as its unsigned bytes,
   * its leaf index and the batch (schema 8: the signature and leaves stored once per batch, the
   * wire bytes rebuilt when read) — its wire bytes and proof are never built here.
   */
  private entryOf (env: Envelope, replica?: string, stored?: InboxBatch): Parameters<MessageStore['enqueue']>[0] {
    const batch = batchOf(env)
    const leaf = batch === undefined ? -1 : leafIndexOf(env)
    const unsigned = batch?.unsigned[leaf]
    return {
      recipient: (env.to as AgentId[])[0],
      id: env.id,
      sender: env.from,
      bytes: unsigned ?? env.bytes,
      expiresAt: env.ts + env.ttl * 1000,
      priority: env.prio,
      senderSeq: env.dlv?.seq ?? undefined,
      replica: replica != null ? true : undefined,
      home: replica,
      batch: unsigned !== undefined ? stored ?? inboxBatchOf(batch as SignedBatch) : undefined,
      leaf: unsigned !== undefined ? leaf : undefined
    }
  }

  private async enqueue (env: Envelope, peer: string | undefined, replicaOf?: string): Promise<'stored' | 'duplicate'> {
    try {
      // `owned`: an envelope's wire bytes are never changed once built or received.
      const { status } = await this.c.store.enqueue(this.entryOf(env, replicaOf), { quota: this.o.quota, owned: true })
      this.noteStored(env, status, peer, replicaOf)
      return status
    } catch (err) {
      this.noteRefused(env, peer, err)
      throw err
    }
  }

  /** Stores as the recipient's home node, replicates, and starts delivery if the agent is here. */
  private async storeAsHome (env: Envelope, peer?: string): Promise<DurableOutcome> {
    const recipient = (env.to as AgentId[])[0]
    this.checkHome(recipient)
    const status = await this.enqueue(env, peer)
    let replicas = 0
    if (status === 'stored' && this.o.replicas > 0) {
      const targets = await this.replicaSetSoon(recipient, new Set([this.c.peerId]), false)
      // Bounded: a replica that does not answer in time is not counted (the sender learns how many did).
      const results = await Promise.allSettled(targets.map(async p => await this.put({ peer: p, addrs: [], home: this.c.peerId, timeoutMs: REPLICA_TIMEOUT_MS }, env, {})))
      replicas = results.filter(r => r.status === 'fulfilled').length
      this.counters.replicated += replicas
    }
    this.kick(recipient)
    return { status, home: this.c.peerId, replicas }
  }

  private async storeAsReplica (env: Envelope, home: string, peer?: string): Promise<'stored' | 'duplicate'> {
    const recipient = (env.to as AgentId[])[0]
    const status = await this.enqueue(env, peer, home)
    // Held here for an agent that is attached here: deliver now.
    this.kick(recipient)
    return status
  }

  // ---- serving other nodes ----------------------------------------------------------------

  private async serve (req: DurableRequest, peer: string): Promise<DurableAnswer> {
    if (this.stopped) return responseOf(new ClosedError('node stopping'))
    try {
      switch (req.op) {
        case 'put':
          return await this.servePut(req.e, req.home, req.ho, peer)
        case 'putb':
          return await this.servePutBatch(req, peer)
        case 'puts': {
          if (req.ho === true && req.home == null) return { ok: true, rs: await this.serveHandOver(req.es, peer) }
          // Each envelope on its own (checked, stored or refused); the store's group commit
          // writes them in one transaction, and the answer goes once all are durable.
          const rs = await Promise.all(req.es.map(async e => await this.servePut(e, req.home, req.ho, peer).catch(responseOf)))
          return { ok: true, rs }
        }
        case 'ack': {
          const receipt = verifyReceipt(req.rc)
          const { acked } = await this.c.store.ack(receipt.by, receipt.ids)
          for (const id of acked) this.c.recorder?.updateStatus(id, 'acked', Date.now())
          return { ok: true, n: acked.length }
        }
        case 'pull':
          this.checkPuller(req.to as AgentId, req.rec, peer)
          return { ok: true, n: (await this.handOver(req.to as AgentId, { peer, addrs: [] })).n }
        case 'expired':
          // Only what its sender is known to have sent through this node is marked.
          for (const id of req.ids) this.expiredHere(req.from as AgentId, id as MessageId)
          return { ok: true, n: req.ids.length }
      }
    } catch (err) {
      return responseOf(err)
    }
  }

  private async servePut (e: Uint8Array, home: string | undefined, ho: boolean | undefined, peer: string): Promise<DurableAnswer> {
    return await this.serveEnvelope(this.checkInbound(e), home, ho, peer)
  }

  /** A checked durable envelope: stored as the home node or as a replica (`home`). */
  private async serveEnvelope (env: Envelope, home: string | undefined, ho: boolean | undefined, peer: string): Promise<DurableAnswer> {
    if (home != null) return { ok: true, st: await this.storeAsReplica(env, home, peer) }
    const recipient = (env.to as AgentId[])[0]
    if (ho === true) {
      // A holder from the moment its copy is received: an acknowledgement while the copy is being
      // stored (or checked) must be passed on to it too, or it keeps the copy until its next
      // hand-over. (A sender's node holds no copy: it is not told.)
      this.holdersOf(recipient).add(peer)
      // A replica handing over a message the recipient has already processed here.
      if (await this.c.store.isProcessed(recipient, env.id)) return { ok: true, st: 'processed' }
    }
    const out = await this.storeAsHome(env, peer)
    // `n` only when replicas stored (absent reads as 0): a `puts` answer is one map per envelope.
    return out.replicas > 0 ? { ok: true, st: out.status, n: out.replicas } : { ok: true, st: out.status }
  }

  /**
   * A replica's hand-over (`puts`, `ho`): its copies come in its delivery order (per sender,
   * sequence order). All are checked first (the processed look-ups may answer in any order),
   * then stored in the order given, submitted in one turn: the group commit writes them in
   * that order, so no copy is stored (and delivered) before an earlier one of the request.
   */
  private async serveHandOver (es: Uint8Array[], peer: string): Promise<DurableAnswer[]> {
    const rs = new Array<DurableAnswer>(es.length)
    const fresh: Array<Envelope | undefined> = []
    await Promise.all(es.map(async (e, i) => {
      try {
        const env = this.checkInbound(e)
        const recipient = (env.to as AgentId[])[0]
        this.holdersOf(recipient).add(peer)
        if (await this.c.store.isProcessed(recipient, env.id)) rs[i] = { ok: true, st: 'processed' }
        else fresh[i] = env
      } catch (err) {
        rs[i] = responseOf(err)
      }
    }))
    // Checked already: stored as a plain put (`ho` false skips the processed look-up).
    await Promise.all(es.map(async (_, i) => {
      const env = fresh[i]
      if (env != null) rs[i] = await this.serveEnvelope(env, undefined, false, peer).catch(responseOf)
    }))
    return rs
  }

  /**
   * A pull hands `agent`'s copies to the node that asks, so only a node that `agent`'s newest
   * record names as its home may pull: the record known here or the one the pull carries,
   * whichever is newer. Records are signed by the agent, so no node can name itself, and an
   * older record offered never outweighs a newer one known here.
   */
  private checkPuller (agent: AgentId, offered: Uint8Array | undefined, peer: string): void {
    let rec = this.c.knownAgent(agent)
    if (offered != null) {
      const o = decodeAgentRecord(offered)
      if (o.agent !== agent || o.net !== this.c.network) throw new core.InvalidArgumentError('pull: the record is of another agent or network')
      if (rec == null || o.seq > rec.seq) rec = o
    }
    if (rec == null || !rec.home.some(h => h.id === peer)) throw new core.UnauthorizedError(`pull: ${peer} is not a home node of ${agent}`)
  }

  /** The pull a home node sends for an agent attached here: with the agent's record, which names this node. */
  private pullRequest (agent: AgentId): Parameters<DurableClient['request']>[0] {
    const rec = this.c.knownAgent(agent)
    if (rec == null) return { op: 'pull', to: agent }
    const { sig, ...fields } = rec
    return { op: 'pull', to: agent, rec: encodeAgentRecord(fields, sig) }
  }

  private holdersOf (agent: AgentId): Set<string> {
    let s = this.holders.get(agent)
    if (s == null) {
      s = new Set()
      this.holders.set(agent, s)
      if (this.holders.size > 100_000) this.holders.delete(this.holders.keys().next().value as AgentId)
    }
    return s
  }

  // ---- replicas handing over ---------------------------------------------------------------

  /**
   * Pushes the replica copies held for `agent` to `target` (its home node). A copy stays
   * until the home reports it processed or the recipient's acknowledgement reaches us.
   * Returns how many the target accepted.
   *
   * In delivery order (the store's: per sender, sequence order), one `puts` request at a
   * time, the next once the last one's copies are stored: the home node stores a request's
   * copies in the order given, so it never holds (and delivers) a sender's later message
   * before an earlier one this node is handing over. A request that fails, or a copy the
   * home refuses, ends the hand-over there: what follows waits for the next one. `failed`:
   * the request that failed (the target did not answer), if one did.
   */
  private async handOver (agent: AgentId, target: { peer: string, addrs: string[] }, force = true): Promise<{ n: number, failed?: Error }> {
    let n = 0
    let failed: Error | undefined
    let cursor: string | undefined
    const now = Date.now()
    const to: PutTarget = { peer: target.peer, addrs: target.addrs, ho: true }
    pages: for (let page = 0; page < 100; page++) {
      const res = await this.c.store.pending(agent, { limit: 200, afterCursor: cursor })
      const copies = res.entries.filter(e => e.replica && (force || now - (this.handedOver.get(e.id) ?? 0) > 60_000))
      for (const chunk of requestsOf(copies)) {
        let answers: DurableAnswer[]
        try {
          answers = await this.sendLoose(to, chunk.map(e => e.bytes))
        } catch (err) {
          this.c.logger.debug({ agent, home: target.peer, err: (err as Error).message }, 'replica handover request failed')
          failed = err as Error
          break pages
        }
        const done: MessageId[] = []
        let refused = false
        chunk.forEach((e, i) => {
          const a = answers[i]
          if (!a.ok) { refused = true; return }
          n++
          this.counters.handedOver++
          this.handedOver.set(e.id, now)
          if (a.st === 'processed') done.push(e.id)
          // Decoded (and verified again, as for a delivery) so that the record names sender and type.
          const dec = decodeEnvelope(e.bytes)
          this.c.observe({ event: 'relayed', ...(dec.ok ? { env: dec.envelope } : { id: e.id }), peer: target.peer, to: [agent] })
        })
        if (done.length > 0) await this.c.store.ack(agent, done)
        if (refused) break pages
      }
      if (!res.more) break
      cursor = res.cursor
    }
    if (this.handedOver.size > 200_000) for (const [id, at] of this.handedOver) if (now - at > 60_000) this.handedOver.delete(id)
    return { n, failed }
  }

  /** Replica copies whose recipient's home node is reachable go there; copies for agents attached here are delivered. */
  private async handOverAll (): Promise<void> {
    for await (const agent of this.replicaRecipients()) {
      if (this.stopped) return
      if (this.deliveries.has(agent)) { this.kick(agent); continue }
      const rec = this.c.knownAgent(agent)
      if (rec == null) continue
      for (const home of rec.home) {
        if (home.id === this.c.peerId) { this.kick(agent); break }
        try {
          await this.handOver(agent, { peer: home.id, addrs: home.addrs }, false)
          break
        } catch (err) {
          this.c.logger.debug({ agent, home: home.id, err: (err as Error).message }, 'replica handover failed')
        }
      }
    }
  }

  /** The recipients this node holds replica copies for: at most 10 pages of 100. */
  private async * replicaRecipients (): AsyncGenerator<AgentId> {
    let after: AgentId | undefined
    for (let page = 0; page < 10; page++) {
      const { recipients, more } = await this.c.store.inboxes({ replica: true, limit: 100, after })
      yield * recipients
      if (!more) return
      after = recipients[recipients.length - 1]
    }
  }

  // ---- delivering to attached agents ---------------------------------------------------------

  /** An agent attached here: ask its replica set for their copies, then deliver everything held. */
  attached (endpoint: Endpoint): void {
    const d: Delivery = { endpoint, inflight: new Map(), again: false, ready: false }
    this.deliveries.set(endpoint.agent, d)
    void (async () => {
      const peers = await this.replicaSetSoon(endpoint.agent, new Set([this.c.peerId]), false)
      if (this.deliveries.get(endpoint.agent) !== d || this.stopped) return
      const pull = this.pullRequest(endpoint.agent)
      await Promise.allSettled(peers.map(async p => await this.request(p, [], pull, { signal: AbortSignal.timeout(PULL_TIMEOUT_MS) })))
      if (this.deliveries.get(endpoint.agent) !== d) return
      d.ready = true
      this.kick(endpoint.agent)
    })()
  }

  detached (agent: AgentId): void {
    this.deliveries.delete(agent)
  }

  /** Starts (or re-runs) delivery to an attached agent. */
  private kick (agent: AgentId): void {
    const d = this.deliveries.get(agent)
    if (d == null || !d.ready || this.stopped) return
    if (d.draining != null) { d.again = true; return }
    d.draining = (async () => {
      try {
        do {
          d.again = false
          await this.drain(agent, d)
        } while (d.again && this.deliveries.get(agent) === d && !this.stopped)
      } catch (err) {
        this.c.logger.warn({ agent, err: (err as Error).message }, 'durable delivery failed')
      } finally {
        d.draining = undefined
      }
    })()
  }

  private async drain (agent: AgentId, d: Delivery): Promise<void> {
    let cursor: string | undefined
    for (let page = 0; page < 1000; page++) {
      if (d.inflight.size >= this.o.window || this.deliveries.get(agent) !== d) return
      const res = await this.c.store.pending(agent, { limit: 200, afterCursor: cursor })
      const now = Date.now()
      for (const e of res.entries) {
        if (d.inflight.size >= this.o.window) return
        const sent = d.inflight.get(e.id)
        if (sent != null && now - sent < this.o.redeliverMs) continue
        if (!this.deliverEntry(d, e, now)) continue
      }
      if (!res.more) return
      cursor = res.cursor
    }
  }

  private deliverEntry (d: Delivery, e: InboxEntry, now: number): boolean {
    const res = decodeEnvelope(e.bytes)
    if (!res.ok) {
      // Verified when stored and checksummed since: only a changed verifier could get here.
      this.c.logger.error({ id: e.id, reason: res.reason }, 'stored durable message no longer verifies; skipped')
      return false
    }
    d.inflight.set(e.id, now)
    this.counters.delivered++
    this.c.observe({ event: 'delivered', env: res.envelope, status: 'delivered', to: [d.endpoint.agent] })
    d.endpoint.deliver(res.envelope)
    return true
  }

  // ---- acknowledgements ----------------------------------------------------------------------

  /** A local agent's signed receipt: acknowledge the inbox entries, tell the replicas, forward it to the sender. */
  private async onReceipt (env: Envelope): Promise<SendResult> {
    const receipt = parseReceipt(env)
    const agent = receipt.by
    // For a sender on another node the receipt is in the data dir before anything is
    // acknowledged here: a node that fails while its first forward is under way (or
    // between the acknowledgement and that forward) forwards it after its restart.
    const kept = this.receiptsFile != null && !this.hostsAgent(receipt.to) ? await this.keepBeforeForward(env, receipt.to) : undefined
    const { acked } = await this.c.store.ack(agent, receipt.ids)
    const now = Date.now()
    const d = this.deliveries.get(agent)
    for (const id of receipt.ids) d?.inflight.delete(id)
    this.counters.acked += acked.length
    for (const id of acked) this.c.recorder?.updateStatus(id, 'acked', now)
    if (acked.length > 0) void this.notifyAcked(agent, env.bytes)
    if (d != null) this.kick(agent)
    // The end-to-end proof goes on to the sender; the acknowledgement above does not wait for it.
    void this.forwardReceipt(env, receipt.to, kept)
    return { id: env.id, confirmed: [] }
  }

  /** Whether `agent` is attached here or its key is in this node's data dir. */
  private hostsAgent (agent: AgentId): boolean {
    return this.deliveries.has(agent) || this.c.hostsKey(agent)
  }

  /**
   * Keeps a receipt (in flight: not retried by the tick until its first forward failed) and
   * writes PENDING_RECEIPTS_FILE with it; a forward that succeeds drops it again (the file
   * follows at the next tick). A failed write is logged (saveReceipts) and changes nothing else.
   */
  private async keepBeforeForward (env: Envelope, to: AgentId): Promise<PendingReceipt | undefined> {
    this.keepReceipt({ env, to, attempts: 0, nextAt: Number.POSITIVE_INFINITY, first: true })
    await this.saveReceipts()
    return this.pendingReceipts.get(env.id)
  }

  /** Receipts waiting for their sender's node to be reachable again (not those on their first forward). */
  get receiptsPending (): number {
    let n = 0
    for (const p of this.pendingReceipts.values()) if (p.first !== true) n++
    return n
  }

  /**
   * Routes a receipt to its sender. When that fails (the sender's node is down or
   * unreachable) the receipt is kept and tried again from the maintenance tick, with a
   * doubling delay (RECEIPT_RETRY), until it expires; at most RECEIPT_RETRY.maxPending are
   * kept (the oldest is dropped first). A receipt newly kept is written to the data dir at
   * once (PENDING_RECEIPTS_FILE), so a restart of this node forwards it still — one for a
   * sender on another node before its first forward (`pending`, keepBeforeForward); the ones
   * forwarded or given up leave the file at the next maintenance tick.
   */
  private async forwardReceipt (env: Envelope, to: AgentId, pending?: PendingReceipt): Promise<void> {
    try {
      await this.c.route(env)
      if (pending != null) this.dropReceipt(env.id)
    } catch (err) {
      if (this.stopped) return
      const now = Date.now()
      const p = pending ?? { env, to, attempts: 0, nextAt: 0 }
      p.first = undefined
      p.attempts++
      p.nextAt = now + Math.min(RECEIPT_RETRY.maxDelayMs, RECEIPT_RETRY.firstDelayMs * 2 ** (p.attempts - 1))
      if (p.nextAt > env.ts + env.ttl * 1000) {
        this.dropReceipt(env.id)
        this.counters.receiptsDropped++
        this.c.logger.info({ to, receipt: env.id, attempts: p.attempts }, 'receipt expired before its sender was reachable')
        return
      }
      if (pending == null) {
        this.keepReceipt(p)
        void this.saveReceipts()
      }
      this.c.logger.debug({ err: (err as Error).message, to, attempts: p.attempts }, 'receipt not forwarded yet')
    }
  }

  /** Adds a receipt to those waiting for their sender; past RECEIPT_RETRY.maxPending or maxBytes the oldest are given up. */
  private keepReceipt (p: PendingReceipt): void {
    if (this.pendingReceipts.has(p.env.id)) return
    const size = p.env.bytes.length
    while (this.pendingReceipts.size > 0 && (this.pendingReceipts.size >= RECEIPT_RETRY.maxPending || this.pendingReceiptBytes + size > RECEIPT_RETRY.maxBytes)) {
      this.dropReceipt(this.pendingReceipts.keys().next().value as string)
      this.counters.receiptsDropped++
    }
    this.pendingReceipts.set(p.env.id, p)
    this.pendingReceiptBytes += size
    this.receiptsChanged++
  }

  private dropReceipt (id: string): void {
    const p = this.pendingReceipts.get(id)
    if (p == null) return
    this.pendingReceipts.delete(id)
    this.pendingReceiptBytes -= p.env.bytes.length
    this.receiptsChanged++
  }

  /**
   * Reads PENDING_RECEIPTS_FILE at start: each receipt is verified again (a damaged or
   * altered entry is left out), those past their ttl are dropped, and the rest are due at
   * the first maintenance tick. An unreadable file is ignored with a warning.
   */
  private async loadReceipts (): Promise<void> {
    if (this.receiptsFile == null) return
    let bytes: Uint8Array | undefined
    try {
      bytes = await this.receiptsFile.read()
    } catch (err) {
      this.c.logger.warn({ err: (err as Error).message }, 'pending receipts unreadable; starting without them')
      return
    }
    if (bytes == null) return
    const now = Date.now()
    let list
    try {
      list = decodeReceiptList(bytes, { network: this.c.network, now, max: RECEIPT_RETRY.maxPending })
    } catch (err) {
      this.c.logger.warn({ err: (err as Error).message, file: this.receiptsFile.path }, 'pending receipts file damaged; starting without it')
      // Rewritten (as the receipts kept from now on) at the next change or tick.
      this.receiptsSaved = -1
      return
    }
    for (const r of list.receipts) this.keepReceipt({ env: r.envelope, to: r.to, attempts: 0, nextAt: now })
    this.counters.receiptsDropped += list.expired
    if (list.invalid > 0) this.c.logger.warn({ invalid: list.invalid, file: this.receiptsFile.path }, 'pending receipts that do not verify were left out')
    if (list.receipts.length > 0) this.c.logger.info({ receipts: list.receipts.length, expired: list.expired }, 'receipts kept from before the restart are forwarded again')
    // Rewritten once (at the first tick) without what was left out.
    this.receiptsSaved = -1
  }

  /** Writes PENDING_RECEIPTS_FILE when the receipts kept changed since its last write (one write at a time). */
  private async saveReceipts (): Promise<void> {
    if (this.receiptsFile == null || this.receiptsSaved === this.receiptsChanged) return
    try {
      await this.receiptsFile.save()
    } catch (err) {
      this.receiptsSaved = -1
      this.c.logger.warn({ err: (err as Error).message }, 'pending receipts not written to the data dir')
    }
  }

  /** Tries again the receipts that are due (a bounded number per tick). */
  private retryReceipts (now: number): void {
    let started = 0
    for (const p of this.pendingReceipts.values()) {
      if (started >= RECEIPT_RETRY.perTick) break
      if (p.nextAt > now) continue
      p.nextAt = Number.POSITIVE_INFINITY // in flight: forwardReceipt sets the next time if it fails
      started++
      this.counters.receiptsRetried++
      void this.forwardReceipt(p.env, p.to, p)
    }
  }

  /**
   * A receipt from a link, addressed to an agent of this node: the log learns its messages
   * were acknowledged. Resolves once those marks are written (the receipt's confirmation
   * waits for it, so the home node keeps the receipt until then). Then the receipt goes to
   * the agent if it is attached (`handOver`), once: the log's record of the receipt is marked
   * `delivered`, so a copy taken again — the home node's next try after a confirmation that
   * was lost, even across a restart of this node — is confirmed without a second hand-over.
   * A try whose marks failed was not handed over; its next try is.
   */
  async takeReceipt (env: Envelope, handOver: () => number): Promise<void> {
    const recorder = this.c.recorder
    let marks: Array<Promise<boolean>> = []
    try {
      const { ids, to, by } = parseReceipt(env)
      // Only messages the receipt's addressee sent to its signer are marked.
      if (recorder != null) marks = ids.map(id => recorder.updateStatus(id, 'acked', env.ts, { event: 'sent', from: to, to: by }))
    } catch { handOver(); return /* not a well-formed receipt: the SDK ignores it too */ }
    if (recorder == null) { handOver(); return }
    if ((await Promise.all(marks)).includes(false)) throw new storeErrors.StoreIOError('the log did not take the receipt\'s acknowledgements')
    const { records } = await this.c.store.query({ id: env.id, event: 'received', status: 'delivered' }, { limit: 1 })
    if (records.length > 0) return
    if (handOver() > 0) await recorder.updateStatus(env.id, 'delivered', undefined, { event: 'received' })
  }

  /**
   * Passes the agent's signed receipt to every node that may hold copies: they verify it and
   * drop theirs. A node that does not answer is asked again after 1, 2 and 4 s (a request to a
   * node that failed in the last 2 s fails at once, DOWN_BACKOFF_MS, so one retry is always
   * past that); after that its copies are settled by its own hand-over, which offers them to
   * the home node again after a minute and drops those the home reports processed.
   */
  private async notifyAcked (agent: AgentId, receipt: Uint8Array): Promise<void> {
    const peers = new Set([...this.replicaSet(agent, new Set([this.c.peerId]), false), ...(this.holders.get(agent) ?? [])])
    peers.delete(this.c.peerId)
    await Promise.allSettled([...peers].map(async p => {
      for (let attempt = 0; ; attempt++) {
        try {
          await this.request(p, [], { op: 'ack', rc: receipt }, {})
          return
        } catch (err) {
          if (attempt >= ACK_NOTICE_RETRIES || this.stopped) throw err
          await sleep(1000 * 2 ** attempt, undefined, { ref: false })
        }
      }
    }))
  }

  /** Tells the sender's node that its messages expired undelivered (best effort; its log then says so). */
  private async notifyExpired (sender: AgentId, ids: MessageId[]): Promise<void> {
    if (this.hostsAgent(sender)) {
      for (const id of ids) this.expiredHere(sender, id)
      return
    }
    const rec = this.c.knownAgent(sender)
    if (rec == null) return
    for (const home of rec.home) {
      if (home.id === this.c.peerId) { for (const id of ids) this.expiredHere(sender, id); return }
      try {
        for (let i = 0; i < ids.length; i += MAX_ACK_IDS) await this.request(home.id, home.addrs, { op: 'expired', from: sender, ids: ids.slice(i, i + MAX_ACK_IDS) }, {})
        return
      } catch (err) {
        this.c.logger.debug({ sender, home: home.id, err: (err as Error).message }, 'expiry notice not delivered')
      }
    }
  }

  /** Marks the sender's `sent` record of a message expired (other nodes' records are theirs). */
  private expiredHere (sender: AgentId, id: MessageId): void {
    this.c.recorder?.updateStatus(id, 'expired', undefined, { event: 'sent', from: sender })
  }

  // ---- timers ----------------------------------------------------------------------------------

  private async tick (): Promise<void> {
    if (this.ticking || this.stopped) return
    this.ticking = true
    try {
      const { expired } = await this.c.store.expire()
      const bySender = new Map<AgentId, MessageId[]>()
      for (const e of expired) {
        this.counters.expired++
        this.c.recorder?.updateStatus(e.id, 'expired')
        const ids = bySender.get(e.sender) ?? []
        ids.push(e.id)
        bySender.set(e.sender, ids)
      }
      for (const [sender, ids] of bySender) void this.notifyExpired(sender, ids)
      if (this.pendingReceipts.size > 0) this.retryReceipts(Date.now())
      void this.saveReceipts()
      for (const agent of this.deliveries.keys()) this.kick(agent)
      await this.saveStorageNodes().catch((err: Error) => { this.c.logger.warn({ err: err.message }, 'storage nodes not written to the data dir') })
      await this.handOverAll()
    } catch (err) {
      if (!this.stopped) this.c.logger.warn({ err: (err as Error).message }, 'durable maintenance failed')
    } finally {
      this.ticking = false
    }
  }

  // ---- links -----------------------------------------------------------------------------------

  /** One put through the batcher; a refusal of this envelope throws its typed error. */
  private async put (target: PutTarget, env: Envelope, options: AbortOptions): Promise<DurableAnswer & { ok: true }> {
    if (target.peer === this.c.peerId) throw new InvalidArgumentError('durable request to self')
    const a = await this.puts.put(target, env, options.signal)
    if (!a.ok) throw errorFromResponse(a.code, a.msg, a.d)
    return a
  }

  /**
   * Sends a batch of puts to one node, one answer per envelope in order. Two or more
   * envelopes of one signed batch go as one `putb` (the signature once and their unsigned
   * bytes: no proofs to build, carry or walk); the others as a `put` (one) or `puts`.
   */
  private async sendPuts (t: PutTarget, envs: Envelope[]): Promise<DurableAnswer[]> {
    const groups = new Map<SignedBatch, number[]>()
    const loose: number[] = []
    for (let k = 0; k < envs.length; k++) {
      const b = batchOf(envs[k])
      if (b === undefined || b.unsigned[leafIndexOf(envs[k])] === undefined) { loose.push(k); continue }
      const g = groups.get(b)
      if (g === undefined) groups.set(b, [k])
      else g.push(k)
    }
    for (const [b, g] of groups) {
      if (g.length < 2) { groups.delete(b); loose.push(...g) }
    }
    if (groups.size === 0) return await this.sendLoose(t, envs.map(e => e.bytes))
    if (groups.size === 1 && loose.length === 0) return await this.sendBatch(t, [...groups.keys()][0], envs)
    // Several parts: each its own request; a part that fails fails its own envelopes only.
    const answers = new Array<DurableAnswer>(envs.length)
    const parts = [...groups].map(([b, g]) => ({ g, run: async () => await this.sendBatch(t, b, g.map(k => envs[k])) }))
    if (loose.length > 0) parts.push({ g: loose, run: async () => await this.sendLoose(t, loose.map(k => envs[k].bytes)) })
    await Promise.all(parts.map(async ({ g, run }) => {
      const rs = await run().catch((err: unknown) => g.map(() => responseOf(err)))
      for (let j = 0; j < g.length; j++) answers[g[j]] = rs[j]
    }))
    return answers
  }

  /** `putb`: envelopes of `batch` (two or more), one answer each, in the order given. */
  private async sendBatch (t: PutTarget, batch: SignedBatch, envs: Envelope[]): Promise<DurableAnswer[]> {
    const options = t.timeoutMs != null ? { timeoutMs: t.timeoutMs } : {}
    const l = batch.leaves.slice()
    const carried: number[] = []
    // Given in leaf order, each once (the agent's sends of one batch, as they came): the answers are in the order given.
    let inOrder = true
    for (const env of envs) {
      const i = leafIndexOf(env)
      if (l[i] === batch.leaves[i]) {
        if (carried.length > 0 && carried[carried.length - 1] > i) inOrder = false
        carried.push(i)
      } else inOrder = false
      l[i] = batch.unsigned[i] as Uint8Array
    }
    if (!inOrder) carried.sort((a, b) => a - b)
    const res = await this.request(t.peer, t.addrs, { op: 'putb', s: batch.sig, l, home: t.home, ho: t.ho }, options)
    let rs: DurableAnswer[]
    if (res.rs === undefined && res.st !== undefined && res.n === undefined) {
      // One for all: the shared (frozen) answer, not an object per envelope.
      const one = res.st === 'stored' ? STORED : res.st === 'duplicate' ? DUPLICATE : { ok: true as const, st: res.st }
      rs = new Array<DurableAnswer>(carried.length).fill(one)
    }
    else if (res.rs?.length === carried.length) rs = res.rs
    else throw new UnreachableError(`node ${t.peer} answered ${res.rs?.length ?? 0} of ${carried.length} durable puts`)
    if (inOrder) return rs
    // Answers come in leaf order: back to the order given.
    const at = new Map<number, DurableAnswer>()
    for (let j = 0; j < carried.length; j++) at.set(carried[j], rs[j])
    return envs.map(env => at.get(leafIndexOf(env)) as DurableAnswer)
  }

  /** Wire bytes: a plain `put` for one, `puts` for more; one answer per envelope. */
  private async sendLoose (t: PutTarget, es: Uint8Array[]): Promise<DurableAnswer[]> {
    const options = t.timeoutMs != null ? { timeoutMs: t.timeoutMs } : {}
    if (es.length === 1) {
      try {
        return [await this.request(t.peer, t.addrs, { op: 'put', e: es[0], home: t.home, ho: t.ho }, options)]
      } catch (err) {
        if (err instanceof FedmeshError && DEFINITE.has(err.code)) return [responseOf(err)]
        throw err
      }
    }
    const res = await this.request(t.peer, t.addrs, { op: 'puts', es, home: t.home, ho: t.ho }, options)
    if (res.rs?.length !== es.length) throw new UnreachableError(`node ${t.peer} answered ${res.rs?.length ?? 0} of ${es.length} durable puts`)
    return res.rs
  }

  private async request (peer: string, addrs: string[], req: Parameters<DurableClient['request']>[0], options: AbortOptions & { timeoutMs?: number }): Promise<DurableResponse & { ok: true }> {
    if (peer === this.c.peerId) throw new InvalidArgumentError('durable request to self')
    const down = this.downUntil.get(peer)
    if (down != null) {
      if (down > Date.now()) throw new UnreachableError(`node ${peer} did not answer recently; retrying after ${new Date(down).toISOString()}`)
      this.downUntil.delete(peer)
    }
    let res: DurableResponse
    try {
      const client = await this.client(peer, addrs, options.signal)
      res = await client.request(req, { signal: options.signal, timeoutMs: options.timeoutMs ?? this.o.requestTimeoutMs })
    } catch (err) {
      if (options.signal?.aborted !== true) {
        this.downUntil.set(peer, Date.now() + DOWN_BACKOFF_MS)
        if (this.downUntil.size > 10_000) this.downUntil.delete(this.downUntil.keys().next().value as string)
      }
      throw err
    }
    if (!res.ok) throw errorFromResponse(res.code, res.msg, res.d)
    return res
  }

  private async client (peer: string, addrs: string[], signal?: AbortSignal): Promise<DurableClient> {
    // Many requests may find the same closed link at once: the first replaces it, the others
    // take its replacement. (Each opening its own stream would leave all but the last one
    // open and unused, until the peer's inbound stream limit refused every new one.)
    let existing = this.clients.get(peer)
    for (let i = 0; existing != null && i < 8; i++) {
      const c = await existing.catch(() => undefined)
      if (c != null && !c.isClosed) return c
      const now = this.clients.get(peer)
      if (now === existing) { this.clients.delete(peer); break }
      existing = now
    }
    const p = (async () => {
      const pid = peerIdFromString(peer)
      // A storage node remembered from before a restart is dialled at the addresses of its record.
      const known = addrs.length > 0 ? addrs : ((this.c.nodeRecords().find(r => r.peer === peer) ?? this.remembered.get(peer))?.addrs ?? [])
      if (known.length > 0) await this.c.net.peerStore.merge(pid, { multiaddrs: known.map(a => multiaddr(a)) })
      let stream: Stream
      try {
        stream = await this.c.net.dialProtocol(pid, durableProtocol(this.c.network), { signal: signal ?? AbortSignal.timeout(this.o.requestTimeoutMs) })
      } catch (err) {
        throw new UnreachableError(`cannot reach node ${peer}: ${(err as Error).message}`, { cause: err })
      }
      return new DurableClient(stream)
    })()
    this.clients.set(peer, p)
    p.catch(() => { if (this.clients.get(peer) === p) this.clients.delete(peer) })
    return await p
  }

  /** Processed marks for exactly-once handlers (in-process and remote agents). */
  async markProcessed (agent: AgentId, id: MessageId, expiresAt: number): Promise<boolean> {
    return await this.c.store.markProcessed(agent, id, expiresAt)
  }

  async isProcessed (agent: AgentId, id: MessageId): Promise<boolean> {
    return await this.c.store.isProcessed(agent, id)
  }
}
