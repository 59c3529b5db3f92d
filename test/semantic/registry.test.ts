import { test, describe } from 'node:test'
import assert from 'node:assert/strict'
import * as dagCbor from '@ipld/dag-cbor'
import { agentKeyFromSeed, generateAgentKey } from '../../src/core/keys.ts'
import {
  createSchemaRegistry, createMemoryRegistryHub, signSchemaDocument, signProtocolDocument, decodeDocument, encodeDocument, documentHash,
  verifyDocument, documentToJson, documentFromJson, registryKeys, parseRegistryKey, validateRegistryRecord, selectRegistryRecord,
  builtinKey, BUILTIN_PUBLISHER, REQUEST_PROTOCOL, MARKET_RFP, parseSchemaFile, parseProtocolFile,
  type JsonSchema, type RegistryNetwork, type SchemaRegistry, type ProtocolDefinition
} from '../../src/semantic/index.ts'
import { registryNetworkCompliance } from './registry-network.compliance.ts'

const alice = agentKeyFromSeed(new Uint8Array(32).fill(1))
const bob = agentKeyFromSeed(new Uint8Array(32).fill(2))
const TS = 1_800_000_000_000
const ORDER_V1: JsonSchema = {
  type: 'object',
  properties: { sku: { type: 'string', maxLength: 32 }, qty: { type: 'integer', minimum: 1, maximum: 100 } },
  required: ['sku', 'qty'],
  additionalProperties: false
}
const doc = (uri: string, schema: JsonSchema, key = alice, ts = TS) => signSchemaDocument({ uri, schema, ts }, key)
const codeOf = async (p: Promise<unknown>): Promise<string> => await p.then(() => 'ok', (e: { code?: string }) => e.code ?? String(e))

describe('registry documents', () => {
  test('sign, encode, decode: canonical, hashed, verified', () => {
    const d = doc('acme/order@1.0.0', ORDER_V1)
    const bytes = encodeDocument(d)
    const r = decodeDocument(bytes)
    assert.ok(r.ok)
    assert.equal(r.document.kind, 'schema')
    assert.equal(r.document.hash, documentHash(d))
    assert.match(r.document.hash, /^bciq[a-z2-7]+$/)
    assert.equal(r.document.parsed.name, 'acme/order')
    assert.deepEqual(r.document.doc.schema, ORDER_V1)
    // Same content, same hash, whoever encodes it; the signature is not hashed.
    assert.equal(documentHash({ ...d }), r.document.hash)
    assert.deepEqual(verifyDocument(documentFromJson(JSON.parse(JSON.stringify(documentToJson(d))))).hash, r.document.hash)
  })

  test('every tampering is refused with a reason', () => {
    const d = doc('acme/order@1.0.0', ORDER_V1)
    const reason = (b: Uint8Array): string => { const r = decodeDocument(b); return r.ok ? 'ok' : r.reason }
    assert.equal(reason(encodeDocument({ ...d, schema: { ...ORDER_V1 as object, additionalProperties: true } })), 'bad-signature')
    assert.equal(reason(encodeDocument({ ...d, publisher: bob.id })), 'bad-signature')
    assert.equal(reason(dagCbor.encode({ ...d, extra: 1 })), 'bad-field')
    assert.equal(reason(dagCbor.encode({ ...d, v: 2 })), 'bad-field')
    assert.equal(reason(new Uint8Array([0xa1, 0x61])), 'malformed')
    assert.equal(reason(new Uint8Array(70_000)), 'too-large')
    // Non-canonical: the same map with keys out of order.
    const canonical = encodeDocument(d)
    const swapped = Buffer.from(canonical)
    assert.equal(swapped[0], 0xa6)
    assert.equal(reason(new Uint8Array([0xbf, ...canonical.subarray(1), 0xff])), 'non-canonical')
  })

  test('URIs: strict semver; proto/ only for protocols; protocol URIs match their definition', () => {
    assert.throws(() => doc('acme/order@1.0', ORDER_V1), /InvalidDocumentError|uri/)
    assert.throws(() => doc('acme/order@01.0.0', ORDER_V1), /uri/)
    assert.throws(() => doc('proto/order@1.0.0', ORDER_V1), /reserved/)
    const p = signProtocolDocument(REQUEST_PROTOCOL, alice, TS)
    assert.equal(p.uri, 'proto/request@1.0.0')
    const forged = signProtocolDocument({ ...REQUEST_PROTOCOL, version: '1.0.1' }, alice, TS)
    const r = decodeDocument(dagCbor.encode({ ...forged, uri: 'proto/request@1.0.2' }))
    assert.ok(!r.ok)
  })

  test('a __proto__ key inside a schema cannot slip through decoding', () => {
    const d = doc('acme/order@1.0.0', ORDER_V1)
    const bytes = Buffer.from(encodeDocument(d))
    // Rename the key "required" → a 9-byte key "__proto__" by editing the bytes in place (same length class).
    const at = bytes.indexOf(Buffer.from('properties'))
    assert.ok(at > 0)
    const r = decodeDocument(new Uint8Array(Buffer.concat([bytes.subarray(0, at - 1), Buffer.from([0x69]), Buffer.from('__proto__'), bytes.subarray(at + 10)])))
    assert.ok(!r.ok)
  })
})

