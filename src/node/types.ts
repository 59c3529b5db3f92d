/**
 * Public contracts of the node and the agent SDK. Implementations live in
 * node/mesh-node.ts (MeshNode), sdk/agent.ts (in-process Agent) and sdk/remote.ts
 * (remote Agent over the node's WebSocket API); both Agents satisfy `Agent`.
 */
import type { AgentId, MessageId, NetworkId, Topic } from '../core/ids.ts'
import type { Envelope, EnvelopeJson, Mode } from '../core/envelope.ts'
import type { RejectionReason, RejectionRecord } from '../core/ingress.ts'
import type { PeerState } from '../net/peers.ts'
import type { AgentRecord, NodeCapacity, NodeRecord, NodeRole } from '../net/records.ts'
import type { ConversationEvent, ConversationInfo } from '../sdk/conversations.ts'
import type { NodeStoreConfig } from './storage.ts'
import type { LogFilter, LogPage, LogRecord, QueryOptions } from '../store/types.ts'

export interface AbortOptions { signal?: AbortSignal }

export interface NodeConfig {
  /** Network id; nodes ignore traffic of other networks. Default `fedmesh`. */
  network: string
  /** libp2p listen multiaddrs. Default TCP 7401 and WebSockets 7402 on all interfaces. */
  listen: string[]
  /** Extra addresses to announce (e.g. a public address). */
  announce: string[]
  /** Bootstrap peer multiaddrs (with /p2p/). Only these are contacted at start. */
  bootstrap: string[]
  /** HTTP + WebSocket API, `host:port`, or false to disable. Default 127.0.0.1:7400. */
  api: string | false
  roles: NodeRole[]
  /** Opt-in LAN discovery (multicasts on the LAN). */
  mdns: boolean
  /** Serve as a circuit relay v2 for other nodes. Default: on for full and gateway roles. */
  relay: boolean
  capacity?: Partial<NodeCapacity>
  /** Tolerated clock skew for ingress freshness checks, ms. Default 30 000. */
  clockSkewMs: number
  /** Largest accepted envelope, bytes (≤ 1 MiB). */
  maxMessageBytes: number
  /** Store backend (SQLite in the data dir, or PostgreSQL by `url`), replicas, quotas, log retention. */
  store: NodeStoreConfig
}

export interface CreateNodeOptions extends Partial<NodeConfig> {
  /** Data directory: keys, config, API token. Created when missing. */
  dir: string
  /** pino-compatible logger; default a silent one (the CLI passes a real one). */
  logger?: Logger
}

export interface Logger {
  info: (obj: unknown, msg?: string) => void
  warn: (obj: unknown, msg?: string) => void
  error: (obj: unknown, msg?: string) => void
  debug: (obj: unknown, msg?: string) => void
}

export interface PeerInfo extends PeerState {
  /** Roles and capacity from the peer's signed node record, when known. */
  roles?: NodeRole[]
  capacity?: NodeCapacity
}

export interface AgentInfo {
  id: AgentId
  name?: string
  /** `local`: in this process; `remote`: attached over the WebSocket API. */
  kind: 'local' | 'remote'
  subscriptions: string[]
  handlesRequests: boolean
}

export interface NodeStatus {
  peerId: string
  network: NetworkId
  /** Full multiaddrs with /p2p/<peerId>. */
  addresses: string[]
  peers: number
  roles: NodeRole[]
  agents: AgentInfo[]
  api?: string
  uptimeMs: number
  rejections: Record<RejectionReason, number>
  counters: { published: number, delivered: number, forwarded: number, received: number }
  /**
   * Topic and broadcast copies this node did not pass on (at most once: nothing retries
   * them): `linkDrops`, copies dropped because the link to their next hop held more than
   * 16 MB (a neighbour not reading); `dropped`, the dissemination core's drops by reason
   * (`duplicate` copies are normal on a mesh); `closedFrames` / `closedBytes`, frames and
   * bytes thrown away by links that closed with them unsent (a connection aborted because
   * its peer did not answer libp2p's ping in time: a stopped or starved node); `queuedBytes`,
   * what waits on the links now.
   */
  topics: { queuedBytes: number, linkDrops: number, closedFrames: number, closedBytes: number, dropped: Partial<Record<string, number>> }
  /** The store and durable delivery: backend, what this node stored, delivered, acknowledged, expired, refused, handed over; the log writer's counts. */
  store?: {
    kind: 'sqlite' | 'postgres'
    durable: {
      stored: number, replicated: number, delivered: number, acked: number, expired: number, refused: number, handedOver: number
      /** Receipts waiting to be forwarded to a sender that was unreachable, retries made, receipts given up (expired, or over the limit). */
      receiptsPending: number, receiptsRetried: number, receiptsDropped: number
    }
    log: { written: number, dropped: number, failed: number, buffered: number }
  }
}

/** Anything an agent can send: bytes (application/octet-stream) or a JSON value. */
export type Payload = Uint8Array | unknown

