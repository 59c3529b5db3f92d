/**
 * The router: where every envelope enters and leaves a node.
 *
 *   agent ──submit──▶ router ──┬─ topic / broadcast ─▶ local subscribers + TopicPath: the
 *                              │                       dissemination core over FrameLinks to
 *                              │                       interested neighbours (data frames t=6)
 *                              └─ direct / multicast ─▶ local endpoint, or FrameLink to the
 *                                                       recipient's home node (found by record)
 *   wire ─┬─ t=1 ──▶ ingress (verifyIngress) ──▶ deliver to local endpoints ──▶ confirm frame (when
 *         │          asked for; a request's is held back and the reply carries it)
 *         ├─ t=6 ──▶ admitTopic (every copy) ──▶ core: dedup (the router's table), forward, deliver
 *         └─ t=3/4/5 ──▶ core (interest records verified first)
 *
 * Ingress rejections are counted by reason and never forwarded: a data copy reaches the
 * dissemination core only after admitTopic accepted it. Records (agent and node) still
 * travel on the gossipsub control topic.
 */
import * as dagCbor from '@ipld/dag-cbor'
import * as lp from 'it-length-prefixed'
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import type { Connection, Stream } from '@libp2p/interface'
import { TopicValidatorResult } from '@libp2p/gossipsub'
import type { AgentId, NetworkId } from '../core/ids.ts'
import type { Envelope } from '../core/envelope.ts'
import { VerifiedRoots } from '../core/batch.ts'
import { DedupCache, RejectionCounter, checkIngress, verifyIngress, type IngressOptions, type RejectionReason } from '../core/ingress.ts'
import {
  AgentNotFoundError, ClosedError, DeliveryFailedError, FedmeshError, NoRespondersError, TimeoutError, UnreachableError, abortReason
} from '../core/errors.ts'
import { topicMatches } from '../core/topics.ts'
import { FrameLink, FRAME_CONFIRM, FRAME_DATA, FRAME_MESSAGE, encodeMessageFrame, directoryProtocol, msgProtocol, streamProtocol, MAX_FRAME_BYTES, decodeFrame, encodeFrame, type Frame } from '../net/frames.ts'
import { controlTopic, type Net } from '../net/libp2p.ts'
import type { DisseminationParams } from '../dissemination/index.ts'
import { TopicPath } from './topic-path.ts'
import {
  agentRecordKey, agentRecordSigningInput, decodeAgentRecord, decodeNodeRecord, encodeAgentRecord, encodeNodeRecord,
  type AgentRecord, type AgentRecordFields, type NodeRecord
} from '../net/records.ts'
import type { PeerTracker } from '../net/peers.ts'
import { boundedSource, sendWithBackpressure } from '../net/flow.ts'
import type { AbortOptions, Logger, SendResult } from '../node/types.ts'
import type { ByteStream, Endpoint } from './types.ts'
import { libp2pByteStream, memoryStreamPair } from './streams.ts'
import { retryDelay } from './retry.ts'
import { DeadlineQueue } from './deadlines.ts'
import type { MessageObservation } from '../log/recorder.ts'

export const AGENT_RECORD_TTL_MS = 60 * 60 * 1000
export const AGENT_RECORD_REFRESH_MS = 10 * 60 * 1000
const CONFIRM_TIMEOUT_MS = 5000
/**
 * How long the recipient's node holds back the confirmation of a request it delivered,
 * waiting for the reply to carry it (PROTOCOL.md 8.1). A handler slower than this gets an
 * explicit confirmation; far below CONFIRM_TIMEOUT_MS either way.
 */
export const ACK_HOLD_MS = 200
/**
 * A link over which a frame awaiting confirmation went out, and nothing at all came back
 * for this long (5 × ACK_HOLD_MS: a live node confirms within ACK_HOLD_MS), is taken for
 * dead once that wait ends unconfirmed (see `dropIfSilent`).
 */
export const SILENT_LINK_MS = 5 * ACK_HOLD_MS
/** Most agent records exchanged in one directory sync. */
const DIRECTORY_SYNC_MAX = 2000
const ROUTE_HINTS_MAX = 10_000
const ROUTE_HINT_TTL_MS = 5 * 60 * 1000
const STREAM_OPEN_TIMEOUT_MS = 10_000
const MATCH_CACHE_MAX = 4096
/** `submit` of a topic message waits while the links hold more than this … */
const SUBMIT_HIGH_WATER_BYTES = 4 * 1024 * 1024
/** … until they are down to this. */
const SUBMIT_LOW_WATER_BYTES = 1024 * 1024
/** A route hint is moved to the back of the eviction order at most this often (`rememberRoute`). */
const ROUTE_HINT_REFRESH_MS = 1000
const ignore = (): void => {}

/**
 * What the semantic ingress check (src/node/semantic.ts) says about an envelope that passed
 * verifyIngress: nothing (pass), or a rejection with its reason and the error code the
 * sender's node is told in the delivery confirmation.
 */
export interface InspectRejection { reason: RejectionReason, detail: string, code: string }
export type InspectVerdict = InspectRejection | undefined

export interface RouterComponents {
  net: Net
  network: NetworkId
  ingress: IngressOptions
  peers: PeerTracker
  logger: Logger
  /** Supplies this node's signed record for announcements. */
  nodeRecord: () => Promise<NodeRecord>
  /**
   * The semantic ingress hook, run at every ingress point (link frames, gossip) after
   * verifyIngress accepted the envelope. Returns undefined synchronously for envelopes it
   * has nothing to say about (the fast path), else a verdict or a promise of one (schema
   * validation, maybe a bounded registry fetch).
   */
  inspect?: (env: Envelope) => InspectVerdict | Promise<InspectVerdict>
  /** Registry documents announced on the control topic (`{ k: 'doc', r }`). */
  onControlDocument?: (peer: string, bytes: Uint8Array) => TopicValidatorResult
  /** Told what happens to each message here (sent, received, rejected): the message log. Must not block. */
  observe?: (o: MessageObservation) => void
  /**
   * A direct envelope that this node takes on its own account as it arrives from a link: a
   * receipt (the log marks of the messages it acknowledges). Returns undefined for any other
   * envelope, else the promise of that work being durable: the envelope's confirmation waits
   * for it and is sent whether or not a recipient is attached (a failure is a negative
   * confirmation, so its sender tries again). The taker decides whether the recipients
   * attached here get the envelope, by calling `handOver` (at most once; it returns how many
   * were reached): so a copy taken again — after a failure, or a restart that lost the
   * confirmation — is not handed over twice.
   */
  take?: (env: Envelope, handOver: () => number) => Promise<void> | undefined
  /** Signs with the node key (interest records of the dissemination layer). */
  signNode: (input: Uint8Array) => Uint8Array
  dissemination?: Partial<DisseminationParams>
}

export interface RouterCounters { published: number, delivered: number, forwarded: number, received: number }

interface Attached {
  ep: Endpoint
  onStream: (stream: ByteStream, open: Envelope) => void
  patterns: Set<string>
  record?: Uint8Array
}

type ConfirmFrame = Frame & { t: typeof FRAME_CONFIRM }

