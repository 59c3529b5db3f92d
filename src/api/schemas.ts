/**
 * JSON Schemas of the API: request schemas (Fastify validates with them; every object is
 * closed and every string and list is bounded) and response schemas (documentation only,
 * served in /openapi.json; responses are not filtered through them).
 */
import { LIMITS, MODES } from '../core/envelope.ts'
import { REJECTION_REASONS } from '../core/ingress.ts'
import { MAX_TOPIC_LENGTH } from '../core/topics.ts'
import { AGENT_NAME_RE } from '../node/datadir.ts'
import { LOG_EVENTS, LOG_STATUSES } from '../store/types.ts'

/** A base64 string of at most LIMITS.maxEnvelopeBytes bytes. */
const MAX_BASE64 = Math.ceil(LIMITS.maxEnvelopeBytes / 3) * 4

export const agentName = { type: 'string', minLength: 1, maxLength: 64, pattern: AGENT_NAME_RE.source, description: 'Name of an agent hosted on this node (created on first use). Default `default`.' } as const
export const agentId = { type: 'string', minLength: 1, maxLength: 128, description: 'Agent id, an Ed25519 `did:key`.' } as const

/** Fields shared by every sending route. */
export const sendFields = {
  agent: agentName,
  payload: { description: 'JSON payload (sent as application/json unless contentType says otherwise).' },
  payloadBase64: { type: 'string', maxLength: MAX_BASE64, pattern: '^[A-Za-z0-9+/]*={0,2}$', description: 'Binary payload in base64 (instead of `payload`); default content type application/octet-stream.' },
  contentType: { type: 'string', minLength: 1, maxLength: LIMITS.maxContentType },
  schema: { type: 'string', minLength: 1, maxLength: LIMITS.maxStringField, description: 'Schema URI, e.g. `market/rfp@1.0.0`.' },
  type: { type: 'string', minLength: 1, maxLength: 64, description: 'Performative or message type. Default `inform` (`request` for /v1/request).' },
  protocol: { type: 'string', minLength: 1, maxLength: LIMITS.maxStringField },
  conversation: { type: 'string', minLength: 1, maxLength: LIMITS.maxStringField },
  ttl: { type: 'integer', minimum: 1, maximum: LIMITS.maxTtlSeconds, description: 'Seconds. Default 300.' },
  hops: { type: 'integer', minimum: 0, maximum: LIMITS.maxHops },
  priority: { type: 'integer', minimum: 0, maximum: 3, description: '0 (lowest) – 3. Default 1.' },
  compress: { type: 'boolean', description: 'gzip the payload.' }
} as const

/** Delivery options of direct and multicast sends. */
export const deliveryFields = {
  confirm: { type: 'boolean', description: 'Wait for the recipient node\'s delivery confirmation.' },
  retries: { type: 'integer', minimum: 0, maximum: LIMITS.maxRetries, description: 'Retransmissions with exponential backoff until confirmed (implies confirm).' },
  maxDeliveryMs: { type: 'integer', minimum: 1, maximum: 600_000, description: 'Fail when not confirmed within this many ms.' },
  ordered: { type: 'boolean', description: 'Per-sender ordering towards the recipient.' },
  durable: { type: 'boolean', description: 'Store-and-forward (send only): answered once the message is on stable storage at the recipient\'s home node (or its replicas); `SendResult.durable` says where.' }
} as const

const closed = <P extends Record<string, unknown>>(properties: P, required: string[] = []) =>
  ({ type: 'object', additionalProperties: false, required, properties }) as const

export const bodies = {
  createAgent: closed({ name: agentName }, ['name']),
  publish: closed({ ...sendFields, topic: { type: 'string', minLength: 1, maxLength: MAX_TOPIC_LENGTH, description: 'Topic `a/b/c` (no wildcards).' } }, ['topic']),
  send: closed({ ...sendFields, ...deliveryFields, to: agentId }, ['to']),
  multicast: closed({ ...sendFields, ...deliveryFields, to: { type: 'array', minItems: 1, maxItems: LIMITS.maxRecipients, items: agentId } }, ['to']),
  broadcast: closed({ ...sendFields }),
  request: closed({ ...sendFields, ...deliveryFields, to: agentId, timeout: { type: 'integer', minimum: 1, maximum: 300_000, description: 'ms; default 10 000.' } }, ['to'])
} as const