export interface SendOptions extends AbortOptions {
  /** Performative or message type. Default `inform` (`request` for request()). */
  type?: string
  schema?: string
  protocol?: string
  conversation?: string
  correlation?: string
  replyTo?: string
  /** Seconds. Default 300. */
  ttl?: number
  /** Hop limit. Default 8. */
  hops?: number
  /** 0–3, default 1. */
  priority?: number
  contentType?: string
  /** gzip the payload. */
  compress?: boolean
  /** Wait for the recipient node's delivery confirmation (direct/multicast). */
  confirm?: boolean
  /** Retransmissions with exponential backoff until confirmed (implies confirm). */
  retries?: number
  /** Fail when not confirmed within this many ms. */
  maxDeliveryMs?: number
  /** Per-sender ordering towards each recipient. */
  ordered?: boolean
  /**
   * Store-and-forward (direct sends): resolves only once the message is on stable storage at
   * the recipient's home node (or, while that is down, on a storage node of its replica set);
   * held until the recipient acknowledges it with a signed receipt. Ordered per sender.
   */
  durable?: boolean
}

export interface RequestOptions extends SendOptions {
  /** ms; default 10 000. */
  timeout?: number
}

export interface SendResult {
  id: MessageId
  /** Recipients whose node confirmed delivery (only when confirmation was asked). */
  confirmed: AgentId[]
  /** Durable sends: where the message is held. */
  durable?: { status: 'stored' | 'duplicate', home?: string, replicas: number }
}

export interface Message {
  readonly id: MessageId
  readonly mode: Mode
  readonly type: string
  readonly from: AgentId
  readonly to?: AgentId[]
  readonly topic?: Topic
  readonly schema?: string
  readonly protocol?: string
  readonly conversation?: string
  readonly correlation?: string
  readonly replyTo?: string
  readonly timestamp: number
  readonly ttl: number
  readonly priority: number
  readonly contentType: string
  /** Decompressed payload bytes. */
  readonly payload: Uint8Array
  /** Payload parsed as JSON (throws InvalidArgumentError when it is not JSON). */
  data: <T = unknown>() => T
  readonly envelope: Envelope
  toJSON: () => EnvelopeJson
}

export interface MessagesOptions extends AbortOptions {
  /**
   * `'auto'` (default): a durable message is marked processed as the iterator hands it
   * over. `'manual'`: only when the application calls `agent.ack(msg)`; until then the
   * node holds it (and redelivers it to a new attachment), at most the node's delivery
   * window (`durable.window`, 512) of them unacknowledged at a time.
   */
  ack?: 'auto' | 'manual'
}

export interface SubscribeOptions extends AbortOptions {
  /** Called synchronously with each message instead of queueing it for iteration. */
  onMessage?: (msg: Message) => void
}

export interface Subscription extends AsyncIterable<Message>, AsyncDisposable {
  readonly pattern: string
  /** Stop receiving; pending iteration ends. */
  unsubscribe: () => void
  /** Resolves when the subscription has ended. */
  readonly closed: Promise<void>
}

/** Returns the reply payload; throwing sends a `failure` reply. */
export type RequestHandler = (msg: Message, ctx: { signal: AbortSignal }) => Promise<Payload> | Payload

export interface AgentStream extends AsyncIterable<Uint8Array> {
  readonly remote: AgentId
  readonly name: string
  /** Resolves when the chunk is accepted by the transport (backpressure). */
  write: (chunk: Uint8Array, options?: AbortOptions) => Promise<void>
  /** Ends our side; the remote's iteration ends. */
  close: () => Promise<void>
  abort: (err: Error) => void
}

export type StreamHandler = (stream: AgentStream, open: Message) => void | Promise<void>