interface PendingConfirm {
  peer: string
  id: string
  /** A request's recipients at that node: a verified reply from one of them confirms delivery. */
  answeredBy?: readonly AgentId[]
  resolve: (f: ConfirmFrame) => void
  reject: (err: Error) => void
}

/** A request delivered here whose confirmation waits for the reply (to the node it came from). */
interface HeldAck { link: FrameLink, peer: string, to: AgentId[] }

/** The sender waits for a delivery confirmation of this envelope (PROTOCOL.md 8.1). */
export function wantsConfirm (env: Envelope): boolean {
  return env.dlv?.ack === true || (env.dlv?.retries ?? 0) > 0 || env.replyTo != null
}

/** A request: it names where to reply and is not itself a reply. */
export function isRequest (env: Envelope): boolean {
  return env.replyTo != null && env.corr == null
}

export class Router {
  readonly dedup = new DedupCache()
  readonly rejections: RejectionCounter
  readonly counters: RouterCounters = { published: 0, delivered: 0, forwarded: 0, received: 0 }
  /** Confirmation frames sent, and requests sent from here whose reply stood for their confirmation. */
  readonly confirmCounts = { sent: 0, byReply: 0 }
  /** Links closed because nothing came back over them while a confirmation was awaited (`dropIfSilent`). */
  silentLinksDropped = 0
  /** Requests delivered here whose confirmation is held for their reply. */
  get heldConfirmations (): number { return this.heldAcks.size }
  private readonly c: RouterComponents
  private readonly endpoints = new Map<AgentId, Attached>()
  private readonly directory = new Map<AgentId, AgentRecord>()
  private readonly nodes = new Map<string, NodeRecord>()
  private readonly links = new Map<string, Promise<FrameLink>>()
  /** The links of `links` that are open, for a send that need not wait on a promise. */
  private readonly openLinks = new Map<string, FrameLink>()
  private readonly inbound = new Set<FrameLink>()
  /** Delivery confirmations awaited, by `peer|id`; one timer sweeps them all. */
  private readonly confirms = new DeadlineQueue<string, PendingConfirm>({
    delayMs: CONFIRM_TIMEOUT_MS,
    onExpire: (_key, w) => { w.reject(new TimeoutError(`no delivery confirmation for ${w.id} from ${w.peer}`)) }
  })
  /** Confirmations of requests delivered here, held until the reply goes out (by request id). */
  private readonly heldAcks = new DeadlineQueue<string, HeldAck>({
    delayMs: ACK_HOLD_MS,
    unref: true,
    onExpire: (id, h) => { this.sendConfirm(h.link, id, true) }
  })
  /**
   * Reverse-path hints: the peer a validly signed direct message from an agent arrived
   * from. Used only when no signed record of that agent is known (before asking the DHT),
   * so that a reply to a newcomer does not wait for its record to spread. Bounded, expiring.
   */
  private readonly routeHints = new Map<AgentId, { peer: string, at: number }>()
  /**
   * Envelopes the node is taking on its own account (`take`: receipts) whose work is not
   * durable yet, by id: a retransmission that arrives meanwhile is confirmed when that work
   * is, not at once as a plain duplicate. Bounded by what is in flight.
   */
  private readonly taking = new Map<string, Promise<void>>()
  private refreshTimer?: NodeJS.Timeout
  private announceTimer?: NodeJS.Timeout
  private stopped = false
  /** Topic and broadcast traffic: the dissemination core over FrameLinks. */
  readonly topics: TopicPath
  /** Topic → local agents whose patterns match it (cleared on any subscription change). */
  private readonly matchCache = new Map<string, Attached[]>()

  /** Ingress options with this node's cache of verified batch roots. */
  private readonly ingress: IngressOptions

  constructor (components: RouterComponents) {
    this.c = components
    this.ingress = { ...components.ingress, roots: components.ingress.roots ?? new VerifiedRoots() }
    this.rejections = new RejectionCounter({
      onReject: (r) => this.c.logger.debug({ reason: r.reason, detail: r.detail, peer: r.peer, id: r.id }, 'message rejected')
    })
    this.topics = new TopicPath({
      self: components.net.peerId.toString(),
      params: components.dissemination,
      sign: components.signNode,
      admit: (bytes, hops, peer) => this.admitTopic(bytes, hops, peer),
      ingress: this.ingress,
      admitChecked: (env, peer) => { this.counters.received++; return this.admitTopicEnvelope(env, peer) },
      deliver: (env, peer) => { this.deliverTopic(env, peer) },
      relayed: (env, peer) => { this.c.observe?.({ event: 'relayed', env, peer }) },
      reject: (reason, detail, peer, id) => { this.reject(reason, detail, peer, id) },
      clockSkewMs: this.ingress.clockSkewMs,
      // One table of ids per node: the core's duplicate check is also the delivery gate.
      seen: this.dedup,
      logger: components.logger
    })
  }

  private get pubsub () { return this.c.net.services.pubsub }
  private get peerId (): string { return this.c.net.peerId.toString() }

  async start (): Promise<void> {
    const net = this.c.net
    await net.handle(msgProtocol(this.c.network), (stream, connection) => { this.acceptLink(stream, connection) }, { maxInboundStreams: 64 })
    await net.handle(streamProtocol(this.c.network), (stream, connection) => { void this.acceptStream(stream, connection) }, { maxInboundStreams: 256 })
    const control = controlTopic(this.c.network)
    this.pubsub.topicValidators.set(control, async (peer, msg) => await this.validateControl(peer.toString(), msg.data))
    this.pubsub.subscribe(control)
    // Announcements sent before a peer's subscription to the control topic is known reach
    // no one: announce again once a peer subscribes.
    this.pubsub.addEventListener('subscription-change', (e) => {
      if (e.detail.subscriptions.some(sub => sub.topic === control && sub.subscribe)) this.scheduleAnnounce(100)
    })
    // A peer that joins later has missed earlier announcements: re-announce, debounced.
    await net.handle(directoryProtocol(this.c.network), (stream) => { void this.serveDirectory(stream) }, { maxInboundStreams: 8 })
    net.addEventListener('peer:identify', (e) => {
      this.scheduleAnnounce(500)
      if (e.detail.protocols.includes(msgProtocol(this.c.network))) this.ensureNeighbour(e.detail.peerId.toString())
      // A peer we just met may know agents whose announcements we missed: ask once.
      if (e.detail.protocols.includes(directoryProtocol(this.c.network))) void this.fetchDirectory(e.detail.peerId.toString())
    })
    // A peer that connected before its router started announces the protocol later
    // (identify push); one that connected before ours started is in the peer list.
    net.addEventListener('peer:update', (e) => {
      if (e.detail.peer.protocols.includes(msgProtocol(this.c.network)) && net.getConnections(e.detail.peer.id).length > 0) this.ensureNeighbour(e.detail.peer.id.toString())
    })
    for (const pid of net.getPeers()) {
      const known = await net.peerStore.get(pid).catch(() => undefined)
      if (known?.protocols.includes(msgProtocol(this.c.network)) === true) this.ensureNeighbour(pid.toString())
    }
    // Our own addresses changed (listening, a relay reservation, an observed address):
    // records must carry them, or agents behind a relay stay unreachable.
    net.addEventListener('self:peer:update', () => { this.scheduleAnnounce(200) })
    this.refreshTimer = setInterval(() => { void this.announceAll() }, AGENT_RECORD_REFRESH_MS)
    this.refreshTimer.unref()
  }