describe('SchemaRegistry: local rules', () => {
  test('publish, duplicate, lookup by URI and hash, versions, validators', async () => {
    const reg = createSchemaRegistry({ builtins: false })
    const d = doc('acme/order@1.0.0', ORDER_V1)
    const r1 = await reg.publish(d)
    assert.equal(r1.fresh, true)
    assert.equal(r1.uri, 'acme/order@1.0.0')
    assert.equal((await reg.publish(d)).fresh, false)
    assert.equal(reg.get('acme/order@1.0.0')?.hash, r1.hash)
    assert.equal(reg.getByHash(r1.hash)?.parsed.uri, 'acme/order@1.0.0')
    assert.deepEqual(reg.versions('acme/order'), ['acme/order@1.0.0'])
    const v = await reg.validator('acme/order@1.0.0')
    assert.deepEqual(v({ sku: 'a', qty: 2 }), [])
    assert.deepEqual(v({ sku: 'a', qty: 0, x: 1 }).map((e) => e.path).sort(), ['', '/qty'])
    assert.equal(reg.counters.accepted, 1)
    assert.equal(reg.counters.duplicate, 1)
  })

  test('built-ins are preloaded and reserved', async () => {
    const reg = createSchemaRegistry()
    for (const uri of ['market/rfp@1.0.0', 'market/proposal@1.0.0', 'market/contract@2.0.1', 'fedmesh/not-understood@1.0.0', 'proto/market@1.0.0', 'proto/contract-net@1.0.0']) assert.ok(reg.has(uri), uri)
    assert.equal(reg.get(MARKET_RFP)?.doc.publisher, BUILTIN_PUBLISHER)
    assert.equal(BUILTIN_PUBLISHER, 'did:key:z6MkpdmoYUGUFRFfGLJ96zJBtMcZBo84YNWyrgxE8UxqLQSL') // as docs/SEMANTIC.md says
    // Nobody else may add versions to a built-in name…
    assert.equal(await codeOf(reg.publish(doc('market/rfp@1.1.0', { type: 'object' }))), 'SchemaConflictError')
    // …not even with the public built-in key.
    assert.equal(await codeOf(reg.publish(doc('market/rfp@1.1.0', true, builtinKey()))), 'SchemaConflictError')
    assert.equal(reg.ingest(encodeDocument(doc('fedmesh/other@1.0.0', true, builtinKey()))).ok, false)
    assert.equal(reg.counters.refused.reserved, 2)
  })

  test('conflicts: one document per URI, one owner per name, pinned namespaces', async () => {
    const reg = createSchemaRegistry({ builtins: false, owners: { bank: [alice.id] } })
    await reg.publish(doc('acme/order@1.0.0', ORDER_V1))
    assert.equal(await codeOf(reg.publish(doc('acme/order@1.0.0', { type: 'object' }))), 'SchemaConflictError')
    assert.equal(await codeOf(reg.publish(doc('acme/order@1.1.0', ORDER_V1, bob))), 'SchemaConflictError')
    assert.equal(await codeOf(reg.publish(doc('acme/order@2.0.0', ORDER_V1, bob))), 'SchemaConflictError')
    assert.equal(await codeOf(reg.publish(doc('bank/transfer@1.0.0', true, bob))), 'SchemaConflictError')
    assert.equal(await codeOf(reg.publish(doc('bank/transfer@1.0.0', true, alice))), 'ok')
    assert.equal(await codeOf(reg.publish(doc('bob/thing@1.0.0', true, bob))), 'ok')
  })

  test('schemas that do not compile, or break the limits, are refused', async () => {
    const reg = createSchemaRegistry({ builtins: false })
    assert.equal(await codeOf(reg.publish(doc('acme/typo@1.0.0', { type: 'object', propertis: {} }))), 'InvalidDocumentError')
    assert.equal(await codeOf(reg.publish(doc('acme/bad@1.0.0', { type: 'strin' }))), 'InvalidDocumentError')
    assert.equal(await codeOf(reg.publish(doc('acme/fmt@1.0.0', { type: 'string', format: 'regex' }))), 'InvalidDocumentError')
    assert.throws(() => doc('acme/remote@1.0.0', { $ref: 'https://evil.example/schema.json' }), /local references/)
    assert.throws(() => doc('acme/redos@1.0.0', { type: 'string', pattern: '^(a|a)*\\1$' }), /linear time/)
  })

  test('compatibility on publish: safe minor versions pass, breaking ones fail with the path, majors may break', async () => {
    const reg = createSchemaRegistry({ builtins: false })
    await reg.publish(doc('acme/order@1.0.0', ORDER_V1))
    const v110 = structuredClone(ORDER_V1) as Record<string, any>
    v110.properties.qty.maximum = 1000
    v110.properties.note = { type: 'string', maxLength: 200 }
    v110.required = ['sku']
    assert.equal((await reg.publish(doc('acme/order@1.1.0', v110))).fresh, true)
    const v120 = structuredClone(v110)
    v120.properties.sku.maxLength = 8
    await assert.rejects(reg.publish(doc('acme/order@1.2.0', v120)), (err: any) => {
      assert.equal(err.code, 'IncompatibleSchemaError')
      assert.equal(err.details.path, '/sku')
      assert.match(err.message, /acme\/order@1\.2\.0 does not accept everything acme\/order@1\.1\.0 accepted: at \/sku: maxLength: lowered from 32 to 8/)
      return true
    })
    assert.equal((await reg.publish(doc('acme/order@2.0.0', v120))).fresh, true)
    // Versions of a major are published in increasing order.
    assert.equal(await codeOf(reg.publish(doc('acme/order@1.0.5', ORDER_V1))), 'IncompatibleSchemaError')
    // Pre-releases are exempt.
    assert.equal(await codeOf(reg.publish(doc('acme/order@1.3.0-beta.1', { type: 'object' }))), 'ok')
    assert.deepEqual(reg.versions('acme/order'), ['acme/order@1.0.0', 'acme/order@1.1.0', 'acme/order@1.3.0-beta.1', 'acme/order@2.0.0'])
  })

  test('documents arriving out of order are checked against both neighbours', () => {
    const reg = createSchemaRegistry({ builtins: false })
    assert.ok(reg.ingest(encodeDocument(doc('acme/x@1.1.0', { type: 'string', maxLength: 10 }))).ok)
    const older = reg.ingest(encodeDocument(doc('acme/x@1.0.0', { type: 'string' })))
    assert.ok(!older.ok)
    assert.equal(older.reason, 'incompatible')
    assert.ok(reg.ingest(encodeDocument(doc('acme/x@1.0.0', { type: 'string', maxLength: 5 }, alice, TS + 1))).ok)
    assert.equal(reg.counters.refused.incompatible, 1)
  })

  test('protocols are documents too, with their own compatibility rule', async () => {
    const reg = createSchemaRegistry({ builtins: false })
    const def: ProtocolDefinition = { ...REQUEST_PROTOCOL, name: 'acme/ordering' }
    await reg.publish(signProtocolDocument(def, alice, TS))
    assert.equal((await reg.protocol('proto/acme/ordering@1.0.0')).initial, 'start')
    const extended = { ...def, version: '1.1.0', states: [...def.states, 'queued'], transitions: [...def.transitions, { from: 'requested', to: 'queued', performative: 'agree' as const, sender: 'initiator' }, { from: 'queued', to: 'done', performative: 'inform' as const, sender: 'participant' }] }
    assert.equal(await codeOf(reg.publish(signProtocolDocument(extended, alice, TS))), 'ok')
    const slower = { ...extended, version: '1.2.0', timeouts: { ...def.timeouts, requested: { after: 10_000, to: 'timed-out' } } }
    await assert.rejects(reg.publish(signProtocolDocument(slower, alice, TS)), /the timeout of state requested changed/)
    const typed = { ...extended, version: '1.2.0', transitions: extended.transitions.map((t) => t.performative === 'refuse' ? { ...t, schema: MARKET_RFP } : t) }
    await assert.rejects(reg.publish(signProtocolDocument(typed, alice, TS)), /requested --refuse by participant--> refused now requires schema market\/rfp@1.0.0/)
    const moved = { ...extended, version: '1.2.0', transitions: extended.transitions.map((t) => t.performative === 'refuse' ? { ...t, to: 'failed' } : t), states: extended.states.filter((x) => x !== 'refused'), terminal: extended.terminal.filter((x) => x !== 'refused') }
    await assert.rejects(reg.publish(signProtocolDocument(moved, alice, TS)), /state refused was removed/)
    assert.equal(await codeOf(reg.schema('proto/acme/ordering@1.0.0')), 'SchemaNotFoundError')
  })

  test('translators: explicit, chained through the same major, validated', async () => {
    const reg = createSchemaRegistry({ builtins: false })
    await reg.publish(doc('acme/temp@1.0.0', { type: 'object', properties: { c: { type: 'number' } }, required: ['c'], additionalProperties: false }))
    await reg.publish(doc('acme/temp@1.1.0', { type: 'object', properties: { c: { type: 'number' }, unit: { type: 'string' } }, required: ['c'], additionalProperties: false }))
    await reg.publish(doc('acme/temp@2.0.0', { type: 'object', properties: { kelvin: { type: 'number', minimum: 0 } }, required: ['kelvin'], additionalProperties: false }))
    reg.registerTranslator('acme/temp@1.1.0', 'acme/temp@2.0.0', (v) => ({ kelvin: (v as { c: number }).c + 273.15 }))
    assert.deepEqual(reg.translationPath('acme/temp@1.0.0', 'acme/temp@2.0.0'), ['acme/temp@1.0.0', 'acme/temp@1.1.0', 'acme/temp@2.0.0'])
    assert.deepEqual(await reg.translate({ c: 20 }, 'acme/temp@1.0.0', ['acme/temp@2.0.0']), { value: { kelvin: 293.15 }, schema: 'acme/temp@2.0.0' })
    assert.equal(await codeOf(reg.translate({ c: -300 }, 'acme/temp@1.0.0', 'acme/temp@2.0.0')), 'TranslationError')
    assert.equal(await codeOf(reg.translate({ kelvin: 1 }, 'acme/temp@2.0.0', 'acme/temp@1.0.0')), 'TranslationError')
  })
})

