/**
 * The Agent: builds and signs envelopes, turns deliveries into async-iterable
 * subscriptions, correlates requests with replies, runs the request handler and
 * opens/accepts streams. It talks to its node only through an AgentTransport, so the
 * same code serves in-process agents and remote agents over the WebSocket API.
 */
import type { AgentId, MessageId } from '../core/ids.ts'
import type { AgentKey } from '../core/keys.ts'
import { isAgentId } from '../core/keys.ts'
import {
  compressPayload, DEFAULTS, prepareEnvelope, signEnvelope, signPrepared, type Envelope, type EnvelopeFields, type Mode, type PreparedEnvelope
} from '../core/envelope.ts'
import { parsePattern, parseTopic, topicMatches } from '../core/topics.ts'
import {
  ClosedError, InvalidArgumentError, RemoteError, abortReason
} from '../core/errors.ts'
import { Channel } from '../util/channel.ts'
import { Reorderer } from '../delivery/ordering.ts'
import type {
  AbortOptions, Agent, AgentStream, Message, Payload, RequestHandler, RequestOptions, SendOptions, SendResult, StreamHandler, Subscription
} from '../node/types.ts'
import type { AgentTransport, ByteStream, Endpoint } from '../routing/types.ts'
import { toMessage } from './message.ts'

export interface CreateAgentOptions {
  network: string
  name?: string
  capabilities?: string[]
  kind?: 'local' | 'remote'
  /** Buffered messages per subscription before new ones are dropped (slow consumer). */
  subscriptionCapacity?: number
}

const DEFAULT_REQUEST_TIMEOUT_MS = 10_000
/**
 * Publications signed under one batch signature at most (a proof is then ≤ 8 hashes). A
 * batch is signed at the end of the tick it was started in, or as soon as it is full.
 */
export const PUBLISH_BATCH_MAX = 256
/** `publishBuffered` reports false above this many bytes queued towards other nodes. */
export const PUBLISH_HIGH_WATER_BYTES = 4 * 1024 * 1024
/** `drain` resolves once the queues are down to this. */
export const PUBLISH_LOW_WATER_BYTES = 1024 * 1024
/** Over a transport without a synchronous path, `publishBuffered` reports false beyond this many submits in flight. */
export const PUBLISH_MAX_INFLIGHT = 128

interface Queued {
  p: PreparedEnvelope
  options?: SendOptions
  resolve?: (r: SendResult) => void
  reject?: (e: Error) => void
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

  constructor (pattern: string, capacity: number, onEnd: (s: Sub) => void, signal?: AbortSignal) {
    this.pattern = pattern
    this.channel = new Channel<Message>(capacity)
    this.closed = this.channel.closed
    this.onEnd = onEnd
    signal?.addEventListener('abort', () => { this.unsubscribe() }, { once: true })
  }

  push (msg: Message): void {
    // Expired while queued or in flight: TTL is honoured at the last step too.
    if (msg.timestamp + msg.ttl * 1000 < Date.now()) return
    this.channel.push(msg)
  }

  unsubscribe (): void {
    if (this.channel.isEnded) return
    this.channel.end()
    this.onEnd(this)
  }

  async [Symbol.asyncDispose] (): Promise<void> { this.unsubscribe() }

