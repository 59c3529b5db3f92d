/**
 * The Agent: builds and signs envelopes, turns deliveries into async-iterable
 * subscriptions, correlates requests with replies, runs the request handler and
 * opens/accepts streams. It talks to its node only through an AgentTransport, so the
 * same code serves in-process agents and remote agents over the WebSocket API.
 */
import type { AgentId, MessageId } from '../core/ids.ts'
import type { AgentKey } from '../core/keys.ts'
import { isAgentId } from '../core/keys.ts'
import { MAX_BATCH } from '../core/batch.ts'
import {
  compressPayload, DEFAULTS, FieldsMemo, newLeafFields, prepareOwnedEnvelope, signPrepared, type Envelope, type EnvelopeFields, type Mode, type PreparedEnvelope
} from '../core/envelope.ts'
import { parsePattern, parseTopic, topicMatches } from '../core/topics.ts'
import {
  ClosedError, InvalidArgumentError, RemoteError, TimeoutError, UnreachableError, abortReason
} from '../core/errors.ts'
import { Channel } from '../util/channel.ts'
import { Reorderer } from '../delivery/ordering.ts'
import { isReceipt, MAX_RECEIPT_IDS, receiptPayload } from '../delivery/receipts.ts'
import type {
  AbortOptions, Agent, AgentStream, Message, MessagesOptions, Payload, RequestHandler, RequestOptions, SendOptions, SendResult, StreamHandler, SubscribeOptions, Subscription
} from '../node/types.ts'
import type { AgentTransport, ByteStream, Endpoint, SubmitSink } from '../routing/types.ts'
import { deliveryNow, toMessage } from './message.ts'
import { AgentConversations, type AgentSemantics, type ConversationEvent, type ConversationInfo } from './conversations.ts'
import { randomUUID } from 'node:crypto'
import { NoCommonVersionError, NOT_UNDERSTOOD_SCHEMA, parseUri, compareSemver, type NotUnderstoodPayload } from '../semantic/index.ts'

export interface CreateAgentOptions {
  network: string
  name?: string
  capabilities?: string[]
  kind?: 'local' | 'remote'
  /** Buffered messages per subscription before new ones are dropped (slow consumer). */
  subscriptionCapacity?: number
  /**
   * Schema registry and validation (src/sdk/conversations.ts): payloads are checked before
   * signing, protocol conversations are tracked. Nodes give their agents their registry.
   */
  semantics?: AgentSemantics
}

const DEFAULT_REQUEST_TIMEOUT_MS = 10_000
/** Durable message ids this agent remembers having processed (besides the node's durable marks). */
const RECENT_PROCESSED = 100_000
/** Durable messages held while no `messages()` iterator exists yet. */
const BACKLOG_MAX = 10_000
/**
 * Other messages for the inbox (direct, multicast, broadcast) held while no `messages()`
 * iterator exists yet: the newest this many (an older one goes when a newer one comes).
 */
export const EARLY_MAX = 1_000
/** A processed mark outlives the message by this much (the ingress skew tolerance and then some). */
const MARK_SLACK_MS = 60_000
/**
 * Publications signed under one batch signature at most (a proof is then ≤ 8 hashes). A
 * batch is signed at the end of the tick it was started in, or as soon as it is full.
 */
export const PUBLISH_BATCH_MAX = 256
/**
 * Buffered publications only (`publishBuffered`, in process): a batch that grew by at least
 * PUBLISH_BULK publications in a turn of the event loop (a bulk publisher) is not signed at
 * the end of that turn but looked at again after the next one, up to PUBLISH_DEFER_TURNS
 * times and PUBLISH_BATCH_MAX_BUSY publications: one signature here and one verification
 * at each receiver per 1 024 publications instead of per 256 (on the 2-core test machine an
 * Ed25519 verification costs ~220 µs, ~0.9 µs a message in batches of 256). A batch that
 * grows by less is signed at once, so a publisher that stops waits one turn at most.
 */
export const PUBLISH_BULK = 64
export const PUBLISH_BATCH_MAX_BUSY = MAX_BATCH
export const PUBLISH_DEFER_TURNS = 3
/** `publishBuffered` reports false above this many bytes queued towards other nodes. */
export const PUBLISH_HIGH_WATER_BYTES = 4 * 1024 * 1024
/** `drain` resolves once the queues are down to this. */
export const PUBLISH_LOW_WATER_BYTES = 1024 * 1024
/** Over a transport without a synchronous path, `publishBuffered` reports false beyond this many submits in flight. */
export const PUBLISH_MAX_INFLIGHT = 128

interface Queued {
  /** Until signed (then dropped: an awaited send's record lives on as its sink, `submitTo`). */
  p: PreparedEnvelope | undefined
  options?: SendOptions
  resolve?: (r: SendResult) => void
  reject?: (e: Error) => void
}

const NO_OPTIONS: SendOptions = Object.freeze({})
/** No extra fields (one object for every send that has none). */
const NO_EXTRA: Partial<EnvelopeFields> = Object.freeze({})
const ignore = (): void => {}

function isThenable<T> (v: T | Promise<T>): v is Promise<T> {
  return v != null && typeof (v as { then?: unknown }).then === 'function'
}

/** The fields that make an envelope the reply to `msg`: correlated, in its conversation. */
function replyFields (msg: Message, type: string): Partial<EnvelopeFields> {
  return msg.conversation === undefined ? { corr: msg.id, type } : { corr: msg.id, conv: msg.conversation, type }
}

function parseAgentId (s: unknown): AgentId {
  if (!isAgentId(s)) throw new InvalidArgumentError(`not an agent id (did:key): ${JSON.stringify(s)}`)
  return s
}

function encodePayload (payload: Payload, contentType?: string): { body: Uint8Array, ct: string } {
  if (payload instanceof Uint8Array) return { body: payload, ct: contentType ?? 'application/octet-stream' }
  if (payload === undefined) return { body: new TextEncoder().encode('null'), ct: contentType ?? DEFAULTS.contentType }
  let text: string
  try {
    text = JSON.stringify(payload)
  } catch (err) {
    throw new InvalidArgumentError(`payload is not JSON-serialisable: ${(err as Error).message}`)
  }
  return { body: new TextEncoder().encode(text), ct: contentType ?? DEFAULTS.contentType }
}