  /** Every fedmesh peer we are connected to is a dissemination neighbour: open our link to it. */
  private ensureNeighbour (peer: string): void {
    if (this.stopped || this.links.has(peer)) return
    void this.linkTo(peer, [], AbortSignal.timeout(10_000)).catch((err: Error) => {
      this.c.logger.debug({ peer, err: err.message }, 'link to peer failed')
    })
  }

  async stop (): Promise<void> {
    this.stopped = true
    this.topics.stop()
    clearInterval(this.refreshTimer)
    clearTimeout(this.announceTimer)
    for (const p of this.confirms.clear()) p.reject(new UnreachableError('node stopping'))
    this.heldAcks.clear()
    const links = await Promise.allSettled([...this.links.values()])
    await Promise.allSettled([...links.flatMap(l => l.status === 'fulfilled' ? [l.value.close()] : []), ...[...this.inbound].map(l => l.close())])
  }

  // ---- agents ---------------------------------------------------------------------------

  async attach (ep: Endpoint, onStream: (stream: ByteStream, open: Envelope) => void): Promise<void> {
    const existing = this.endpoints.get(ep.agent)
    this.endpoints.set(ep.agent, { ep, onStream, patterns: existing?.patterns ?? new Set() })
    this.matchCache.clear()
    await this.publishAgentRecord(ep.agent)
  }

  async detach (agent: AgentId): Promise<void> {
    const a = this.endpoints.get(agent)
    this.endpoints.delete(agent)
    this.matchCache.clear()
    if (a != null) for (const p of a.patterns) this.topics.unsubscribe(p)
  }

  subscribe (agent: AgentId, pattern: string): void {
    const a = this.endpoints.get(agent)
    if (a == null || a.patterns.has(pattern)) return
    a.patterns.add(pattern)
    this.matchCache.clear()
    // The core counts patterns per node; per-agent matching stays here.
    this.topics.subscribe(pattern)
  }

  unsubscribe (agent: AgentId, pattern: string): void {
    const a = this.endpoints.get(agent)
    if (a == null || !a.patterns.delete(pattern)) return
    this.matchCache.clear()
    this.topics.unsubscribe(pattern)
  }

  localAgents (): Endpoint[] { return [...this.endpoints.values()].map(a => a.ep) }
  subscriptionsOf (agent: AgentId): string[] { return [...(this.endpoints.get(agent)?.patterns ?? [])] }
  nodeRecords (): NodeRecord[] { return [...this.nodes.values()] }

  // ---- outbound -------------------------------------------------------------------------

  /** Routes an envelope signed by a local agent. Never throws: a failure rejects. */
  submit (env: Envelope, options: AbortOptions = {}): Promise<SendResult> {
    try {
      return this.route(env, options)
    } catch (err) {
      return Promise.reject(err)
    }
  }

  private route (env: Envelope, options: AbortOptions): Promise<SendResult> {
    this.counters.published++
    this.c.observe?.({ event: 'sent', env })
    if (env.mode === 'topic' || env.mode === 'broadcast') {
      // The dissemination core records the id in `dedup` (its table of ids taken).
      this.publishTopic(env)
      const result = { id: env.id, confirmed: [] }
      // Backpressure for callers that await each publication: resolve once the links drain.
      if (this.topics.queuedBytes() > SUBMIT_HIGH_WATER_BYTES) return this.topics.drained(SUBMIT_LOW_WATER_BYTES).then(() => result)
      return Promise.resolve(result)
    }
    this.dedup.add(env.id, env.ts + env.ttl * 1000 + this.ingress.clockSkewMs)
    return this.sendOverOpenLink(env, options) ?? this.sendDirect(env, options)
  }

  /**
   * The fast path of a direct envelope to one remote recipient whose home node's link is
   * open (every request and reply): the frame is queued on that link at once, without the
   * lookups, loops and promise layers of sendDirect/sendToHomes, with the same outcome. It
   * does not apply (undefined: the general path sends it) to retries, a delivery deadline,
   * or a confirmation wanted from an agent with several home nodes (tried in turn there).
   * A link that fails under the frame hands it to the general path, which sends it once
   * more over a new link, as sendToHomes does.
   */
  private sendOverOpenLink (env: Envelope, options: AbortOptions): Promise<SendResult> | undefined {
    const signal = options.signal
    if (signal?.aborted === true) return undefined
    const wantConfirm = wantsConfirm(env)
    const route = this.openRoute(env, wantConfirm)
    if (route === undefined) return undefined
    const { home, link } = route
    const to = env.to as AgentId[]
    if (env.corr != null) this.replying(env, home.id)
    const frame = encodeMessageFrame(1, env.bytes)
    if (!wantConfirm) {
      const sent = link.sendEncoded(frame, env.prio)
      this.counters.forwarded++
      return sent.then(() => ({ id: env.id, confirmed: [] }), () => {
        this.counters.forwarded--
        return this.sendDirect(env, options)
      })
    }
    // A request (or an acknowledged send): one promise, settled by the confirmation (or the
    // reply standing for it) as sendToHomes settles a single attempt. The frame is queued
    // without a promise of its own; if the link fails under it, the wait is dropped and the
    // general path sends it instead.
    const { promise, resolve, reject } = Promise.withResolvers<SendResult>()
    let resent = false
    const resend = (err: Error): void => {
      if (resent) return
      resent = true
      this.counters.forwarded--
      // Not sent: this confirmation wait will never be answered.
      this.confirms.take(`${home.id}|${env.id}`)?.reject(err)
      this.sendDirect(env, options).then(resolve, reject)
    }
    // Waited for before the frame is queued: a reply may come back at once.
    this.watchConfirm(link, home.id, env.id, signal, isRequest(env) ? to : undefined, (reply) => {
      if (resent) return
      if (reply.ok) resolve({ id: env.id, confirmed: [to[0]] })
      else reject(errorFromConfirm(reply.code, reply.msg))
    }, (err) => {
      if (resent) return
      if (isAborted(signal)) reject(abortReason(signal as AbortSignal, 'delivery'))
      else reject(err instanceof FedmeshError ? err : new UnreachableError(`could not deliver ${env.id}: ${err.message}`, { cause: err }))
    })
    this.counters.forwarded++
    if (!link.push(frame, env.prio, resend)) resend(new ClosedError('link closed'))
    return promise
  }

  /**
   * The open link to the home node of a direct envelope's one remote recipient, when the
   * fast path applies (see sendOverOpenLink): no retries, no delivery deadline, and a single
   * home node if a confirmation is wanted.
   */
  private openRoute (env: Envelope, wantConfirm: boolean): { home: AgentRecord['home'][number], link: FrameLink } | undefined {
    const to = env.to
    if (to === undefined || to.length !== 1 || env.dlv?.maxMs !== undefined || (env.dlv?.retries ?? 0) > 0) return undefined
    const rec = this.endpoints.has(to[0]) ? undefined : this.knownAgent(to[0]) ?? this.hintedRecord(to[0])
    if (rec === undefined || (wantConfirm && rec.home.length !== 1)) return undefined
    const home = rec.home.find(h => h.id !== this.peerId)
    const link = home === undefined ? undefined : this.openLinks.get(home.id)
    if (home === undefined || link === undefined || link.isClosed) return undefined
    return { home, link }
  }

