/**
 * The node's local API: HTTP + WebSocket on Fastify, bearer token from the data dir.
 * The CLI and the remote agent SDK use it. Routes are described by /openapi.json (built
 * from the routes themselves) and docs/API.md; errors follow the one table in errors.ts.
 *
 * @example
 * ```ts
 * const api = await startApi(node, { host: '127.0.0.1', port: 7400, token: node.apiToken })
 * // curl -H "Authorization: Bearer $(cat DIR/api.token)" http://127.0.0.1:7400/v1/status
 * await api.close()
 * ```
 */
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify'
import websocket from '@fastify/websocket'
import { createHash, timingSafeEqual } from 'node:crypto'
import type { AgentId } from '../core/ids.ts'
import { InvalidArgumentError, NotSupportedError, UnauthorizedError } from '../core/errors.ts'
import type { LogFilter, LogRecord, QueryOptions } from '../store/types.ts'
import type { RejectionReason } from '../core/ingress.ts'
import type { Logger, Payload, RequestOptions } from '../node/types.ts'
import { errorBody } from './errors.ts'
import { createMetrics } from './metrics.ts'
import { buildOpenApi, type RegisteredRoute, type RouteDoc } from './openapi.ts'
import { WS_CLOSE, WS_LIMITS } from './protocol.ts'
import { bodies, params, queries } from './schemas.ts'
import type { ApiHandle, ApiNode, ApiOptions } from './types.ts'
import { ApiConnection, type WsContext } from './ws.ts'
import { toBase64 } from '../util/base64.ts'
import { registerSemanticRoutes } from './semantic-routes.ts'
import { logRecordJson } from './log-json.ts'

export type { ApiHandle, ApiNode, ApiOptions } from './types.ts'

export const API_VERSION = '1.0.0'
const BODY_LIMIT = 2 * 1024 * 1024
const MAX_PAYLOAD_DEPTH = 64
const WS_PATH = '/v1/ws'

const silentLogger: Logger = { info () {}, warn () {}, error () {}, debug () {} }

function digest (s: string): Buffer {
  return createHash('sha256').update(s).digest()
}

/** Constant-time token check (hashing first so the comparison does not leak the length). */
function tokenMatches (given: unknown, expected: Buffer): boolean {
  return typeof given === 'string' && given.length > 0 && given.length <= 1024 && timingSafeEqual(digest(given), expected)
}

function bearer (req: FastifyRequest): string | undefined {
  const h = req.headers.authorization
  if (typeof h !== 'string') return undefined
  const m = /^Bearer[ ]+(\S+)\s*$/i.exec(h)
  return m?.[1]
}

function docOf (req: FastifyRequest): RouteDoc | undefined {
  return (req.routeOptions.config as { doc?: RouteDoc } | undefined)?.doc
}

interface SendBody {
  agent?: string
  payload?: unknown
  payloadBase64?: string
  contentType?: string
  schema?: string
  type?: string
  protocol?: string
  conversation?: string
  ttl?: number
  hops?: number
  priority?: number
  compress?: boolean
  confirm?: boolean
  retries?: number
  maxDeliveryMs?: number
  ordered?: boolean
  durable?: boolean
  timeout?: number
}

/** Rejects JSON nested deeper than `max` (iteratively, so a deep value cannot overflow the stack). */
function checkDepth (value: unknown, max: number): void {
  const stack: Array<[unknown, number]> = [[value, 1]]
  while (stack.length > 0) {
    const [v, depth] = stack.pop() as [unknown, number]
    if (v == null || typeof v !== 'object') continue
    if (depth > max) throw new InvalidArgumentError(`payload is nested deeper than ${max} levels`)
    for (const child of Object.values(v)) if (child != null && typeof child === 'object') stack.push([child, depth + 1])
  }
}

function payloadOf (b: SendBody): Payload {
  if (b.payloadBase64 !== undefined) {
    if (b.payload !== undefined) throw new InvalidArgumentError('give payload or payloadBase64, not both')
    return new Uint8Array(Buffer.from(b.payloadBase64, 'base64'))
  }
  if (b.payload === undefined) throw new InvalidArgumentError('body must have payload (JSON) or payloadBase64')
  checkDepth(b.payload, MAX_PAYLOAD_DEPTH)
  return b.payload
}