export interface Agent {
  readonly id: AgentId
  readonly name?: string
  publish: (topic: string, payload: Payload, options?: SendOptions) => Promise<SendResult>
  /**
   * Publishes without a promise per message: the envelope is signed with the others
   * published in the same tick (one batch signature) and queued. Returns false when the
   * node's outgoing queues are above their high-water mark: the caller should then
   * `await drain()` before publishing more. Invalid input throws at once.
   *
   * @example
   * for (const reading of readings) if (!agent.publishBuffered('sensors/t', reading)) await agent.drain()
   * await agent.drain()
   */
  publishBuffered: (topic: string, payload: Payload, options?: SendOptions) => boolean
  /**
   * Signs and hands over everything published so far; resolves once the node's queues are
   * below their low-water mark. Rejects with the first error a buffered publication met
   * since the last drain (that publication was not sent).
   */
  drain: () => Promise<void>
  /**
   * Topic messages matching `pattern`, as an async iterable — or, with `onMessage`, handed
   * to that callback as they arrive (no promise and no queue per message, like a nats.js
   * callback subscription; the iterable then yields nothing and ends at `unsubscribe`).
   * A callback that throws does not stop the subscription; its error is dropped.
   *
   * @example
   * agent.subscribe('sensors/#', { onMessage: (m) => { total += m.payload.length } })
   */
  subscribe: (pattern: string, options?: SubscribeOptions) => Subscription
  /**
   * Direct, multicast and broadcast messages addressed to this agent (not replies). Durable
   * messages come here exactly once: by default each is durably marked processed as the
   * iterator hands it over, and acknowledged to its sender with a signed receipt. With
   * `{ ack: 'manual' }` a durable message is marked and receipted only by `agent.ack(msg)`:
   * one the application took but never acknowledged (its process died while acting on
   * it) comes again after the agent attaches anew (at-least-once across such a crash).
   */
  messages: (options?: MessagesOptions) => Subscription
  /**
   * Acknowledges a durable message taken from `messages({ ack: 'manual' })`: marks it
   * processed in the node's store and sends the signed receipt. Resolves once the mark is
   * durable; rejects with `UnreachableError` if the node could not be reached (the message
   * comes again), `InvalidArgumentError` for a message this agent did not hand over
   * for acknowledgement. Idempotent; a non-durable message needs none (resolves at once).
   */
  ack: (msg: Message) => Promise<void>
  /** Signed delivery receipts for this agent's durable sends (messages of type `receipt`; see `parseReceipt`). */
  receipts: (options?: AbortOptions) => Subscription
  send: (to: AgentId | string, payload: Payload, options?: SendOptions) => Promise<SendResult>
  multicast: (to: Array<AgentId | string>, payload: Payload, options?: SendOptions) => Promise<SendResult>
  broadcast: (payload: Payload, options?: SendOptions) => Promise<SendResult>
  request: (to: AgentId | string, payload: Payload, options?: RequestOptions) => Promise<Message>
  /** Installs the request handler (one per agent); returns a function that removes it. */
  handle: (handler: RequestHandler) => () => void
  openStream: (to: AgentId | string, name: string, options?: AbortOptions) => Promise<AgentStream>
  onStream: (handler: StreamHandler) => () => void
  // Conversations (docs/SEMANTIC.md): payloads naming a `schema` are validated before
  // signing; messages with `protocol` and `conversation` are tracked on both ends.
  /** Answers a message in its conversation (same conversation and protocol, correlated); `type` is the performative. */
  reply: (to: Message, payload: Payload, options: SendOptions & { type: string }) => Promise<SendResult>
  /** Negotiates the protocol version with the other parties (NoCommonVersionError) and picks a conversation id. */
  openConversation: (options: { protocol: string, with: Array<AgentId | string>, id?: string } & AbortOptions) => Promise<{ conversation: string, protocol: string }>
  /** This agent's state of a conversation with `peer`, and the steps expected next. */
  conversation: (conversation: string, peer: AgentId | string) => ConversationInfo | undefined
  /** Timeouts and refused (not-understood) steps, as they happen. */
  conversationEvents: (options?: AbortOptions) => AsyncIterable<ConversationEvent> & { close: () => void }
  /** Registers a schema translator `from` → `to` (TranslationError when it gives an invalid value); returns its remover. */
  registerTranslator: (from: string, to: string, fn: (value: unknown) => unknown) => () => void
  /** The payload of `msg` translated to one of the schemas `to` (as it is when it already names one). */
  translate: (msg: Message, to: string | string[], options?: AbortOptions) => Promise<{ value: unknown, schema: string }>
  /** A conversation's messages with `peer` as a `fedmesh audit` file. */
  exportConversation: (conversation: string, peer: AgentId | string) => Uint8Array
  close: () => Promise<void>
}

export interface MeshNode {
  readonly peerId: string
  readonly network: NetworkId
  readonly dir: string
  readonly config: NodeConfig
  multiaddrs: () => string[]
  /** Creates (first time) or loads the agent named `name`, keyed in the data dir. */
  agent: (name: string, options?: { capabilities?: string[] }) => Promise<Agent>
  agents: () => AgentInfo[]
  status: () => NodeStatus
  peers: () => PeerInfo[]
  nodeRecords: () => NodeRecord[]
  rejections: (filter?: { reason?: RejectionReason, limit?: number }) => { counts: Record<RejectionReason, number>, recent: RejectionRecord[] }
  /**
   * Peer ids of the nodes a message on `topic` published here would reach: those whose
   * interest (their agents' subscriptions) this node has learnt and can route to.
   * Subscriptions spread through the mesh in milliseconds; this shows when one has arrived.
   */
  topicInterest: (topic: string) => string[]
  /** Finds an agent's signed record (local directory, then the DHT). */
  findAgent: (id: AgentId | string, options?: AbortOptions) => Promise<AgentRecord>
  /** Resolves once the agent's record can be found (polls the directory and DHT). */
  waitForAgent: (id: AgentId | string, options?: AbortOptions) => Promise<AgentRecord>
  dial: (multiaddr: string, options?: AbortOptions) => Promise<void>
  /** The message log: what this node sent, received, stored, delivered or rejected (docs/STORE.md filters). */
  log: (filter?: LogFilter, options?: QueryOptions) => Promise<LogPage>
  /** A conversation's messages in order, with their wire bytes where the log kept them. */
  conversation: (conv: string, options?: { limit?: number } & AbortOptions) => Promise<LogRecord[]>
  stop: () => Promise<void>
}