  /**
   * Routes a local agent's direct envelope whose outcome nobody awaits — a request
   * handler's answer (the requester's timeout reports a lost one) — as `submit` does, but
   * over an open link without a promise: the frame is queued with a failure callback that
   * hands it to the general path, as the fast path's send does. Failures are dropped.
   */
  sendNow (env: Envelope): void {
    if (env.mode !== 'direct' || wantsConfirm(env)) { this.submit(env).catch(ignore); return }
    this.counters.published++
    this.c.observe?.({ event: 'sent', env })
    this.dedup.add(env.id, env.ts + env.ttl * 1000 + this.ingress.clockSkewMs)
    const route = this.openRoute(env, false)
    if (route === undefined) { this.sendDirect(env, {}).catch(ignore); return }
    if (env.corr != null) this.replying(env, route.home.id)
    this.counters.forwarded++
    const resend = (): void => {
      this.counters.forwarded--
      this.sendDirect(env, {}).catch(ignore)
    }
    if (!route.link.push(encodeMessageFrame(1, env.bytes), env.prio, resend)) resend()
  }

  /**
   * Routes a local agent's topic or broadcast envelope at once, without a promise (the
   * SDK's buffered path). Other modes are refused (counted as `bad-field`).
   */
  publishNow (env: Envelope): void {
    if (env.mode !== 'topic' && env.mode !== 'broadcast') {
      this.reject('bad-field', `publishNow takes topic and broadcast envelopes, not ${env.mode}`, undefined, env.id)
      return
    }
    // The id goes into `dedup` in the dissemination core's publish (as for submit).
    this.counters.published++
    // Logged as submit does (the recorder keeps a batch's publications as one run).
    this.c.observe?.({ event: 'sent', env })
    this.publishTopic(env)
  }

  /**
   * Publishes a local agent's topic or broadcast envelope: local subscribers, then the
   * dissemination core. Synchronous: the frames are queued on the links (see
   * `topics.queuedBytes` for backpressure).
   */
  private publishTopic (env: Envelope): void {
    this.deliverFanout(env)
    this.topics.publish(env)
  }

  private async sendDirect (env: Envelope, options: AbortOptions): Promise<SendResult> {
    const recipients = env.to ?? []
    const wantConfirm = wantsConfirm(env)
    const deadline = env.dlv?.maxMs != null ? AbortSignal.timeout(env.dlv.maxMs) : undefined
    const signal = deadline === undefined ? options.signal : anySignal(options.signal, deadline)
    if (recipients.length === 1) {
      // One recipient (every request and reply): no grouping by home node.
      const to = recipients[0]
      if (this.endpoints.has(to)) {
        this.deliverLocal(env, to)
        return { id: env.id, confirmed: wantConfirm ? [to] : [] }
      }
      const rec = this.knownAgent(to) ?? this.hintedRecord(to) ?? await this.findAgent(to, { signal })
      const ok = await this.sendToHomes(env, rec.home, recipients, wantConfirm, signal)
      return { id: env.id, confirmed: wantConfirm && ok ? [to] : [] }
    }
    const confirmed: AgentId[] = []
    const remote = new Map<string, { home: AgentRecord['home'], agents: AgentId[] }>()
    for (const to of recipients) {
      if (this.endpoints.has(to)) {
        this.deliverLocal(env, to)
        confirmed.push(to)
        continue
      }
      const rec = this.knownAgent(to) ?? this.hintedRecord(to) ?? await this.findAgent(to, { signal })
      const key = rec.home.map(h => h.id).join(',')
      const group = remote.get(key) ?? { home: rec.home, agents: [] }
      group.agents.push(to)
      remote.set(key, group)
    }
    await Promise.all([...remote.values()].map(async (group) => {
      const ok = await this.sendToHomes(env, group.home, group.agents, wantConfirm, signal)
      if (ok) confirmed.push(...group.agents)
    }))
    return { id: env.id, confirmed: wantConfirm ? confirmed : [] }
  }

  /** A local agent's direct envelope to an agent on this node; a request needs a handler there. */
  private deliverLocal (env: Envelope, to: AgentId): void {
    const local = this.endpoints.get(to) as Attached
    if (isRequest(env) && !local.ep.handlesRequests()) throw new NoRespondersError(`agent ${to} does not answer requests`)
    this.deliverDirect(env, to)
  }

  /** Sends to the first reachable home node of `recipients`, retrying with backoff when asked to. */
  private async sendToHomes (env: Envelope, homes: AgentRecord['home'], recipients: AgentId[], wantConfirm: boolean, signal?: AbortSignal): Promise<boolean> {
    const attempts = 1 + (env.dlv?.retries ?? 0)
    // Built only when needed: an error captures a stack, which costs more than a send.
    let lastError: Error | undefined
    // Encoded once for every attempt and home node.
    const frame = encodeMessageFrame(1, env.bytes)
    // A link that closes under a frame (a connection replaced as peers meet) is replaced and
    // the frame sent once more at once: the recipient's dedup keeps it from arriving twice.
    let relinked = false
    for (let attempt = 0; attempt < attempts; attempt++) {
      if (attempt > 0) await sleep(retryDelay(attempt), signal)
      for (let i = 0; i < homes.length; i++) {
        const home = homes[i]
        if (signal?.aborted === true) throw abortReason(signal, 'delivery')
        if (home.id === this.peerId) continue
        let link: FrameLink | undefined
        try {
          const open = this.openLinks.get(home.id)
          link = open !== undefined && !open.isClosed ? open : await this.linkTo(home.id, home.addrs, signal)
          if (env.corr != null) this.replying(env, home.id)
          if (!wantConfirm) {
            await link.sendEncoded(frame, env.prio)
            this.counters.forwarded++
            return true
          }
          const confirm = this.awaitConfirm(link, home.id, env.id, signal, isRequest(env) ? recipients : undefined)
          try {
            await link.sendEncoded(frame, env.prio)
          } catch (err) {
            // Not sent: this wait will never be answered.
            this.confirms.take(`${home.id}|${env.id}`)?.reject(err as Error)
            confirm.catch(() => {})
            throw err
          }
          this.counters.forwarded++
          const reply = await confirm
          if (reply.ok) return true
          // A definite answer from the recipient's node: do not retry.
          throw errorFromConfirm(reply.code, reply.msg)
        } catch (err) {
          if (err instanceof NoRespondersError || err instanceof AgentNotFoundError || err instanceof DeliveryFailedError) throw err
          if (isAborted(signal)) throw abortReason(signal as AbortSignal, 'delivery')
          lastError = err as Error
          this.c.logger.debug({ err: (err as Error).message, peer: home.id, attempt }, 'send attempt failed')
          if (!relinked && err instanceof ClosedError && link?.isClosed === true) {
            relinked = true
            i-- // the same home node, over a new link
          }
        }
      }
    }
    if (lastError === undefined) throw new UnreachableError('no home node reachable')
    throw lastError instanceof FedmeshError ? lastError : new UnreachableError(`could not deliver ${env.id}: ${lastError.message}`, { cause: lastError })
  }

