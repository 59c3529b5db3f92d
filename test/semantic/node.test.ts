/**
 * The semantic layer wired into nodes and the SDK (in-process nodes on loopback): registry
 * distribution with the publisher gone, the disk cache, compatibility on publish, egress
 * validation in the SDK, ingress rejection at nodes (link frames and gossip) with reasons
 * counted, every performative end to end, protocol conversations with not-understood and
 * timeouts, negotiation.
 */
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { Nodes, within, tempDir } from '../helpers/api.ts'
import { createNode, type MeshNodeImpl } from '../../src/node/mesh-node.ts'
import { createAgent, type AgentImpl } from '../../src/sdk/agent.ts'
import { generateAgentKey } from '../../src/core/keys.ts'
import { PERFORMATIVES, signSchemaDocument, encodeDocument } from '../../src/semantic/index.ts'
import type { ConversationEvent } from '../../src/sdk/conversations.ts'
import type { Message, Subscription } from '../../src/node/types.ts'
import { rmSync } from 'node:fs'
import { registryProtocol } from '../../src/node/semantic.ts'

const ORDER = { uri: 'acme/order@1.0.0', schema: { type: 'object', additionalProperties: false, required: ['item', 'qty'], properties: { item: { type: 'string', maxLength: 50 }, qty: { type: 'integer', minimum: 1 } } } }
const ORDERING = {
  name: 'acme/ordering',
  version: '1.0.0',
  roles: ['customer', 'shop'],
  states: ['start', 'ordered', 'done', 'refused', 'expired'],
  initial: 'start',
  terminal: ['done', 'refused', 'expired'],
  transitions: [
    { from: 'start', to: 'ordered', performative: 'request', sender: 'customer', schema: 'acme/order@1.0.0' },
    { from: 'ordered', to: 'done', performative: 'inform', sender: 'shop' },
    { from: 'ordered', to: 'refused', performative: 'refuse', sender: 'shop' }
  ],
  timeouts: { ordered: { after: 400, to: 'expired' } }
}

async function until (pred: () => boolean | Promise<boolean>, what: string, ms = 15_000): Promise<void> {
  const end = Date.now() + ms
  for (let i = 0; i < 10_000; i++) {
    if (await pred()) return
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 50))
  }
}

async function next (sub: Subscription, what: string, ms = 10_000): Promise<Message> {
  const it = sub[Symbol.asyncIterator]()
  const r = await within(it.next(), ms, what)
  assert.equal(r.done, false)
  return r.value as Message
}

/**
 * Whether `node` is connected to `peer` and has identified it as serving the registry
 * protocol: a lookup started before that races connection set-up against its own timeout.
 */
async function speaksRegistry (node: MeshNodeImpl, peer: MeshNodeImpl): Promise<boolean> {
  if (!node.net.getPeers().some(p => p.equals(peer.net.peerId))) return false
  const known = await node.net.peerStore.get(peer.net.peerId).catch(() => undefined)
  return known?.protocols.includes(registryProtocol(node.network)) === true
}

/** An agent with no semantic checks of its own: it sends whatever it is told, as a buggy or hostile one would. */
async function rogue (node: MeshNodeImpl): Promise<AgentImpl> {
  return await createAgent(generateAgentKey(), node.transport, { network: node.network, name: 'rogue' })
}

