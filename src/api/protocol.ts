/**
 * The node API's WebSocket protocol (`GET /v1/ws`), shared by the server (api/ws.ts), the
 * remote agent SDK (sdk/remote.ts) and the CLI. JSON text messages, one object each, with
 * an `op`. Documented in docs/API.md; this module is pure (no Fastify, no sockets).
 *
 * Subscriptions for people and scripts (the CLI's `sub`):
 *   → {op:'subscribe', id, pattern, agent?}   ← {op:'subscribed', id}, then {op:'message', sub:id, message}
 *   → {op:'messages', id, agent?, ack?}       (the local agent's direct inbox; ack 'manual': durable
 *                                              messages are marked processed only by the client's acks)
 *   → {op:'ack', id, message}                 ← {op:'acked', id, message}
 *   → {op:'unsubscribe', id}                  ← {op:'unsubscribed', id}
 *   ← {op:'error', id?, error}
 *
 * Remote agents: requests carry `rid` and are answered by {op:'result', rid, ok, result | error}.
 *   ← {op:'hello', v, network, peerId}        (sent by the server on every new connection)
 *   → {op:'attach', rid, agent, name?, caps?} ← {op:'challenge', rid, nonce}
 *   → {op:'prove', rid, sig}                  ← {op:'result', rid, ok, result:{agent, network, peerId}}
 *      sig = Ed25519(agent key, "fedmesh/attach/v1" || nonce)
 *   ← {op:'sign', rid, input}                 → {op:'signed', rid, sig} | {op:'signed', rid, error}
 *      (the node asks the agent to sign its agent record; the agent checks what it signs)
 *   → {op:'submit', rid, env}                 (base64 wire bytes of an envelope the agent signed)
 *   → {op:'cancel', rid}                      (aborts a pending submit; no answer)
 *   → {op:'add-pattern' | 'remove-pattern', rid, pattern}
 *   → {op:'set-handler', rid, requests, streams?}  (whether the agent answers requests / accepts streams now)
 *   → {op:'open-stream', rid, env}            ← {op:'result', rid, ok, result:{sid}}
 *      env = base64 of the agent's signed open envelope (direct, type `stream`)
 *   ← {op:'stream-open', sid, env}            (an agent elsewhere opened a stream to this one)
 *   ↔ {op:'stream-data', sid, data} | {op:'stream-credit', sid, n} | {op:'stream-end', sid, error?}
 *      (credit-based flow control, see api/ws-streams.ts)
 *   → {op:'mark-processed', rid, id, exp}   ← result true when newly marked (durable, in the node's store)
 *   → {op:'is-processed', rid, id}          ← result boolean
 *      (exactly-once durable delivery: the SDK marks a message as it hands it to a consumer)
 *   → {op:'detach', rid}
 *   ← {op:'deliver', env}                     (base64 wire bytes of a verified envelope)
 */

export const WS_PROTOCOL_VERSION = 1

/** Domain separation for the attach proof, so it can never be replayed as anything else. */
export const ATTACH_DOMAIN = new TextEncoder().encode('fedmesh/attach/v1')

/** Domain of agent-record signing inputs (net/records.ts); the only thing a remote agent signs for its node. */
export const AGENT_RECORD_DOMAIN = new TextEncoder().encode('fedmesh/agent-record/v1')

export const ATTACH_NONCE_BYTES = 32

export const WS_LIMITS = {
  /** Largest WebSocket message either side accepts: a 1 MiB envelope in base64 plus JSON framing. */
  maxMessageBytes: 2 * 1024 * 1024,
  /** Subscriptions (CLI-style) plus remote-agent patterns per connection. */
  maxSubscriptions: 64,
  /** Unsent bytes the server lets pile up for a connection before it drops it as a slow consumer. */
  maxBufferedBytes: 8 * 1024 * 1024,
  /** Concurrent submits per connection. */
  maxInflight: 256,
  /** How long the server waits for the attach proof and for record signatures. */
  handshakeTimeoutMs: 10_000,
  /** Upper bound on one submit (a request's own timeout is usually shorter). */
  maxSubmitMs: 300_000,
  maxIdLength: 64
}

export type WsLimits = typeof WS_LIMITS

export function attachSigningInput (nonce: Uint8Array): Uint8Array {
  const out = new Uint8Array(ATTACH_DOMAIN.length + nonce.length)
  out.set(ATTACH_DOMAIN, 0)
  out.set(nonce, ATTACH_DOMAIN.length)
  return out
}

export function hasPrefix (bytes: Uint8Array, prefix: Uint8Array): boolean {
  if (bytes.length < prefix.length) return false
  for (let i = 0; i < prefix.length; i++) if (bytes[i] !== prefix[i]) return false
  return true
}

export interface ErrorJson { code: string, message: string, details?: unknown }

/** Messages a client sends. */
export type ClientMessage =
  | { op: 'subscribe', id: string, pattern: string, agent?: string }
  | { op: 'messages', id: string, agent?: string, ack?: 'auto' | 'manual' }
  | { op: 'ack', id: string, message: string }
  | { op: 'unsubscribe', id: string }
  | { op: 'attach', rid: number, agent: string, name?: string, caps?: string[] }
  | { op: 'prove', rid: number, sig: string }
  | { op: 'signed', rid: number, sig?: string, error?: ErrorJson }
  | { op: 'submit', rid: number, env: string }
  | { op: 'cancel', rid: number }
  | { op: 'add-pattern', rid: number, pattern: string }
  | { op: 'remove-pattern', rid: number, pattern: string }
  | { op: 'set-handler', rid: number, requests: boolean, streams?: boolean }
  | { op: 'open-stream', rid: number, env: string }
  | { op: 'mark-processed', rid: number, id: string, exp: number }
  | { op: 'is-processed', rid: number, id: string }
  | { op: 'detach', rid: number }

/** Messages the server sends. */
export type ServerMessage =
  | { op: 'hello', v: number, network: string, peerId: string }
  | { op: 'subscribed', id: string }
  | { op: 'unsubscribed', id: string }
  | { op: 'acked', id: string, message: string }
  | { op: 'message', sub: string, message: unknown }
  | { op: 'error', id?: string, error: ErrorJson }
  | { op: 'challenge', rid: number, nonce: string }
  | { op: 'result', rid: number, ok: true, result: unknown }
  | { op: 'result', rid: number, ok: false, error: ErrorJson }
  | { op: 'sign', rid: number, input: string }
  | { op: 'deliver', env: string }
  | { op: 'stream-open', sid: string, env: string }

/** WebSocket close codes the server uses. */
export const WS_CLOSE = {
  normal: 1000,
  /** Protocol violation or failed attach proof. */
  policy: 1008,
  /** The client did not read fast enough (send buffer over the limit). */
  slowConsumer: 1013,
  /** The node is shutting down. */
  goingAway: 1001
} as const