describe('SchemaRegistry over a network', () => {
  const member = (hub: ReturnType<typeof createMemoryRegistryHub>, id: string, counter?: { gets: number }): SchemaRegistry => {
    const net = hub.join(id)
    const counted: RegistryNetwork = counter == null ? net : { ...net, get: async (k, o) => { counter.gets++; return await net.get(k, o) } }
    return createSchemaRegistry({ network: counted })
  }

  test('a schema published by a node that then goes down is still fetched by a node that joined later', async () => {
    const hub = createMemoryRegistryHub({ replication: 3 })
    const a = member(hub, 'publisher')
    const b = member(hub, 'early')
    hub.join('storage-1')
    hub.join('storage-2')
    const published = await a.publish(doc('acme/order@1.0.0', ORDER_V1))
    assert.deepEqual(published.network, { stored: true, announced: true, errors: [] })
    await hub.flush()
    assert.ok(b.has('acme/order@1.0.0'), 'announced to the registries that were up')
    hub.down('publisher')
    const counter = { gets: 0 }
    const late = member(hub, 'late', counter)
    assert.equal(late.has('acme/order@1.0.0'), false)
    const fetched = await late.resolve('acme/order@1.0.0')
    assert.equal(fetched.hash, published.hash)
    assert.equal(late.counters.fetched, 1)
    assert.deepEqual((await late.validator('acme/order@1.0.0'))({ sku: 'x', qty: 1 }), [])
    assert.equal((await late.resolveHash(published.hash)).parsed.uri, 'acme/order@1.0.0')
    // An unknown URI is looked up once, then remembered as missing for a while.
    const before = counter.gets
    assert.equal(await codeOf(late.resolve('acme/nothing@1.0.0')), 'SchemaNotFoundError')
    assert.equal(await codeOf(late.resolve('acme/nothing@1.0.0')), 'SchemaNotFoundError')
    assert.equal(counter.gets - before, 1)
    for (const r of [a, b, late]) r.close()
  })

  test('publishing consults the network: conflicts and breaking successors are refused even by a fresh registry', async () => {
    const hub = createMemoryRegistryHub()
    const first = member(hub, 'n1')
    hub.join('s1')
    await first.publish(doc('acme/order@1.0.0', ORDER_V1))
    hub.down('n1')
    const fresh = member(hub, 'n2')
    assert.equal(await codeOf(fresh.publish(doc('acme/order@1.0.0', { type: 'object' }))), 'SchemaConflictError')
    const narrower = structuredClone(ORDER_V1) as Record<string, any>
    narrower.properties.qty.maximum = 10
    assert.equal(await codeOf(createSchemaRegistry({ network: hub.join('n3') }).publish(doc('acme/order@1.1.0', narrower))), 'IncompatibleSchemaError')
    assert.equal(await codeOf(createSchemaRegistry({ network: hub.join('n4') }).publish(doc('acme/order@1.1.0', ORDER_V1, bob))), 'SchemaConflictError')
  })

  test('lookups in flight are bounded and shared', async () => {
    let gets = 0
    const release: Array<() => void> = []
    const slow: RegistryNetwork = {
      announce: async () => {},
      onAnnounce: () => () => {},
      put: async () => {},
      get: async () => { gets++; await new Promise<void>((resolve) => release.push(resolve)); return undefined }
    }
    const reg = createSchemaRegistry({ network: slow, maxLookups: 2, builtins: false })
    const a1 = reg.resolve('acme/a@1.0.0')
    const a2 = reg.resolve('acme/a@1.0.0')
    const b = reg.resolve('acme/b@1.0.0')
    assert.match(await reg.resolve('acme/c@1.0.0').then(() => '', (e: Error) => e.message), /2 lookups are already in flight/)
    await new Promise((resolve) => setImmediate(resolve))
    assert.equal(gets, 2)
    for (const r of release) r()
    for (const p of [a1, a2, b]) assert.equal(await codeOf(p), 'SchemaNotFoundError')
  })

  test('a lookup that timed out or got no answer is not remembered as a miss: the next one asks again', async () => {
    const hub = createMemoryRegistryHub()
    const publisher = member(hub, 'p')
    await publisher.publish(doc('acme/order@1.0.0', ORDER_V1))
    const net = hub.join('starved')
    // First a network too slow to answer within the registry's bound, then one that fails outright, then the real one.
    let mode: 'hang' | 'fail' | 'ok' = 'hang'
    let gets = 0
    const flaky: RegistryNetwork = {
      ...net,
      get: async (k, o) => {
        gets++
        if (mode === 'hang') {
          // (AbortSignal.timeout does not keep the process alive: a timer does, until the abort.)
          const alive = setTimeout(() => {}, 10_000)
          return await new Promise<never>((_resolve, reject) => { o?.signal?.addEventListener('abort', () => { clearTimeout(alive); reject(o.signal?.reason) }, { once: true }) })
        }
        if (mode === 'fail') throw new Error('no peer answered')
        return await net.get(k, o)
      }
    }
    const reg = createSchemaRegistry({ network: flaky, fetchTimeoutMs: 20 })
    assert.match(await reg.resolve('acme/order@1.0.0').then(() => '', (e: Error) => e.message), /could not be fetched/)
    mode = 'fail'
    assert.match(await reg.resolve('acme/order@1.0.0').then(() => '', (e: Error) => e.message), /could not be fetched/)
    mode = 'ok'
    assert.equal((await reg.resolve('acme/order@1.0.0')).parsed.uri, 'acme/order@1.0.0')
    assert.equal(gets, 3)
    // An answer without the document is remembered: not asked again for a while.
    assert.equal(await codeOf(reg.resolve('acme/nothing@1.0.0')), 'SchemaNotFoundError')
    assert.equal(await codeOf(reg.resolve('acme/nothing@1.0.0')), 'SchemaNotFoundError')
    assert.equal(gets, 4)
    reg.close()
    publisher.close()
  })

  test('invalid announcements are counted, not thrown; an aborted lookup is an AbortError', async () => {
    const hub = createMemoryRegistryHub()
    const reg = member(hub, 'r')
    const other = hub.join('x')
    await other.announce(new Uint8Array([1, 2, 3]))
    await other.announce(encodeDocument({ ...doc('acme/a@1.0.0', true), ts: 5 }))
    await hub.flush()
    assert.equal(reg.counters.refused.invalid, 2)
    const ac = new AbortController()
    ac.abort()
    assert.equal(await codeOf(reg.resolve('acme/slow@1.0.0', { signal: ac.signal })), 'AbortError')
  })
})