class Sub implements Subscription {
  readonly pattern: string
  readonly channel: Channel<Message>
  readonly closed: Promise<void>
  private readonly onEnd: (s: Sub) => void
  /** Decides, when the consumer takes a message, whether it is handed over (exactly-once for durable messages). */
  private readonly gate?: (m: Message) => Promise<boolean>
  /** A callback subscription: messages go here at once, never into the channel. */
  readonly onMessage?: (m: Message) => void
  /** The last topic matched against the pattern, and the outcome (a stream repeats its topic). */
  private lastTopic: string | undefined
  private lastMatch = false

  constructor (pattern: string, capacity: number, onEnd: (s: Sub) => void, signal?: AbortSignal, gate?: (m: Message) => Promise<boolean>, onMessage?: (m: Message) => void) {
    this.pattern = pattern
    this.channel = new Channel<Message>(capacity)
    this.closed = this.channel.closed
    this.onEnd = onEnd
    this.gate = gate
    this.onMessage = onMessage
    signal?.addEventListener('abort', () => { this.unsubscribe() }, { once: true })
  }

  matches (topic: string): boolean {
    if (topic !== this.lastTopic) {
      this.lastMatch = topicMatches(this.pattern, topic)
      this.lastTopic = topic
    }
    return this.lastMatch
  }

  push (msg: Message): void {
    // Expired while queued or in flight: TTL is honoured at the last step too.
    if (msg.timestamp + msg.ttl * 1000 < deliveryNow()) return
    const cb = this.onMessage
    if (cb === undefined) { this.channel.push(msg); return }
    if (this.channel.isEnded) return
    // The consumer's error is its own: it must not unwind the node's delivery loop.
    try { cb(msg) } catch {}
  }

  unsubscribe (): void {
    if (this.channel.isEnded) return
    this.channel.end()
    this.onEnd(this)
  }

  async [Symbol.asyncDispose] (): Promise<void> { this.unsubscribe() }

  [Symbol.asyncIterator] (): AsyncIterator<Message> {
    const it = this.channel[Symbol.asyncIterator]()
    const gate = this.gate
    // Durable ids this subscription handed over: a copy queued twice goes out once.
    const passed = new Set<string>()
    return {
      next: gate == null
        ? () => it.next()
        : async () => {
          for (;;) {
            const r = await it.next()
            if (r.done === true) return r
            if (!await gate(r.value)) continue
            if (r.value.envelope.dlv?.durable === true) {
              if (passed.has(r.value.id)) continue
              passed.add(r.value.id)
              if (passed.size > 10_000) passed.delete(passed.values().next().value as string)
            }
            return r
          }
        },
      return: async () => { this.unsubscribe(); return { value: undefined, done: true } }
    }
  }
}

export class AgentImpl implements Agent {
  readonly id: AgentId
  readonly name?: string
  private readonly key: AgentKey
  private readonly transport: AgentTransport
  private readonly opts: CreateAgentOptions
  private readonly subs = new Set<Sub>()
  private readonly inboxes = new Set<Sub>()
  private readonly patternRefs = new Map<string, number>()
  private readonly pending = new Map<string, { to: AgentId, resolve: (m: Message) => void, reject: (e: Error) => void }>()
  private readonly seqs = new Map<AgentId, number>()
  private readonly durableSeqs = new Map<AgentId, number>()
  private readonly reorder: Reorderer<Message>
  private readonly receiptSubs = new Set<Sub>()
  /** Durable ids processed by this agent object (a redelivery after a node restart is recognised without asking). */
  private readonly recent = new Set<string>()
  private readonly claims = new Map<string, Promise<boolean>>()
  /** Durable ids whose processed mark was asked for and never answered (never handed over). */
  private readonly inDoubt = new Set<string>()
  /** Durable ids queued for a consumer and not yet claimed: a redelivery meanwhile is not queued again. */
  private readonly queued = new Set<string>()
  /**
   * Durable messages a manual-ack `messages()` handed over and the application has not
   * acknowledged yet (bounded by the node's delivery window: it sends no more until acks).
   */
  private readonly unacked = new Map<string, { env: Envelope, owner: object }>()
  private backlog: Message[] = []
  /** Non-durable inbox messages that came before any `messages()` iterator (≤ EARLY_MAX, newest kept). */
  private early: Message[] = []
  private readonly receiptQueue = new Map<AgentId, MessageId[]>()
  private receiptFlush = false
  private handler?: RequestHandler
  private streamHandler?: StreamHandler
  private readonly handlerAborts = new AbortController()
  /** What every handler call gets (one object for all of them). */
  private readonly handlerContext = Object.freeze({ signal: this.handlerAborts.signal })
  private closed = false
  private lastTs = 0
  private nonce = 0
  /** Publications waiting for their batch signature (signed at the end of the tick). */
  private batch: Queued[] = []
  private batchScheduled = false
  /** The batch holds a publication someone awaits (or a durable send): it is kept to PUBLISH_BATCH_MAX and signed at the end of its tick. */
  private batchAwaited = false
  /** Counts signed batches: a deferred end of tick of a batch already signed does nothing. */
  private batchGen = 0
  /** Buffered publications submitted through a transport without `publishNow`, not yet settled. */
  private bufferedInflight = 0
  private bufferedWaiters: Array<() => void> = []
  /** The first failure of a buffered publication since the last drain(). */
  private bufferedError: Error | undefined
  readonly endpoint: Endpoint
  /** The semantic layer's state for this agent (absent without `semantics`). */
  readonly conversations?: AgentConversations
  /** Tracked deliveries are checked in arrival order. */
  private receiving: Promise<void> = Promise.resolve()
  /** The fields of this agent's envelopes checked lately (prepareOwnedEnvelope checks only what differs). */
  private readonly checkedFields = new FieldsMemo()

