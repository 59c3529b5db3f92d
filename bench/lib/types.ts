/**
 * Contracts of the benchmark harness. A `System` is one messaging system under test: the
 * orchestrator (run.ts) calls `start` to launch its broker, if it has one, and the worker
 * processes (workers/client.ts) call `connect` to get an `Endpoint` — the thin adapter the
 * generic measurement loops drive. One file per system under systems/ implements both halves.
 */

/** Where the clients find the broker; null for brokerless systems (libp2p, fedmesh). */
export interface BrokerInfo { host: string, port: number }

/** A started broker. `stop` must kill whatever `start` launched, even when called twice. */
export interface Broker {
  info: BrokerInfo | null
  stop: () => Promise<void>
}

export interface StartContext {
  /** A scratch directory for this system (config files, data); removed by the harness. */
  dir: string
}

/** What a worker tells its peer worker through the orchestrator: how to reach it. */
export interface Contact {
  /** libp2p multiaddrs with /p2p/ (brokerless systems). */
  multiaddrs?: string[]
  /** fedmesh agent id (did:key) of the responder. */
  agentId?: string
}

export type Role = 'sub' | 'pub' | 'responder' | 'requester' | 'fanout'

/** Logical topics; each system maps them to its own naming (`bench.data`, `bench/data`, ...). */
export type TopicName = 'data' | 'req' | 'rep'

export interface ConnectOptions {
  broker: BrokerInfo | null
  role: Role
  /** The peer worker's contact (given to `pub` and `requester`, which start second). */
  peer?: Contact
  /** A private scratch directory for this worker (fedmesh keys, ...). */
  dir: string
}

export interface Endpoint {
  /** How other workers reach this one; reported to the orchestrator once connected. */
  readonly contact: Contact
  /** Resolves once the subscription is in place as far as the client can tell. */
  subscribe: (topic: TopicName, onMessage: (payload: Uint8Array) => void) => Promise<void>
  /**
   * Publishes one message. Returns a promise only when the caller has to wait — flow control
   * from the client or the transport, or an API that is asynchronous per message — so that
   * the hot loop of synchronous clients costs no promise per message.
   */
  publish: (topic: TopicName, payload: Uint8Array) => Promise<void> | undefined
  /** Resolves once everything published so far has left this process. */
  flush: () => Promise<void>
  /** The system's own request–reply; when absent, lib/rpc.ts emulates it over two topics. */
  rpc?: Rpc
  /**
   * One more subscriber hosted by this same client (brokerless systems: a further agent on
   * the fedmesh node, a further local handler on the libp2p node). When absent, every
   * subscriber of the fan-out measure is its own `connect()` — its own broker connection.
   */
  addSubscriber?: (topic: TopicName, onMessage: (payload: Uint8Array) => void) => Promise<void>
  close: () => Promise<void>
}

export interface Rpc {
  /** Installs the responder; `handler` turns a request payload into the reply payload. */
  serve: (handler: (request: Uint8Array) => Uint8Array) => Promise<void>
  /** One round trip; rejects on timeout. */
  request: (payload: Uint8Array, timeoutMs: number) => Promise<Uint8Array>
}

export interface System {
  /** Name on the command line and in the table. */
  name: string
  /** One line for the table's legend. */
  description: string
  /** Launches the broker; omitted for brokerless systems. Runs in the orchestrator. */
  start?: (ctx: StartContext) => Promise<Broker>
  /** Connects one client. Runs in a worker process. */
  connect: (opts: ConnectOptions) => Promise<Endpoint>
}

// ---- results ------------------------------------------------------------------------------

export interface ThroughputResult {
  /** Data messages the subscriber received, divided by its receive window (first → last). */
  msgsPerSec: number
  sent: number
  received: number
  /** (sent − distinct received) / sent. */
  loss: number
  /** Data messages that arrived more than once (counted in `received`, not in the loss). */
  duplicates: number
  /** Every message sent arrived, exactly once. */
  complete: boolean
  /** The subscriber's receive window, ms. */
  windowMs: number
  /** Publisher's send rate over its own window, msgs/s. */
  sendRate: number
}

export interface FanoutResult {
  /** Deliveries to all subscribers together, divided by the delivery window (first → last, any subscriber). */
  msgsPerSec: number
  subscribers: number
  /** Processes (nodes, for brokerless systems) the subscribers were spread over. */
  processes: number
  sent: number
  /** Deliveries counted, over all subscribers (duplicates included). */
  delivered: number
  /** (subscribers × sent − distinct deliveries) / (subscribers × sent). */
  loss: number
  duplicates: number
  /** Every subscriber received every message sent, exactly once. */
  complete: boolean
  /** Fewest distinct messages any one subscriber received. */
  minPerSubscriber: number
  windowMs: number
  sendRate: number
}

export interface LatencyResult {
  count: number
  timeouts: number
  meanMs: number
  p50Ms: number
  p99Ms: number
  maxMs: number
}

// ---- worker protocol (IPC) ------------------------------------------------------------------

export interface WorkerInit {
  system: string
  role: Role
  broker: BrokerInfo | null
  peer?: Contact
  dir: string
  size: number
  /** fanout role: how many subscribers this process hosts, and whether it also publishes. */
  subscribers?: number
  publisher?: boolean
}

export type ToWorker =
  | { type: 'go', durationMs: number, maxCount: number, timeoutMs: number }
  | { type: 'drain', sent: number, quietMs: number, maxMs: number }
  | { type: 'stop' }

/** Times are absolute (performance.timeOrigin + performance.now()), comparable across processes. */
export interface SubscriberReport { received: number, distinct: number, duplicates: number, firstAt: number, lastAt: number, badSize: number }
export interface FanoutReport { subscribers: SubscriberReport[], publisher?: PublisherReport }
export interface PublisherReport { sent: number, elapsedMs: number, probes: number }
export interface RequesterReport { latenciesMs: number[], timeouts: number, mismatches: number }

export type FromWorker =
  | { type: 'ready', contact: Contact }
  | { type: 'probe-seen' }
  | { type: 'published', result: PublisherReport }
  | { type: 'result', result: SubscriberReport | PublisherReport | RequesterReport | FanoutReport }
  | { type: 'error', message: string }
