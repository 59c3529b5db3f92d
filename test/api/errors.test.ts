/**
 * The error table at the API boundary: every code maps to its documented status, over
 * HTTP too (a stub node throws each error), and docs/API.md lists the same table.
 */
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import type { FastifyInstance } from 'fastify'
import * as core from '../../src/core/errors.ts'
import { FedmeshError } from '../../src/core/errors.ts'
import { ConflictError, ERROR_TABLE, errorBody, errorFromJson, statusOf } from '../../src/api/errors.ts'
import { buildApi } from '../../src/api/server.ts'
import type { ApiNode } from '../../src/api/types.ts'

const TOKEN = 'test-token-0123456789abcdef'

const EXPECTED: Record<string, number> = {
  InvalidArgumentError: 400,
  InvalidTopicError: 400,
  InvalidEnvelopeError: 400,
  MessageTooLargeError: 400,
  UnauthorizedError: 401,
  NotFoundError: 404,
  AgentNotFoundError: 404,
  TimeoutError: 504,
  NoRespondersError: 503,
  UnreachableError: 502,
  DeliveryFailedError: 502,
  RemoteError: 502
}

describe('error table', () => {
  it('maps the codes named in the design to their statuses', () => {
    for (const [code, status] of Object.entries(EXPECTED)) assert.equal(statusOf(code), status, code)
    assert.equal(statusOf('SomethingElse'), 500)
    assert.equal(statusOf('NotStartedError'), 500)
  })

  it('turns every fedmesh error into { error: { code, message, details? } }', () => {
    const { status, body } = errorBody(new core.RemoteError('handler said no', { details: { code: 'Nope' } }))
    assert.equal(status, 502)
    assert.deepEqual(body, { error: { code: 'RemoteError', message: 'handler said no', details: { code: 'Nope' } } })
    const other = errorBody(new Error('boom'))
    assert.equal(other.status, 500)
    assert.equal(other.body.error.code, 'InternalError')
  })

  it('maps Fastify validation and client errors to 400 InvalidArgumentError', () => {
    const v = errorBody({ validation: [{ instancePath: '/ttl', message: 'must be integer' }], validationContext: 'body', statusCode: 400 })
    assert.equal(v.status, 400)
    assert.equal(v.body.error.code, 'InvalidArgumentError')
    assert.equal(v.body.error.message, 'body/ttl must be integer')
    assert.equal(errorBody({ statusCode: 415, message: 'unsupported media type' }).body.error.code, 'InvalidArgumentError')
    assert.deepEqual(errorBody({ statusCode: 413, code: 'FST_ERR_CTP_BODY_TOO_LARGE', message: 'too large' }), { status: 400, body: { error: { code: 'MessageTooLargeError', message: 'too large' } } })
  })

  it('rebuilds typed errors from their JSON form', () => {
    const e = errorFromJson({ code: 'NoRespondersError', message: 'nobody home' })
    assert.ok(e instanceof core.NoRespondersError)
    assert.equal(e.code, 'NoRespondersError')
    assert.equal(e.message, 'nobody home')
    assert.ok(errorFromJson({ code: 'ConflictError', message: 'taken' }) instanceof ConflictError)
    const unknown = errorFromJson({ code: 'BrandNewError', message: 'hm' })
    assert.ok(unknown instanceof FedmeshError)
    assert.equal(unknown.code, 'BrandNewError')
    assert.equal(errorFromJson(undefined).code, 'InternalError')
  })

  it('is the table docs/API.md documents', () => {
    const doc = readFileSync(new URL('../../docs/API.md', import.meta.url), 'utf8')
    const rows = new Map([...doc.matchAll(/^\|\s*`(\w+)`\s*\|\s*(\d{3})\s*\|/gm)].map(m => [m[1], Number(m[2])]))
    for (const [code, entry] of Object.entries(ERROR_TABLE)) assert.equal(rows.get(code), entry.status, `docs/API.md row for ${code}`)
    for (const code of rows.keys()) if (code !== 'InternalError') assert.ok(code in ERROR_TABLE, `docs/API.md lists ${code}, the table does not`)
  })
})

describe('error mapping over HTTP', () => {
  let app: FastifyInstance
  before(async () => {
    // A stub node whose agent throws, on publish, the error named by the topic's last level.
    const agent = {
      id: 'did:key:stub',
      publish: async (topic: string) => { throw errorFromJson({ code: topic.split('/')[1], message: `thrown ${topic}`, details: { topic } }) }
    }
    const stub = {
      peerId: 'stub',
      network: 'fedmesh',
      config: { maxMessageBytes: 1 << 20, clockSkewMs: 30_000 },
      agent: async () => agent,
      agents: () => [],
      status: () => { throw new Error('not used') },
      peers: () => [],
      nodeRecords: () => [],
      rejections: () => ({ counts: {}, recent: [] }),
      findAgent: async () => { throw new core.AgentNotFoundError('no such agent') },
      waitForAgent: async () => { throw new core.TimeoutError('waited') },
      transport: {}
    } as unknown as ApiNode
    app = await buildApi(stub, { token: TOKEN })
  })
  after(async () => { await app.close() })

  for (const [code, entry] of [...Object.entries(ERROR_TABLE), ['Unlisted', { status: 500 }] as const]) {
    it(`${code} → ${entry.status}`, async () => {
      const res = await app.inject({ method: 'POST', url: '/v1/publish', headers: { authorization: `Bearer ${TOKEN}` }, payload: { topic: `t/${code}`, payload: 1 } })
      assert.equal(res.statusCode, entry.status)
      const body = res.json()
      assert.equal(body.error.code, code)
      assert.equal(body.error.message, `thrown t/${code}`)
      assert.deepEqual(body.error.details, { topic: `t/${code}` })
    })
  }

  it('AgentNotFoundError from a record lookup → 404, a wait that runs out → 504', async () => {
    const did = 'did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK'
    const res = await app.inject({ method: 'GET', url: `/v1/agents/${did}/record`, headers: { authorization: `Bearer ${TOKEN}` } })
    assert.equal(res.statusCode, 404)
    assert.equal(res.json().error.code, 'AgentNotFoundError')
    const waited = await app.inject({ method: 'GET', url: `/v1/agents/${did}/record?wait=10`, headers: { authorization: `Bearer ${TOKEN}` } })
    assert.equal(waited.statusCode, 504)
    assert.equal(waited.json().error.code, 'TimeoutError')
  })
})
