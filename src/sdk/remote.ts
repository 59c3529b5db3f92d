/**
 * Remote agents: an agent in its own process, attached to a node over the node's
 * WebSocket API (protocol in api/protocol.ts, docs/API.md). The agent key never leaves
 * this process: envelopes are signed here, the node verifies and routes them, and the
 * node asks this side to sign the agent's record (which is checked before signing).
 * The returned agent is the same AgentImpl that in-process agents use, over a
 * WebSocket AgentTransport, so the API is identical, streams included.
 *
 * @example
 * ```ts
 * import { connect } from 'fedmesh'
 * import { generateAgentKey } from 'fedmesh'
 * const agent = await connect({ url: 'http://127.0.0.1:7400', token, key: generateAgentKey(), name: 'bot' })
 * agent.handle(async (msg) => ({ echo: msg.data() }))
 * await agent.synced()
 * for await (const m of agent.subscribe('news/#')) console.log(m.topic, m.data())
 * ```
 */
import WebSocket from 'ws'
import * as dagCbor from '@ipld/dag-cbor'
import type { AgentKey } from '../core/keys.ts'
import { decodeEnvelope, type Envelope } from '../core/envelope.ts'
import { ClosedError, FedmeshError, InvalidArgumentError, UnreachableError, abortReason } from '../core/errors.ts'
import type { AbortOptions, Agent, SendResult } from '../node/types.ts'
import type { AgentTransport, ByteStream, Endpoint } from '../routing/types.ts'
import { NotSupportedError, errorFromJson } from '../api/errors.ts'
import { WsByteStream } from '../api/ws-streams.ts'
import { fromBase64, toBase64 } from '../util/base64.ts'
import {
  AGENT_RECORD_DOMAIN, WS_LIMITS, WS_PROTOCOL_VERSION, attachSigningInput, hasPrefix, type ErrorJson
} from '../api/protocol.ts'
import { createAgent, type AgentImpl } from './agent.ts'
import { remoteSemantics } from './http-registry.ts'

export interface ConnectOptions extends AbortOptions {
  /** The node's API: `http://host:port` (as in `<dir>/node.json`), or a `ws://…/v1/ws` URL. */
  url: string
  /** Bearer token of the node's API (`<dir>/api.token`). */
  token: string
  /** The agent's key; it never leaves this process. */
  key: AgentKey
  name?: string
  capabilities?: string[]
  /** ms to connect and attach; default 10 000. */
  timeout?: number
  /** Buffered messages per subscription before new ones are dropped. */
  subscriptionCapacity?: number
  /** Re-establish the connection when the node drops it (a restart): default false. */
  reconnect?: boolean
  /** With `reconnect`: give up (and close the agent) after this many ms without a connection. Default 60 000. */
  reconnectForMs?: number
}

export interface RemoteAgent extends Agent {
  /** The node's network and peer id, from its hello. */
  readonly network: string
  readonly nodePeerId: string
  /** Resolves when the connection has ended: after close(), or when the node dropped it (and, with `reconnect`, it could not be re-established). */
  readonly disconnected: Promise<{ code: number, reason: string }>
  /** Whether the agent is connected to its node right now. */
  connected: () => boolean
  /** Resolves once the node has applied every subscription and handler change made so far. */
  synced: () => Promise<void>
}

function toWsUrl (url: string): string {
  let u: URL
  try { u = new URL(url) } catch { throw new InvalidArgumentError(`not a URL: ${JSON.stringify(url)}`) }
  if (u.protocol === 'http:') u.protocol = 'ws:'
  else if (u.protocol === 'https:') u.protocol = 'wss:'
  else if (u.protocol !== 'ws:' && u.protocol !== 'wss:') throw new InvalidArgumentError(`unsupported URL scheme ${u.protocol}`)
  if (!u.pathname.endsWith('/v1/ws')) u.pathname = u.pathname.replace(/\/$/, '') + '/v1/ws'
  return u.toString()
}