  /**
   * Waits for the confirmation of `id` from `peer`, sent over `link` (CONFIRM_TIMEOUT_MS, or
   * until `signal`). For a request, `answeredBy` lists its recipients there: their reply
   * confirms it too. A wait that ends unconfirmed checks whether the link is dead.
   */
  private awaitConfirm (link: FrameLink, peer: string, id: string, signal?: AbortSignal, answeredBy?: readonly AgentId[]): Promise<ConfirmFrame> {
    const { promise, resolve, reject } = Promise.withResolvers<ConfirmFrame>()
    this.watchConfirm(link, peer, id, signal, answeredBy, resolve, reject)
    return promise
  }

  /** `awaitConfirm` with callbacks instead of a promise: exactly one of them is called, once. */
  private watchConfirm (link: FrameLink, peer: string, id: string, signal: AbortSignal | undefined, answeredBy: readonly AgentId[] | undefined,
    resolve: (f: ConfirmFrame) => void, reject: (err: Error) => void): void {
    const key = `${peer}|${id}`
    let onAbort: (() => void) | undefined
    const reads = link.reads
    const since = performance.now()
    const wait: PendingConfirm = {
      peer,
      id,
      answeredBy,
      resolve: (f) => { if (onAbort !== undefined) signal?.removeEventListener('abort', onAbort); resolve(f) },
      reject: (e) => {
        if (onAbort !== undefined) signal?.removeEventListener('abort', onAbort)
        this.dropIfSilent(link, peer, reads, since)
        reject(e)
      }
    }
    if (signal != null) {
      onAbort = () => {
        if (this.confirms.get(key) === wait) this.confirms.take(key)
        wait.reject(abortReason(signal, 'delivery'))
      }
      signal.addEventListener('abort', onAbort, { once: true })
    }
    this.confirms.add(key, wait)
  }

  /**
   * A confirmation wait over `link` ended unconfirmed (its deadline, the request's timeout or
   * abort). If the link read nothing since the frame was queued (`reads` then, at `since`)
   * and that was at least SILENT_LINK_MS ago, the node at the other end is not reading it
   * — a live one confirms within ACK_HOLD_MS — and the link is closed, so the next send
   * opens a new one instead of waiting on this one too. A dead connection under it is
   * libp2p's to find (its connection monitor pings every connection and aborts one that
   * does not answer); a new link over it fails with it.
   */
  private dropIfSilent (link: FrameLink, peer: string, reads: number, since: number): void {
    if (this.stopped || link.isClosed || link.reads !== reads) return
    const silentMs = performance.now() - since
    if (silentMs < SILENT_LINK_MS) return
    this.silentLinksDropped++
    this.c.logger.warn({ peer, silentMs: Math.round(silentMs) }, 'link silent while a confirmation was awaited: closed')
    link.abort(new TimeoutError(`nothing read from node ${peer} in ${Math.round(silentMs)} ms while a confirmation was awaited`))
  }

  /**
   * A local agent's reply (`corr`) leaves for `peer`: if it answers a request that came from
   * there and is held unconfirmed, the reply is its confirmation (PROTOCOL.md 8.1).
   */
  private replying (env: Envelope, peer: string): void {
    const held = this.heldAcks.get(env.corr as string)
    if (held !== undefined && held.peer === peer && held.to.includes(env.from)) this.heldAcks.take(env.corr as string)
  }

  /** A verified reply from the node a request went to confirms the request's delivery. */
  private replyConfirms (env: Envelope, peer: string): void {
    const key = `${peer}|${env.corr as string}`
    const wait = this.confirms.get(key)
    if (wait?.answeredBy?.includes(env.from) !== true) return
    this.confirms.take(key)
    this.confirmCounts.byReply++
    wait.resolve({ t: FRAME_CONFIRM, id: wait.id, ok: true })
  }

  private async linkTo (peer: string, addrs: string[], signal?: AbortSignal): Promise<FrameLink> {
    const existing = this.links.get(peer)
    if (existing != null) {
      const link = await existing.catch(() => undefined)
      if (link != null && !link.isClosed) return link
      this.links.delete(peer)
    }
    const p = this.dialLink(peer, addrs, signal)
    this.links.set(peer, p)
    p.catch(() => { if (this.links.get(peer) === p) this.links.delete(peer) })
    return await p
  }

  private async dialLink (peer: string, addrs: string[], signal?: AbortSignal): Promise<FrameLink> {
    const pid = peerIdFromString(peer)
    this.c.peers.dialing(peer)
    try {
      if (addrs.length > 0) await this.c.net.peerStore.merge(pid, { multiaddrs: addrs.map(a => multiaddr(a)) })
      const stream = await this.c.net.dialProtocol(pid, msgProtocol(this.c.network), { signal: signal ?? AbortSignal.timeout(10_000) })
      const link: FrameLink = new FrameLink(stream, {
        onFrame: (f) => { this.onFrame(f, link, peer) },
        onGarbage: (detail) => { this.reject('malformed', detail, peer) },
        onClose: () => {
          this.topics.removeLink(peer, link)
          if (this.openLinks.get(peer) === link) this.openLinks.delete(peer)
          if (this.links.get(peer) != null) void this.links.get(peer)?.then(l => { if (l === link) this.links.delete(peer) })
        }
      })
      this.topics.addLink(peer, link)
      this.openLinks.set(peer, link)
      return link
    } catch (err) {
      this.c.peers.dialFailed(peer)
      throw new UnreachableError(`cannot reach node ${peer}: ${(err as Error).message}`, { cause: err })
    }
  }

  // ---- inbound --------------------------------------------------------------------------

  private acceptLink (stream: Stream, connection: Connection): void {
    const peer = connection.remotePeer.toString()
    const link: FrameLink = new FrameLink(stream, {
      onFrame: (f) => { this.onFrame(f, link, peer) },
      onGarbage: (detail) => { this.reject('malformed', detail, peer) },
      onClose: () => { this.inbound.delete(link); this.topics.removeLink(peer, link) }
    })
    this.inbound.add(link)
    this.topics.addLink(peer, link)
  }