  constructor (key: AgentKey, transport: AgentTransport, opts: CreateAgentOptions) {
    this.id = key.id
    this.name = opts.name
    this.key = key
    this.transport = transport
    this.opts = opts
    this.reorder = new Reorderer((m) => { this.toInbox(m) })
    if (opts.semantics != null) this.conversations = new AgentConversations(key.id, opts.semantics)
    this.endpoint = {
      agent: this.id,
      name: opts.name,
      kind: opts.kind ?? 'local',
      caps: opts.capabilities ?? [],
      deliver: (env) => { this.onDeliver(env) },
      handlesRequests: () => this.handler != null,
      acceptsStreams: () => this.streamHandler != null,
      signRecord: (input) => this.key.sign(input)
    }
  }

  // ---- building envelopes ---------------------------------------------------------------

  /**
   * An envelope signed alone. Its fields are built in a plain object that becomes the
   * envelope as it is (prepareOwnedEnvelope), not copied as signEnvelope copies a caller's.
   */
  private envelope (mode: Mode, target: { to?: AgentId[], topic?: string }, payload: Payload, o: SendOptions, extra: Partial<EnvelopeFields> = {}, seq?: number, encoded?: { body: Uint8Array, ct: string }): Envelope {
    return signPrepared([prepareOwnedEnvelope(this.fields(mode, target, payload, o, extra, seq, encoded, false), this.key, this.checkedFields)], this.key)[0]
  }

  /** Fields for prepareOwnedEnvelope: on the batch envelopes' prototype when `leaf` (to be signed in a batch). */
  private fields (mode: Mode, target: { to?: AgentId[], topic?: string }, payload: Payload, o: SendOptions, extra: Partial<EnvelopeFields> = {}, seq?: number, encoded?: { body: Uint8Array, ct: string }, leaf = true): EnvelopeFields {
    if (this.closed) throw new ClosedError('agent closed')
    const { body, ct } = encoded ?? encodePayload(payload, o.contentType)
    const ts = Date.now()
    if (ts === this.lastTs) this.nonce++
    else { this.lastTs = ts; this.nonce = 0 }
    const wantsDelivery = o.confirm === true || o.retries != null || o.maxDeliveryMs != null || o.ordered === true || o.durable === true
    // Built without undefined members (also in dlv), so that prepareOwnedEnvelope can take
    // the object as it is instead of copying it — and on the batch envelopes' prototype, so
    // that signPrepared makes it the envelope without another copy.
    const f: Record<string, unknown> = leaf ? newLeafFields() : {}
    f.v = 1
    f.net = this.opts.network
    f.mode = mode
    f.type = o.type ?? 'inform'
    f.from = this.id
    if (target.to !== undefined) f.to = target.to
    if (target.topic !== undefined) f.topic = target.topic
    if (o.schema !== undefined) f.schema = o.schema
    if (o.protocol !== undefined) f.proto = o.protocol
    if (o.conversation !== undefined) f.conv = o.conversation
    if (o.correlation !== undefined) f.corr = o.correlation
    if (o.replyTo !== undefined) f.replyTo = o.replyTo
    f.ts = ts
    if (this.nonce > 0) f.nonce = this.nonce
    f.ttl = o.ttl ?? DEFAULTS.ttl
    f.hops = o.hops ?? DEFAULTS.hops
    f.prio = o.priority ?? DEFAULTS.prio
    if (wantsDelivery) {
      const d: Record<string, unknown> = {}
      if (o.confirm === true || (o.retries ?? 0) > 0) d.ack = true
      if (o.retries !== undefined) d.retries = o.retries
      if (o.maxDeliveryMs !== undefined) d.maxMs = o.maxDeliveryMs
      if (seq !== undefined) d.seq = seq
      if (o.durable === true) d.durable = true
      f.dlv = d
    }
    f.ct = ct
    if (o.compress === true) f.enc = 'gzip'
    f.body = o.compress === true ? compressPayload(body) : body
    for (const k in extra) {
      const v = (extra as Record<string, unknown>)[k]
      if (v !== undefined) f[k] = v
      else delete f[k]
    }
    const fields = f as unknown as EnvelopeFields
    return fields
  }

  // ---- batch-signed publications ----------------------------------------------------------

  /** Checks and encodes a publication now (errors throw here), signs it with its batch later. */
  private queuePublication (q: Queued): void {
    this.batch.push(q)
    if (q.resolve != null) this.batchAwaited = true
    if (this.batch.length >= (this.batchAwaited ? PUBLISH_BATCH_MAX : PUBLISH_BATCH_MAX_BUSY)) this.signBatch()
    else if (!this.batchScheduled) {
      this.batchScheduled = true
      const gen = this.batchGen
      queueMicrotask(() => { this.endOfTick(gen, 0, 0) })
    }
  }

  /**
   * The end of a turn in which batch `gen` was open: it is signed, unless it holds only
   * buffered publications and grew by PUBLISH_BULK or more since the last look (from `seen`)
   * — then it is looked at again after the next turn, at most PUBLISH_DEFER_TURNS times.
   */
  private endOfTick (gen: number, seen: number, turns: number): void {
    if (gen !== this.batchGen) return
    const n = this.batch.length
    if (n - seen >= PUBLISH_BULK && turns < PUBLISH_DEFER_TURNS && !this.batchAwaited && !this.closed && this.transport.publishNow != null) {
      setImmediate(() => { this.endOfTick(gen, n, turns + 1) })
      return
    }
    this.signBatch()
  }

  private signBatch (): void {
    this.batchScheduled = false
    if (this.batch.length === 0) return
    this.batchGen++
    this.batchAwaited = false
    const items = this.batch
    this.batch = []
    let envs: Envelope[]
    try {
      envs = signPrepared(items.map(q => q.p as PreparedEnvelope), this.key)
    } catch (err) {
      for (const q of items) {
        if (q.reject != null) q.reject(err as Error)
        else this.bufferedError ??= err as Error
      }
      return
    }
    const t = this.transport
    for (let i = 0; i < items.length; i++) {
      const q = items[i]
      const env = envs[i]
      if (q.resolve != null) {
        // In process: the record is the sink (no promise of the transport's, no `then`).
        if (t.submitTo != null) {
          q.p = undefined
          t.submitTo(env, q.options ?? NO_OPTIONS, q as SubmitSink)
        } else t.submit(env, q.options).then(q.resolve, q.reject)
      } else if (t.publishNow != null) {
        try { t.publishNow(env) } catch (err) { this.bufferedError ??= err as Error }
      } else {
        // A transport without a synchronous path (a remote agent's WebSocket): one submit
        // each, bounded in number; failures surface at the next drain().
        this.bufferedInflight++
        t.submit(env).then(() => {}, (err: Error) => { this.bufferedError ??= err }).finally(() => {
          this.bufferedInflight--
          if (this.bufferedInflight === 0) this.wakeBuffered()
        })
      }
    }
  }