describe('semantic layer in nodes', () => {
  const nodes = new Nodes()
  let a: MeshNodeImpl
  let b: MeshNodeImpl

  before(async () => {
    a = await nodes.start()
    b = await nodes.start({ bootstrap: [a.multiaddrs()[0]] })
    await until(() => a.net.getPeers().length > 0 && b.net.getPeers().length > 0, 'a and b connected')
    await a.semantic.publishSchema(ORDER, { agent: 'acme' })
    await a.semantic.publishProtocol(ORDERING, { agent: 'acme' })
    await until(() => b.semantics.registry.has('acme/order@1.0.0') && b.semantics.registry.has('proto/acme/ordering@1.0.0'), 'announcements reach b')
  })
  after(async () => { await nodes.stopAll() })

  it('refuses an incompatible minor version and a taken URI on publish, accepts a compatible one', async () => {
    const narrower = { uri: 'acme/order@1.1.0', schema: { ...ORDER.schema, properties: { ...ORDER.schema.properties, qty: { type: 'integer', minimum: 5 } } } }
    await assert.rejects(a.semantic.publishSchema(narrower, { agent: 'acme' }), (err: any) => err.code === 'IncompatibleSchemaError' && err.details.path === '/qty')
    await assert.rejects(a.semantic.publishSchema({ ...ORDER, schema: { type: 'string' } }, { agent: 'acme' }), (err: any) => err.code === 'SchemaConflictError')
    await assert.rejects(b.semantic.publishSchema({ uri: 'acme/order@1.2.0', schema: ORDER.schema }, { agent: 'mallory' }), (err: any) => err.code === 'SchemaConflictError' && err.details.reason === 'owner')
    const wider = { uri: 'acme/order@1.1.0', schema: { ...ORDER.schema, required: ['item'] } }
    const r = await a.semantic.publishSchema(wider, { agent: 'acme' })
    assert.equal(r.uri, 'acme/order@1.1.0')
    assert.equal(r.network?.announced, true)
    const major = { uri: 'acme/order@2.0.0', schema: { type: 'object', required: ['sku'], properties: { sku: { type: 'string' } } } }
    assert.equal((await a.semantic.publishSchema(major, { agent: 'acme' })).fresh, true)
  })

  it('translates a received payload to the schema version the receiver wants', async () => {
    const alice = await a.agent('alice')
    const tr = await b.agent('translator')
    await a.waitForAgent(tr.id)
    const inbox = tr.messages()
    await alice.send(tr.id, { item: 'tea', qty: 2 }, { schema: 'acme/order@1.0.0', confirm: true })
    const m = await next(inbox, 'order v1')
    // acme/order@1.1.0 is a compatible upgrade: no translator needed.
    assert.deepEqual(await tr.translate(m, 'acme/order@1.1.0'), { value: { item: 'tea', qty: 2 }, schema: 'acme/order@1.1.0' })
    await assert.rejects(tr.translate(m, 'acme/order@2.0.0'), (err: any) => err.code === 'TranslationError')
    const off = tr.registerTranslator('acme/order@1.1.0', 'acme/order@2.0.0', (v: any) => ({ sku: `${v.item}-${v.qty ?? 1}` }))
    assert.deepEqual(await tr.translate(m, ['acme/order@2.0.0']), { value: { sku: 'tea-2' }, schema: 'acme/order@2.0.0' })
    off()
    const bad = tr.registerTranslator('acme/order@1.1.0', 'acme/order@2.0.0', () => ({ nope: true }))
    await assert.rejects(tr.translate(m, 'acme/order@2.0.0'), (err: any) => err.code === 'TranslationError' && err.details.errors.length > 0)
    bad()
    inbox.unsubscribe()
  })

  it('the SDK refuses invalid payloads before signing, with the validation errors', async () => {
    const alice = await a.agent('alice')
    const bob = await b.agent('bob')
    const published = a.status().counters.published
    await assert.rejects(alice.send(bob.id, { item: 'tea', qty: 0 }, { schema: 'acme/order@1.0.0' }),
      (err: any) => err.code === 'SchemaValidationError' && err.details.errors.some((e: any) => e.path === '/qty' && e.keyword === 'minimum'))
    await assert.rejects(alice.publish('shop/orders', { item: 'tea' }, { schema: 'acme/order@1.0.0' }), (err: any) => err.code === 'SchemaValidationError')
    await assert.rejects(alice.send(bob.id, { x: 1 }, { schema: 'acme/nothing@1.0.0' }), (err: any) => err.code === 'SchemaNotFoundError')
    let deep: unknown = 1
    for (let i = 0; i < 100; i++) deep = [deep]
    await assert.rejects(alice.send(bob.id, deep, { schema: 'acme/order@1.0.0' }), (err: any) => err.code === 'PayloadLimitError' && err.details.errors[0].keyword === 'maxDepth')
    assert.equal(a.status().counters.published, published, 'nothing left the node')
  })

  it('nodes reject invalid, unknown and bomb payloads at ingress (message frames and the topic path), counted by reason', async () => {
    const bob = await b.agent('bob')
    const inbox = bob.messages()
    const topic = bob.subscribe('shop/#')
    const bad = await rogue(a)
    await b.waitForAgent(bad.id).catch(() => {})
    await a.waitForAgent(bob.id)
    const before = { ...b.rejections().counts }
    await assert.rejects(bad.send(bob.id, { item: 'tea', qty: 'lots' }, { schema: 'acme/order@1.0.0', confirm: true }),
      (err: any) => err.code === 'DeliveryFailedError' && /schema-invalid/.test(err.message) && err.details.code === 'SchemaValidationError')
    await assert.rejects(bad.send(bob.id, { item: 'tea' }, { schema: 'acme/unknown@1.0.0', confirm: true }),
      (err: any) => err.code === 'DeliveryFailedError' && err.details.code === 'SchemaNotFoundError')
    const bomb = '['.repeat(5000) + ']'.repeat(5000)
    await assert.rejects(bad.send(bob.id, new TextEncoder().encode(bomb), { schema: 'acme/order@1.0.0', contentType: 'application/json', confirm: true }),
      (err: any) => err.code === 'DeliveryFailedError' && err.details.code === 'PayloadLimitError')
    // On the topic path: an invalid topic message is dropped, a valid one after it arrives.
    await until(() => a.topicInterest('shop/orders').includes(b.peerId), "b's interest in shop/# reaching a")
    await bad.publish('shop/orders', { item: 'tea', qty: -1 }, { schema: 'acme/order@1.0.0' })
    await bad.publish('shop/orders', { item: 'tea', qty: 2 }, { schema: 'acme/order@1.0.0' })
    const got = await next(topic, 'the valid topic message')
    assert.deepEqual(got.data(), { item: 'tea', qty: 2 })
    await bad.send(bob.id, { item: 'tea', qty: 3 }, { schema: 'acme/order@1.0.0', confirm: true })
    assert.deepEqual((await next(inbox, 'the valid direct message')).data(), { item: 'tea', qty: 3 })
    const after = b.rejections()
    assert.equal(after.counts['schema-invalid'] - before['schema-invalid'], 2)
    assert.equal(after.counts['schema-unknown'] - before['schema-unknown'], 1)
    assert.equal(after.counts['payload-bomb'] - before['payload-bomb'], 1)
    assert.ok(after.recent.some(r => r.reason === 'schema-invalid' && /\/qty/.test(r.detail)))
    inbox.unsubscribe()
    topic.unsubscribe()
  })

  it('carries every performative end to end', async () => {
    const alice = await a.agent('alice')
    const carol = await b.agent('carol')
    await a.waitForAgent(carol.id)
    const inbox = carol.messages()
    const it = inbox[Symbol.asyncIterator]()
    for (const p of PERFORMATIVES) {
      await alice.send(carol.id, { act: p }, { type: p, confirm: true })
      const m = (await within(it.next(), 10_000, p)).value as Message
      assert.equal(m.type, p)
      assert.deepEqual(m.data(), { act: p })
    }
    inbox.unsubscribe()
  })

  it('tracks a protocol on both ends: legal steps pass, illegal ones are refused or answered with not-understood, timeouts fire', async () => {
    const customer = await a.agent('customer', { capabilities: ['proto:proto/acme/ordering@1.0.0', 'schema:acme/order@1.0.0'] })
    const shop = await b.agent('shop', { capabilities: ['proto:proto/acme/ordering@1.0.0', 'schema:acme/order@1.0.0'] })
    await a.waitForAgent(shop.id)
    await b.waitForAgent(customer.id)
    const shopInbox = shop.messages()
    const custInbox = customer.messages()
    const shopEvents = shop.conversationEvents()
    const custEvents = customer.conversationEvents()

    // Negotiated version, then a legal run.
    const conv = await customer.openConversation({ protocol: 'proto/acme/ordering', with: [shop.id] })
    assert.equal(conv.protocol, 'proto/acme/ordering@1.0.0')
    await assert.rejects(customer.send(shop.id, { item: 'tea', qty: 1 }, { type: 'inform', protocol: conv.protocol, conversation: conv.conversation }),
      (err: any) => err.code === 'ProtocolViolationError' && err.details.expected.some((e: any) => e.performative === 'request'))
    await customer.send(shop.id, { item: 'tea', qty: 1 }, { type: 'request', schema: 'acme/order@1.0.0', protocol: conv.protocol, conversation: conv.conversation })
    const order = await next(shopInbox, 'order')
    assert.equal(shop.conversation(conv.conversation, customer.id)?.state.state, 'ordered')
    await shop.reply(order, { ok: true }, { type: 'inform' })
    const receipt = await next(custInbox, 'receipt')
    assert.equal(receipt.correlation, order.id)
    assert.equal(customer.conversation(conv.conversation, shop.id)?.state.state, 'done')
    await assert.rejects(shop.reply(order, { again: true }, { type: 'inform' }), (err: any) => err.code === 'ProtocolViolationError' && err.details.reason === 'conversation-ended')

    // An illegal step from a peer that does not check: refused, answered with not-understood naming the expected steps.
    const bad = await rogue(a)
    await b.waitForAgent(bad.id).catch(() => {})
    const badInbox = bad.messages()
    await bad.send(shop.id, { surprise: true }, { type: 'inform', protocol: 'proto/acme/ordering@1.0.0', conversation: 'c-bad' })
    const nu = await next(badInbox, 'not-understood')
    assert.equal(nu.type, 'not-understood')
    assert.equal(nu.schema, 'fedmesh/not-understood@1.0.0')
    const body = nu.data<any>()
    assert.equal(body.reason, 'illegal-transition')
    assert.deepEqual(body.expected.map((e: any) => e.performative), ['request'])
    const refused = (await within(shopEvents[Symbol.asyncIterator]().next(), 20_000, 'refused event')).value as ConversationEvent
    assert.equal(refused.kind, 'refused')

    // A timeout: the shop never answers.
    const conv2 = await customer.openConversation({ protocol: 'proto/acme/ordering@1.0.0', with: [shop.id] })
    await customer.send(shop.id, { item: 'cake', qty: 2 }, { type: 'request', schema: 'acme/order@1.0.0', protocol: conv2.protocol, conversation: conv2.conversation })
    const ev = (await within(custEvents[Symbol.asyncIterator]().next(), 10_000, 'timeout event')).value as ConversationEvent
    assert.equal(ev.kind, 'timeout')
    assert.equal(ev.kind === 'timeout' ? ev.state.state : '', 'expired')
    assert.equal(customer.conversation(conv2.conversation, shop.id)?.state.status, 'done')

    // No common version: a clear error.
    const other = await b.agent('other', { capabilities: ['proto:proto/acme/ordering@2.0.0'] })
    await a.waitForAgent(other.id)
    await assert.rejects(customer.openConversation({ protocol: 'proto/acme/ordering', with: [other.id] }), (err: any) => err.code === 'NoCommonVersionError')

    // The conversation exports for audit.
    const file = customer.exportConversation(conv.conversation, shop.id)
    assert.ok(file.length > 100)
    for (const s of [shopInbox, custInbox, badInbox]) s.unsubscribe()
    shopEvents.close()
    custEvents.close()
  })

  it('a node that joins later fetches a schema on demand with the publisher down, and keeps it across restarts', async () => {
    // Published by a node alone: no one to announce to then, so the publisher announces them
    // once b subscribes to the control topic (b also could fetch them on demand).
    const key = generateAgentKey()
    const doc = encodeDocument(signSchemaDocument({ uri: 'late/thing@1.0.0', schema: { type: 'object', required: ['n'], properties: { n: { type: 'integer' } } } }, key))
    const other = encodeDocument(signSchemaDocument({ uri: 'late/other@1.0.0', schema: { type: 'string' } }, key))
    const pub = await nodes.start()
    for (const d of [doc, other]) assert.equal((await pub.semantic.publishDocument(d)).network?.announced, false, 'no one to announce to')
    await pub.dial(b.multiaddrs()[0])
    await until(() => b.semantics.registry.has('late/thing@1.0.0') && b.semantics.registry.has('late/other@1.0.0'), 'the unheard announcements reach b once it subscribes')
    await pub.stop()
    // Gossipsub hands a newcomer the messages still in its peers' recent-message window
    // (IHAVE/IWANT, a few heartbeats of 1 s): past it, c has them only if it fetches them.
    await new Promise(resolve => setTimeout(resolve, 6_000))
    const dir = tempDir()
    try {
      let c = await createNode({ dir, listen: ['/ip4/127.0.0.1/tcp/0'], api: false, bootstrap: [b.multiaddrs()[0]] })
      try {
        await until(async () => await speaksRegistry(c, b), 'c connected')
        assert.equal(c.semantics.registry.has('late/thing@1.0.0'), false)
        const d = await c.semantics.registry.resolve('late/thing@1.0.0')
        assert.equal(d.parsed.uri, 'late/thing@1.0.0')
        // Validates with it at once now.
        assert.deepEqual(await c.semantic.validation.checkValue('late/thing@1.0.0', { n: 'x' }).then(e => e.map(x => x.path)), ['/n'])
      } finally { await c.stop() }
      // The data dir's config.json kept the bootstrap list: clear it, or the node is connected
      // to b again as soon as the bootstrap dial completes.
      c = await createNode({ dir, listen: ['/ip4/127.0.0.1/tcp/0'], api: false, bootstrap: [] })
      try {
        assert.equal(c.semantics.registry.has('late/thing@1.0.0'), true, 'reloaded from the data dir with no peers')
        // With no one to ask, a lookup fails, but is not remembered as a miss: once connected it succeeds.
        assert.deepEqual(c.net.getPeers(), [])
        await assert.rejects(c.semantics.registry.resolve('late/other@1.0.0'), (err: any) => err.code === 'SchemaNotFoundError')
        await c.dial(b.multiaddrs()[0])
        await until(async () => await speaksRegistry(c, b), 'c connected again')
        assert.equal((await c.semantics.registry.resolve('late/other@1.0.0')).parsed.uri, 'late/other@1.0.0')
      } finally { await c.stop() }
    } finally { rmSync(dir, { recursive: true, force: true }) }
  })
})
