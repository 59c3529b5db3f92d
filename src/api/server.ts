/**
 * The node's local API: HTTP + WebSocket on Fastify, bearer token from the data dir.
 * The CLI uses it; routes are described by /openapi.json and docs/API.md.
 */
import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify'
import websocket from '@fastify/websocket'
import { timingSafeEqual } from 'node:crypto'
import { Registry, Counter, Gauge } from 'prom-client'
import { InvalidArgumentError, UnauthorizedError } from '../core/errors.ts'
import { REJECTION_REASONS, type RejectionReason } from '../core/ingress.ts'
import type { MeshNodeImpl } from '../node/mesh-node.ts'
import type { Logger, Payload, SendOptions, Subscription } from '../node/types.ts'
import { errorBody } from './errors.ts'
import { openApiDocument } from './openapi.ts'

export interface ApiOptions { host: string, port: number, token: string, logger?: Logger }

const MAX_WS_SUBSCRIPTIONS = 64
const MAX_WS_BUFFERED_BYTES = 8 * 1024 * 1024

function authorized (req: FastifyRequest, token: string): boolean {
  const header = req.headers.authorization
  const given = header?.startsWith('Bearer ') === true ? header.slice(7) : (req.query as Record<string, string> | undefined)?.token
  if (typeof given !== 'string') return false
  const a = Buffer.from(given)
  const b = Buffer.from(token)
  return a.length === b.length && timingSafeEqual(a, b)
}

const sendFields = {
  agent: { type: 'string', maxLength: 64 },
  payload: {},
  payloadBase64: { type: 'string', maxLength: 1_500_000 },
  contentType: { type: 'string', maxLength: 128 },
  schema: { type: 'string', maxLength: 256 },
  type: { type: 'string', maxLength: 64 },
  ttl: { type: 'integer', minimum: 1, maximum: 604800 },
  priority: { type: 'integer', minimum: 0, maximum: 3 },
  conversation: { type: 'string', maxLength: 256 },
  confirm: { type: 'boolean' },
  retries: { type: 'integer', minimum: 0, maximum: 16 },
  ordered: { type: 'boolean' }
} as const

interface SendBody {
  agent?: string
  payload?: unknown
  payloadBase64?: string
  contentType?: string
  schema?: string
  type?: string
  ttl?: number
  priority?: number
  conversation?: string
  confirm?: boolean
  retries?: number
  ordered?: boolean
}

function payloadOf (b: SendBody): Payload {
  if (b.payloadBase64 != null) {
    if (b.payload !== undefined) throw new InvalidArgumentError('give payload or payloadBase64, not both')
    return new Uint8Array(Buffer.from(b.payloadBase64, 'base64'))
  }
  if (b.payload === undefined) throw new InvalidArgumentError('payload (JSON) or payloadBase64 is required')
  return b.payload
}

function optionsOf (b: SendBody): SendOptions {
  return { contentType: b.contentType, schema: b.schema, type: b.type, ttl: b.ttl, priority: b.priority, conversation: b.conversation, confirm: b.confirm, retries: b.retries, ordered: b.ordered }
}

export function createMetrics (node: MeshNodeImpl): Registry {
  const registry = new Registry()
  const counters = ['published', 'delivered', 'forwarded', 'received'] as const
  for (const name of counters) {
    // Collected on scrape from the router's counters: no second bookkeeping on the hot path.
    new Counter({
      name: `fedmesh_messages_${name}_total`, help: `Messages ${name} by this node`, registers: [registry],
      collect () { this.reset(); this.inc(node.router.counters[name]) }
    })
  }
  new Counter({
    name: 'fedmesh_rejections_total', help: 'Messages rejected at ingress, by reason', labelNames: ['reason'], registers: [registry],
    collect () { this.reset(); for (const r of REJECTION_REASONS) this.inc({ reason: r }, node.router.rejections.counts[r]) }
  })
  new Gauge({ name: 'fedmesh_peers', help: 'Connected peers', registers: [registry], collect () { this.set(node.net.getPeers().length) } })
  new Gauge({ name: 'fedmesh_agents', help: 'Agents hosted on this node', registers: [registry], collect () { this.set(node.agents().length) } })
  return registry
}