  private wakeBuffered (): void {
    const waiters = this.bufferedWaiters
    this.bufferedWaiters = []
    for (const w of waiters) w()
  }

  /** True when the semantic layer has something to check or record for these options. */
  private semanticStep (o: SendOptions): boolean {
    return this.conversations != null && (o.schema != null || o.protocol != null || o.conversation != null)
  }

  /**
   * envelope(), after the semantic checks: the payload against its limits and schema, and a
   * protocol message against its conversation. Throws the typed error; nothing is sent.
   */
  private async checked (mode: Mode, target: { to?: AgentId[], topic?: string }, payload: Payload, o: SendOptions, extra: Partial<EnvelopeFields> = {}, seq?: number): Promise<Envelope> {
    const c = this.conversations
    const schema = extra.schema ?? o.schema
    const protocol = extra.proto ?? o.protocol
    // Messages naming neither a schema nor a protocol take the plain path: no extra work
    // per message where the semantic layer has nothing to check.
    if (c == null || (schema == null && protocol == null)) {
      const env = this.envelope(mode, target, payload, o, extra, seq)
      if (c != null && env.conv != null) c.record(env)
      return env
    }
    if (this.closed) throw new ClosedError('agent closed')
    const encoded = encodePayload(payload, o.contentType)
    await c.checkPayload({ schema, ct: encoded.ct, body: encoded.body }, o.signal)
    await c.checkStep({ type: extra.type ?? o.type ?? 'inform', protocol, conversation: extra.conv ?? o.conversation, schema, to: target.to ?? [] }, o.signal)
    const env = this.envelope(mode, target, payload, o, extra, seq, encoded)
    c.record(env)
    return env
  }

  /**
   * Durable sends are numbered from the clock (µs-scaled ms, then +1 per send), so the
   * numbers keep increasing across restarts of the sender: the recipient's store orders a
   * sender's pending messages by them. Not dense; the store does not wait for gaps.
   */
  private nextDurableSeq (to: AgentId): number {
    const n = Math.max((this.durableSeqs.get(to) ?? 0) + 1, Date.now() * 1000)
    this.durableSeqs.set(to, n)
    return n
  }

  private nextSeq (to: AgentId): number {
    const n = (this.seqs.get(to) ?? 0) + 1
    this.seqs.set(to, n)
    return n
  }

  // ---- sending --------------------------------------------------------------------------

  async publish (topic: string, payload: Payload, options: SendOptions = {}): Promise<SendResult> {
    if (options.durable === true) throw new InvalidArgumentError('durable delivery is for send() to one agent')
    if (this.semanticStep(options)) {
      const env = await this.checked('topic', { topic: parseTopic(topic) }, payload, options)
      return await this.transport.submit(env, options)
    }
    const p = prepareOwnedEnvelope(this.fields('topic', { topic: parseTopic(topic) }, payload, options), this.key, this.checkedFields)
    return await new Promise<SendResult>((resolve, reject) => { this.queuePublication({ p, options, resolve, reject }) })
  }

  publishBuffered (topic: string, payload: Payload, options: SendOptions = {}): boolean {
    if (options.durable === true) throw new InvalidArgumentError('durable delivery is for send() to one agent')
    if (this.semanticStep(options)) {
      // Schema and protocol checks are asynchronous (a registry fetch, maybe): such a
      // publication takes the checked path; a failure surfaces at the next drain().
      this.bufferedInflight++
      this.publish(topic, payload, options).then(() => {}, (err: Error) => { this.bufferedError ??= err }).finally(() => {
        this.bufferedInflight--
        if (this.bufferedInflight === 0) this.wakeBuffered()
      })
      return this.bufferedInflight < PUBLISH_MAX_INFLIGHT
    }
    const p = prepareOwnedEnvelope(this.fields('topic', { topic: parseTopic(topic) }, payload, options), this.key, this.checkedFields)
    this.queuePublication({ p })
    const t = this.transport
    // In process, the node's link queues are the backpressure (and a batch is handed over
    // synchronously when signed); a transport without that path has each envelope in flight.
    if (t.publishNow != null) return (t.queuedBytes?.() ?? 0) <= PUBLISH_HIGH_WATER_BYTES
    return (t.queuedBytes?.() ?? 0) <= PUBLISH_HIGH_WATER_BYTES && this.bufferedInflight + this.batch.length < PUBLISH_MAX_INFLIGHT
  }

  /**
   * Signs what is queued and waits for the node's queues (or a remote transport's submits
   * in flight) to go down. Rejects with the first error a buffered publication met since the
   * last drain (it was not published).
   */
  async drain (): Promise<void> {
    this.signBatch()
    await this.transport.drained?.(PUBLISH_LOW_WATER_BYTES)
    if (this.bufferedInflight > 0) await new Promise<void>(resolve => { this.bufferedWaiters.push(resolve) })
    const err = this.bufferedError
    if (err !== undefined) {
      this.bufferedError = undefined
      throw err
    }
  }

  send (to: AgentId | string, payload: Payload, options: SendOptions = {}): Promise<SendResult> {
    let id: AgentId
    let seq: number | undefined
    try {
      id = parseAgentId(to)
      seq = options.durable === true ? this.nextDurableSeq(id) : options.ordered === true ? this.nextSeq(id) : undefined
      if (options.durable === true && !this.semanticStep(options)) {
        // Durable sends made in the same tick share one batch signature, as publications do:
        // each envelope carries its inclusion proof, so it is stored and delivered alone, and
        // the home node verifies the batch's signature once. Submitted in call order. The
        // promise returned is the one the transport's answer settles (no `async` layer).
        // With the memo: sends to the same agent repeat every member but ts, nonce, body and
        // dlv.seq, checked and encoded in full once (FieldsMemo).
        const p = prepareOwnedEnvelope(this.fields('direct', { to: [id] }, payload, options, NO_EXTRA, seq), this.key, this.checkedFields)
        return new Promise<SendResult>((resolve, reject) => { this.queuePublication({ p, options, resolve, reject }) })
      }
    } catch (err) {
      return Promise.reject(err)
    }
    return this.sendChecked(id, payload, options, seq)
  }