const CONTROL_TIMEOUT_MS = 10_000

interface Pending {
  resolve: (v: unknown) => void
  reject: (e: Error) => void
  op: string
  /** Runs synchronously on success, before later messages are handled (stream registration). */
  onResult?: (result: unknown) => unknown
}

/** AgentTransport over the node API's WebSocket. */
export class WebSocketTransport implements AgentTransport {
  network = ''
  peerId = ''
  /** Deliveries that failed verification here (the node should never send one). */
  dropped = 0
  readonly disconnected: Promise<{ code: number, reason: string }>
  private readonly ws: WebSocket
  private readonly key: AgentKey
  private readonly pending = new Map<number, Pending>()
  private readonly hello = Promise.withResolvers<void>()
  private readonly slots: Array<() => void> = []
  private inflight = 0
  private rid = 0
  private readonly changes = new Set<Promise<void>>()
  private endpoint?: Endpoint
  private onStream?: (stream: ByteStream, open: Envelope) => void
  private readonly streams = new Map<string, WsByteStream>()
  private closed = false
  /** Called once when the connection ends. */
  onDisconnect?: (info: { code: number, reason: string }) => void

  constructor (ws: WebSocket, key: AgentKey) {
    this.ws = ws
    this.key = key
    this.hello.promise.catch(() => {})
    const ended = Promise.withResolvers<{ code: number, reason: string }>()
    this.disconnected = ended.promise
    ws.on('message', (raw: WebSocket.RawData, isBinary: boolean) => { if (!isBinary) this.onMessage(raw.toString()) })
    ws.on('unexpected-response', (req, res) => {
      // The node answered the upgrade with an HTTP error (401 for a bad token): read its body.
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (c: string) => { if (body.length < 4096) body += c })
      res.on('end', () => {
        let err: FedmeshError
        try { err = errorFromJson((JSON.parse(body) as { error?: ErrorJson }).error, `HTTP ${String(res.statusCode)}`) } catch { err = new FedmeshError('InternalError', `HTTP ${String(res.statusCode)} from the node`) }
        this.hello.reject(err)
        req.destroy()
      })
    })
    ws.on('error', (err: Error) => { this.hello.reject(new UnreachableError(`cannot reach the node API: ${err.message}`, { cause: err })) })
    ws.on('close', (code: number, reason: Buffer) => {
      const info = { code, reason: reason.toString() }
      this.closed = true
      const err = new ClosedError(`connection to the node closed (${code}${info.reason !== '' ? ' ' + info.reason : ''})`, { details: info })
      this.hello.reject(err)
      for (const p of this.pending.values()) p.reject(err)
      this.pending.clear()
      for (const wake of this.slots.splice(0)) wake()
      for (const st of [...this.streams.values()]) st.fail(err, false)
      ended.resolve(info)
      this.onDisconnect?.(info)
    })
  }

  /** Resolves on the node's hello (or rejects: unreachable, unauthorized, timeout). */
  async ready (signal: AbortSignal): Promise<void> {
    const onAbort = (): void => { this.hello.reject(abortReason(signal, 'connecting to the node')); this.close() }
    if (signal.aborted) onAbort()
    signal.addEventListener('abort', onAbort, { once: true })
    try { await this.hello.promise } finally { signal.removeEventListener('abort', onAbort) }
  }

  get isClosed (): boolean { return this.closed }

  close (code: number = 1000, reason: string = 'agent closed'): void {
    if (this.ws.readyState === WebSocket.CLOSED) return
    if (this.ws.readyState === WebSocket.CONNECTING) { this.ws.terminate(); return }
    this.ws.close(code, reason)
  }

  terminate (): void { this.ws.terminate() }

  private send (m: Record<string, unknown>): void {
    if (this.closed || this.ws.readyState !== WebSocket.OPEN) throw new ClosedError('not connected to the node')
    this.ws.send(JSON.stringify(m))
  }

  /**
   * One request with a `rid`, answered by `result`. Control requests (everything but
   * submit, which the caller bounds) give up after CONTROL_TIMEOUT_MS.
   */
  private async call (op: string, fields: Record<string, unknown> = {}, signal: AbortSignal | undefined = op === 'submit' ? undefined : AbortSignal.timeout(CONTROL_TIMEOUT_MS), onResult?: (result: unknown) => unknown): Promise<unknown> {
    if (signal?.aborted === true) throw abortReason(signal, op)
    const rid = ++this.rid
    const { promise, resolve, reject } = Promise.withResolvers<unknown>()
    this.pending.set(rid, { resolve, reject, op, onResult })
    const onAbort = (): void => {
      if (!this.pending.delete(rid)) return
      if (op === 'submit') { try { this.send({ op: 'cancel', rid }) } catch {} }
      reject(abortReason(signal as AbortSignal, op))
    }
    signal?.addEventListener('abort', onAbort, { once: true })
    try {
      this.send({ op, rid, ...fields })
      return await promise
    } finally {
      this.pending.delete(rid)
      signal?.removeEventListener('abort', onAbort)
    }
  }

  private onMessage (text: string): void {
    let m: Record<string, unknown>
    try { m = JSON.parse(text) } catch { return }
    if (m == null || typeof m !== 'object') return
    switch (m.op) {
      case 'hello':
        if (m.v !== WS_PROTOCOL_VERSION) { this.hello.reject(new NotSupportedError(`node speaks API protocol ${String(m.v)}, this SDK ${WS_PROTOCOL_VERSION}`)); this.close(1000, 'protocol version'); return }
        this.network = String(m.network)
        this.peerId = String(m.peerId)
        this.hello.resolve()
        return
      case 'challenge': {
        const rid = m.rid as number
        if (this.pending.get(rid)?.op !== 'attach') return
        try {
          const sig = this.key.sign(attachSigningInput(fromBase64(m.nonce)))
          this.send({ op: 'prove', rid, sig: toBase64(sig) })
        } catch (err) { this.pending.get(rid)?.reject(err as Error) }
        return
      }
      case 'result': {
        const p = this.pending.get(m.rid as number)
        if (p == null) return
        this.pending.delete(m.rid as number)
        if (m.ok !== true) { p.reject(errorFromJson(m.error as ErrorJson)); return }
        try { p.resolve(p.onResult != null ? p.onResult(m.result) : m.result) } catch (err) { p.reject(err as Error) }
        return
      }
      case 'stream-open': {
        // Another agent opened a stream to ours; registered now so no chunk can outrun it.
        const sid = m.sid
        if (typeof sid !== 'string' || this.streams.has(sid)) return
        const stream = this.newStream(sid)
        let open: Envelope | undefined
        try { const res = decodeEnvelope(fromBase64(m.env)); if (res.ok) open = res.envelope } catch {}
        if (open == null || open.to?.[0] !== this.key.id || this.onStream == null) { stream.abort(new InvalidArgumentError('stream open not for this agent')); return }
        this.onStream(stream, open)
        return
      }
      case 'stream-data':
      case 'stream-credit':
      case 'stream-end':
        if (typeof m.sid === 'string') this.streams.get(m.sid)?.receive(m)
        return
      case 'deliver': {
        // Verified again here: the node is trusted to route, not to author.
        let env: Envelope | undefined
        try {
          const res = decodeEnvelope(fromBase64(m.env))
          if (res.ok) env = res.envelope
        } catch {}
        if (env == null || this.endpoint == null) { this.dropped++; return }
        this.endpoint.deliver(env)
        return
      }
      case 'sign':
        void this.onSign(m.rid as number, m.input)
    }
  }

  /** Signs only this agent's own record for this network, never anything else the node asks. */
  private async onSign (rid: number, input: unknown): Promise<void> {
    try {
      const bytes = fromBase64(input)
      if (!hasPrefix(bytes, AGENT_RECORD_DOMAIN)) throw new InvalidArgumentError('not an agent record')
      const rec = dagCbor.decode(bytes.subarray(AGENT_RECORD_DOMAIN.length)) as { agent?: unknown, net?: unknown }
      if (rec?.agent !== this.key.id || rec.net !== this.network) throw new InvalidArgumentError('not this agent\'s record on this network')
      if (this.endpoint == null) throw new ClosedError('not attached')
      const sig = await this.endpoint.signRecord(bytes)
      this.send({ op: 'signed', rid, sig: toBase64(sig) })
    } catch (err) {
      const e = err as Partial<FedmeshError>
      try { this.send({ op: 'signed', rid, error: { code: e.code ?? 'InvalidArgumentError', message: e.message ?? 'refused' } }) } catch {}
    }
  }

  // ---- AgentTransport -------------------------------------------------------------------

  async submit (env: Envelope, options: AbortOptions = {}): Promise<SendResult> {
    // Stay under the node's in-flight limit by queueing here instead of failing there.
    while (this.inflight >= WS_LIMITS.maxInflight && !this.closed) await new Promise<void>(resolve => { this.slots.push(resolve) })
    this.inflight++
    try {
      return await this.call('submit', { env: toBase64(env.bytes) }, options.signal) as SendResult
    } finally {
      this.inflight--
      this.slots.shift()?.()
    }
  }

  async subscribe (_agent: string, pattern: string): Promise<void> {
    await this.stateChange(this.call('add-pattern', { pattern }))
  }

  async unsubscribe (_agent: string, pattern: string): Promise<void> {
    if (this.closed) return
    await this.stateChange(this.call('remove-pattern', { pattern }))
  }

  /** Resolves once every subscription and handler change sent so far has been applied by the node. */
  async synced (): Promise<void> {
    await Promise.all([...this.changes])
  }

  private async stateChange (p: Promise<unknown>): Promise<void> {
    const done = p.then(() => {}, () => {})
    this.changes.add(done)
    void done.then(() => { this.changes.delete(done) })
    await p
  }

  private newStream (sid: string): WsByteStream {
    const stream = new WsByteStream(sid, (msg) => { this.send(msg) }, () => { this.streams.delete(sid) })
    this.streams.set(sid, stream)
    return stream
  }

  async openStream (open: Envelope, options: AbortOptions = {}): Promise<ByteStream> {
    const signal = AbortSignal.any([AbortSignal.timeout(CONTROL_TIMEOUT_MS), ...(options.signal != null ? [options.signal] : [])])
    return await this.call('open-stream', { env: toBase64(open.bytes) }, signal, (result) => {
      const sid = (result as { sid?: unknown } | null)?.sid
      if (typeof sid !== 'string') throw new InvalidArgumentError('node answered open-stream without a stream id')
      return this.newStream(sid)
    }) as ByteStream
  }

  async attach (endpoint: Endpoint, onStream?: (stream: ByteStream, open: Envelope) => void): Promise<void> {
    this.endpoint = endpoint
    this.onStream = onStream
    // Bounded by connect()'s own timeout, which closes the socket.
    await this.call('attach', { agent: endpoint.agent, name: endpoint.name, caps: endpoint.caps }, AbortSignal.timeout(10 * CONTROL_TIMEOUT_MS))
  }

  async detach (): Promise<void> {
    if (this.closed) return
    await this.call('detach', {}, AbortSignal.timeout(2000)).catch(() => {})
  }

  async markProcessed (_agent: string, id: string, expiresAt: number): Promise<boolean> {
    return await this.call('mark-processed', { id, exp: expiresAt }) === true
  }

  async isProcessed (_agent: string, id: string): Promise<boolean> {
    return await this.call('is-processed', { id }) === true
  }

  async setHandler (requests: boolean, streams: boolean): Promise<void> {
    await this.stateChange(this.call('set-handler', { requests, streams }))
  }
}