function optionsOf (b: SendBody, signal: AbortSignal): RequestOptions {
  const o: RequestOptions = {
    signal,
    contentType: b.contentType,
    schema: b.schema,
    type: b.type,
    protocol: b.protocol,
    conversation: b.conversation,
    ttl: b.ttl,
    hops: b.hops,
    priority: b.priority,
    compress: b.compress,
    confirm: b.confirm,
    retries: b.retries,
    maxDeliveryMs: b.maxDeliveryMs,
    ordered: b.ordered,
    durable: b.durable,
    timeout: b.timeout
  }
  for (const k of Object.keys(o) as Array<keyof RequestOptions>) if (o[k] === undefined) delete o[k]
  return o
}

interface LogQuery {
  id?: string, agent?: string, topic?: string, conversation?: string, since?: string, until?: string, status?: string,
  type?: string, event?: string, limit?: string, cursor?: string, order?: 'asc' | 'desc', payloads?: 'true' | 'false'
}

/** Query-string values to a log filter and page options; the store validates them (InvalidQueryError). */
function logQuery (q: LogQuery): { filter: LogFilter, options: QueryOptions } {
  const filter: Record<string, unknown> = {}
  for (const k of ['id', 'agent', 'topic', 'conversation', 'type'] as const) if (q[k] != null) filter[k] = q[k]
  if (q.since != null) filter.since = Number(q.since)
  if (q.until != null) filter.until = Number(q.until)
  const list = (v: string): string | string[] => { const parts = v.split(','); return parts.length === 1 ? parts[0] : parts }
  if (q.status != null) filter.status = list(q.status)
  if (q.event != null) filter.event = list(q.event)
  const options: QueryOptions = { includeBytes: q.payloads === 'true' }
  if (q.limit != null) options.limit = Number(q.limit)
  if (q.cursor != null) options.cursor = q.cursor
  if (q.order != null) options.order = q.order
  return { filter: filter as LogFilter, options }
}

/** Aborted when the client goes away before the response is written. */
function clientGone (reply: FastifyReply): AbortSignal {
  const ac = new AbortController()
  reply.raw.once('close', () => { if (!reply.raw.writableFinished) ac.abort(new InvalidArgumentError('client disconnected')) })
  return ac.signal
}