  private async sendChecked (id: AgentId, payload: Payload, options: SendOptions, seq: number | undefined): Promise<SendResult> {
    const env = await this.checked('direct', { to: [id] }, payload, options, NO_EXTRA, seq)
    return await this.transport.submit(env, options)
  }

  async multicast (to: Array<AgentId | string>, payload: Payload, options: SendOptions = {}): Promise<SendResult> {
    if (options.durable === true) throw new InvalidArgumentError('durable delivery is for send() to one agent')
    if (!Array.isArray(to) || to.length === 0) throw new InvalidArgumentError('multicast needs at least one recipient')
    const ids = [...new Set(to.map(parseAgentId))]
    const env = await this.checked('multicast', { to: ids }, payload, options)
    return await this.transport.submit(env, options)
  }

  async broadcast (payload: Payload, options: SendOptions = {}): Promise<SendResult> {
    if (options.durable === true) throw new InvalidArgumentError('durable delivery is for send() to one agent')
    if (this.semanticStep(options)) {
      const env = await this.checked('broadcast', {}, payload, options)
      return await this.transport.submit(env, options)
    }
    const p = prepareOwnedEnvelope(this.fields('broadcast', {}, payload, options), this.key, this.checkedFields)
    return await new Promise<SendResult>((resolve, reject) => { this.queuePublication({ p, options, resolve, reject }) })
  }

  async request (to: AgentId | string, payload: Payload, options: RequestOptions = {}): Promise<Message> {
    if (options.durable === true) throw new InvalidArgumentError('a request cannot be durable: its reply is awaited now')
    const target = parseAgentId(to)
    const timeout = options.timeout ?? DEFAULT_REQUEST_TIMEOUT_MS
    // One controller bounds the node's work for this request (lookup, confirmation, retries)
    // by its deadline or the caller's signal. A plain timer and listener: AbortSignal.timeout
    // with AbortSignal.any costs ~6 µs a request and keeps a timer for the whole timeout.
    const ctl = new AbortController()
    const { promise, resolve, reject } = Promise.withResolvers<Message>()
    // Only `fail` (the timer, the caller's signal) can reject it before it is awaited below
    // (while the request is checked, or at once for a signal already aborted): it marks the
    // rejection handled first. Every other settlement comes after the await.
    const fail = (err: Error): void => { promise.catch(ignore); reject(err); ctl.abort(err) }
    const timer = setTimeout(() => { fail(new TimeoutError(`request to ${target} timed out after ${timeout} ms`)) }, timeout)
    timer.unref() // as AbortSignal.timeout's: a pending request alone does not keep a process up
    const user = options.signal
    const onAbort = user == null ? undefined : (): void => { fail(abortReason(user, `request to ${target}`)) }
    if (user != null && onAbort !== undefined) {
      if (user.aborted) onAbort()
      else user.addEventListener('abort', onAbort, { once: true })
    }
    let id: string | undefined
    try {
      const seq = options.ordered === true ? this.nextSeq(target) : undefined
      const extra = { type: options.type ?? 'request', replyTo: this.id }
      // Without a schema, protocol or conversation there is nothing to check: signed at once.
      const env = this.semanticStep(options) ? await this.checked('direct', { to: [target] }, payload, options, extra, seq) : this.envelope('direct', { to: [target] }, payload, options, extra, seq)
      if (ctl.signal.aborted) throw ctl.signal.reason
      id = env.id
      this.pending.set(env.id, { to: target, resolve, reject })
      // The transport resolves once the recipient's node confirmed delivery to a handler (the
      // reply itself confirms it), and rejects with NoRespondersError when there is none:
      // that failure ends the request; a success leaves it waiting for the reply.
      this.transport.submit(env, { signal: ctl.signal }).then(undefined, reject)
      const reply = await promise
      if (reply.type === 'failure') {
        let detail: unknown
        try { detail = reply.data() } catch { detail = undefined }
        const err = (detail as { error?: { code?: string, message?: string } } | undefined)?.error
        throw new RemoteError(err?.message ?? 'remote handler failed', { details: { code: err?.code, from: reply.from } })
      }
      return reply
    } finally {
      clearTimeout(timer)
      if (user != null && onAbort !== undefined) user.removeEventListener('abort', onAbort)
      if (id !== undefined) this.pending.delete(id)
    }
  }

  handle (handler: RequestHandler): () => void {
    this.handler = handler
    return () => { if (this.handler === handler) this.handler = undefined }
  }

  // ---- receiving ------------------------------------------------------------------------

  subscribe (pattern: string, options: SubscribeOptions = {}): Subscription {
    const p = parsePattern(pattern)
    if (this.closed) throw new ClosedError('agent closed')
    if (options.onMessage !== undefined && typeof options.onMessage !== 'function') throw new InvalidArgumentError('onMessage must be a function')
    const sub = new Sub(p, this.opts.subscriptionCapacity ?? 10_000, (s) => { this.dropSub(s) }, options.signal, undefined, options.onMessage)
    this.subs.add(sub)
    const refs = this.patternRefs.get(p) ?? 0
    this.patternRefs.set(p, refs + 1)
    if (refs === 0) void this.transport.subscribe(this.id, p).catch(() => { sub.channel.end(new ClosedError('subscribe failed')) })
    return sub
  }

  private dropSub (sub: Sub): void {
    if (this.inboxes.delete(sub)) return
    if (!this.subs.delete(sub)) return
    const refs = (this.patternRefs.get(sub.pattern) ?? 1) - 1
    if (refs <= 0) {
      this.patternRefs.delete(sub.pattern)
      void this.transport.unsubscribe(this.id, sub.pattern).catch(() => {})
    } else this.patternRefs.set(sub.pattern, refs)
  }

