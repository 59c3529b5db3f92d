/**
 * The registry over the node API (HTTP routes of src/api/semantic-routes.ts) and remote
 * agents (src/sdk/remote.ts) validating before they sign exactly like in-process ones,
 * with schemas fetched through their node; and a flood of payload bombs at a node's
 * ingress rejected with memory bounded.
 */
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { Nodes, within } from '../helpers/api.ts'
import type { MeshNodeImpl } from '../../src/node/mesh-node.ts'
import WebSocket from 'ws'
import { connect, WebSocketTransport } from '../../src/sdk/remote.ts'
import { createAgent } from '../../src/sdk/agent.ts'
import { generateAgentKey } from '../../src/core/keys.ts'
import { encodeDocument, signSchemaDocument } from '../../src/semantic/index.ts'
import { toBase64 } from '../../src/util/base64.ts'

const SCHEMA = { type: 'object', additionalProperties: false, required: ['n'], properties: { n: { type: 'integer', minimum: 0 } } }

describe('registry API and remote agents', () => {
  const nodes = new Nodes()
  let a: MeshNodeImpl
  let b: MeshNodeImpl
  let api: (method: string, path: string, body?: unknown) => Promise<{ status: number, body: any }>

  before(async () => {
    a = await nodes.start({ api: '127.0.0.1:0' })
    b = await nodes.start({ api: '127.0.0.1:0', bootstrap: [a.multiaddrs()[0]] })
    api = async (method, path, body) => {
      const res = await fetch(`${a.apiUrl as string}${path}`, { method, headers: { authorization: `Bearer ${a.apiToken}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) }, body: body !== undefined ? JSON.stringify(body) : undefined })
      return { status: res.status, body: await res.json() }
    }
  })
  after(async () => { await nodes.stopAll() })

  it('publishes, lists, gets and validates over HTTP, with the statuses of the error table', async () => {
    const pub = await api('POST', '/v1/schemas', { uri: 'count/n@1.0.0', schema: SCHEMA, agent: 'counter' })
    assert.equal(pub.status, 200, JSON.stringify(pub.body))
    assert.equal(pub.body.uri, 'count/n@1.0.0')
    assert.equal(pub.body.fresh, true)
    const again = await api('POST', '/v1/schemas', { uri: 'count/n@1.0.0', schema: SCHEMA, agent: 'counter' })
    assert.equal(again.body.fresh, false)
    assert.equal(again.body.hash, pub.body.hash)
    assert.equal((await api('POST', '/v1/schemas', { uri: 'count/n@1.1.0', schema: { ...SCHEMA, properties: { n: { type: 'integer', minimum: 1 } } }, agent: 'counter' })).status, 409)
    assert.equal((await api('POST', '/v1/schemas', { uri: 'count/n@1.0.0', schema: { type: 'string' }, agent: 'counter' })).body.error.code, 'SchemaConflictError')
    assert.equal((await api('POST', '/v1/schemas', { uri: 'count/bad@1.0.0', schema: { type: 'object', propertees: {} } })).status, 400)
    // A document signed elsewhere is published as it is.
    const key = generateAgentKey()
    const doc = encodeDocument(signSchemaDocument({ uri: 'other/thing@1.0.0', schema: { type: 'string' } }, key))
    const d = await api('POST', '/v1/schemas', { document: toBase64(doc) })
    assert.equal(d.status, 200)
    const list = await api('GET', '/v1/schemas?kind=schema')
    assert.ok(list.body.some((x: any) => x.uri === 'count/n@1.0.0') && list.body.some((x: any) => x.uri === 'market/rfp@1.0.0'))
    const got = await api('GET', '/v1/schemas/document?uri=count%2Fn%401.0.0')
    assert.deepEqual(got.body.schema, SCHEMA)
    assert.equal((await api('GET', '/v1/schemas/document?uri=count%2Fnone%401.0.0')).status, 404)
    const v = await api('POST', '/v1/schemas/validate', { schema: 'count/n@1.0.0', payload: { n: -1 } })
    assert.deepEqual([v.body.ok, v.body.reason, v.body.errors[0].path], [false, 'schema-invalid', '/n'])
    assert.equal((await api('POST', '/v1/protocols', { protocol: { name: 'x', version: '1.0.0' } })).body.error.code, 'InvalidProtocolError')
    const send = await api('POST', '/v1/send', { to: (await a.agent('target')).id, payload: { n: 'no' }, schema: 'count/n@1.0.0' })
    assert.equal(send.status, 422)
    assert.equal(send.body.error.details.errors[0].path, '/n')
    const protos = await api('GET', '/v1/protocols')
    assert.ok(protos.body.some((x: any) => x.uri === 'proto/market@1.0.0'))
    const openapi = await api('GET', '/openapi.json')
    for (const p of ['/v1/schemas', '/v1/schemas/document', '/v1/schemas/validate', '/v1/protocols', '/v1/protocols/document', '/v1/registry/record']) assert.ok(openapi.body.paths[p] != null, p)
  })

  it('a remote agent validates before signing, fetching the schema through its node', async () => {
    await within((async () => { while (!b.semantics.registry.has('count/n@1.0.0')) await new Promise(resolve => setTimeout(resolve, 50)) })(), 10_000, 'b learns count/n')
    const remote = await connect({ url: b.apiUrl as string, token: b.apiToken, key: generateAgentKey(), name: 'far' })
    try {
      const target = await a.agent('target')
      await assert.rejects(remote.send(target.id, { n: 'x' }, { schema: 'count/n@1.0.0' }), (err: any) => err.code === 'SchemaValidationError' && err.details.errors[0].path === '/n')
      await assert.rejects(remote.send(target.id, { n: 1 }, { schema: 'count/missing@1.0.0' }), (err: any) => err.code === 'SchemaNotFoundError')
      const inbox = target.messages()
      await b.waitForAgent(target.id)
      await remote.send(target.id, { n: 4 }, { schema: 'count/n@1.0.0', confirm: true })
      const m = await within(inbox[Symbol.asyncIterator]().next(), 10_000, 'delivery')
      assert.deepEqual(m.value?.data(), { n: 4 })
      inbox.unsubscribe()
    } finally { await remote.close() }
  })

  it('the node checks what a remote agent submits even when its SDK did not', async () => {
    const key = generateAgentKey()
    const ws = new WebSocket(`${(b.apiUrl as string).replace(/^http/, 'ws')}/v1/ws`, { headers: { authorization: `Bearer ${b.apiToken}` } })
    const transport = new WebSocketTransport(ws, key)
    await transport.ready(AbortSignal.timeout(10_000))
    const rogue = await createAgent(key, transport, { network: transport.network, name: 'rogue-remote', kind: 'remote' })
    try {
      const target = await a.agent('target')
      await assert.rejects(rogue.send(target.id, { n: 'x' }, { schema: 'count/n@1.0.0' }), (err: any) => err.code === 'SchemaValidationError' && err.details.errors[0].path === '/n')
    } finally { await rogue.close(); transport.close() }
  })

  it('rejects a flood of 1 MiB payload bombs at ingress, counted, with memory bounded', async () => {
    const target = await b.agent('bombed')
    const bad = await createAgent(generateAgentKey(), a.transport, { network: a.network, name: 'bomber' })
    await a.waitForAgent(target.id)
    const deep = new TextEncoder().encode('['.repeat(500_000) + ']'.repeat(500_000))
    const wide = new TextEncoder().encode(`{${Array.from({ length: 60_000 }, (_v, i) => `"k${i}":1`).join(',')}}`)
    const before = b.rejections().counts['payload-bomb']
    global.gc?.()
    const heap0 = process.memoryUsage().heapUsed
    for (let i = 0; i < 20; i++) {
      for (const body of [deep, wide]) {
        await assert.rejects(bad.send(target.id, body, { schema: 'count/n@1.0.0', contentType: 'application/json', confirm: true }), (err: any) => err.details?.code === 'PayloadLimitError')
      }
    }
    assert.equal(b.rejections().counts['payload-bomb'] - before, 40)
    global.gc?.()
    // Both nodes live in this process: 40 MiB of bombs went through, far less stayed.
    assert.ok(process.memoryUsage().heapUsed - heap0 < 32 * 1024 * 1024, `heap grew by ${process.memoryUsage().heapUsed - heap0}`)
  })
})