  private onFrame (frame: Frame, link: FrameLink, peer: string): void {
    this.c.peers.seen(peer)
    if (frame.t === FRAME_CONFIRM) {
      this.confirms.take(`${peer}|${frame.id}`)?.resolve(frame)
      return
    }
    if (frame.t === FRAME_DATA) { this.topics.onData(peer, frame); return }
    if (frame.t !== FRAME_MESSAGE) { this.topics.onControl(peer, frame); return }
    this.counters.received++
    const res = verifyIngress(frame.e, frame.h, this.ingress, this.dedup)
    if (!res.ok) {
      this.reject(res.reason, res.detail, peer, res.id)
      // A retransmission of something we already delivered: confirm it again, since
      // the first confirmation may be what was lost.
      if (res.reason === 'duplicate' && res.id != null) {
        const taking = this.taking.get(res.id)
        if (taking === undefined) this.sendConfirm(link, res.id, true)
        else this.confirmTaken(taking, link, res.id)
      } else if (res.id != null) this.sendConfirm(link, res.id, false, 'DeliveryFailedError', `rejected: ${res.reason}`)
      return
    }
    const env = res.envelope
    if (env.mode !== 'direct' && env.mode !== 'multicast') {
      // Not taken: its id must not keep the copies that come in data frames from the core.
      this.dedup.delete(env.id)
      this.reject('bad-field', `${env.mode} envelopes travel in data frames (t=6), not message frames`, peer, env.id)
      return
    }
    if (env.corr != null) this.replyConfirms(env, peer)
    this.c.observe?.({ event: 'received', env, peer })
    this.rememberRoute(env.from, peer)
    const verdict = this.c.inspect?.(env)
    if (verdict == null) { this.deliverFrame(env, link, peer); return }
    void Promise.resolve(verdict).then((v) => {
      if (v == null) { this.deliverFrame(env, link, peer); return }
      this.rejectInspected(v, peer, env)
      this.sendConfirm(link, env.id, false, v.code, `rejected: ${v.reason}: ${v.detail}`)
    })
  }

  private rejectInspected (v: InspectRejection, peer: string, env: Envelope): void {
    this.dedup.delete(env.id)
    this.reject(v.reason, v.detail, peer, env.id)
  }

  /**
   * Hands a verified direct or multicast envelope to the recipients hosted here, then
   * answers the sender's node: a refusal always; a success only when the envelope asks
   * for a confirmation, and for a request not before its reply has had ACK_HOLD_MS to
   * carry it (PROTOCOL.md 8.1). One that the node takes itself (`take`: a receipt) is
   * confirmed once that is durable, attached recipient or not.
   */
  private deliverFrame (env: Envelope, link: FrameLink, peer: string): void {
    const taken = this.c.take?.(env, () => this.handOver(env))
    if (taken !== undefined) {
      const id = env.id
      // Until it is durable, a retransmission waits for it; once it has failed, its id is
      // free again so that the sender's next try is taken anew (not confirmed as a duplicate).
      const settled = taken.then(
        () => { this.taking.delete(id) },
        (err: unknown) => { this.taking.delete(id); this.dedup.delete(id); throw err }
      )
      this.taking.set(id, settled)
      if (wantsConfirm(env)) this.confirmTaken(settled, link, id)
      else settled.catch(() => {})
      return
    }
    const request = isRequest(env)
    const handed: AgentId[] = []
    let failure: { code: string, msg: string } | undefined
    for (const to of env.to ?? []) {
      const a = this.endpoints.get(to)
      if (a == null) continue
      if (request && !a.ep.handlesRequests()) {
        failure = { code: 'NoRespondersError', msg: `agent ${to} does not answer requests` }
        continue
      }
      // Held before delivery: a handler that answers synchronously finds it.
      if (request && handed.length === 0) this.heldAcks.add(env.id, { link, peer, to: handed })
      handed.push(to)
      this.deliverDirect(env, to)
    }
    if (handed.length === 0) {
      failure ??= { code: 'AgentNotFoundError', msg: `no recipient of ${env.id} is hosted on node ${this.peerId}` }
      this.sendConfirm(link, env.id, false, failure.code, failure.msg)
      return
    }
    if (!request && wantsConfirm(env)) this.sendConfirm(link, env.id, true)
  }

  /** Hands a taken envelope to its recipients attached here; how many there were. */
  private handOver (env: Envelope): number {
    let n = 0
    for (const to of env.to ?? []) if (this.endpoints.has(to)) { this.deliverDirect(env, to); n++ }
    return n
  }

  /** Confirms an envelope the node took once that work is durable; a failure is refused with its code. */
  private confirmTaken (taken: Promise<void>, link: FrameLink, id: string): void {
    taken.then(
      () => { this.sendConfirm(link, id, true) },
      (err: Error & { code?: string }) => { this.sendConfirm(link, id, false, err.code ?? 'InternalError', err.message) }
    )
  }

  /** Queues a confirmation frame at the highest priority; a closed link drops it (the sender's wait times out). */
  private sendConfirm (link: FrameLink, id: string, ok: boolean, code?: string, msg?: string): void {
    this.confirmCounts.sent++
    const frame: Frame = ok ? { t: FRAME_CONFIRM, id, ok } : { t: FRAME_CONFIRM, id, ok, code, msg }
    void link.send(frame, 3).catch(() => {})
  }

  /**
   * The per-message ingress of topic and broadcast traffic: every copy of a data frame
   * passes here before the dissemination core may forward or deliver it. Same checks as
   * direct messages (verifyIngress) except dedup, which gates delivery (deliverTopic), not
   * forwarding: each copy carries its own labels. Per-envelope hooks (schema inspection)
   * belong here, after the checks.
   */
  private admitTopic (bytes: Uint8Array, hops: number, peer: string): Envelope | undefined | Promise<Envelope | undefined> {
    this.counters.received++
    const res = checkIngress(bytes, hops, this.ingress)
    if (!res.ok) {
      this.reject(res.reason, res.detail, peer, res.id)
      return undefined
    }
    return this.admitTopicEnvelope(res.envelope, peer)
  }

  /** admitTopic after the envelope checks (also for the envelopes of batch frames, which topic-path checks). */
  private admitTopicEnvelope (env: Envelope, peer: string): Envelope | undefined | Promise<Envelope | undefined> {
    if (env.mode !== 'topic' && env.mode !== 'broadcast') {
      this.reject('bad-field', `${env.mode} envelopes travel in message frames (t=1), not data frames`, peer, env.id)
      return undefined
    }
    // The semantic check (schema validation, maybe a bounded registry fetch): a copy it
    // refuses is neither delivered nor forwarded.
    const verdict = this.c.inspect?.(env)
    if (verdict == null) return env
    return Promise.resolve(verdict).then((v) => {
      if (v == null) return env
      this.reject(v.reason, v.detail, peer, env.id)
      return undefined
    })
  }

  /**
   * A remote topic or broadcast message the core delivers here, to matching agents: once
   * per id, since the core delivers only the copy that first entered `dedup` (its table).
   */
  private deliverTopic (env: Envelope, peer: string): void {
    this.c.observe?.({ event: 'received', env, peer })
    this.deliverFanout(env)
  }

  private reject (reason: RejectionReason, detail: string, peer?: string, id?: string): void {
    this.rejections.record({ reason, detail, peer, id: id as Envelope['id'] | undefined })
    // Retransmissions are not logged again: the first copy was.
    if (id != null && reason !== 'duplicate') this.c.observe?.({ event: 'rejected', id, reason: `${reason}: ${detail}`, peer })
  }

  // ---- local delivery -------------------------------------------------------------------

  private deliverFanout (env: Envelope): void {
    if (env.mode === 'broadcast') {
      for (const a of this.endpoints.values()) {
        if (a.ep.agent === env.from) continue
        this.counters.delivered++
        a.ep.deliver(env)
      }
      return
    }
    for (const a of this.subscribersOf(env.topic as string)) {
      this.counters.delivered++
      a.ep.deliver(env)
    }
  }