  /** The topic patterns this agent is subscribed to (re-applied after a reconnect). */
  patterns (): string[] {
    return [...this.patternRefs.keys()]
  }

  messages (options: MessagesOptions = {}): Subscription {
    if (this.closed) throw new ClosedError('agent closed')
    const ack = options.ack ?? 'auto'
    if (ack !== 'auto' && ack !== 'manual') throw new InvalidArgumentError(`ack must be 'auto' or 'manual', not ${String(ack)}`)
    const owner = {}
    const gate = ack === 'manual' ? async (m: Message) => await this.handOver(m, owner) : async (m: Message) => await this.admit(m)
    const onEnd = (s: Sub): void => {
      this.dropSub(s)
      if (ack === 'manual') this.release(owner)
    }
    const sub = new Sub('', this.opts.subscriptionCapacity ?? 10_000, onEnd, options.signal, gate)
    this.inboxes.add(sub)
    // Messages that arrived before anyone listened: durable ones, then the others.
    const held = this.backlog
    const early = this.early
    this.backlog = []
    this.early = []
    for (const m of held) sub.push(m)
    for (const m of early) sub.push(m)
    return sub
  }

  /**
   * Signed delivery receipts for this agent's durable sends, as messages of type `receipt`
   * (read them with `parseReceipt(msg.envelope)`: `{ by, ids }`; `msg.envelope.bytes` is
   * the portable proof, `verifyReceipt(bytes)`).
   */
  receipts (options: AbortOptions = {}): Subscription {
    if (this.closed) throw new ClosedError('agent closed')
    const sub = new Sub('', this.opts.subscriptionCapacity ?? 10_000, (s) => { this.receiptSubs.delete(s) }, options.signal)
    this.receiptSubs.add(sub)
    return sub
  }

  // ---- exactly-once durable delivery ---------------------------------------------------

  /**
   * Called when a consumer takes a message from `messages()`. A durable message is handed
   * over only if it is newly marked processed — durably, in the node's store — so a
   * redelivery after a reconnect or a restart of either side never reaches a consumer
   * twice; the receipt goes out once the mark is durable. If the mark cannot be written
   * (node gone), the message is held back: it stays unacknowledged and comes again.
   */
  private async admit (m: Message): Promise<boolean> {
    const env = m.envelope
    if (env.dlv?.durable !== true) return true
    return await this.claimOnce(env)
  }

  /** `claim(env)`, shared by every caller while it runs (and remembered a while after). */
  private claimOnce (env: Envelope): Promise<boolean> {
    let p = this.claims.get(env.id)
    if (p == null) {
      p = this.claim(env)
      this.claims.set(env.id, p)
      if (this.claims.size > 10_000) this.claims.delete(this.claims.keys().next().value as string)
    }
    return p
  }

  /**
   * The gate of a manual-ack `messages()`: a durable message is handed over unless this
   * agent processed it already (here, or — the node's mark says so — before a restart, when
   * only its receipt was lost) or handed it over and awaits its `ack`. Nothing is marked
   * now: that is `ack()`'s. A look-up that fails (node gone) holds the message back; it
   * comes again.
   */
  private async handOver (m: Message, owner: object): Promise<boolean> {
    const env = m.envelope
    if (env.dlv?.durable !== true) return true
    if (this.recent.has(env.id) || this.unacked.has(env.id)) return false
    // undefined: the look-up failed.
    const processed = await Promise.resolve(this.transport.isProcessed?.(this.id, env.id) ?? false).catch(() => undefined)
    this.queued.delete(env.id)
    if (processed === undefined) return false
    if (processed) {
      this.remember(env.id)
      this.queueReceipt(env.from, env.id)
      return false
    }
    if (this.recent.has(env.id) || this.unacked.has(env.id)) return false
    this.unacked.set(env.id, { env, owner })
    return true
  }

  /**
   * A manual-ack `messages()` ended: what it handed over and was never acknowledged goes to
   * the next inbox iterator at once (in the order taken), not after the node's redelivery.
   */
  private release (owner: object): void {
    const back: Envelope[] = []
    for (const [id, u] of this.unacked) {
      if (u.owner !== owner) continue
      this.unacked.delete(id)
      back.push(u.env)
    }
    if (this.closed) return
    for (const env of back) this.dispatch(env)
  }

  async ack (msg: Message): Promise<void> {
    const env = msg.envelope
    if (env.dlv?.durable !== true) return
    if (this.recent.has(env.id)) return
    if (!this.unacked.has(env.id)) throw new InvalidArgumentError(`message ${env.id} was not handed over for acknowledgement (take it from messages({ ack: 'manual' }) of this agent)`)
    await this.claimOnce(env)
    this.unacked.delete(env.id)
    // claim() remembers the id once the mark is durable (new or found set).
    if (!this.recent.has(env.id)) throw new UnreachableError(`the acknowledgement of ${env.id} could not be recorded (node unreachable); the message comes again`)
  }

  private async claim (env: Envelope): Promise<boolean> {
    let fresh: boolean
    try {
      fresh = this.transport.markProcessed != null
        ? await this.transport.markProcessed(this.id, env.id, env.ts + env.ttl * 1000 + MARK_SLACK_MS)
        : !this.recent.has(env.id)
    } catch {
      // Outcome unknown (the node went away mid-call): the mark may be durable or not. Not
      // handed over now; the message comes again, and then a mark found already set by this
      // very attempt still counts as ours.
      this.inDoubt.add(env.id)
      if (this.inDoubt.size > RECENT_PROCESSED) this.inDoubt.delete(this.inDoubt.values().next().value as string)
      this.claims.delete(env.id)
      this.queued.delete(env.id)
      return false
    }
    if (!fresh && this.inDoubt.has(env.id)) fresh = true
    this.inDoubt.delete(env.id)
    this.queued.delete(env.id)
    this.remember(env.id)
    this.queueReceipt(env.from, env.id)
    return fresh
  }

  private remember (id: string): void {
    this.recent.add(id)
    if (this.recent.size > RECENT_PROCESSED) this.recent.delete(this.recent.values().next().value as string)
  }

