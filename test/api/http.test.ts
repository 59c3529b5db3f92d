/**
 * The HTTP routes against a real node, through Fastify inject() (no socket): auth, every
 * route, the typed errors a real node produces, bad input refused with 400 and a code
 * while nothing changes, metrics in a per-node registry, and the OpenAPI document.
 */
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import type { FastifyInstance } from 'fastify'
import { buildApi } from '../../src/api/server.ts'
import { generateAgentKey } from '../../src/core/keys.ts'
import type { MeshNodeImpl } from '../../src/node/mesh-node.ts'
import type { Agent, Message } from '../../src/node/types.ts'
import { Nodes, authHeader, within } from '../helpers/api.ts'

describe('HTTP API (inject)', { timeout: 120_000 }, () => {
  const nodes = new Nodes()
  let node: MeshNodeImpl
  let app: FastifyInstance
  let token: string
  const auth = (): Record<string, string> => authHeader(token)
  const get = async (url: string) => await app.inject({ method: 'GET', url, headers: auth() })
  const post = async (url: string, payload: unknown) => await app.inject({ method: 'POST', url, headers: auth(), payload: payload as Record<string, unknown> })

  before(async () => {
    node = await nodes.start()
    token = node.apiToken
    app = await buildApi(node, { token })
  })
  after(async () => {
    await app.close()
    await nodes.stopAll()
  })

  describe('auth', () => {
    it('refuses requests without the token, with a wrong one, or with the token in the query', async () => {
      for (const headers of [{}, { authorization: 'Bearer wrong-token-wrong-token' }, { authorization: token }, { authorization: `Basic ${token}` }]) {
        const res = await app.inject({ method: 'GET', url: '/v1/status', headers })
        assert.equal(res.statusCode, 401)
        assert.equal(res.json().error.code, 'UnauthorizedError')
        assert.equal(res.headers['www-authenticate'], 'Bearer')
      }
      const q = await app.inject({ method: 'GET', url: `/v1/status?token=${token}` })
      assert.equal(q.statusCode, 401, 'query tokens are for the WebSocket only')
    })

    it('needs the token for unknown routes, /metrics and /openapi.json; /healthz is open', async () => {
      for (const url of ['/v1/nope', '/metrics', '/openapi.json']) assert.equal((await app.inject({ method: 'GET', url })).statusCode, 401, url)
      const h = await app.inject({ method: 'GET', url: '/healthz' })
      assert.equal(h.statusCode, 200)
      assert.deepEqual(h.json(), { ok: true })
      const nf = await get('/v1/nope')
      assert.equal(nf.statusCode, 404)
      assert.equal(nf.json().error.code, 'NotFoundError')
    })

    it('accepts the scheme case-insensitively', async () => {
      const res = await app.inject({ method: 'GET', url: '/v1/status', headers: { authorization: `bearer ${token}` } })
      assert.equal(res.statusCode, 200)
    })
  })

  describe('routes', () => {
    it('GET /v1/status gives peer id, full addresses, peers and counters', async () => {
      const s = (await get('/v1/status')).json()
      assert.equal(s.peerId, node.peerId)
      assert.equal(s.network, 'fedmesh')
      assert.ok(s.addresses.length > 0 && s.addresses.every((a: string) => a.endsWith(`/p2p/${node.peerId}`)))
      assert.equal(s.peers, 0)
      assert.equal(typeof s.counters.published, 'number')
      assert.equal(typeof s.rejections['bad-signature'], 'number')
    })

    it('GET /v1/peers, /v1/nodes, /v1/rejections answer lists', async () => {
      assert.deepEqual((await get('/v1/peers')).json(), [])
      const nodesList = (await get('/v1/nodes')).json()
      assert.ok(Array.isArray(nodesList))
      for (const r of nodesList) assert.equal(typeof r.sig, 'string')
      const r = (await get('/v1/rejections?reason=duplicate&limit=5')).json()
      assert.ok('duplicate' in r.counts)
      assert.deepEqual(r.recent, [])
    })

    it('POST /v1/agents creates and loads agents by name; GET lists them', async () => {
      const a = (await post('/v1/agents', { name: 'alice' })).json()
      assert.match(a.id, /^did:key:z6Mk/)
      assert.equal(a.name, 'alice')
      assert.equal((await post('/v1/agents', { name: 'alice' })).json().id, a.id)
      const list = (await get('/v1/agents')).json()
      assert.ok(list.some((x: { id: string, kind: string }) => x.id === a.id && x.kind === 'local'))
      const rec = await get(`/v1/agents/${a.id}/record`)
      assert.equal(rec.statusCode, 200)
      assert.equal(rec.json().agent, a.id)
      assert.equal(rec.json().home[0].id, node.peerId)
      assert.equal(typeof rec.json().sig, 'string')
    })

    it('publish, send, multicast and broadcast reach local agents; request returns the reply', async () => {
      const bob = await node.agent('bob')
      const carol = await node.agent('carol')
      const sub = bob.subscribe('news/#')
      const inbox = carol.messages()
      // A payload naming a schema is validated, so the schema must be published first.
      assert.equal((await post('/v1/schemas', { uri: 'news/item@1.0.0', schema: { type: 'object', properties: { headline: { type: 'string' } } } })).statusCode, 200)
      const pub = (await post('/v1/publish', { agent: 'alice', topic: 'news/today', payload: { headline: 'hi' }, schema: 'news/item@1.0.0', type: 'inform' })).json()
      assert.match(pub.id, /^b/)
      const got = await within(first(sub), 20_000, 'published message')
      assert.equal(got.id, pub.id)
      assert.deepEqual(got.data(), { headline: 'hi' })
      assert.equal(got.schema, 'news/item@1.0.0')

      const sent = await post('/v1/send', { agent: 'alice', to: carol.id, payloadBase64: Buffer.from('raw').toString('base64'), confirm: true })
      assert.equal(sent.statusCode, 200)
      assert.deepEqual(sent.json().confirmed, [carol.id])
      const direct = await within(first(inbox), 20_000, 'direct message')
      assert.equal(Buffer.from(direct.payload).toString(), 'raw')
      assert.equal(direct.contentType, 'application/octet-stream')

      const multi = await post('/v1/multicast', { agent: 'alice', to: [carol.id, bob.id], payload: 2 })
      assert.equal(multi.statusCode, 200)
      const bc = await post('/v1/broadcast', { agent: 'alice', payload: 3 })
      assert.equal(bc.statusCode, 200)

      carol.handle(async (m) => ({ echo: m.data() }))
      const reply = await post('/v1/request', { agent: 'alice', to: carol.id, payload: { q: 1 }, timeout: 5000 })
      assert.equal(reply.statusCode, 200)
      const r = reply.json()
      assert.deepEqual(r.payload, { echo: { q: 1 } })
      assert.equal(r.from, carol.id)
      assert.equal(r.corr != null, true)
      sub.unsubscribe()
      inbox.unsubscribe()
    })
  })

  describe('typed errors from a real node', () => {
    let quiet: Agent
    before(async () => { quiet = await node.agent('quiet') })

    it('request to an agent without a handler → 503 NoRespondersError', async () => {
      const res = await post('/v1/request', { to: quiet.id, payload: 1, timeout: 2000 })
      assert.equal(res.statusCode, 503)
      assert.equal(res.json().error.code, 'NoRespondersError')
    })

    it('a handler that never answers → 504 TimeoutError; one that throws → 502 RemoteError', async () => {
      const slow = await node.agent('slow')
      slow.handle(async (_m, { signal }) => await new Promise((_resolve, reject) => { signal.addEventListener('abort', () => { reject(new Error('closed')) }) }))
      const t = await post('/v1/request', { to: slow.id, payload: 1, timeout: 200 })
      assert.equal(t.statusCode, 504)
      assert.equal(t.json().error.code, 'TimeoutError')
      const failing = await node.agent('failing')
      failing.handle(() => { throw Object.assign(new Error('no way'), { code: 'Nope' }) })
      const f = await post('/v1/request', { to: failing.id, payload: 1, timeout: 5000 })
      assert.equal(f.statusCode, 502)
      assert.equal(f.json().error.code, 'RemoteError')
      assert.equal(f.json().error.message, 'no way')
      assert.equal(f.json().error.details.code, 'Nope')
    })

    it('an agent nobody knows → 404 AgentNotFoundError', async () => {
      const stranger = generateAgentKey().id
      // Both look the agent up in the DHT, which takes the router's full lookup bound without peers.
      const [res, rec] = await Promise.all([post('/v1/send', { to: stranger, payload: 1 }), get(`/v1/agents/${stranger}/record`)])
      assert.equal(res.statusCode, 404)
      assert.equal(res.json().error.code, 'AgentNotFoundError')
      assert.equal(rec.statusCode, 404)
      assert.equal(rec.json().error.code, 'AgentNotFoundError')
    })
  })

  describe('bad input: 400 with a code, and nothing changes', () => {
    const bad: Array<[string, string, unknown, string, RegExp?]> = [
      ['unknown field', '/v1/publish', { topic: 'a/b', payload: 1, bogus: true }, 'InvalidArgumentError', /additional properties/],
      ['missing topic', '/v1/publish', { payload: 1 }, 'InvalidArgumentError', /topic/],
      ['missing payload', '/v1/publish', { topic: 'a/b' }, 'InvalidArgumentError', /payload/],
      ['both payloads', '/v1/publish', { topic: 'a/b', payload: 1, payloadBase64: 'AA==' }, 'InvalidArgumentError'],
      ['bad base64', '/v1/publish', { topic: 'a/b', payloadBase64: '***' }, 'InvalidArgumentError'],
      ['string for integer (no coercion)', '/v1/publish', { topic: 'a/b', payload: 1, ttl: '60' }, 'InvalidArgumentError', /ttl/],
      ['priority out of range', '/v1/publish', { topic: 'a/b', payload: 1, priority: 9 }, 'InvalidArgumentError', /priority/],
      ['wildcard in topic', '/v1/publish', { topic: 'a/#', payload: 1 }, 'InvalidTopicError'],
      ['empty topic level', '/v1/publish', { topic: 'a//b', payload: 1 }, 'InvalidTopicError'],
      ['bad agent name', '/v1/publish', { agent: '../etc', topic: 'a/b', payload: 1 }, 'InvalidArgumentError', /agent/],
      ['recipient not a did', '/v1/send', { to: 'bob', payload: 1 }, 'InvalidArgumentError', /did:key/],
      ['empty multicast', '/v1/multicast', { to: [], payload: 1 }, 'InvalidArgumentError'],
      ['too long a timeout', '/v1/request', { to: 'did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK', payload: 1, timeout: 10_000_000 }, 'InvalidArgumentError', /timeout/],
      ['agent name missing', '/v1/agents', {}, 'InvalidArgumentError', /name/],
      ['agent name bad', '/v1/agents', { name: 'a b' }, 'InvalidArgumentError', /name/]
    ]
    for (const [what, url, body, code, message] of bad) {
      it(what, async () => {
        const before = node.status()
        const res = await post(url, body)
        assert.equal(res.statusCode, 400, res.body)
        assert.equal(res.json().error.code, code)
        if (message != null) assert.match(res.json().error.message, message)
        const now = node.status()
        assert.equal(now.counters.published, before.counters.published)
        assert.equal(now.agents.length, before.agents.length)
      })
    }

    it('refuses broken JSON, __proto__ keys, deep nesting, a body over 2 MiB and wrong query values', async () => {
      const published = node.status().counters.published
      const raw = async (payload: string) => await app.inject({ method: 'POST', url: '/v1/publish', headers: { ...auth(), 'content-type': 'application/json' }, payload })
      for (const payload of ['{"topic":"a/b",', '{"topic":"a/b","payload":{"__proto__":{"x":1}}}', '{"topic":"a/b","payload":{"constructor":{"prototype":{"x":1}}}}']) {
        const res = await raw(payload)
        assert.equal(res.statusCode, 400, payload)
        assert.equal(res.json().error.code, 'InvalidArgumentError')
        assert.match(res.json().error.message, /not valid JSON, or has a __proto__ or constructor\.prototype key/)
      }
      const deep = await raw(`{"topic":"a/b","payload":${'['.repeat(100)}${']'.repeat(100)}}`)
      assert.equal(deep.statusCode, 400)
      assert.match(deep.json().error.message, /nested deeper/)
      const big = await raw(JSON.stringify({ topic: 'a/b', payload: 'x'.repeat(2 * 1024 * 1024 + 10) }))
      assert.equal(big.statusCode, 400)
      assert.equal(big.json().error.code, 'MessageTooLargeError')
      const text = await app.inject({ method: 'POST', url: '/v1/publish', headers: { ...auth(), 'content-type': 'text/plain' }, payload: 'hello' })
      assert.equal(text.statusCode, 400)
      for (const q of ['limit=0', 'limit=x', 'reason=nope', 'other=1']) {
        const res = await get(`/v1/rejections?${q}`)
        assert.equal(res.statusCode, 400, q)
        assert.equal(res.json().error.code, 'InvalidArgumentError')
      }
      const rec = await get('/v1/agents/not-a-did/record')
      assert.equal(rec.statusCode, 400)
      assert.equal(node.status().counters.published, published)
    })

    it('an envelope too large for the mesh → 400 MessageTooLargeError', async () => {
      const res = await post('/v1/publish', { topic: 'a/b', payloadBase64: Buffer.alloc(1024 * 1024).toString('base64') })
      assert.equal(res.statusCode, 400)
      assert.equal(res.json().error.code, 'MessageTooLargeError')
    })
  })

  describe('metrics', () => {
    it('serves this node\'s counters in Prometheus text, from a registry of its own', async () => {
      await post('/v1/publish', { topic: 'm/x', payload: 1 })
      const res = await get('/metrics')
      assert.equal(res.statusCode, 200)
      assert.match(res.headers['content-type'] as string, /^text\/plain/)
      const text = res.body
      const published = Number(/^fedmesh_messages_published_total (\d+)$/m.exec(text)?.[1])
      assert.equal(published, node.status().counters.published)
      assert.match(text, /^fedmesh_rejections_total\{reason="bad-signature"\} \d+$/m)
      assert.match(text, /^fedmesh_peers 0$/m)
      assert.match(text, /^fedmesh_api_requests_total\{method="POST",route="\/v1\/publish",status="200"\} \d+$/m)
      assert.doesNotMatch(text, /process_cpu|nodejs_/, 'no default metrics from the global registry')
      // A second API over another node has counters of its own.
      const other = await nodes.start()
      const app2 = await buildApi(other, { token: other.apiToken })
      const text2 = (await app2.inject({ method: 'GET', url: '/metrics', headers: authHeader(other.apiToken) })).body
      assert.match(text2, /^fedmesh_messages_published_total 0$/m)
      await app2.close()
    })
  })

  describe('OpenAPI', () => {
    it('documents every route with its request schema', async () => {
      const doc = (await get('/openapi.json')).json()
      assert.equal(doc.openapi, '3.1.0')
      const routes = Object.entries(doc.paths as Record<string, Record<string, unknown>>).flatMap(([p, ops]) => Object.keys(ops).map(m => `${m.toUpperCase()} ${p}`)).sort()
      assert.deepEqual(routes, [
        'GET /healthz', 'GET /metrics', 'GET /openapi.json', 'GET /v1/agents', 'GET /v1/agents/{id}/record',
        'GET /v1/log', 'GET /v1/log/conversations/{conv}', 'GET /v1/nodes',
        'GET /v1/peers', 'GET /v1/protocols', 'GET /v1/protocols/document', 'GET /v1/registry/record', 'GET /v1/rejections',
        'GET /v1/schemas', 'GET /v1/schemas/document', 'GET /v1/status', 'GET /v1/ws', 'POST /v1/agents', 'POST /v1/broadcast',
        'POST /v1/multicast', 'POST /v1/protocols', 'POST /v1/publish', 'POST /v1/request', 'POST /v1/schemas', 'POST /v1/schemas/validate', 'POST /v1/send'
      ])
      const publish = doc.paths['/v1/publish'].post
      assert.equal(publish.requestBody.content['application/json'].schema.additionalProperties, false)
      assert.ok(publish.responses['400'] != null && publish.responses['401'] != null)
      assert.deepEqual(doc.paths['/healthz'].get.security, [])
      assert.equal(doc.paths['/v1/request'].post.responses['503'].description.includes('NoRespondersError'), true)
      const ids = Object.values(doc.paths as Record<string, Record<string, { operationId: string }>>).flatMap(ops => Object.values(ops).map(o => o.operationId))
      assert.equal(new Set(ids).size, ids.length, 'operation ids are unique')
      // Every $ref resolves.
      for (const m of JSON.stringify(doc).matchAll(/"\$ref":"#\/components\/schemas\/(\w+)"/g)) assert.ok(m[1] in doc.components.schemas, m[1])
    })
  })
})

async function first (sub: AsyncIterable<Message>): Promise<Message> {
  for await (const m of sub) return m
  throw new Error('subscription ended')
}