/**
 * The agent's transport across connections: delegates to the current WebSocket connection,
 * which `connect({ reconnect })` replaces after the node went away. The agent object (its
 * subscriptions, handlers and exactly-once state) lives on.
 */
class SwitchingTransport implements AgentTransport {
  current: WebSocketTransport
  constructor (t: WebSocketTransport) { this.current = t }
  async submit (env: Envelope, options?: AbortOptions): Promise<SendResult> { return await this.current.submit(env, options) }
  async subscribe (agent: string, pattern: string): Promise<void> { await this.current.subscribe(agent, pattern) }
  async unsubscribe (agent: string, pattern: string): Promise<void> { await this.current.unsubscribe(agent, pattern) }
  async openStream (open: Envelope, options?: AbortOptions): Promise<ByteStream> { return await this.current.openStream(open, options) }
  async attach (endpoint: Endpoint, onStream?: (stream: ByteStream, open: Envelope) => void): Promise<void> { await this.current.attach(endpoint, onStream) }
  async detach (): Promise<void> { await this.current.detach() }
  async markProcessed (agent: string, id: string, expiresAt: number): Promise<boolean> { return await this.current.markProcessed(agent, id, expiresAt) }
  async isProcessed (agent: string, id: string): Promise<boolean> { return await this.current.isProcessed(agent, id) }
}