const intString = (max: number, description: string) => ({ type: 'string', pattern: `^[0-9]{1,${max}}$`, description } as const)

export const queries = {
  rejections: closed({
    reason: { type: 'string', enum: [...REJECTION_REASONS] },
    limit: intString(4, 'At most this many recent rejections (1–1000), newest first.')
  }),
  record: closed({ wait: intString(6, 'Wait up to this many ms for the record to appear (polls the directory and the DHT); 0 = look once.') }),
  log: closed({
    id: { type: 'string', minLength: 1, maxLength: 256, description: 'Records of this message id.' },
    agent: { type: 'string', minLength: 1, maxLength: 256, description: 'As sender or recipient.' },
    topic: { type: 'string', minLength: 1, maxLength: MAX_TOPIC_LENGTH, description: 'A topic or pattern (`*` one level, `#` last: one or more).' },
    conversation: { type: 'string', minLength: 1, maxLength: 256 },
    since: intString(16, 'receivedTs ≥ since (ms since the epoch).'),
    until: intString(16, 'receivedTs < until (ms since the epoch).'),
    status: { type: 'string', minLength: 1, maxLength: 200, description: 'A status or a comma-separated list: ok, pending, delivered, acked, expired, failed, rejected.' },
    type: { type: 'string', minLength: 1, maxLength: 64 },
    event: { type: 'string', minLength: 1, maxLength: 200, description: 'An event or a comma-separated list: sent, received, relayed, stored, delivered, rejected.' },
    limit: intString(4, 'Records per page, 1–1000 (default 100).'),
    cursor: { type: 'string', minLength: 1, maxLength: 1024, description: 'The `cursor` of the previous page (same filter and order).' },
    order: { type: 'string', enum: ['asc', 'desc'], description: 'By log position; default asc (oldest first).' },
    payloads: { type: 'string', enum: ['true', 'false'], description: 'Include the messages (decoded) where the log kept their bytes.' }
  }),
  conversation: closed({ limit: intString(5, 'At most this many messages, 1–10000 (default 1000).') }),
  ws: closed({ token: { type: 'string', maxLength: 256, description: 'Bearer token, for clients that cannot set headers.' } })
} as const

export const params = {
  agentId: closed({ id: agentId }, ['id']),
  conversation: closed({ conv: { type: 'string', minLength: 1, maxLength: 256 } }, ['conv'])
} as const

// ---- response schemas (documentation) ------------------------------------------------

const s = { type: 'string' } as const
const i = { type: 'integer' } as const
const n = { type: 'number' } as const
const strings = { type: 'array', items: s } as const