  /** Local agents with a pattern matching `topic`; cached per topic until subscriptions change. */
  private subscribersOf (topic: string): Attached[] {
    let list = this.matchCache.get(topic)
    if (list === undefined) {
      list = []
      for (const a of this.endpoints.values()) {
        for (const p of a.patterns) if (topicMatches(p, topic)) { list.push(a); break }
      }
      if (this.matchCache.size >= MATCH_CACHE_MAX) this.matchCache.clear()
      this.matchCache.set(topic, list)
    }
    return list
  }

  private deliverDirect (env: Envelope, to: AgentId): void {
    const a = this.endpoints.get(to)
    if (a == null) return
    this.counters.delivered++
    a.ep.deliver(env)
  }

  // ---- streams --------------------------------------------------------------------------

  async openStream (open: Envelope, options: AbortOptions = {}): Promise<ByteStream> {
    const to = open.to?.[0] as AgentId
    this.dedup.add(open.id, open.ts + open.ttl * 1000 + this.ingress.clockSkewMs)
    const local = this.endpoints.get(to)
    if (local != null) {
      if (!local.ep.acceptsStreams()) throw new NoRespondersError(`agent ${to} does not accept streams`)
      const [mine, theirs] = memoryStreamPair()
      local.onStream(theirs, open)
      return mine
    }
    const rec = await this.findAgent(to, options)
    let lastError: Error = new UnreachableError(`no home node of ${to} reachable`)
    for (const home of rec.home) {
      try {
        const pid = peerIdFromString(home.id)
        if (home.addrs.length > 0) await this.c.net.peerStore.merge(pid, { multiaddrs: home.addrs.map(a => multiaddr(a)) })
        const signal = anySignal(options.signal, AbortSignal.timeout(STREAM_OPEN_TIMEOUT_MS))
        const stream = await this.c.net.dialProtocol(pid, streamProtocol(this.c.network), { signal })
        const frames = lp.decode(boundedSource(stream), { maxDataLength: MAX_FRAME_BYTES })[Symbol.asyncIterator]()
        stream.send(lp.encode.single(encodeFrame({ t: FRAME_MESSAGE, h: 1, e: open.bytes })))
        const first = await withTimeout(frames.next(), signal)
        const reply = first.done === true ? undefined : decodeFrame(first.value.subarray())
        if (reply == null || reply.t !== FRAME_CONFIRM) throw new UnreachableError('stream handshake failed')
        if (!reply.ok) { stream.abort(new Error('refused')); throw errorFromConfirm(reply.code, reply.msg) }
        return libp2pByteStream(stream, frames)
      } catch (err) {
        if (err instanceof NoRespondersError || err instanceof AgentNotFoundError) throw err
        lastError = err as Error
      }
    }
    throw lastError
  }

  private async acceptStream (stream: Stream, connection: Connection): Promise<void> {
    const peer = connection.remotePeer.toString()
    const frames = lp.decode(boundedSource(stream), { maxDataLength: MAX_FRAME_BYTES })[Symbol.asyncIterator]()
    const refuse = (id: string, code: string, msg: string): void => {
      stream.send(lp.encode.single(encodeFrame({ t: FRAME_CONFIRM, id, ok: false, code, msg })))
      void stream.close().catch(() => {})
    }
    try {
      const first = await withTimeout(frames.next(), AbortSignal.timeout(STREAM_OPEN_TIMEOUT_MS))
      const frame = first.done === true ? undefined : decodeFrame(first.value.subarray())
      if (frame == null || frame.t !== FRAME_MESSAGE) { this.reject('malformed', 'stream open is not a message frame', peer); stream.abort(new Error('bad open')); return }
      const res = verifyIngress(frame.e, frame.h, this.ingress, this.dedup)
      if (!res.ok) { this.reject(res.reason, res.detail, peer, res.id); refuse(res.id ?? '', 'DeliveryFailedError', `rejected: ${res.reason}`); return }
      const env = res.envelope
      const to = env.to?.[0] as AgentId
      const a = this.endpoints.get(to)
      if (env.mode !== 'direct' || env.type !== 'stream') { refuse(env.id, 'InvalidEnvelopeError', 'stream open must be a direct envelope of type stream'); return }
      if (a == null) { refuse(env.id, 'AgentNotFoundError', `agent ${to} is not hosted here`); return }
      if (!a.ep.acceptsStreams()) { refuse(env.id, 'NoRespondersError', `agent ${to} does not accept streams`); return }
      stream.send(lp.encode.single(encodeFrame({ t: FRAME_CONFIRM, id: env.id, ok: true })))
      a.onStream(libp2pByteStream(stream, frames), env)
    } catch (err) {
      this.reject('malformed', `stream open failed: ${(err as Error).message}`, peer)
      stream.abort(err as Error)
    }
  }

  // ---- records --------------------------------------------------------------------------

  async publishAgentRecord (agent: AgentId): Promise<void> {
    const a = this.endpoints.get(agent)
    if (a == null) return
    const now = Date.now()
    const fields: AgentRecordFields = {
      v: 1,
      net: this.c.network,
      agent,
      name: a.ep.name,
      home: [{ id: this.peerId, addrs: this.c.net.getMultiaddrs().map(String) }],
      caps: a.ep.caps,
      seq: now,
      exp: now + AGENT_RECORD_TTL_MS
    }
    const sig = await a.ep.signRecord(agentRecordSigningInput(fields))
    const bytes = encodeAgentRecord(fields, sig)
    const rec = decodeAgentRecord(bytes)
    a.record = bytes
    this.directory.set(agent, rec)
    await this.pubsub.publish(controlTopic(this.c.network), dagCbor.encode({ k: 'agent', r: bytes })).catch(() => {})
    // The DHT put needs peers; without any it fails, and the next refresh retries.
    void this.c.net.contentRouting.put(agentRecordKey(this.c.network, agent), bytes, { signal: AbortSignal.timeout(30_000) })
      .catch((err: Error) => { this.c.logger.debug({ err: err.message, agent }, 'DHT put of agent record failed') })
  }

  private scheduleAnnounce (delayMs: number): void {
    if (this.announceTimer != null || this.stopped) return
    this.announceTimer = setTimeout(() => {
      this.announceTimer = undefined
      void this.announceAll()
    }, delayMs)
    this.announceTimer.unref()
  }

  async announceAll (): Promise<void> {
    if (this.stopped) return
    try {
      const node = await this.c.nodeRecord()
      this.nodes.set(node.peer, node)
      await this.pubsub.publish(controlTopic(this.c.network), dagCbor.encode({ k: 'node', r: encodeNodeRecord(node) })).catch(() => {})
    } catch (err) {
      this.c.logger.warn({ err: (err as Error).message }, 'node record announcement failed')
    }
    // One agent failing to sign (a remote agent gone quiet) must not hold back the others.
    await Promise.all([...this.endpoints.keys()].map(async (agent) => {
      await this.publishAgentRecord(agent).catch((err: Error) => {
        this.c.logger.warn({ err: err.message, agent }, 'agent record announcement failed')
      })
    }))
  }