export async function buildApi (node: MeshNodeImpl, opts: { token: string }): Promise<FastifyInstance> {
  const app = Fastify({ bodyLimit: 2 * 1024 * 1024, logger: false })
  const metrics = createMetrics(node)
  await app.register(websocket, { options: { maxPayload: 1024 * 1024 } })

  app.setErrorHandler((err, _req, reply) => {
    const { status, body } = errorBody(err)
    void reply.code(status).send(body)
  })
  app.setNotFoundHandler((req, reply) => {
    void reply.code(404).send({ error: { code: 'NotFoundError', message: `no route ${req.method} ${req.url}` } })
  })
  app.addHook('onRequest', async (req) => {
    if (req.url === '/healthz' || req.url === '/openapi.json') return
    if (!authorized(req, opts.token)) throw new UnauthorizedError()
  })

  const agentOf = async (name: string | undefined) => await node.agent(name ?? 'default')

  app.get('/healthz', async () => ({ ok: true }))
  app.get('/openapi.json', async () => openApiDocument)
  app.get('/metrics', async (_req, reply) => { void reply.type(metrics.contentType); return await metrics.metrics() })
  app.get('/v1/status', async () => node.status())
  app.get('/v1/peers', async () => node.peers())
  app.get('/v1/nodes', async () => node.nodeRecords().map(({ sig: _sig, ...r }) => r))
  app.get('/v1/agents', async () => node.agents())
  app.post<{ Body: { name: string } }>('/v1/agents', {
    schema: { body: { type: 'object', required: ['name'], additionalProperties: false, properties: { name: { type: 'string', minLength: 1, maxLength: 64 } } } }
  }, async (req) => {
    const a = await node.agent(req.body.name)
    return { id: a.id, name: a.name }
  })
  app.get<{ Params: { id: string } }>('/v1/agents/:id/record', async (req) => {
    const { sig: _sig, ...rec } = await node.findAgent(req.params.id, { signal: AbortSignal.timeout(10_000) })
    return rec
  })
  app.post<{ Body: SendBody & { topic: string } }>('/v1/publish', {
    schema: { body: { type: 'object', required: ['topic'], additionalProperties: false, properties: { ...sendFields, topic: { type: 'string', maxLength: 256 } } } }
  }, async (req) => await (await agentOf(req.body.agent)).publish(req.body.topic, payloadOf(req.body), optionsOf(req.body)))
  app.post<{ Body: SendBody & { to: string } }>('/v1/send', {
    schema: { body: { type: 'object', required: ['to'], additionalProperties: false, properties: { ...sendFields, to: { type: 'string', maxLength: 128 } } } }
  }, async (req) => await (await agentOf(req.body.agent)).send(req.body.to, payloadOf(req.body), optionsOf(req.body)))
  app.post<{ Body: SendBody & { to: string[] } }>('/v1/multicast', {
    schema: { body: { type: 'object', required: ['to'], additionalProperties: false, properties: { ...sendFields, to: { type: 'array', minItems: 1, maxItems: 256, items: { type: 'string', maxLength: 128 } } } } }
  }, async (req) => await (await agentOf(req.body.agent)).multicast(req.body.to, payloadOf(req.body), optionsOf(req.body)))
  app.post<{ Body: SendBody }>('/v1/broadcast', {
    schema: { body: { type: 'object', additionalProperties: false, properties: sendFields } }
  }, async (req) => await (await agentOf(req.body.agent)).broadcast(payloadOf(req.body), optionsOf(req.body)))
  app.post<{ Body: SendBody & { to: string, timeout?: number } }>('/v1/request', {
    schema: { body: { type: 'object', required: ['to'], additionalProperties: false, properties: { ...sendFields, to: { type: 'string', maxLength: 128 }, timeout: { type: 'integer', minimum: 1, maximum: 300000 } } } }
  }, async (req) => {
    const reply = await (await agentOf(req.body.agent)).request(req.body.to, payloadOf(req.body), { ...optionsOf(req.body), timeout: req.body.timeout })
    return reply.toJSON()
  })
  app.get<{ Querystring: { reason?: string, limit?: number } }>('/v1/rejections', {
    schema: { querystring: { type: 'object', additionalProperties: false, properties: { reason: { type: 'string', enum: [...REJECTION_REASONS] }, limit: { type: 'integer', minimum: 1, maximum: 1000 }, token: { type: 'string' } } } }
  }, async (req) => node.rejections({ reason: req.query.reason as RejectionReason | undefined, limit: req.query.limit }))

  // WebSocket: {op:'subscribe', id, pattern, agent?} | {op:'messages', id, agent?} | {op:'unsubscribe', id}
  app.get('/v1/ws', { websocket: true }, (socket) => {
    const subs = new Map<string, Subscription>()
    const send = (m: unknown): void => {
      if (socket.bufferedAmount > MAX_WS_BUFFERED_BYTES) { socket.close(1013, 'slow consumer'); return }
      socket.send(JSON.stringify(m))
    }
    socket.on('message', (raw: Buffer) => {
      void (async () => {
        let msg: { op?: string, id?: string, pattern?: string, agent?: string }
        try { msg = JSON.parse(raw.toString('utf8')) } catch { send({ op: 'error', error: { code: 'InvalidArgumentError', message: 'not JSON' } }); return }
        try {
          const id = String(msg.id ?? '')
          if (msg.op === 'unsubscribe') { subs.get(id)?.unsubscribe(); subs.delete(id); send({ op: 'unsubscribed', id }); return }
          if (msg.op !== 'subscribe' && msg.op !== 'messages') throw new InvalidArgumentError(`unknown op ${JSON.stringify(msg.op)}`)
          if (id === '' || subs.has(id)) throw new InvalidArgumentError('each subscription needs a new id')
          if (subs.size >= MAX_WS_SUBSCRIPTIONS) throw new InvalidArgumentError(`at most ${MAX_WS_SUBSCRIPTIONS} subscriptions per connection`)
          const agent = await agentOf(msg.agent)
          const sub = msg.op === 'subscribe' ? agent.subscribe(String(msg.pattern)) : agent.messages()
          subs.set(id, sub)
          send({ op: 'subscribed', id })
          for await (const m of sub) send({ op: 'message', sub: id, message: m.toJSON() })
        } catch (err) {
          send({ op: 'error', id: msg.id, ...errorBody(err).body })
        }
      })()
    })
    socket.on('close', () => { for (const s of subs.values()) s.unsubscribe() })
  })
  return app
}

export async function startApi (node: MeshNodeImpl, opts: ApiOptions): Promise<{ url: string, close: () => Promise<void> }> {
  const app = await buildApi(node, opts)
  await app.listen({ host: opts.host, port: opts.port })
  const addr = app.server.address()
  const port = typeof addr === 'object' && addr != null ? addr.port : opts.port
  const host = opts.host.includes(':') ? `[${opts.host}]` : opts.host
  return { url: `http://${host}:${port}`, close: async () => { await app.close() } }
}
