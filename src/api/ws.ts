/**
 * One WebSocket connection of the node API (protocol in api/protocol.ts and docs/API.md):
 * subscriptions streamed to people and scripts, and remote agents attached as Endpoints
 * after proving possession of their key. Everything per connection is bounded: message
 * size (by the server's maxPayload), subscriptions, submits in flight, and the send
 * buffer — a client that does not read is dropped with a reason instead of buffered for.
 */
import { randomBytes } from 'node:crypto'
import type { WebSocket, RawData } from 'ws'
import type { AgentId, MessageId } from '../core/ids.ts'
import { isAgentId, verifyByDid } from '../core/keys.ts'
import { parsePattern } from '../core/topics.ts'
import { decodeEnvelope, LIMITS, type Envelope } from '../core/envelope.ts'
import { checkEnvelopeContext } from '../core/ingress.ts'
import { VerifiedRoots } from '../core/batch.ts'
import {
  AbortError, ClosedError, FedmeshError, InvalidArgumentError, InvalidEnvelopeError, MessageTooLargeError, TimeoutError, UnauthorizedError
} from '../core/errors.ts'
import { AGENT_NAME_RE } from '../node/datadir.ts'
import type { Agent, Logger, Message, Subscription } from '../node/types.ts'
import type { Endpoint } from '../routing/types.ts'
import { ConflictError, NotSupportedError, TooManyRequestsError, errorBody, errorFromJson } from './errors.ts'
import { MAX_STREAMS_PER_CONNECTION, WsByteStream, pipeStream, type StreamWireMessage } from './ws-streams.ts'
import type { ByteStream } from '../routing/types.ts'
import { fromBase64, toBase64 } from '../util/base64.ts'
import type { ApiMetrics } from './metrics.ts'
import {
  ATTACH_NONCE_BYTES, WS_CLOSE, WS_LIMITS, WS_PROTOCOL_VERSION, attachSigningInput, type ServerMessage, type WsLimits
} from './protocol.ts'
import type { ApiNode } from './types.ts'

export interface WsContext {
  node: ApiNode
  metrics: ApiMetrics
  logger: Logger
  /** Agents attached (or attaching) through any connection of this server. */
  remote: Set<string>
  limits: WsLimits
}

const MAX_ENV_BASE64 = Math.ceil(LIMITS.maxEnvelopeBytes / 3) * 4 + 4

interface Attached {
  did: AgentId
  endpoint: Endpoint
  requests: boolean
  streams: boolean
  patterns: Set<string>
}

interface Attaching { rid: number, did: AgentId, name?: string, caps: string[], nonce: Uint8Array, timer: NodeJS.Timeout }

type Msg = Record<string, unknown>

function str (m: Msg, key: string, max: number, required: true): string
function str (m: Msg, key: string, max: number, required?: false): string | undefined
function str (m: Msg, key: string, max: number, required: boolean = false): string | undefined {
  const v = m[key]
  if (v === undefined && !required) return undefined
  if (typeof v !== 'string' || v.length === 0 || v.length > max) throw new InvalidArgumentError(`${key} must be a string of 1–${max} characters`)
  return v
}

function ridOf (m: Msg): number {
  const v = m.rid
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw new InvalidArgumentError('rid must be a non-negative integer')
  return v
}

export class ApiConnection {
  private readonly socket: WebSocket
  private readonly ctx: WsContext
  private readonly subs = new Map<string, Subscription>()
  /** Per manual-ack inbox subscription: its agent and the messages sent and not yet acknowledged, by message id. */
  private readonly toAck = new Map<string, { agent: Agent, messages: Map<string, Message> }>()
  private readonly inflight = new Map<number, AbortController>()
  /** Batch roots this connection's agent signed and we verified: the rest of a batch costs hashes only. */
  private readonly roots = new VerifiedRoots(16_384)
  private readonly signs = new Map<number, { resolve: (sig: Uint8Array) => void, reject: (e: Error) => void }>()
  private attaching?: Attaching
  private attached?: Attached
  private signRid = 0
  private closed = false
  private readonly streams = new Map<string, WsByteStream>()
  private streamSeq = 0