  private queueReceipt (to: AgentId, id: MessageId): void {
    let ids = this.receiptQueue.get(to)
    if (ids == null) { ids = []; this.receiptQueue.set(to, ids) }
    ids.push(id)
    if (this.receiptFlush) return
    this.receiptFlush = true
    setImmediate(() => { this.receiptFlush = false; this.flushReceipts() })
  }

  /** One signed receipt per sender and batch (at most MAX_RECEIPT_IDS ids each). */
  private flushReceipts (): void {
    if (this.closed) return
    const queued = [...this.receiptQueue]
    this.receiptQueue.clear()
    for (const [to, ids] of queued) {
      for (let i = 0; i < ids.length; i += MAX_RECEIPT_IDS) {
        const chunk = ids.slice(i, i + MAX_RECEIPT_IDS)
        let env: Envelope
        try {
          // `confirm`: the sender's node answers once its log has the acknowledgements, and the
          // home node keeps the receipt until then (PROTOCOL.md 8.4.4).
          env = this.envelope('direct', { to: [to] }, receiptPayload(chunk), { type: 'receipt', ttl: 3600, confirm: true }, { corr: chunk[0] })
        } catch { continue }
        // Unacknowledged messages come again, and are receipted again then.
        void this.transport.submit(env).catch(() => {})
      }
    }
  }

  private toInbox (msg: Message): void {
    if (this.inboxes.size === 0) {
      if (this.early.length >= EARLY_MAX) this.early.shift()
      this.early.push(msg)
      return
    }
    for (const s of this.inboxes) s.push(msg)
  }

  private onDeliver (env: Envelope): void {
    if (this.closed) return
    const c = this.conversations
    if (c != null && env.conv != null && env.mode !== 'topic' && env.mode !== 'broadcast') {
      // Conversation steps are checked in arrival order; a refused one is answered, not delivered.
      this.receiving = this.receiving.then(async () => {
        const refusal = env.proto != null ? await c.receive(env) : undefined
        if (this.closed) return
        c.record(env)
        if (refusal == null) { this.dispatch(env); return }
        await this.answerNotUnderstood(env, refusal).catch(() => { /* sender gone */ })
      })
      return
    }
    this.dispatch(env)
  }

  private async answerNotUnderstood (env: Envelope, payload: NotUnderstoodPayload): Promise<void> {
    const to = env.replyTo != null && isAgentId(env.replyTo) ? env.replyTo : env.from
    const fields: Partial<EnvelopeFields> = { type: 'not-understood', schema: NOT_UNDERSTOOD_SCHEMA, corr: env.id, conv: env.conv, proto: env.proto }
    const out = this.envelope('direct', { to: [to] }, payload, {}, fields)
    this.conversations?.record(out)
    await this.transport.submit(out)
  }

  private dispatch (env: Envelope): void {
    const msg = toMessage(env)
    if (isReceipt(env)) {
      for (const s of this.receiptSubs) s.push(msg)
      return
    }
    if (env.dlv?.durable === true) {
      // Already processed by this agent: only the acknowledgement may have been lost.
      if (this.recent.has(env.id)) { this.queueReceipt(env.from, env.id); return }
      // Handed over by a manual-ack inbox and not acknowledged yet: the node's redelivery.
      if (this.queued.has(env.id) || this.unacked.has(env.id)) return
      if (this.queued.size < BACKLOG_MAX * 10) this.queued.add(env.id)
      // In the order the node's store gives (per-sender seq), not through the reorderer.
      if (this.inboxes.size === 0) { if (this.backlog.length < BACKLOG_MAX) this.backlog.push(msg); return }
      this.toInbox(msg)
      return
    }
    if (env.mode === 'topic') {
      for (const s of this.subs) if (s.matches(env.topic as string)) s.push(msg)
      return
    }
    if (env.corr != null) {
      const p = this.pending.get(env.corr)
      if (p != null && p.to === env.from) { p.resolve(msg); return }
    }
    if (env.replyTo != null && env.corr == null && this.handler != null) {
      this.answer(msg, this.handler)
      return
    }
    const seq = env.dlv?.seq
    if (seq != null) this.reorder.push(env.from, seq, msg)
    else this.toInbox(msg)
  }

  /**
   * Runs the handler and sends its answer. A handler that returns a value (not a promise)
   * is answered at once, in the delivery's own call: no promise or closure per request.
   */
  private answer (msg: Message, handler: RequestHandler): void {
    const replyTo = msg.replyTo as string
    if (!isAgentId(replyTo)) return
    let value: Payload | Promise<Payload>
    try {
      value = handler(msg, this.handlerContext)
    } catch (err) {
      this.sendAnswer(msg, replyTo, false, err)
      return
    }
    if (isThenable(value)) {
      value.then((v) => { this.sendAnswer(msg, replyTo, true, v) }, (err: unknown) => { this.sendAnswer(msg, replyTo, false, err) })
    } else this.sendAnswer(msg, replyTo, true, value)
  }

  /** The reply to `msg`: the handler's value (`ok`), or a `failure` with its error. */
  private sendAnswer (msg: Message, replyTo: string, ok: boolean, outcome: unknown): void {
    if (this.closed) return
    const to = [replyTo as AgentId]
    let env: Envelope
    try {
      env = ok ? this.envelope('direct', { to }, outcome as Payload, NO_OPTIONS, replyFields(msg, 'inform')) : this.failureReply(msg, to, outcome)
    } catch (err) {
      // e.g. a reply that is not JSON-serialisable or too large
      try { env = this.failureReply(msg, to, err) } catch { return }
    }
    // Nobody awaits the outcome (a requester gone is told by its timeout): without a promise where the transport can.
    const t = this.transport
    if (t.sendNow !== undefined) t.sendNow(env)
    else t.submit(env).catch(ignore)
  }

  private failureReply (msg: Message, to: AgentId[], err: unknown): Envelope {
    const e = err as { code?: string, message?: string } | undefined
    return this.envelope('direct', { to }, { error: { code: e?.code ?? 'HandlerError', message: e?.message ?? String(err) } }, NO_OPTIONS, replyFields(msg, 'failure'))
  }

  // ---- conversations (the semantic layer) ----------------------------------------------------