/**
 * Connects an agent to a node over its API and attaches it, proving possession of the key.
 * Rejects with UnauthorizedError (bad token), UnreachableError (no node there),
 * ConflictError (the agent is already attached there) or TimeoutError.
 *
 * With `reconnect`, a lost connection is re-established (backoff up to 2 s, for at most
 * `reconnectForMs`): the agent re-attaches, re-subscribes and re-installs its handlers,
 * and durable messages continue exactly once. Sends fail with ClosedError meanwhile.
 */
export async function connect (opts: ConnectOptions): Promise<RemoteAgent> {
  if (opts == null || typeof opts.url !== 'string' || typeof opts.token !== 'string' || opts.key == null) {
    throw new InvalidArgumentError('connect needs { url, token, key }')
  }
  const url = toWsUrl(opts.url)
  const open = async (signal: AbortSignal): Promise<WebSocketTransport> => {
    const ws = new WebSocket(url, {
      headers: { authorization: `Bearer ${opts.token}` },
      maxPayload: WS_LIMITS.maxMessageBytes
    })
    const t = new WebSocketTransport(ws, opts.key)
    try {
      await t.ready(signal)
    } catch (err) {
      t.close(1000, 'connect failed')
      throw err
    }
    return t
  }
  const signal = AbortSignal.any([AbortSignal.timeout(opts.timeout ?? 10_000), ...(opts.signal != null ? [opts.signal] : [])])
  let first: WebSocketTransport
  try {
    first = await open(signal)
  } catch (err) {
    if (signal.aborted && err instanceof ClosedError) throw abortReason(signal, 'connecting to the node')
    throw err
  }
  const transport = new SwitchingTransport(first)
  let inner: AgentImpl
  try {
    const onAbort = (): void => { first.close(1000, 'attach aborted') }
    signal.addEventListener('abort', onAbort, { once: true })
    try {
      inner = await createAgent(opts.key, transport, {
        network: first.network,
        name: opts.name,
        capabilities: opts.capabilities,
        kind: 'remote',
        subscriptionCapacity: opts.subscriptionCapacity,
        // The same egress checks as in-process agents, with schemas fetched through the node.
        semantics: remoteSemantics(opts.url, opts.token)
      })
    } finally {
      signal.removeEventListener('abort', onAbort)
    }
  } catch (err) {
    first.close(1000, 'connect failed')
    if (signal.aborted && err instanceof ClosedError) throw abortReason(signal, 'connecting to the node')
    throw err
  }

  const ended = Promise.withResolvers<{ code: number, reason: string }>()
  let closing = false
  const sync = (): void => { transport.current.setHandler(inner.endpoint.handlesRequests(), inner.endpoint.acceptsStreams()).catch(() => {}) }

  /** Re-establishes the connection after the node dropped it, within the time allowed. */
  const reconnect = async (info: { code: number, reason: string }): Promise<void> => {
    const deadline = Date.now() + (opts.reconnectForMs ?? 60_000)
    for (let attempt = 0; !closing && Date.now() < deadline; attempt++) {
      await new Promise(resolve => setTimeout(resolve, Math.min(2000, 100 * 2 ** attempt)))
      if (closing) return
      let t: WebSocketTransport | undefined
      try {
        t = await open(AbortSignal.timeout(Math.min(10_000, Math.max(1, deadline - Date.now()))))
        await t.attach(inner.endpoint, (stream, o) => { inner.acceptStream(stream, o) })
        for (const p of inner.patterns()) await t.subscribe(inner.id, p)
        await t.setHandler(inner.endpoint.handlesRequests(), inner.endpoint.acceptsStreams())
        if (closing) { t.close(1000, 'agent closed'); return }
        transport.current = t
        watch(t)
        return
      } catch {
        t?.close(1000, 'reconnect failed')
      }
    }
    if (!closing) { await inner.close(); ended.resolve(info) }
  }
  const watch = (t: WebSocketTransport): void => {
    t.onDisconnect = (info) => {
      if (closing) { ended.resolve(info); return }
      // The node dropped us: try again, or end the agent's subscriptions and pending requests.
      if (opts.reconnect === true) void reconnect(info)
      else { void inner.close(); ended.resolve(info) }
    }
  }
  watch(first)

  return {
    id: inner.id,
    name: inner.name,
    network: first.network,
    get nodePeerId () { return transport.current.peerId },
    disconnected: ended.promise,
    connected: () => !transport.current.isClosed,
    synced: async () => { await transport.current.synced() },
    publish: async (topic, payload, options) => await inner.publish(topic, payload, options),
    publishBuffered: (topic, payload, options) => inner.publishBuffered(topic, payload, options),
    drain: async () => { await inner.drain() },
    subscribe: (pattern, options) => inner.subscribe(pattern, options),
    messages: (options) => inner.messages(options),
    receipts: (options) => inner.receipts(options),
    ack: async (msg) => { await inner.ack(msg) },
    send: async (to, payload, options) => await inner.send(to, payload, options),
    multicast: async (to, payload, options) => await inner.multicast(to, payload, options),
    broadcast: async (payload, options) => await inner.broadcast(payload, options),
    request: async (to, payload, options) => await inner.request(to, payload, options),
    handle: (handler) => {
      const off = inner.handle(handler)
      sync()
      return () => { off(); sync() }
    },
    openStream: async (to, name, options) => await inner.openStream(to, name, options),
    onStream: (handler) => {
      const off = inner.onStream(handler)
      sync()
      return () => { off(); sync() }
    },
    reply: async (to, payload, options) => await inner.reply(to, payload, options),
    openConversation: async (options) => await inner.openConversation(options),
    conversation: (conversation, peer) => inner.conversation(conversation, peer),
    conversationEvents: (options) => inner.conversationEvents(options),
    exportConversation: (conversation, peer) => inner.exportConversation(conversation, peer),
    registerTranslator: (from, to, fn) => inner.registerTranslator(from, to, fn),
    translate: async (msg, to, options) => await inner.translate(msg, to, options),
    close: async () => {
      closing = true
      await inner.close()
      const t = transport.current
      if (t.isClosed) { ended.resolve({ code: 1000, reason: 'agent closed' }); return }
      t.close(1000, 'agent closed')
      // A node that does not answer the close handshake is cut off after a short grace.
      const grace = setTimeout(() => { t.terminate() }, 2000)
      await ended.promise
      clearTimeout(grace)
    }
  }
}