  [Symbol.asyncIterator] (): AsyncIterator<Message> {
    const it = this.channel[Symbol.asyncIterator]()
    return {
      next: () => it.next(),
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
  private readonly reorder: Reorderer<Message>
  private handler?: RequestHandler
  private streamHandler?: StreamHandler
  private readonly handlerAborts = new AbortController()
  private closed = false
  private lastTs = 0
  private nonce = 0
  /** Publications waiting for their batch signature (signed at the end of the tick). */
  private batch: Queued[] = []
  private batchScheduled = false
  /** Buffered publications submitted through a transport without `publishNow`, not yet settled. */
  private bufferedInflight = 0
  private bufferedWaiters: Array<() => void> = []
  /** The first failure of a buffered publication since the last drain(). */
  private bufferedError: Error | undefined
  readonly endpoint: Endpoint

  constructor (key: AgentKey, transport: AgentTransport, opts: CreateAgentOptions) {
    this.id = key.id
    this.name = opts.name
    this.key = key
    this.transport = transport
    this.opts = opts
    this.reorder = new Reorderer((m) => { this.toInbox(m) })
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

  private envelope (mode: Mode, target: { to?: AgentId[], topic?: string }, payload: Payload, o: SendOptions, extra: Partial<EnvelopeFields> = {}, seq?: number): Envelope {
    return signEnvelope(this.fields(mode, target, payload, o, extra, seq), this.key)
  }

  private fields (mode: Mode, target: { to?: AgentId[], topic?: string }, payload: Payload, o: SendOptions, extra: Partial<EnvelopeFields> = {}, seq?: number): EnvelopeFields {
    if (this.closed) throw new ClosedError('agent closed')
    const { body, ct } = encodePayload(payload, o.contentType)
    const ts = Date.now()
    if (ts === this.lastTs) this.nonce++
    else { this.lastTs = ts; this.nonce = 0 }
    const wantsDelivery = o.confirm === true || o.retries != null || o.maxDeliveryMs != null || o.ordered === true
    const fields: EnvelopeFields = {
      v: 1,
      net: this.opts.network as EnvelopeFields['net'],
      mode,
      type: o.type ?? 'inform',
      from: this.id,
      to: target.to,
      topic: target.topic as EnvelopeFields['topic'],
      schema: o.schema,
      proto: o.protocol,
      conv: o.conversation,
      corr: o.correlation,
      replyTo: o.replyTo,
      ts,
      nonce: this.nonce > 0 ? this.nonce : undefined,
      ttl: o.ttl ?? DEFAULTS.ttl,
      hops: o.hops ?? DEFAULTS.hops,
      prio: o.priority ?? DEFAULTS.prio,
      dlv: wantsDelivery
        ? { ack: o.confirm === true || (o.retries ?? 0) > 0 ? true : undefined, retries: o.retries, maxMs: o.maxDeliveryMs, seq }
        : undefined,
      ct,
      enc: o.compress === true ? 'gzip' : undefined,
      body: o.compress === true ? compressPayload(body) : body,
      ...extra
    }
    return fields
  }

  // ---- batch-signed publications ----------------------------------------------------------

  /** Checks and encodes a publication now (errors throw here), signs it with its batch later. */
  private queuePublication (q: Queued): void {
    this.batch.push(q)
    if (this.batch.length >= PUBLISH_BATCH_MAX) this.signBatch()
    else if (!this.batchScheduled) {
      this.batchScheduled = true
      queueMicrotask(() => { this.signBatch() })
    }
  }

  private signBatch (): void {
    this.batchScheduled = false
    if (this.batch.length === 0) return
    const items = this.batch
    this.batch = []
    let envs: Envelope[]
    try {
      envs = signPrepared(items.map(q => q.p), this.key)
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
      if (q.resolve != null) t.submit(env, q.options).then(q.resolve, q.reject)
      else if (t.publishNow != null) {
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

  private nextSeq (to: AgentId): number {
    const n = (this.seqs.get(to) ?? 0) + 1
    this.seqs.set(to, n)
    return n
  }

  // ---- sending --------------------------------------------------------------------------

  async publish (topic: string, payload: Payload, options: SendOptions = {}): Promise<SendResult> {
    const p = prepareEnvelope(this.fields('topic', { topic: parseTopic(topic) }, payload, options), this.key)
    return await new Promise<SendResult>((resolve, reject) => { this.queuePublication({ p, options, resolve, reject }) })
  }

  publishBuffered (topic: string, payload: Payload, options: SendOptions = {}): boolean {
    const p = prepareEnvelope(this.fields('topic', { topic: parseTopic(topic) }, payload, options), this.key)
    this.queuePublication({ p })
    return (this.transport.queuedBytes?.() ?? 0) <= PUBLISH_HIGH_WATER_BYTES &&
      this.bufferedInflight + this.batch.length < PUBLISH_MAX_INFLIGHT
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

  async send (to: AgentId | string, payload: Payload, options: SendOptions = {}): Promise<SendResult> {
    const id = parseAgentId(to)
    const env = this.directEnvelope('direct', [id], payload, options)
    return await this.transport.submit(env, options)
  }

  async multicast (to: Array<AgentId | string>, payload: Payload, options: SendOptions = {}): Promise<SendResult> {
    if (!Array.isArray(to) || to.length === 0) throw new InvalidArgumentError('multicast needs at least one recipient')
    const ids = [...new Set(to.map(parseAgentId))]
    const env = this.envelope('multicast', { to: ids }, payload, options)
    return await this.transport.submit(env, options)
  }

  async broadcast (payload: Payload, options: SendOptions = {}): Promise<SendResult> {
    const p = prepareEnvelope(this.fields('broadcast', {}, payload, options), this.key)
    return await new Promise<SendResult>((resolve, reject) => { this.queuePublication({ p, options, resolve, reject }) })
  }

  private directEnvelope (mode: 'direct', to: AgentId[], payload: Payload, options: SendOptions, extra: Partial<EnvelopeFields> = {}): Envelope {
    const seq = options.ordered === true ? this.nextSeq(to[0]) : undefined
    return this.envelope(mode, { to }, payload, options, extra, seq)
  }

  async request (to: AgentId | string, payload: Payload, options: RequestOptions = {}): Promise<Message> {
    const target = parseAgentId(to)
    const timeout = options.timeout ?? DEFAULT_REQUEST_TIMEOUT_MS
    const signal = AbortSignal.any([AbortSignal.timeout(timeout), ...(options.signal != null ? [options.signal] : [])])
    const env = this.directEnvelope('direct', [target], payload, { ...options, type: options.type ?? 'request', replyTo: this.id })
    const { promise, resolve, reject } = Promise.withResolvers<Message>()
    promise.catch(() => {}) // observed below; this only keeps a late rejection from going unhandled
    const onAbort = (): void => { reject(abortReason(signal, `request to ${target}`)) }
    signal.addEventListener('abort', onAbort, { once: true })
    this.pending.set(env.id, { to: target, resolve, reject })
    try {
      // The transport resolves once the recipient's node confirmed delivery to a handler,
      // and rejects with NoRespondersError when there is none.
      const submitted = this.transport.submit(env, { signal })
      submitted.catch(() => {})
      await Promise.race([submitted, promise])
      const reply = await promise
      if (reply.type === 'failure') {
        let detail: unknown
        try { detail = reply.data() } catch { detail = undefined }
        const err = (detail as { error?: { code?: string, message?: string } } | undefined)?.error
        throw new RemoteError(err?.message ?? 'remote handler failed', { details: { code: err?.code, from: reply.from } })
      }
      return reply
    } finally {
      signal.removeEventListener('abort', onAbort)
      this.pending.delete(env.id)
    }
  }

  handle (handler: RequestHandler): () => void {
    this.handler = handler
    return () => { if (this.handler === handler) this.handler = undefined }
  }

  // ---- receiving ------------------------------------------------------------------------

  subscribe (pattern: string, options: AbortOptions = {}): Subscription {
    const p = parsePattern(pattern)
    if (this.closed) throw new ClosedError('agent closed')
    const sub = new Sub(p, this.opts.subscriptionCapacity ?? 10_000, (s) => { this.dropSub(s) }, options.signal)
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

  messages (options: AbortOptions = {}): Subscription {
    if (this.closed) throw new ClosedError('agent closed')
    const sub = new Sub('', this.opts.subscriptionCapacity ?? 10_000, (s) => { this.dropSub(s) }, options.signal)
    this.inboxes.add(sub)
    return sub
  }

  private toInbox (msg: Message): void {
    for (const s of this.inboxes) s.push(msg)
  }

  private onDeliver (env: Envelope): void {
    if (this.closed) return
    const msg = toMessage(env)
    if (env.mode === 'topic') {
      for (const s of this.subs) if (topicMatches(s.pattern, env.topic as string)) s.push(msg)
      return
    }
    if (env.corr != null) {
      const p = this.pending.get(env.corr)
      if (p != null && p.to === env.from) { p.resolve(msg); return }
    }
    if (env.replyTo != null && env.corr == null && this.handler != null) {
      void this.answer(msg, this.handler)
      return
    }
    const seq = env.dlv?.seq
    if (seq != null) this.reorder.push(env.from, seq, msg)
    else this.toInbox(msg)
  }

  private async answer (msg: Message, handler: RequestHandler): Promise<void> {
    const replyTo = msg.replyTo as string
    if (!isAgentId(replyTo)) return
    const reply = { corr: msg.id, conv: msg.conversation }
    const failure = (err: unknown): Envelope => {
      const e = err as { code?: string, message?: string }
      return this.envelope('direct', { to: [replyTo] }, { error: { code: e.code ?? 'HandlerError', message: e.message ?? String(err) } }, {}, { ...reply, type: 'failure' })
    }
    let outcome: { ok: true, value: Payload } | { ok: false, error: unknown }
    try {
      outcome = { ok: true, value: await handler(msg, { signal: this.handlerAborts.signal }) }
    } catch (error) {
      outcome = { ok: false, error }
    }
    if (this.closed) return
    let env: Envelope
    try {
      env = outcome.ok ? this.envelope('direct', { to: [replyTo] }, outcome.value, {}, { ...reply, type: 'inform' }) : failure(outcome.error)
    } catch (err) {
      env = failure(err) // e.g. a reply that is not JSON-serialisable or too large
    }
    await this.transport.submit(env).catch(() => { /* requester gone: its timeout reports it */ })
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

  async close (): Promise<void> {
    if (this.closed) return
    this.signBatch()
    this.closed = true
    this.handlerAborts.abort(new ClosedError('agent closed'))
    for (const s of [...this.subs, ...this.inboxes]) s.unsubscribe()
    for (const p of this.pending.values()) p.reject(new ClosedError('agent closed'))
    this.reorder.close()
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