describe('schema and protocol files (CLI input)', () => {
  test('wrapped or bare schemas, with the URI from the file or the option', () => {
    assert.deepEqual(parseSchemaFile('{"uri":"acme/a@1.0.0","schema":{"type":"string"}}'), { uri: 'acme/a@1.0.0', schema: { type: 'string' } })
    assert.deepEqual(parseSchemaFile('{"type":"string"}', 'acme/a@1.0.1'), { uri: 'acme/a@1.0.1', schema: { type: 'string' } })
    assert.throws(() => parseSchemaFile('{"type":"string"}'), /needs a URI/)
    assert.throws(() => parseSchemaFile('{"type":'), /not JSON|syntax|unbalanced/)
    assert.throws(() => parseSchemaFile('['.repeat(100)), /deeper/)
    assert.throws(() => parseSchemaFile('[1]', 'acme/a@1.0.0'), /object or a boolean/)
  })
  test('protocol files are validated with every problem listed', () => {
    assert.equal(parseProtocolFile(JSON.stringify(REQUEST_PROTOCOL)).name, 'request')
    assert.throws(() => parseProtocolFile('{"name":"x"}'), (err: any) => err.code === 'InvalidProtocolError' && err.details.problems.length > 3)
  })
})

describe('DHT record helpers', () => {
  test('keys parse; records must match their key; the selector converges', () => {
    assert.deepEqual(parseRegistryKey(registryKeys.latest('acme/order', 1)), { kind: 'latest', name: 'acme/order', major: 1 })
    assert.equal(parseRegistryKey('/fedmesh/agent/x'), undefined)
    const d1 = encodeDocument(doc('acme/order@1.0.0', ORDER_V1))
    const d2 = encodeDocument(doc('acme/order@1.2.0', ORDER_V1))
    const other = encodeDocument(doc('acme/order@1.0.0', true, alice, TS - 1))
    assert.equal(validateRegistryRecord(registryKeys.uri('acme/order@1.0.0'), d1), undefined)
    assert.match(validateRegistryRecord(registryKeys.uri('acme/order@1.2.0'), d1) ?? '', /stored under/)
    assert.match(validateRegistryRecord(registryKeys.latest('acme/order', 2), d1) ?? '', /not a release/)
    assert.equal(selectRegistryRecord(registryKeys.latest('acme/order', 1), [d1, d2]), 1)
    assert.equal(selectRegistryRecord(registryKeys.uri('acme/order@1.0.0'), [d1, other]), 1)
    assert.equal(selectRegistryRecord(registryKeys.uri('acme/order@1.0.0'), [new Uint8Array(3), d1]), 1)
  })
})

registryNetworkCompliance('in-memory hub', async (n) => {
  const hub = createMemoryRegistryHub({ replication: 3 })
  const ids = Array.from({ length: n }, (_, i) => `m${i}`)
  const members = ids.map((id) => hub.join(id))
  return { members, down: (i) => { hub.down(ids[i]) }, settle: async () => { await hub.flush() }, close: () => {} }
})

test('generateAgentKey publishers are independent', () => {
  assert.notEqual(generateAgentKey().id, generateAgentKey().id)
})
