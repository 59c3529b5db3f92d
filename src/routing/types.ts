/**
 * Internal contracts between the router and whatever hosts an agent. An agent is an
 * Endpoint: in-process (sdk/agent.ts over the node directly) or remote (attached through
 * the WebSocket API). The router never holds agent keys: agents sign their own envelopes
 * and records, the router verifies, routes and delivers.
 */
import type { AgentId, MessageId } from '../core/ids.ts'
import type { Envelope } from '../core/envelope.ts'
import type { AbortOptions, SendResult } from '../node/types.ts'

export interface Endpoint {
  readonly agent: AgentId
  readonly name?: string
  readonly kind: 'local' | 'remote'
  readonly caps: string[]
  /** A verified envelope for this agent (topic matches its subscriptions, or addressed to it). */
  deliver: (env: Envelope) => void
  /** True when the agent answers requests (envelopes with `replyTo`). */
  handlesRequests: () => boolean
  /** True when the agent accepts incoming streams. */
  acceptsStreams: () => boolean
  /** Signs its agent record's signing input with the agent key. */
  signRecord: (input: Uint8Array) => Promise<Uint8Array> | Uint8Array
}

/** A raw byte duplex between two agents, already accepted by both sides. */
export interface ByteStream extends AsyncIterable<Uint8Array> {
  write: (chunk: Uint8Array, options?: AbortOptions) => Promise<void>
  close: () => Promise<void>
  abort: (err: Error) => void
}

/** Told the outcome of one `submitTo`, once: `resolve` with what `submit` resolves with, or `reject`. */
export interface SubmitSink {
  resolve: (r: SendResult) => void
  reject: (err: Error) => void
}

/** What an agent needs from the node it is attached to. */
export interface AgentTransport {
  /** Routes a signed envelope; resolves per its delivery options (confirmation, retries). */
  submit: (env: Envelope, options?: AbortOptions) => Promise<SendResult>
  /**
   * In-process transports: `submit` with its outcome told to `sink` (which must not throw)
   * instead of a promise — the SDK's awaited sends pass the record it keeps for the call
   * anyway, and a durable send then needs no promise of its own between agent and put.
   */
  submitTo?: (env: Envelope, options: AbortOptions, sink: SubmitSink) => void
  /**
   * In-process transports: publishes a signed topic or broadcast envelope synchronously,
   * without a promise (the SDK's buffered publish path). Errors are counted, not thrown.
   */
  publishNow?: (env: Envelope) => void
  /**
   * In-process transports: routes a signed direct envelope whose outcome nobody awaits (a
   * request handler's answer) without a promise. Failures are dropped, as a rejected
   * `submit` ignored by its caller would be.
   */
  sendNow?: (env: Envelope) => void
  /** Bytes queued towards other nodes, for publishers' backpressure. */
  queuedBytes?: () => number
  /** Resolves once the queues towards other nodes hold at most `bytes`. */
  drained?: (bytes: number) => Promise<void>
  subscribe: (agent: AgentId, pattern: string) => Promise<void>
  unsubscribe: (agent: AgentId, pattern: string) => Promise<void>
  /** Opens a stream to the recipient of `open` (a signed direct envelope of type `stream`). */
  openStream: (open: Envelope, options?: AbortOptions) => Promise<ByteStream>
  /** Registers the agent with the node and publishes its record. */
  attach: (endpoint: Endpoint, onStream: (stream: ByteStream, open: Envelope) => void) => Promise<void>
  detach: (agent: AgentId) => Promise<void>
  /** Durably records that the agent processed a message (exactly-once handlers); true when newly marked. */
  markProcessed?: (agent: AgentId, id: MessageId, expiresAt: number) => Promise<boolean>
  isProcessed?: (agent: AgentId, id: MessageId) => Promise<boolean>
}