  constructor (socket: WebSocket, ctx: WsContext) {
    this.socket = socket
    this.ctx = ctx
    ctx.metrics.wsConnections.inc()
    socket.on('message', (raw: RawData, isBinary: boolean) => { this.onMessage(raw, isBinary) })
    socket.on('close', () => { this.onClose() })
    socket.on('error', (err: Error) => { ctx.logger.debug({ err: err.message }, 'api websocket error') })
    this.send({ op: 'hello', v: WS_PROTOCOL_VERSION, network: ctx.node.network, peerId: ctx.node.peerId })
  }

  /** Sends one message; false (and the connection is dropped) when the client is not reading. */
  private send (m: ServerMessage | StreamWireMessage): boolean {
    if (this.closed || this.socket.readyState !== this.socket.OPEN) return false
    if (this.socket.bufferedAmount > this.ctx.limits.maxBufferedBytes) {
      this.drop(WS_CLOSE.slowConsumer, 'slow consumer', `slow consumer: over ${this.ctx.limits.maxBufferedBytes} bytes unsent`)
      return false
    }
    this.socket.send(JSON.stringify(m))
    return true
  }

  private drop (code: number, label: string, reason: string): void {
    if (this.closed) return
    this.ctx.metrics.wsDropped.inc({ reason: label })
    this.ctx.logger.warn({ reason, agent: this.attached?.did }, 'dropping api websocket')
    this.onClose()
    this.socket.close(code, reason.slice(0, 120))
    // A client that does not read will not read the close frame either.
    setTimeout(() => { this.socket.terminate() }, 2000).unref()
  }