  private get semantic (): AgentConversations {
    if (this.conversations == null) throw new InvalidArgumentError('this agent has no schema registry (created without semantics)')
    return this.conversations
  }

  /**
   * Answers `to` within its conversation: direct to its `replyTo` (or sender), same
   * conversation and protocol, correlated with it; `type` is the performative.
   */
  async reply (to: Message, payload: Payload, options: SendOptions & { type: string }): Promise<SendResult> {
    const target = to.replyTo != null && isAgentId(to.replyTo) ? to.replyTo : to.from
    const o: SendOptions = { ...options, conversation: options.conversation ?? to.conversation, protocol: options.protocol ?? to.protocol, correlation: to.id }
    return await this.send(target, payload, o)
  }

  /**
   * Picks the protocol version to use with `with` (the highest version every party
   * advertises in its agent record, when `protocol` names no version) and a conversation id.
   * Throws NoCommonVersionError when there is none. Send the opening message with
   * `{ protocol, conversation, type }` from the result.
   */
  async openConversation (options: { protocol: string, with: Array<AgentId | string>, id?: string } & AbortOptions): Promise<{ conversation: string, protocol: string }> {
    const c = this.semantic
    const peers = options.with.map(parseAgentId)
    let uri = options.protocol
    if (parseUri(uri) == null) {
      const picked = await Promise.all(peers.map(async (p) => await c.negotiate(this.opts.capabilities ?? [], p, options.protocol, options)))
      const majors = new Set(picked.map(u => parseUri(u)?.version.major))
      if (majors.size > 1) throw new NoCommonVersionError(`the parties share no major version of ${options.protocol}: ${picked.join(', ')}`, { details: { name: options.protocol, picked } })
      uri = picked.sort((a, b) => compareSemver((parseUri(a) as NonNullable<ReturnType<typeof parseUri>>).version, (parseUri(b) as NonNullable<ReturnType<typeof parseUri>>).version))[0] ?? uri
    }
    await c.semantics.registry.protocol(uri, options)
    return { conversation: options.id ?? randomUUID(), protocol: uri }
  }

  /**
   * Registers a translator from one schema to another (`fn` gets a copy of the value). In-process
   * agents share their node's registry, so the translator serves every local agent. Returns
   * the function that removes it.
   */
  registerTranslator (from: string, to: string, fn: (value: unknown) => unknown): () => void {
    return this.semantic.semantics.registry.registerTranslator(from, to, fn)
  }

  /**
   * The payload of `msg` under one of the schemas in `to`: as it is when it already names one
   * of them, else through the shortest chain of translators (and implicit upgrades within a
   * major), validated at every step. Throws TranslationError.
   */
  async translate (msg: Message, to: string | string[], options: AbortOptions = {}): Promise<{ value: unknown, schema: string }> {
    if (msg.schema == null) throw new InvalidArgumentError(`message ${msg.id} names no schema`)
    return await this.semantic.semantics.registry.translate(msg.data(), msg.schema, to, options)
  }

  /** This agent's view of a conversation with `peer`: state, status, and the steps expected next. */
  conversation (conversation: string, peer: AgentId | string): ConversationInfo | undefined {
    return this.semantic.info(conversation, parseAgentId(peer))
  }

  /** Timeouts that fired and incoming steps refused with not-understood, as they happen. */
  conversationEvents (options: AbortOptions = {}): AsyncIterable<ConversationEvent> & { close: () => void } {
    return this.semantic.subscribe(options.signal)
  }

  /** The messages exchanged with `peer` in `conversation`, as an export file for `fedmesh audit`. */
  exportConversation (conversation: string, peer: AgentId | string): Uint8Array {
    return this.semantic.export(conversation, parseAgentId(peer))
  }

  // ---- streams --------------------------------------------------------------------------

  async openStream (to: AgentId | string, name: string, options: AbortOptions = {}): Promise<AgentStream> {
    const target = parseAgentId(to)
    if (typeof name !== 'string' || name.length === 0 || name.length > 128) throw new InvalidArgumentError('stream name must be 1–128 characters')
    const open = this.envelope('direct', { to: [target] }, { name }, { type: 'stream' })
    const raw = await this.transport.openStream(open, options)
    return agentStream(raw, target, name)
  }

  onStream (handler: StreamHandler): () => void {
    this.streamHandler = handler
    return () => { if (this.streamHandler === handler) this.streamHandler = undefined }
  }

  /** Called by the transport for an accepted incoming stream. */
  acceptStream (raw: ByteStream, open: Envelope): void {
    const handler = this.streamHandler
    const msg = toMessage(open)
    let name = ''
    try { name = String((msg.data() as { name?: unknown }).name ?? '') } catch {}
    if (handler == null) { raw.abort(new ClosedError('no stream handler')); return }
    void Promise.resolve(handler(agentStream(raw, open.from, name), msg)).catch((err: Error) => { raw.abort(err) })
  }

  /** True once `close()` was called. */
  get isClosed (): boolean { return this.closed }

  async close (): Promise<void> {
    if (this.closed) return
    this.signBatch()
    this.closed = true
    this.handlerAborts.abort(new ClosedError('agent closed'))
    for (const s of [...this.subs, ...this.inboxes, ...this.receiptSubs]) s.unsubscribe()
    for (const p of this.pending.values()) p.reject(new ClosedError('agent closed'))
    this.reorder.close()
    this.conversations?.close()
    await this.transport.detach(this.id)
  }
}

function agentStream (raw: ByteStream, remote: AgentId, name: string): AgentStream {
  return {
    remote,
    name,
    write: async (chunk, options) => { await raw.write(chunk, options) },
    close: async () => { await raw.close() },
    abort: (err) => { raw.abort(err) },
    [Symbol.asyncIterator]: () => raw[Symbol.asyncIterator]()
  }
}

/** Creates an agent on a transport and attaches it (its record is published). */
export async function createAgent (key: AgentKey, transport: AgentTransport, opts: CreateAgentOptions): Promise<AgentImpl> {
  const agent = new AgentImpl(key, transport, opts)
  await transport.attach(agent.endpoint, (stream, open) => { agent.acceptStream(stream, open) })
  return agent
}

export type { MessageId }