  private async validateControl (peer: string, data: Uint8Array): Promise<TopicValidatorResult> {
    try {
      const msg = dagCbor.decode(data) as { k?: unknown, r?: unknown }
      if (!(msg?.r instanceof Uint8Array)) throw new Error('no record')
      if (msg.k === 'agent') {
        const rec = decodeAgentRecord(msg.r)
        if (rec.net !== this.c.network) return TopicValidatorResult.Ignore
        const known = this.directory.get(rec.agent)
        if (known == null || known.seq < rec.seq) this.directory.set(rec.agent, rec)
        return TopicValidatorResult.Accept
      }
      if (msg.k === 'node') {
        const rec = await decodeNodeRecord(msg.r)
        if (rec.net !== this.c.network) return TopicValidatorResult.Ignore
        const known = this.nodes.get(rec.peer)
        if (known == null || known.seq < rec.seq) this.nodes.set(rec.peer, rec)
        return TopicValidatorResult.Accept
      }
      if (msg.k === 'doc' && this.c.onControlDocument != null) return this.c.onControlDocument(peer, msg.r)
      throw new Error(`unknown control kind ${String(msg.k)}`)
    } catch (err) {
      this.reject('bad-field', `control message: ${(err as Error).message}`, peer)
      return TopicValidatorResult.Reject
    }
  }

  /** Sends the freshest agent records we know (bounded), one length-prefixed record each. */
  private async serveDirectory (stream: Stream): Promise<void> {
    try {
      const now = Date.now()
      const records = [...this.directory.values()].filter(r => r.exp > now).sort((a, b) => b.seq - a.seq).slice(0, DIRECTORY_SYNC_MAX)
      for (const r of records) {
        const { sig, ...fields } = r
        await sendWithBackpressure(stream, lp.encode.single(encodeAgentRecord(fields, sig)))
      }
      await stream.close()
    } catch (err) {
      stream.abort(err as Error)
    }
  }

  /** Learns a peer's directory; every record is verified, newer ones replace older. Never throws. */
  async fetchDirectory (peer: string): Promise<void> {
    if (this.stopped) return
    try {
      const signal = AbortSignal.timeout(10_000)
      const stream = await this.c.net.dialProtocol(peerIdFromString(peer), directoryProtocol(this.c.network), { signal })
      await stream.close() // nothing to send: half-close our side
      let n = 0
      for await (const chunk of lp.decode(boundedSource(stream), { maxDataLength: 16 * 1024 })) {
        if (++n > DIRECTORY_SYNC_MAX) { stream.abort(new Error('directory too long')); break }
        try {
          const rec = decodeAgentRecord(chunk.subarray())
          if (rec.net !== this.c.network) continue
          const known = this.directory.get(rec.agent)
          if (known == null || known.seq < rec.seq) this.directory.set(rec.agent, rec)
        } catch (err) {
          this.reject('bad-field', `directory record: ${(err as Error).message}`, peer)
        }
      }
    } catch (err) {
      this.c.logger.debug({ peer, err: (err as Error).message }, 'directory sync failed')
    }
  }

  async findAgent (id: AgentId, options: AbortOptions = {}): Promise<AgentRecord> {
    const cached = this.directory.get(id)
    if (cached != null && cached.exp > Date.now()) return cached
    // With no peers there is no DHT to ask: answer now rather than after the query timeout.
    if (this.c.net.getPeers().length === 0) throw new AgentNotFoundError(`no record for agent ${id} (this node has no peers)`, { details: { agent: id } })
    try {
      const signal = anySignal(options.signal, AbortSignal.timeout(10_000))
      const bytes = await this.c.net.contentRouting.get(agentRecordKey(this.c.network, id), { signal })
      const rec = decodeAgentRecord(bytes)
      if (rec.agent !== id || rec.net !== this.c.network) throw new Error('record does not match')
      this.directory.set(id, rec)
      return rec
    } catch (err) {
      if (options.signal?.aborted === true) throw abortReason(options.signal, 'agent lookup')
      throw new AgentNotFoundError(`no record for agent ${id}`, { cause: err, details: { agent: id } })
    }
  }

  /**
   * Each direct message received refreshes its sender's hint. A conversation refreshes the
   * same hint once per message: it is updated in place and moved to the back of the
   * eviction order (delete, then set) only when the peer changed or ROUTE_HINT_REFRESH_MS
   * passed, so that a request–reply stream costs no Map reordering and no new object per
   * message. The hint's age (its TTL) is exact either way.
   */
  private rememberRoute (agent: AgentId, peer: string): void {
    const now = Date.now()
    const hint = this.routeHints.get(agent)
    if (hint !== undefined && hint.peer === peer && now - hint.at < ROUTE_HINT_REFRESH_MS) {
      hint.at = now
      return
    }
    this.routeHints.delete(agent)
    this.routeHints.set(agent, { peer, at: now })
    if (this.routeHints.size > ROUTE_HINTS_MAX) this.routeHints.delete(this.routeHints.keys().next().value as AgentId)
  }

  /** A stand-in record pointing at the peer a message from `agent` came from, if recent and still connected. */
  private hintedRecord (agent: AgentId): AgentRecord | undefined {
    const hint = this.routeHints.get(agent)
    if (hint == null || Date.now() - hint.at > ROUTE_HINT_TTL_MS) return undefined
    if (this.c.net.getConnections(peerIdFromString(hint.peer)).length === 0) return undefined
    return { v: 1, net: this.c.network, agent, home: [{ id: hint.peer, addrs: [] }], caps: [], seq: 0, exp: hint.at + ROUTE_HINT_TTL_MS, sig: new Uint8Array(0) }
  }

  knownAgent (id: AgentId): AgentRecord | undefined {
    const r = this.directory.get(id)
    return r != null && r.exp > Date.now() ? r : undefined
  }
}

export function errorFromConfirm (code: string | undefined, msg: string | undefined): FedmeshError {
  const message = msg ?? 'delivery refused'
  switch (code) {
    case 'NoRespondersError': return new NoRespondersError(message)
    case 'AgentNotFoundError': return new AgentNotFoundError(message)
    default: return new DeliveryFailedError(message, { details: { code } })
  }
}

export function anySignal (...signals: Array<AbortSignal | undefined>): AbortSignal | undefined {
  const s = signals.filter((x): x is AbortSignal => x != null)
  if (s.length === 0) return undefined
  return s.length === 1 ? s[0] : AbortSignal.any(s)
}

function isAborted (signal?: AbortSignal): boolean {
  return signal?.aborted === true
}

function sleep (ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted === true) { reject(abortReason(signal, 'retry')); return }
    const t = setTimeout(() => { signal?.removeEventListener('abort', onAbort); resolve() }, ms)
    const onAbort = (): void => { clearTimeout(t); reject(abortReason(signal as AbortSignal, 'retry')) }
    signal?.addEventListener('abort', onAbort, { once: true })
  })
}

async function withTimeout<T> (p: Promise<T>, signal?: AbortSignal): Promise<T> {
  if (signal == null) return await p
  return await new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(abortReason(signal, 'stream open'))
    if (signal.aborted) { onAbort(); return }
    signal.addEventListener('abort', onAbort, { once: true })
    p.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort))
  })
}
