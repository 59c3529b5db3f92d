import { test, describe } from 'node:test'
import assert from 'node:assert/strict'
import { gzipSync } from 'node:zlib'
import { agentKeyFromSeed } from '../../src/core/keys.ts'
import { signEnvelope, type EnvelopeFields } from '../../src/core/envelope.ts'
import type { NetworkId } from '../../src/core/ids.ts'
import {
  createSchemaRegistry, createValidation, createMemoryRegistryHub, signSchemaDocument, type PayloadCarrier
} from '../../src/semantic/index.ts'

const alice = agentKeyFromSeed(new Uint8Array(32).fill(1))
const bob = agentKeyFromSeed(new Uint8Array(32).fill(2))
const json = (v: unknown): Uint8Array => new TextEncoder().encode(JSON.stringify(v))
const carrier = (schema: string | undefined, body: Uint8Array | unknown, ct = 'application/json'): PayloadCarrier =>
  ({ ...(schema != null ? { schema } : {}), ct, body: body instanceof Uint8Array ? body : json(body) })
const RFP = { item: 'widgets', quantity: 10, currency: 'EUR', maxUnitPrice: 250 }

describe('validation', () => {
  const registry = createSchemaRegistry()
  const validation = createValidation(registry)

  test('egress: valid payloads pass; invalid ones fail the call with every error', async () => {
    await validation.checkOutgoing(carrier('market/rfp@1.0.0', RFP))
    await validation.checkOutgoing(carrier(undefined, { anything: true }))
    await assert.rejects(validation.checkOutgoing(carrier('market/rfp@1.0.0', { item: '', quantity: 1.5, currency: 'eur', colour: 'red' })), (err: any) => {
      assert.equal(err.code, 'SchemaValidationError')
      assert.equal(err.details.schema, 'market/rfp@1.0.0')
      const paths = err.details.errors.map((e: any) => `${e.path} ${e.keyword}`).sort()
      assert.deepEqual(paths, [' additionalProperties', '/currency pattern', '/item minLength', '/quantity type'])
      assert.match(err.message, /and 3 more/)
      return true
    })
    await assert.rejects(validation.checkOutgoing(carrier('acme/unknown@1.0.0', {})), /SchemaNotFoundError|not known/)
    await assert.rejects(validation.checkOutgoing(carrier('market/rfp@1.0.0', RFP, 'text/plain')), (err: any) => err.code === 'SchemaValidationError' && /not JSON/.test(err.message))
  })

  test('ingress: reasons as values, counted', async () => {
    const v = createValidation(registry)
    const reason = async (c: PayloadCarrier): Promise<string> => { const r = await v.checkIncoming(c); return r.ok ? 'ok' : r.reason }
    assert.equal(await reason(carrier('market/rfp@1.0.0', RFP)), 'ok')
    assert.equal(await reason(carrier('market/rfp@1.0.0', { ...RFP, quantity: 0 })), 'schema-invalid')
    assert.equal(await reason(carrier('acme/unknown@1.0.0', RFP)), 'schema-unknown')
    assert.equal(await reason(carrier('not a uri', RFP)), 'schema-unknown')
    assert.equal(await reason(carrier('proto/market@1.0.0', RFP)), 'schema-unknown')
    assert.equal(await reason(carrier('market/rfp@1.0.0', new Uint8Array([0x7b, 0xff, 0x7d]))), 'schema-invalid')
    assert.equal(await reason(carrier('market/rfp@1.0.0', new TextEncoder().encode('{"item":'))), 'schema-invalid')
    assert.equal(await reason(carrier(undefined, new TextEncoder().encode('['.repeat(100)))), 'payload-bomb')
    assert.equal(await reason(carrier(undefined, new TextEncoder().encode('['.repeat(100)), 'application/octet-stream')), 'ok')
    assert.deepEqual(v.counters, { ok: 2, 'schema-invalid': 3, 'schema-unknown': 3, 'payload-bomb': 1 })
    const r = await v.checkIncoming(carrier('market/rfp@1.0.0', RFP))
    assert.ok(r.ok)
    assert.deepEqual(r.value, RFP)
    assert.equal(r.schema, 'market/rfp@1.0.0')
  })

  test('limits apply to schema-less JSON only when asked', async () => {
    const lax = createValidation(registry, { scanUnschematized: false, limits: { maxDepth: 4 } })
    assert.ok((await lax.checkIncoming(carrier(undefined, new TextEncoder().encode('[[[[[[1]]]]]]')))).ok)
    assert.ok(!(await lax.checkIncoming(carrier('market/rfp@1.0.0', new TextEncoder().encode('{"a":[[[[1]]]]}')))).ok)
  })

  test('compressed payloads are validated after bounded decompression; works on signed envelopes', async () => {
    const fields: EnvelopeFields = {
      v: 1, net: 'test' as NetworkId, mode: 'direct', type: 'cfp', from: alice.id, to: [bob.id], schema: 'market/rfp@1.0.0',
      ts: 1, ttl: 60, hops: 2, prio: 1, ct: 'application/json', enc: 'gzip', body: new Uint8Array(gzipSync(json(RFP)))
    }
    await validation.checkOutgoing(fields)
    const env = signEnvelope(fields, alice)
    const r = await validation.checkIncoming(env)
    assert.ok(r.ok)
    assert.deepEqual(r.value, RFP)
  })

  test('schemas unknown locally are fetched from the network on first use', async () => {
    const hub = createMemoryRegistryHub()
    const publisher = createSchemaRegistry({ network: hub.join('p') })
    hub.join('s1')
    await publisher.publish(signSchemaDocument({ uri: 'acme/ping@1.0.0', schema: { type: 'object', properties: { n: { type: 'integer' } }, required: ['n'] } }, alice))
    hub.down('p')
    const receiver = createValidation(createSchemaRegistry({ network: hub.join('r') }))
    assert.ok((await receiver.checkIncoming(carrier('acme/ping@1.0.0', { n: 1 }))).ok)
    const bad = await receiver.checkIncoming(carrier('acme/ping@1.0.0', { n: 'x' }))
    assert.ok(!bad.ok)
    assert.deepEqual(bad.errors, [{ path: '/n', message: 'must be integer', keyword: 'type' }])
  })

  test('accept: a payload under another version is translated to one the receiver takes', async () => {
    const reg = createSchemaRegistry({ builtins: false })
    await reg.publish(signSchemaDocument({ uri: 'acme/t@1.0.0', schema: { type: 'object', properties: { c: { type: 'number' } }, required: ['c'] } }, alice))
    await reg.publish(signSchemaDocument({ uri: 'acme/t@2.0.0', schema: { type: 'object', properties: { k: { type: 'number' } }, required: ['k'], additionalProperties: false } }, alice))
    reg.registerTranslator('acme/t@1.0.0', 'acme/t@2.0.0', (v) => ({ k: (v as { c: number }).c + 273 }))
    const v = createValidation(reg)
    const r = await v.checkIncoming(carrier('acme/t@1.0.0', { c: 1 }), { accept: ['acme/t@2.0.0'] })
    assert.ok(r.ok)
    assert.deepEqual([r.value, r.schema], [{ k: 274 }, 'acme/t@2.0.0'])
    const none = await v.checkIncoming(carrier('acme/t@2.0.0', { k: 1 }), { accept: ['acme/t@1.0.0'] })
    assert.ok(!none.ok)
    assert.equal(none.reason, 'schema-unknown')
  })
})