  private onMessage (raw: RawData, isBinary: boolean): void {
    if (this.closed) return
    let msg: Msg
    try {
      if (isBinary) throw new InvalidArgumentError('messages are JSON text')
      const text = Array.isArray(raw) ? Buffer.concat(raw).toString('utf8') : Buffer.from(raw as ArrayBuffer).toString('utf8')
      const parsed: unknown = JSON.parse(text)
      if (parsed == null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new InvalidArgumentError('a message is a JSON object')
      msg = parsed as Msg
    } catch (err) {
      this.send({ op: 'error', error: errorBody(err instanceof FedmeshError ? err : new InvalidArgumentError(`not JSON: ${(err as Error).message}`)).body.error })
      return
    }
    const op = msg.op
    switch (op) {
      case 'subscribe':
      case 'messages':
        void this.subscribe(msg, op)
        return
      case 'unsubscribe':
        this.guard(msg, () => {
          const id = str(msg, 'id', WS_LIMITS.maxIdLength, true)
          this.subs.get(id)?.unsubscribe()
          this.subs.delete(id)
          this.toAck.delete(id)
          this.send({ op: 'unsubscribed', id })
        })
        return
      case 'ack': void this.ack(msg); return
      case 'attach': this.answer(msg, async (rid) => { this.attach(rid, msg) }, false); return
      case 'prove': this.answer(msg, async (rid) => await this.prove(rid, msg)); return
      case 'signed': this.guard(msg, () => { this.onSigned(msg) }); return
      case 'submit': this.answer(msg, async (rid) => await this.submit(rid, msg)); return
      case 'cancel':
        this.guard(msg, () => { this.inflight.get(ridOf(msg))?.abort(new AbortError('cancelled by the client')) })
        return
      case 'mark-processed': this.answer(msg, async () => await this.processed(msg, true)); return
      case 'is-processed': this.answer(msg, async () => await this.processed(msg, false)); return
      case 'add-pattern': this.answer(msg, async () => { await this.addPattern(msg) }); return
      case 'remove-pattern': this.answer(msg, async () => { await this.removePattern(msg) }); return
      case 'set-handler':
        this.answer(msg, async () => {
          const a = this.requireAttached()
          if (typeof msg.requests !== 'boolean') throw new InvalidArgumentError('requests must be a boolean')
          if (msg.streams !== undefined && typeof msg.streams !== 'boolean') throw new InvalidArgumentError('streams must be a boolean')
          a.requests = msg.requests
          if (msg.streams !== undefined) a.streams = msg.streams
        })
        return
      case 'open-stream': this.answer(msg, async () => await this.openStream(msg)); return
      case 'stream-data':
      case 'stream-credit':
      case 'stream-end':
        this.guard(msg, () => {
          const sid = str(msg, 'sid', WS_LIMITS.maxIdLength, true)
          // Unknown ids are streams that just ended on this side: late messages are harmless.
          this.streams.get(sid)?.receive(msg)
        })
        return
      case 'detach': this.answer(msg, async () => { await this.detach() }); return
      default:
        this.send({ op: 'error', error: { code: 'InvalidArgumentError', message: `unknown op ${JSON.stringify(op)}` } })
    }
  }

  /** Runs a synchronous handler, turning a throw into an `error` message. */
  private guard (msg: Msg, fn: () => void): void {
    try {
      fn()
    } catch (err) {
      this.send({ op: 'error', ...(typeof msg.id === 'string' ? { id: msg.id } : {}), error: errorBody(err).body.error })
    }
  }

  /** Runs a request with a `rid`, answering with a `result` (unless `reply` is false and it succeeded). */
  private answer (msg: Msg, fn: (rid: number) => Promise<unknown>, reply: boolean = true): void {
    let rid: number
    try {
      rid = ridOf(msg)
    } catch (err) {
      this.send({ op: 'error', error: errorBody(err).body.error })
      return
    }
    fn(rid).then(
      (result) => { if (reply) this.send({ op: 'result', rid, ok: true, result: result ?? null }) },
      (err: unknown) => { this.send({ op: 'result', rid, ok: false, error: errorBody(err).body.error }) }
    )
  }

  private budget (): number {
    return this.ctx.limits.maxSubscriptions - this.subs.size - (this.attached?.patterns.size ?? 0)
  }

  // ---- subscriptions for people and scripts ---------------------------------------------

  private async subscribe (msg: Msg, op: 'subscribe' | 'messages'): Promise<void> {
    let id: string | undefined
    try {
      id = str(msg, 'id', WS_LIMITS.maxIdLength, true)
      const pattern = op === 'subscribe' ? parsePattern(msg.pattern) : undefined
      const name = str(msg, 'agent', 64) ?? 'default'
      if (this.subs.has(id)) throw new InvalidArgumentError(`subscription id ${JSON.stringify(id)} is in use`)
      if (this.budget() <= 0) throw new TooManyRequestsError(`at most ${this.ctx.limits.maxSubscriptions} subscriptions per connection`)
      const agent = await this.ctx.node.agent(name)
      if (this.closed) return
      // Checked again: other subscribes on this connection may have completed meanwhile.
      if (this.subs.has(id)) throw new InvalidArgumentError(`subscription id ${JSON.stringify(id)} is in use`)
      if (this.budget() <= 0) throw new TooManyRequestsError(`at most ${this.ctx.limits.maxSubscriptions} subscriptions per connection`)
      if (msg.ack !== undefined && (op !== 'messages' || (msg.ack !== 'auto' && msg.ack !== 'manual'))) {
        throw new InvalidArgumentError('ack is \'auto\' or \'manual\', and only for op "messages"')
      }
      const manual = msg.ack === 'manual'
      const sub = pattern != null ? agent.subscribe(pattern) : agent.messages({ ack: manual ? 'manual' : 'auto' })
      this.subs.set(id, sub)
      const toAck = manual ? new Map<string, Message>() : undefined
      if (toAck != null) this.toAck.set(id, { agent, messages: toAck })
      this.send({ op: 'subscribed', id })
      for await (const m of sub) {
        let message: unknown
        try {
          message = m.toJSON()
        } catch (err) {
          this.ctx.logger.debug({ err: (err as Error).message, id: m.id }, 'message not representable as JSON')
          // Never shown to the client, so never acknowledged by it: done with here.
          if (toAck != null) await agent.ack(m).catch(() => {})
          continue
        }
        // Only durable messages take an acknowledgement (bounded by the node's delivery window).
        if (toAck != null && m.envelope.dlv?.durable === true) toAck.set(m.id, m)
        if (!this.send({ op: 'message', sub: id, message })) break
      }
    } catch (err) {
      this.send({ op: 'error', ...(id != null ? { id } : {}), error: errorBody(err).body.error })
    } finally {
      if (id != null && this.closed) this.subs.get(id)?.unsubscribe()
    }
  }

  /** `{op:"ack", id, message}`: the client is done with a message of its manual-ack inbox subscription `id`. */
  private async ack (msg: Msg): Promise<void> {
    let id: string | undefined
    try {
      id = str(msg, 'id', WS_LIMITS.maxIdLength, true)
      const messageId = str(msg, 'message', 128, true)
      const held = this.toAck.get(id)
      if (held == null) throw new InvalidArgumentError(`no inbox subscription ${JSON.stringify(id)} with ack 'manual' on this connection`)
      const m = held.messages.get(messageId)
      if (m == null) throw new InvalidArgumentError(`message ${messageId} was not sent on subscription ${JSON.stringify(id)}, or is acknowledged already`)
      await held.agent.ack(m)
      held.messages.delete(messageId)
      this.send({ op: 'acked', id, message: messageId })
    } catch (err) {
      this.send({ op: 'error', ...(id != null ? { id } : {}), error: errorBody(err).body.error })
    }
  }

  // ---- remote agents ----------------------------------------------------------------------

  private requireAttached (): Attached {
    if (this.attached == null) throw new InvalidArgumentError('attach an agent first (op "attach")')
    return this.attached
  }

  private attach (rid: number, msg: Msg): void {
    if (this.attached != null || this.attaching != null) throw new ConflictError('this connection already has an agent')
    const did = msg.agent
    if (!isAgentId(did)) throw new InvalidArgumentError('agent must be an Ed25519 did:key')
    const name = str(msg, 'name', 64)
    if (name != null && !AGENT_NAME_RE.test(name)) throw new InvalidArgumentError(`name must match ${AGENT_NAME_RE.source}`)
    const caps = msg.caps ?? []
    if (!Array.isArray(caps) || caps.length > 64 || !caps.every(c => typeof c === 'string' && c.length > 0 && c.length <= 128)) {
      throw new InvalidArgumentError('caps must be a list of at most 64 strings of 1–128 characters')
    }
    if (this.ctx.remote.has(did) || this.ctx.node.agents().some(a => a.id === did)) throw new ConflictError(`agent ${did} is already attached to this node`)
    const nonce = new Uint8Array(randomBytes(ATTACH_NONCE_BYTES))
    const timer = setTimeout(() => {
      if (this.attaching?.rid !== rid) return
      this.attaching = undefined
      this.send({ op: 'result', rid, ok: false, error: errorBody(new TimeoutError('no attach proof in time')).body.error })
      this.drop(WS_CLOSE.policy, 'attach timeout', 'attach proof not received in time')
    }, this.ctx.limits.handshakeTimeoutMs)
    timer.unref()
    this.attaching = { rid, did, name, caps: caps as string[], nonce, timer }
    this.send({ op: 'challenge', rid, nonce: toBase64(nonce) })
  }

  private async prove (rid: number, msg: Msg): Promise<unknown> {
    const pending = this.attaching
    if (pending == null || pending.rid !== rid) throw new InvalidArgumentError('no attach in progress with this rid')
    clearTimeout(pending.timer)
    this.attaching = undefined
    const sig = fromBase64(str(msg, 'sig', 200, true), 'sig')
    if (!verifyByDid(pending.did, attachSigningInput(pending.nonce), sig)) {
      this.ctx.metrics.apiRejections.inc({ reason: 'attach-proof' })
      // Answer first, then hang up: one failed proof per connection.
      setImmediate(() => { this.drop(WS_CLOSE.policy, 'attach proof', 'attach proof does not verify') })
      throw new UnauthorizedError(`attach proof does not verify for ${pending.did}`)
    }
    // Re-checked: another connection may have attached the same agent meanwhile.
    if (this.ctx.remote.has(pending.did) || this.ctx.node.agents().some(a => a.id === pending.did)) throw new ConflictError(`agent ${pending.did} is already attached to this node`)
    const state: Attached = {
      did: pending.did,
      requests: false,
      streams: false,
      patterns: new Set(),
      endpoint: {
        agent: pending.did,
        name: pending.name,
        kind: 'remote',
        caps: pending.caps,
        deliver: (env: Envelope) => { if (this.attached === state) this.send({ op: 'deliver', env: toBase64(env.bytes) }) },
        handlesRequests: () => state.requests,
        acceptsStreams: () => state.streams && this.streams.size < MAX_STREAMS_PER_CONNECTION,
        signRecord: async (input: Uint8Array) => await this.requestSignature(state.did, input)
      }
    }
    this.ctx.remote.add(state.did)
    this.attached = state
    this.ctx.metrics.remoteAgents.inc()
    try {
      await this.ctx.node.transport.attach(state.endpoint, (stream, open) => {
        // An agent elsewhere opened a stream to this remote agent: hand it over the socket.
        if (this.attached !== state) { stream.abort(new ClosedError('remote agent detached')); return }
        const ws = this.newStream(stream)
        if (!this.send({ op: 'stream-open', sid: ws.sid, env: toBase64(open.bytes) })) ws.abort(new ClosedError('remote agent disconnected'))
      })
    } catch (err) {
      await this.release()
      throw err
    }
    if (this.closed) throw new ClosedError('connection closed while attaching')
    this.ctx.logger.info({ agent: state.did, name: pending.name }, 'remote agent attached')
    return { agent: state.did, network: this.ctx.node.network, peerId: this.ctx.node.peerId }
  }

  /** Asks the agent to sign (its record), and checks the signature before the node uses it. */
  private async requestSignature (did: AgentId, input: Uint8Array): Promise<Uint8Array> {
    if (this.closed) throw new ClosedError('remote agent disconnected')
    const rid = ++this.signRid
    const { promise, resolve, reject } = Promise.withResolvers<Uint8Array>()
    const timer = setTimeout(() => { this.signs.delete(rid); reject(new TimeoutError(`agent ${did} did not sign its record in time`)) }, this.ctx.limits.handshakeTimeoutMs)
    timer.unref()
    this.signs.set(rid, {
      resolve: (sig) => { clearTimeout(timer); resolve(sig) },
      reject: (e) => { clearTimeout(timer); reject(e) }
    })
    if (!this.send({ op: 'sign', rid, input: toBase64(input) })) {
      this.signs.delete(rid)
      clearTimeout(timer)
      throw new ClosedError('remote agent disconnected')
    }
    const sig = await promise
    if (!verifyByDid(did, input, sig)) throw new UnauthorizedError(`record signature from ${did} does not verify`)
    return sig
  }

  private onSigned (msg: Msg): void {
    const rid = ridOf(msg)
    const pending = this.signs.get(rid)
    if (pending == null) return
    this.signs.delete(rid)
    if (msg.error != null) { pending.reject(errorFromJson(msg.error as Msg, 'the agent refused to sign')); return }
    try {
      pending.resolve(fromBase64(str(msg, 'sig', 200, true), 'sig'))
    } catch (err) {
      pending.reject(err as Error)
    }
  }

  private async submit (rid: number, msg: Msg): Promise<unknown> {
    const a = this.requireAttached()
    if (this.inflight.has(rid)) throw new InvalidArgumentError(`rid ${rid} is already in flight`)
    if (this.inflight.size >= this.ctx.limits.maxInflight) throw new TooManyRequestsError(`at most ${this.ctx.limits.maxInflight} submits in flight per connection`)
    const env = this.verifiedFromAgent(a, msg)
    // Schema check as at every ingress (the agent's SDK checked already; this one may not have).
    await this.ctx.node.semantic?.checkSubmission(env)
    const ac = new AbortController()
    this.inflight.set(rid, ac)
    try {
      return await this.ctx.node.transport.submit(env, { signal: AbortSignal.any([ac.signal, AbortSignal.timeout(this.ctx.limits.maxSubmitMs)]) })
    } finally {
      this.inflight.delete(rid)
    }
  }

  /** Decodes `msg.env` and checks it as ingress would, plus that the attached agent signed it. */
  private verifiedFromAgent (a: Attached, msg: Msg): Envelope {
    const text = msg.env
    if (typeof text !== 'string' || text.length === 0) throw new InvalidArgumentError('env must be base64 envelope bytes')
    if (text.length > MAX_ENV_BASE64) throw new MessageTooLargeError(`envelope over ${LIMITS.maxEnvelopeBytes} bytes`)
    const { node, metrics } = this.ctx
    const decoded = decodeEnvelope(fromBase64(text, 'env'), node.config.maxMessageBytes, this.roots)
    if (!decoded.ok) {
      metrics.apiRejections.inc({ reason: decoded.reason })
      if (decoded.reason === 'too-large') throw new MessageTooLargeError(decoded.detail)
      throw new InvalidEnvelopeError(`${decoded.reason}: ${decoded.detail}`, { details: { reason: decoded.reason } })
    }
    const env = decoded.envelope
    if (env.from !== a.did) {
      metrics.apiRejections.inc({ reason: 'foreign-sender' })
      throw new UnauthorizedError(`envelope is from ${env.from}, this connection is attached as ${a.did}`)
    }
    const ctx = checkEnvelopeContext(env, 0, { network: node.network, maxBytes: node.config.maxMessageBytes, clockSkewMs: node.config.clockSkewMs }, Date.now())
    if (!ctx.ok) {
      metrics.apiRejections.inc({ reason: ctx.reason })
      throw new InvalidEnvelopeError(`${ctx.reason}: ${ctx.detail}`, { details: { reason: ctx.reason } })
    }
    return env
  }

  /** Opens a stream for the attached agent; `env` is its signed open envelope (type `stream`). */
  private async openStream (msg: Msg): Promise<{ sid: string }> {
    const a = this.requireAttached()
    if (this.streams.size >= MAX_STREAMS_PER_CONNECTION) throw new TooManyRequestsError(`at most ${MAX_STREAMS_PER_CONNECTION} streams per connection`)
    const env = this.verifiedFromAgent(a, msg)
    if (env.mode !== 'direct' || env.type !== 'stream') throw new InvalidEnvelopeError('a stream is opened by a direct envelope of type stream')
    const remote = await this.ctx.node.transport.openStream(env, { signal: AbortSignal.timeout(this.ctx.limits.handshakeTimeoutMs) })
    if (this.closed) { remote.abort(new ClosedError('connection closed')); throw new ClosedError('connection closed') }
    return { sid: this.newStream(remote).sid }
  }

  /** Bridges a node-side byte stream to a new stream id on this socket, both ways. */
  private newStream (remote: ByteStream): WsByteStream {
    const sid = `s${++this.streamSeq}`
    const ws = new WsByteStream(sid, (m) => { this.send(m) }, () => { this.streams.delete(sid) })
    this.streams.set(sid, ws)
    void pipeStream(remote, ws)
    void pipeStream(ws, remote)
    return ws
  }

  /** Processed marks of the attached agent, kept in the node's store (exactly-once across reconnects). */
  private async processed (msg: Msg, mark: boolean): Promise<boolean> {
    const a = this.requireAttached()
    const id = str(msg, 'id', 256, true) as MessageId
    const t = this.ctx.node.transport
    if (t.markProcessed == null || t.isProcessed == null) throw new NotSupportedError('this node keeps no processed marks')
    if (!mark) return await t.isProcessed(a.did, id)
    const exp = msg.exp
    if (typeof exp !== 'number' || !Number.isSafeInteger(exp) || exp <= 0) throw new InvalidArgumentError('exp must be a time in ms')
    return await t.markProcessed(a.did, id, exp)
  }

  private async addPattern (msg: Msg): Promise<void> {
    const a = this.requireAttached()
    const pattern = parsePattern(msg.pattern)
    if (a.patterns.has(pattern)) return
    if (this.budget() <= 0) throw new TooManyRequestsError(`at most ${this.ctx.limits.maxSubscriptions} subscriptions per connection`)
    a.patterns.add(pattern)
    await this.ctx.node.transport.subscribe(a.did, pattern)
  }

  private async removePattern (msg: Msg): Promise<void> {
    const a = this.requireAttached()
    const pattern = parsePattern(msg.pattern)
    if (!a.patterns.delete(pattern)) return
    await this.ctx.node.transport.unsubscribe(a.did, pattern)
  }

  private async detach (): Promise<void> {
    if (this.attached == null) return
    const did = this.attached.did
    await this.release()
    this.ctx.logger.info({ agent: did }, 'remote agent detached')
  }

  /** Detaches the agent from the node and frees its name on this server. */
  private async release (): Promise<void> {
    const a = this.attached
    if (a == null) return
    this.attached = undefined
    this.ctx.remote.delete(a.did)
    this.ctx.metrics.remoteAgents.dec()
    for (const s of this.signs.values()) s.reject(new ClosedError('remote agent detached'))
    this.signs.clear()
    await this.ctx.node.transport.detach(a.did).catch((err: Error) => { this.ctx.logger.warn({ err: err.message, agent: a.did }, 'detach failed') })
  }

  private onClose (): void {
    if (this.closed) return
    this.closed = true
    this.ctx.metrics.wsConnections.dec()
    for (const s of this.subs.values()) s.unsubscribe()
    this.subs.clear()
    for (const ac of this.inflight.values()) ac.abort(new ClosedError('connection closed'))
    for (const st of [...this.streams.values()]) st.fail(new ClosedError('connection closed'), false)
    if (this.attaching != null) clearTimeout(this.attaching.timer)
    this.attaching = undefined
    void this.release()
  }
}