export const components = {
  Error: closed({
    error: closed({ code: s, message: s, details: { type: 'object' } }, ['code', 'message'])
  }, ['error']),
  AgentInfo: closed({ id: s, name: s, kind: { enum: ['local', 'remote'] }, subscriptions: strings, handlesRequests: { type: 'boolean' } }, ['id', 'kind', 'subscriptions', 'handlesRequests']),
  NodeStatus: closed({
    peerId: s,
    network: s,
    addresses: { ...strings, description: 'Full multiaddrs with /p2p/<peerId>.' },
    peers: i,
    roles: strings,
    agents: { type: 'array', items: { $ref: '#/components/schemas/AgentInfo' } },
    api: s,
    uptimeMs: i,
    rejections: { type: 'object', additionalProperties: i, description: 'Ingress rejections by reason.' },
    counters: closed({ published: i, delivered: i, forwarded: i, received: i }),
    topics: closed({
      queuedBytes: { ...i, description: 'Bytes of topic frames waiting on the links to neighbours.' },
      linkDrops: { ...i, description: 'Topic copies dropped because the link to their next hop held more than 16 MB.' },
      closedFrames: { ...i, description: 'Frames thrown away unsent by links to neighbours that closed (topic copies among them are lost).' },
      closedBytes: { ...i, description: 'Bytes thrown away unsent by links to neighbours that closed.' },
      dropped: { type: 'object', additionalProperties: i, description: 'Topic copies the dissemination core dropped, by reason (duplicate copies are normal).' }
    }),
    store: closed({
      kind: { enum: ['sqlite', 'postgres'] },
      durable: closed({ stored: i, replicated: i, delivered: i, acked: i, expired: i, refused: i, handedOver: i, receiptsPending: i, receiptsRetried: i, receiptsDropped: i }),
      log: closed({ written: i, dropped: i, failed: i, buffered: i })
    })
  }, ['peerId', 'network', 'addresses', 'peers', 'roles', 'agents', 'uptimeMs', 'rejections', 'counters']),
  PeerInfo: closed({
    peerId: s,
    status: { enum: ['connecting', 'connected', 'degraded', 'disconnected', 'failed'] },
    latencyMs: n,
    lastSeen: i,
    quality: n,
    addresses: strings,
    pingFailures: i,
    protocols: strings,
    roles: strings,
    capacity: { type: 'object' }
  }, ['peerId', 'status', 'quality']),
  NodeRecord: closed({ v: i, net: s, peer: s, roles: strings, caps: strings, capacity: { type: 'object' }, addrs: strings, agents: i, seq: i, exp: i, sig: { ...s, description: 'base64' } }),
  AgentRecord: closed({
    v: i,
    net: s,
    agent: s,
    name: s,
    home: { type: 'array', items: closed({ id: s, addrs: strings }) },
    caps: strings,
    seq: i,
    exp: i,
    sig: { ...s, description: 'base64 Ed25519 signature by the agent key' }
  }),
  CreatedAgent: closed({ id: s, name: s }, ['id']),
  SendResult: closed({
    id: { ...s, description: 'Message id (multibase sha2-256 multihash).' },
    confirmed: { ...strings, description: 'Recipients whose node confirmed delivery (when asked).' },
    durable: closed({
      status: { enum: ['stored', 'duplicate'] },
      home: { ...s, description: 'Peer id of the home node holding it (absent: held by replicas while the home is down).' },
      replicas: { ...i, description: 'Storage nodes that confirmed a copy.' }
    }, ['status', 'replicas'])
  }, ['id', 'confirmed']),
  LogRecord: closed({
    seq: { ...i, description: 'Position in the log.' },
    id: s,
    event: { enum: [...LOG_EVENTS] },
    status: { enum: [...LOG_STATUSES] },
    from: s,
    to: strings,
    topic: s,
    schema: s,
    proto: s,
    conv: s,
    type: s,
    size: i,
    reason: s,
    originTs: i,
    receivedTs: i,
    ackedTs: i,
    peer: s,
    hasBytes: { type: 'boolean' },
    message: { $ref: '#/components/schemas/Message', description: 'With `payloads=true` (and in replays), when the log kept the bytes.' }
  }, ['seq', 'id', 'event', 'status', 'to', 'size', 'receivedTs', 'hasBytes']),
  LogPage: closed({
    records: { type: 'array', items: { $ref: '#/components/schemas/LogRecord' } },
    cursor: { type: ['string', 'null'], description: 'Pass as `cursor` for the next page.' },
    more: { type: 'boolean' }
  }, ['records', 'more']),
  Conversation: closed({
    conversation: s,
    messages: { type: 'array', items: { $ref: '#/components/schemas/LogRecord' } }
  }, ['conversation', 'messages']),
  Message: closed({
    id: s,
    v: i,
    net: s,
    mode: { enum: [...MODES] },
    type: s,
    from: s,
    to: strings,
    topic: s,
    schema: s,
    proto: s,
    conv: s,
    corr: s,
    replyTo: s,
    ts: i,
    ttl: i,
    hops: i,
    prio: i,
    dlv: { type: 'object' },
    ct: s,
    enc: s,
    payload: { description: 'Parsed payload when the content type is JSON.' },
    payloadBase64: { ...s, description: 'Payload bytes otherwise.' },
    sig: s
  }, ['id', 'mode', 'type', 'from', 'ts', 'ttl', 'ct', 'sig']),
  Rejections: closed({
    counts: { type: 'object', additionalProperties: i },
    recent: { type: 'array', items: closed({ at: i, reason: { enum: [...REJECTION_REASONS] }, detail: s, id: s, peer: s }) }
  }, ['counts', 'recent'])
} as const