/** Builds the Fastify app (not listening): `inject()` it in tests, or `startApi` to serve. */
export async function buildApi (node: ApiNode, opts: Pick<ApiOptions, 'token' | 'logger' | 'limits'>): Promise<FastifyInstance> {
  const logger = opts.logger ?? silentLogger
  if (typeof opts.token !== 'string' || opts.token.length < 16) throw new InvalidArgumentError('the API token must be at least 16 characters')
  const expected = digest(opts.token)
  const metrics = createMetrics(() => node.status())
  const limits = { ...WS_LIMITS, ...opts.limits }
  const ctx: WsContext = { node, metrics, logger, remote: new Set(), limits }

  const app = Fastify({
    bodyLimit: BODY_LIMIT,
    logger: false,
    exposeHeadRoutes: false,
    // Strict: unknown fields are errors (not silently removed), and nothing is coerced.
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, useDefaults: false, allErrors: false } },
    // A JSON body with __proto__ or constructor.prototype keys is refused (400).
    onProtoPoisoning: 'error',
    onConstructorPoisoning: 'error'
  })

  const routes: RegisteredRoute[] = []
  app.addHook('onRoute', (r) => {
    const doc = (r.config as { doc?: RouteDoc } | undefined)?.doc
    if (doc != null) for (const method of [r.method].flat()) routes.push({ method, url: r.url, schema: r.schema as RegisteredRoute['schema'], doc })
  })

  await app.register(websocket, {
    options: { maxPayload: limits.maxMessageBytes },
    // Close clients with a reason, and do not let one that ignores the close frame hold up shutdown.
    preClose (done) {
      const clients = [...app.websocketServer.clients]
      for (const c of clients) c.close(WS_CLOSE.goingAway, 'node stopping')
      const t = setTimeout(() => { for (const c of clients) c.terminate() }, 500)
      t.unref()
      done()
    }
  })

  app.setErrorHandler((err, req, reply) => {
    const { status, body } = errorBody(err)
    if (status >= 500 && status !== 502 && status !== 503 && status !== 504) logger.error({ err: (err as Error).message, route: req.routeOptions.url }, 'api request failed')
    if (status === 401) void reply.header('www-authenticate', 'Bearer')
    void reply.code(status).send(body)
  })
  app.setNotFoundHandler((req, reply) => {
    void reply.code(404).send({ error: { code: 'NotFoundError', message: `no route ${req.method} ${req.url.split('?')[0]}` } })
  })
  app.addHook('onRequest', async (req) => {
    if (docOf(req)?.public === true) return
    let given = bearer(req)
    if (given == null && req.routeOptions.url === WS_PATH) given = (req.query as { token?: string } | undefined)?.token
    if (!tokenMatches(given, expected)) throw new UnauthorizedError()
  })
  app.addHook('onResponse', async (req, reply) => {
    metrics.httpRequests.inc({ method: req.method, route: req.routeOptions.url ?? 'unknown', status: String(reply.statusCode) })
  })

  const agentOf = async (name: string | undefined) => await node.agent(name ?? 'default')
  let openapi: Record<string, unknown> | undefined

  app.get('/healthz', { config: { doc: { summary: 'Liveness; no token needed', public: true, response: { type: 'object', properties: { ok: { const: true } } } } } }, async () => ({ ok: true }))

  app.get('/openapi.json', { config: { doc: { summary: 'This OpenAPI 3.1 document' } } }, async () => {
    openapi ??= buildOpenApi(routes, { version: API_VERSION })
    return openapi
  })

  app.get('/metrics', { config: { doc: { summary: 'Prometheus metrics of this node', produces: 'text/plain', response: { type: 'string' } } } }, async (_req, reply) => {
    void reply.type(metrics.registry.contentType)
    return await metrics.registry.metrics()
  })

  app.get('/v1/status', { config: { doc: { summary: 'Node status: peer id, full addresses, peers, agents, rejections, counters', response: 'NodeStatus' } } }, async () => node.status())

  app.get('/v1/peers', { config: { doc: { summary: 'Peers with status, latency, last seen, quality, roles', response: { type: 'array', items: { $ref: '#/components/schemas/PeerInfo' } } } } }, async () => node.peers())

  app.get('/v1/nodes', { config: { doc: { summary: 'Signed node records seen on the network', response: { type: 'array', items: { $ref: '#/components/schemas/NodeRecord' } } } } },
    async () => node.nodeRecords().map(r => ({ ...r, sig: toBase64(r.sig) })))

  app.get('/v1/agents', { config: { doc: { summary: 'Agents attached to this node (local and remote)', response: { type: 'array', items: { $ref: '#/components/schemas/AgentInfo' } } } } }, async () => node.agents())

  app.post<{ Body: { name: string } }>('/v1/agents', {
    schema: { body: bodies.createAgent },
    config: { doc: { summary: 'Create (first time) or load the local agent NAME; its key is kept in the data dir', response: 'CreatedAgent' } }
  }, async (req) => {
    const a = await node.agent(req.body.name)
    return { id: a.id, name: a.name ?? req.body.name }
  })

  app.get<{ Params: { id: string }, Querystring: { wait?: string } }>('/v1/agents/:id/record', {
    schema: { params: params.agentId, querystring: queries.record },
    config: { doc: { summary: 'Find an agent\'s signed record (local directory, then the DHT)', response: 'AgentRecord', errors: ['AgentNotFoundError', 'TimeoutError'] } }
  }, async (req, reply) => {
    const wait = Number(req.query.wait ?? 0)
    const gone = clientGone(reply)
    const rec = wait > 0
      ? await node.waitForAgent(req.params.id as AgentId, { signal: AbortSignal.any([AbortSignal.timeout(wait), gone]) })
      : await node.findAgent(req.params.id as AgentId, { signal: gone }) // the lookup has its own bound
    return { ...rec, sig: toBase64(rec.sig) }
  })

  const directErrors: RouteDoc['errors'] = ['AgentNotFoundError', 'UnreachableError', 'DeliveryFailedError', 'TimeoutError', 'MessageTooLargeError']

  app.post<{ Body: SendBody & { topic: string } }>('/v1/publish', {
    schema: { body: bodies.publish },
    config: { doc: { summary: 'Publish to a topic as a local agent', response: 'SendResult', errors: ['InvalidTopicError', 'MessageTooLargeError'] } }
  }, async (req, reply) => await (await agentOf(req.body.agent)).publish(req.body.topic, payloadOf(req.body), optionsOf(req.body, clientGone(reply))))

  app.post<{ Body: SendBody & { to: string } }>('/v1/send', {
    schema: { body: bodies.send },
    config: { doc: { summary: 'Send directly to an agent (any node)', response: 'SendResult', errors: directErrors } }
  }, async (req, reply) => await (await agentOf(req.body.agent)).send(req.body.to, payloadOf(req.body), optionsOf(req.body, clientGone(reply))))

  app.post<{ Body: SendBody & { to: string[] } }>('/v1/multicast', {
    schema: { body: bodies.multicast },
    config: { doc: { summary: 'Send to a list of agents', response: 'SendResult', errors: directErrors } }
  }, async (req, reply) => await (await agentOf(req.body.agent)).multicast(req.body.to, payloadOf(req.body), optionsOf(req.body, clientGone(reply))))

  app.post<{ Body: SendBody }>('/v1/broadcast', {
    schema: { body: bodies.broadcast },
    config: { doc: { summary: 'Broadcast to every agent of the network', response: 'SendResult', errors: ['MessageTooLargeError'] } }
  }, async (req, reply) => await (await agentOf(req.body.agent)).broadcast(payloadOf(req.body), optionsOf(req.body, clientGone(reply))))

  app.post<{ Body: SendBody & { to: string } }>('/v1/request', {
    schema: { body: bodies.request },
    config: { doc: { summary: 'Request–reply: send a request and return the reply message', response: 'Message', errors: ['NoRespondersError', 'RemoteError', ...directErrors] } }
  }, async (req, reply) => {
    const answer = await (await agentOf(req.body.agent)).request(req.body.to, payloadOf(req.body), optionsOf(req.body, clientGone(reply)))
    return answer.toJSON()
  })

  app.get<{ Querystring: { reason?: RejectionReason, limit?: string } }>('/v1/rejections', {
    schema: { querystring: queries.rejections },
    config: { doc: { summary: 'Ingress rejections: counts by reason and the most recent ones', response: 'Rejections' } }
  }, async (req) => {
    const limit = req.query.limit != null ? Number(req.query.limit) : undefined
    if (limit != null && (limit < 1 || limit > 1000)) throw new InvalidArgumentError('limit must be 1–1000')
    return node.rejections({ reason: req.query.reason, limit })
  })

  registerSemanticRoutes(app, () => node.semantic)
  const logErrors: RouteDoc['errors'] = ['InvalidQueryError', 'NotSupportedError', 'StoreCorruptError', 'StoreUnavailableError']

  app.get<{ Querystring: LogQuery }>('/v1/log', {
    schema: { querystring: queries.log },
    config: { doc: { summary: 'The message log: what this node sent, received, relayed, stored, delivered or rejected; filtered, cursor-paginated', response: 'LogPage', errors: logErrors } }
  }, async (req) => {
    if (node.log == null) throw new NotSupportedError('this node keeps no message log')
    const { filter, options } = logQuery(req.query)
    const page = await node.log(filter, options)
    return { records: page.records.map(logRecordJson), cursor: page.cursor ?? null, more: page.more }
  })

  app.get<{ Params: { conv: string }, Querystring: { limit?: string } }>('/v1/log/conversations/:conv', {
    schema: { params: params.conversation, querystring: queries.conversation },
    config: { doc: { summary: 'Replay a conversation: its messages in log order, with their payloads where the log kept them', response: 'Conversation', errors: logErrors } }
  }, async (req) => {
    if (node.conversation == null) throw new NotSupportedError('this node keeps no message log')
    const limit = req.query.limit != null ? Number(req.query.limit) : undefined
    const records = await node.conversation(req.params.conv, { limit })
    return { conversation: req.params.conv, messages: records.map(logRecordJson) }
  })

  app.get(WS_PATH, {
    websocket: true,
    schema: { querystring: queries.ws },
    config: {
      doc: {
        summary: 'WebSocket: subscriptions, and remote agents (protocol in docs/API.md)',
        description: 'Upgrade to a WebSocket. The token may also be given as `?token=`.',
        status: 101,
        response: { description: 'JSON text messages, see docs/API.md' }
      }
    }
  }, (socket) => { new ApiConnection(socket, ctx) }) // eslint-disable-line no-new

  return app
}

/** Serves the API on host:port (port 0 picks a free one). */
export async function startApi (node: ApiNode, opts: ApiOptions): Promise<ApiHandle> {
  const app = await buildApi(node, opts)
  await app.listen({ host: opts.host, port: opts.port })
  const addr = app.server.address()
  const port = typeof addr === 'object' && addr != null ? addr.port : opts.port
  const host = opts.host.includes(':') ? `[${opts.host}]` : opts.host
  const url = `http://${host}:${port}`
  opts.logger?.info({ url }, 'api listening')
  return { url, close: async () => { await app.close() } }
}
