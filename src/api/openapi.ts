/** OpenAPI 3.1 description of the node API (served at /openapi.json). */
const err = { $ref: '#/components/schemas/Error' }
const sendProps = {
  agent: { type: 'string', description: 'Local agent name (default "default")' },
  payload: { description: 'JSON payload' },
  payloadBase64: { type: 'string', description: 'Binary payload, base64 (instead of payload)' },
  contentType: { type: 'string' }, schema: { type: 'string' }, type: { type: 'string', description: 'Performative or message type' },
  ttl: { type: 'integer' }, priority: { type: 'integer', minimum: 0, maximum: 3 }, conversation: { type: 'string' },
  confirm: { type: 'boolean' }, retries: { type: 'integer' }, ordered: { type: 'boolean' }
}
const json = (schema: unknown) => ({ content: { 'application/json': { schema } } })
const op = (summary: string, body?: unknown, extra: Record<string, unknown> = {}) => ({
  summary,
  ...(body != null ? { requestBody: { required: true, ...json(body) } } : {}),
  responses: { 200: { description: 'OK' }, 400: { description: 'Invalid input', ...json(err) }, 401: { description: 'Missing or bad token', ...json(err) }, default: { description: 'Error', ...json(err) } },
  ...extra
})

export const openApiDocument = {
  openapi: '3.1.0',
  info: { title: 'fedmesh node API', version: '1' },
  components: {
    securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'Token from <data dir>/api.token' } },
    schemas: {
      Error: { type: 'object', properties: { error: { type: 'object', properties: { code: { type: 'string' }, message: { type: 'string' }, details: {} }, required: ['code', 'message'] } } }
    }
  },
  security: [{ bearer: [] }],
  paths: {
    '/healthz': { get: op('Liveness (no auth)', undefined, { security: [] }) },
    '/metrics': { get: op('Prometheus metrics') },
    '/v1/status': { get: op('Node status: peerId, addresses, peers, agents, rejections, counters') },
    '/v1/peers': { get: op('Peers with status, latency, last seen, quality, roles') },
    '/v1/nodes': { get: op('Signed node records seen on the network') },
    '/v1/agents': { get: op('Agents hosted on this node'), post: op('Create or load an agent', { type: 'object', required: ['name'], properties: { name: { type: 'string' } } }) },
    '/v1/agents/{id}/record': { get: op('Find an agent record (directory, then DHT)', undefined, { parameters: [{ name: 'id', in: 'path', required: true, schema: { type: 'string' } }] }) },
    '/v1/publish': { post: op('Publish to a topic', { type: 'object', required: ['topic'], properties: { ...sendProps, topic: { type: 'string' } } }) },
    '/v1/send': { post: op('Send directly to an agent', { type: 'object', required: ['to'], properties: { ...sendProps, to: { type: 'string' } } }) },
    '/v1/multicast': { post: op('Send to a list of agents', { type: 'object', required: ['to'], properties: { ...sendProps, to: { type: 'array', items: { type: 'string' } } } }) },
    '/v1/broadcast': { post: op('Broadcast to every agent of the network', { type: 'object', properties: sendProps }) },
    '/v1/request': { post: op('Request–reply; returns the reply message', { type: 'object', required: ['to'], properties: { ...sendProps, to: { type: 'string' }, timeout: { type: 'integer' } } }) },
    '/v1/rejections': { get: op('Ingress rejections by reason, and the most recent ones', undefined, { parameters: [{ name: 'reason', in: 'query', schema: { type: 'string' } }, { name: 'limit', in: 'query', schema: { type: 'integer' } }] }) },
    '/v1/ws': { get: op('WebSocket: {op:"subscribe",id,pattern,agent?} | {op:"messages",id,agent?} | {op:"unsubscribe",id}; server sends {op:"message",sub,message}') }
  }
} as const
