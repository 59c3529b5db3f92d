/**
 * Durable delivery across in-process nodes on loopback: store-and-forward to the home node,
 * replicas while it is down, handover and ordered exactly-once delivery when it is back,
 * signed receipts, quotas, unknown recipients, expiry, and the message log.
 */
import { test, describe, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import * as dagCbor from '@ipld/dag-cbor'
import { createNode, type MeshNodeImpl } from '../../src/node/mesh-node.ts'
import type { Agent, CreateNodeOptions, Message, Subscription } from '../../src/node/types.ts'
import { decodeReceiptList, encodeReceiptList, parseReceipt, PENDING_RECEIPTS_FILE, receiptPayload, verifyReceipt } from '../../src/delivery/receipts.ts'
import { chooseReplicas } from '../../src/delivery/replicas.ts'
import { Nodes, take, tempDir, until, within } from '../helpers/api.ts'
import { freePort } from '../helpers/cli.ts'
import { buildApi } from '../../src/api/server.ts'
import { loadAgentKey } from '../../src/node/datadir.ts'
import { connect } from '../../src/sdk/remote.ts'
import { generateAgentKey } from '../../src/core/keys.ts'
import { signEnvelope, type Envelope } from '../../src/core/envelope.ts'
import { DurableService, RECEIPT_RETRY, STORAGE_NODES_FILE } from '../../src/delivery/durable.ts'
import { Router } from '../../src/routing/router.ts'
import type { NodeRecord } from '../../src/net/records.ts'

const TOKEN = 'durable-test-token-0123456789'

/** Nodes of a describe block, and nodes it starts itself in a data dir of its own to restart them: all stopped and removed after it. */
function nodesWithRestarts (): { nodes: Nodes, restarted: Array<{ node: MeshNodeImpl, dir: string }> } {
  const nodes = new Nodes()
  const restarted: Array<{ node: MeshNodeImpl, dir: string }> = []
  after(async () => {
    // Every node first, then the dirs: a dir is listed once per node started on it, and the
    // restarted node still running on it would write into it while it is removed (ENOTEMPTY).
    for (const r of restarted) await r.node.stop().catch(() => {})
    for (const dir of new Set(restarted.map(r => r.dir))) rmSync(dir, { recursive: true, force: true })
    await nodes.stopAll()
  })
  return { nodes, restarted }
}

/**
 * Nodes (by peer id) blind to storage nodes' records, as a node is just after start before it
 * has heard them: their routers list no storage node. Each describe block using it clears it after.
 */
const hidden = new Set<string>()
{
  type This = { c: { net: { peerId: { toString: () => string } } } }
  const proto = Router.prototype as unknown as { nodeRecords: (this: This) => NodeRecord[] }
  const { nodeRecords } = proto
  proto.nodeRecords = function (this: This) {
    const all = nodeRecords.call(this)
    return hidden.size > 0 && hidden.has(this.c.net.peerId.toString()) ? all.filter(r => !r.roles.includes('storage')) : all
  }
  after(() => { proto.nodeRecords = nodeRecords })
}

/** Holds back a node's own once-a-second hand-over of replica copies until `release` (a pull is still served). */
function holdHandOver (n: MeshNodeImpl): { release: () => void } {
  const durable = n.durable as unknown as { handOverAll: () => Promise<void> }
  const handOverAll = durable.handOverAll.bind(n.durable)
  let held = true
  durable.handOverAll = async () => { if (!held) await handOverAll() }
  return { release: () => { held = false } }
}

/**
 * Waits until the sender's node `a` found the recipient and both it and the home know two
 * storage nodes (the home replicates only to the storage nodes it knows of when a message
 * comes in).
 */
async function storageKnown (a: MeshNodeImpl, home: MeshNodeImpl, recipient: string): Promise<void> {
  await a.waitForAgent(recipient)
  await until(() => a.nodeRecords().filter(r => r.roles.includes('storage')).length >= 2, 'storage node records at the sender')
  await until(() => home.nodeRecords().filter(r => r.roles.includes('storage')).length >= 2, 'storage node records at the home')
}

/**
 * Two storage nodes (s1 given), a sender's node `a` with agent alice, and a home node in a
 * data dir of its own (to restart it with `homeOpts`) with agent `name`, found by alice; the
 * sender knows both storage nodes.
 */
async function storageSetup (nodes: Nodes, restarted: Array<{ node: MeshNodeImpl, dir: string }>, s1: MeshNodeImpl, name: string) {
  const boot = [s1.multiaddrs()[0]]
  const s2 = await nodes.start({ roles: ['full', 'storage'], bootstrap: boot })
  const a = await nodes.start({ bootstrap: boot })
  const homeDir = tempDir()
  const port = await freePort()
  const homeOpts: CreateNodeOptions = { dir: homeDir, listen: [`/ip4/127.0.0.1/tcp/${port}`], api: false, bootstrap: boot }
  const home = await createNode(homeOpts)
  restarted.push({ node: home, dir: homeDir })
  const agent = await home.agent(name)
  const alice = await a.agent('alice')
  await storageKnown(a, home, agent.id)
  return { s2, a, home, homeOpts, homeDir, agent, alice }
}

describe('replica choice', () => {
  test('k storage nodes by XOR distance, deterministic, home excluded', () => {
    const nodes = Array.from({ length: 6 }, (_, i) => ({ peer: `peer-${i}`, roles: i === 5 ? ['full'] : ['storage'] }))
    const a = chooseReplicas('did:key:zAgent', nodes, 2)
    assert.equal(a.length, 2)
    assert.deepEqual(chooseReplicas('did:key:zAgent', [...nodes].reverse(), 2), a)
    assert.ok(!a.includes('peer-5'))
    const without = chooseReplicas('did:key:zAgent', nodes, 2, new Set([a[0]]))
    assert.ok(!without.includes(a[0]))
    assert.equal(without[0], a[1])
    assert.deepEqual(chooseReplicas('did:key:zAgent', nodes, 0), [])
    assert.equal(chooseReplicas('did:key:zAgent', nodes, 10).length, 5)
  })
})

describe('durable delivery', () => {
  const nodes = new Nodes()
  after(async () => { await nodes.stopAll() })

  test('online: stored before the ack, delivered once in order, signed receipt back, log on both sides', async () => {
    const b = await nodes.start()
    const a = await nodes.start({ bootstrap: [b.multiaddrs()[0]] })
    const bob = await b.agent('bob')
    const alice = await a.agent('alice')
    await a.waitForAgent(bob.id)
    const inbox = bob.messages()
    const receipts = alice.receipts()
    const sent = await Promise.all(Array.from({ length: 20 }, async (_, i) => await alice.send(bob.id, { i }, { durable: true, conversation: 'c-durable' })))
    for (const r of sent) assert.deepEqual(r.durable, { status: 'stored', home: b.peerId, replicas: 0 })
    const got = await take(inbox, 20)
    assert.deepEqual(got.map(m => (m.data() as { i: number }).i), Array.from({ length: 20 }, (_, i) => i))
    // Receipts: signed by bob, verifiable from their bytes alone, covering every id.
    const covered = new Set<string>()
    const rit = receipts[Symbol.asyncIterator]()
    while (covered.size < 20) {
      const r = await within(rit.next(), 10_000, 'receipt')
      const rec = verifyReceipt(r.value.envelope.bytes, { by: bob.id })
      assert.equal(parseReceipt(r.value.envelope).to, alice.id)
      for (const id of rec.ids) covered.add(id)
    }
    assert.deepEqual([...covered].sort(), sent.map(s => s.id).sort())
    // A retransmission of an acknowledged message is recognised, not delivered again.
    await until(async () => (await b.store.stats(bob.id)).inbox.count === 0, 'inbox drained')
    await until(async () => (await a.log({ id: sent[0].id, event: 'sent' })).records[0]?.status === 'acked', 'sender log acked')
    const st = b.status().store
    assert.equal(st?.kind, 'sqlite')
    assert.equal(st?.durable.stored, 20)
    assert.equal(st?.durable.acked, 20)
    const bLog = await b.log({ agent: bob.id, event: 'stored' })

    assert.equal(bLog.records.length, 20)
    const replay = await b.conversation('c-durable')
    assert.deepEqual(replay.map(r => r.id), sent.map(s => s.id))
    assert.ok(replay.every(r => r.bytes != null))

    // The same over HTTP: filters, cursors, replay with payloads, typed refusals.
    const app = await buildApi(b, { token: TOKEN })
    try {
      const get = async (url: string) => await app.inject({ method: 'GET', url, headers: { authorization: `Bearer ${TOKEN}` } })
      const page1 = await get(`/v1/log?agent=${encodeURIComponent(bob.id)}&event=stored&limit=15`)
      assert.equal(page1.statusCode, 200)
      const p1 = page1.json() as { records: Array<{ id: string, status: string }>, cursor: string, more: boolean }
      assert.equal(p1.records.length, 15)
      assert.equal(p1.more, true)
      const p2 = (await get(`/v1/log?agent=${encodeURIComponent(bob.id)}&event=stored&limit=15&cursor=${encodeURIComponent(p1.cursor)}`)).json() as typeof p1
      assert.deepEqual([...p1.records, ...p2.records].map(r => r.id), sent.map(s => s.id))
      const conv = (await get('/v1/log/conversations/c-durable')).json() as { messages: Array<{ id: string, message: { payload: { i: number } } }> }
      assert.deepEqual(conv.messages.map(m => m.message.payload.i), Array.from({ length: 20 }, (_, i) => i))
      for (const [q, code] of [['status=lost', 'InvalidQueryError'], ['since=5&until=1', 'InvalidQueryError'], ['topic=a%2F%23%2Fb', 'InvalidQueryError'], ['cursor=bogus', 'InvalidQueryError'], ['limit=abc', 'InvalidArgumentError'], ['colour=red', 'InvalidArgumentError']] as const) {
        const r = await get(`/v1/log?${q}`)
        assert.equal(r.statusCode, 400, q)
        assert.equal((r.json() as { error: { code: string } }).error.code, code, q)
      }
    } finally {
      await app.close()
    }
  })

  test('bad input: unknown recipient, quota exceeded (typed, nothing written), non-direct durable', async () => {
    const b = await nodes.start({ store: { quota: { senderCount: 3 } } })
    const a = await nodes.start({ bootstrap: [b.multiaddrs()[0]] })
    const carol = await b.agent('carol')
    const alice = await a.agent('alice2')
    await a.waitForAgent(carol.id)
    for (let i = 0; i < 3; i++) await alice.send(carol.id, { i }, { durable: true })
    await assert.rejects(alice.send(carol.id, { i: 3 }, { durable: true }), (err: Error & { code?: string, details?: Record<string, unknown> }) => {
      assert.equal(err.code, 'QuotaExceededError')
      assert.equal(err.details?.quota, 'sender-count')
      return true
    })
    assert.equal((await b.store.stats(carol.id)).inbox.count, 3)
    const rejected = await a.log({ event: 'sent', status: 'failed' })
    assert.equal(rejected.records.length, 1)
    const refused = await b.log({ event: 'rejected' })
    assert.match(refused.records[0]?.reason ?? '', /QuotaExceededError/)
    // Too large for the home node (its limit is lower than the sender's): refused there, typed.
    const small = await nodes.start({ maxMessageBytes: 4096, bootstrap: [b.multiaddrs()[0]] })
    const frank = await small.agent('frank')
    await a.waitForAgent(frank.id)
    await assert.rejects(alice.send(frank.id, new Uint8Array(8192), { durable: true }), { code: 'MessageTooLargeError' })
    assert.equal((await small.store.stats(frank.id)).inbox.count, 0)
    // Past its TTL when it reaches the store (within the clock-skew tolerance of ingress): refused, typed.
    const key = await loadAgentKey(a.dir, 'alice2', { create: false })
    assert.ok(key != null)
    const old = signEnvelope({
      v: 1, net: a.network, mode: 'direct', type: 'inform', from: key.id, to: [carol.id], ts: Date.now() - 5000, ttl: 1, hops: 8, prio: 1,
      dlv: { durable: true }, ct: 'application/json', body: new TextEncoder().encode('{}')
    }, key)
    await assert.rejects(a.transport.submit(old), { code: 'MessageExpiredError' })
    assert.equal((await b.store.stats(carol.id)).inbox.count, 3)
    const stranger = 'did:key:z6MkneMkZqwqRiU5mJzSG3kDwzt9P8C59N4NGTfBLfSGE7c7'
    await assert.rejects(alice.send(stranger, {}, { durable: true }), { code: 'AgentNotFoundError' })
    await assert.rejects(alice.publish('a/b', {}, { durable: true }), { code: 'InvalidArgumentError' })
    await assert.rejects(alice.request(carol.id, {}, { durable: true }), { code: 'InvalidArgumentError' })
  })

  test('log retention by age and by size, from the node config', async () => {
    const byAge = await nodes.start({ store: { logMaxAgeMs: 1 } })
    const bySize = await nodes.start({ store: { logMaxBytes: 256 * 3 } })
    for (const n of [byAge, bySize]) {
      const x = await n.agent('x')
      for (let i = 0; i < 10; i++) await x.publish('news/a', { i })
      assert.equal((await n.log({ event: 'sent' })).records.length, 10)
    }
    await new Promise(resolve => setTimeout(resolve, 5))
    await byAge.recorder.retain()
    assert.equal((await byAge.log({})).records.length, 0)
    await bySize.recorder.retain()
    const left = (await bySize.log({})).records
    assert.ok(left.length <= 3 && left.length > 0, `${left.length} records left`)
    assert.deepEqual(left.map(r => r.seq), [...left.map(r => r.seq)].sort((a, b) => a - b))
    assert.equal(left[left.length - 1].seq, 10, 'the newest are kept')
  })

  test('expired messages leave the inbox and the log says so', async () => {
    const b = await nodes.start()
    const a = await nodes.start({ bootstrap: [b.multiaddrs()[0]] })
    const dave = await b.agent('dave')
    const alice = await a.agent('alice3')
    await a.waitForAgent(dave.id)
    const r = await alice.send(dave.id, { late: true }, { durable: true, ttl: 1 })
    assert.equal(r.durable?.status, 'stored')
    await until(async () => (await b.log({ id: r.id, event: 'stored' })).records[0]?.status === 'expired', 'expiry recorded', 15_000)
    assert.equal((await b.store.stats(dave.id)).inbox.count, 0)
    // The sender's node was told: its log says the message expired undelivered.
    await until(async () => (await a.log({ id: r.id, event: 'sent' })).records[0]?.status === 'expired', 'sender told of the expiry', 15_000)
  })
})

describe('home node down: replicas hold, hand over, and the agent gets everything in order once', () => {
  const { nodes, restarted } = nodesWithRestarts()

  let s1: MeshNodeImpl
  before(async () => { s1 = await nodes.start({ roles: ['full', 'storage'] }) })

  test('send while the home is down, restart it, receive 1..N exactly once', async () => {
    const setup = await storageSetup(nodes, restarted, s1, 'erin')
    const { s2, homeOpts, homeDir, agent: erin, alice } = setup
    let home = setup.home
    // Two before the home goes down, delivered at once.
    const inbox1 = erin.messages()
    for (let i = 1; i <= 2; i++) assert.equal((await alice.send(erin.id, { i }, { durable: true })).durable?.replicas, 2)
    assert.deepEqual((await take(inbox1, 2)).map(m => (m.data() as { i: number }).i), [1, 2])
    const held = async (n: MeshNodeImpl): Promise<number> => (await n.store.stats(erin.id)).inbox.count
    // The home replicated both to the storage nodes, and told them of erin's acknowledgement.
    await until(async () => await held(s1) === 0 && await held(s2) === 0 && (await s1.log({ agent: erin.id, event: 'stored' })).records.length === 2, 'replicas acknowledged')
    await home.stop()
    const whileDown = []
    for (let i = 3; i <= 12; i++) whileDown.push(await alice.send(erin.id, { i }, { durable: true }))
    for (const r of whileDown) {
      assert.equal(r.durable?.home, undefined)
      assert.equal(r.durable?.replicas, 2)
    }
    assert.equal(await held(s1), 10)
    assert.equal(await held(s2), 10)
    home = await createNode(homeOpts)
    restarted.push({ node: home, dir: homeDir })
    const erin2 = await home.agent('erin')
    const inbox2 = erin2.messages()
    const got = await take(inbox2, 10, 30_000)
    assert.deepEqual(got.map(m => (m.data() as { i: number }).i), Array.from({ length: 10 }, (_, i) => i + 3))
    // The replicas learn of the acknowledgement and drop their copies: from the home node's
    // notice (retried for 7 s), or at the latest from their own hand-over a minute after the last.
    await until(async () => await held(s1) === 0 && await held(s2) === 0, 'replica copies acknowledged', 75_000)
    // Nothing more arrives: no duplicate from a replica's late handover.
    const extra = await Promise.race([take(inbox2, 1, 3000).then(m => m.length, () => 0), new Promise<number>(resolve => setTimeout(() => resolve(0), 3500))])
    assert.equal(extra, 0)
  })
})

describe('handover order: copies the home node checks out of order are still stored and delivered in the sender\'s order', () => {
  const { nodes, restarted } = nodesWithRestarts()

  test('the processed look-ups of the first five answer last; the agent still gets 1..10 in order', async () => {
    const s1 = await nodes.start({ roles: ['full', 'storage'] })
    const setup = await storageSetup(nodes, restarted, s1, 'iris')
    const { homeOpts, homeDir, agent: iris, alice } = setup
    await setup.home.stop()
    const sent = []
    for (let i = 1; i <= 10; i++) sent.push(await alice.send(iris.id, { i }, { durable: true }))
    assert.ok(sent.every(r => r.durable?.replicas === 2 && r.durable.home == null))
    const home = await createNode(homeOpts)
    restarted.push({ node: home, dir: homeDir })
    // At the restarted home, the look-ups for the first five copies wait (as a loaded store's
    // may): until the agent has its first message, or at most 8 s (on the old code the later
    // five were stored and delivered meanwhile: the pull gives up after 3 s).
    const early = new Set(sent.slice(0, 5).map(r => r.id))
    const gate = Promise.withResolvers<undefined>()
    const store = home.store as { isProcessed: MeshNodeImpl['store']['isProcessed'] }
    const isProcessed = store.isProcessed.bind(home.store)
    store.isProcessed = async (agent, id, options) => {
      if (early.has(id)) await gate.promise
      return await isProcessed(agent, id, options)
    }
    const bound = setTimeout(() => { gate.resolve(undefined) }, 8_000)
    try {
      const inbox = (await home.agent('iris')).messages()
      const first = await take(inbox, 1, 30_000)
      gate.resolve(undefined)
      const rest = await take(inbox, 9, 30_000)
      assert.deepEqual([...first, ...rest].map(m => (m.data() as { i: number }).i), Array.from({ length: 10 }, (_, i) => i + 1))
    } finally {
      clearTimeout(bound)
      gate.resolve(undefined)
    }
  })
})

describe('an agent that connects to a storage node instead of its home gets the copies held there', () => {
  const nodes = new Nodes()
  after(async () => { await nodes.stopAll() })

  test('replica copies delivered by the replica, in order, once; the other replica learns of the receipt', async () => {
    const s1 = await nodes.start({ roles: ['full', 'storage'], api: '127.0.0.1:0' })
    const boot = [s1.multiaddrs()[0]]
    const s2 = await nodes.start({ roles: ['full', 'storage'], bootstrap: boot })
    const home = await nodes.start({ bootstrap: boot, api: '127.0.0.1:0' })
    const a = await nodes.start({ bootstrap: boot })
    const key = generateAgentKey()
    const atHome = await connect({ url: home.apiUrl as string, token: home.apiToken, key, name: 'gina' })
    const alice = await a.agent('alice')
    await a.waitForAgent(key.id)
    await until(() => a.nodeRecords().filter(r => r.roles.includes('storage')).length >= 2, 'storage node records at the sender')
    await until(() => s1.nodeRecords().filter(r => r.roles.includes('storage')).length >= 2, 'storage node records at s1')
    await atHome.close()
    await home.stop()
    const sent = []
    for (let i = 1; i <= 4; i++) sent.push(await alice.send(key.id, { i }, { durable: true }))
    assert.ok(sent.every(r => r.durable?.replicas === 2 && r.durable.home == null))
    const atS1 = await connect({ url: s1.apiUrl as string, token: s1.apiToken, key, name: 'gina' })
    try {
      const got = await take(atS1.messages(), 4)
      assert.deepEqual(got.map(m => (m.data() as { i: number }).i), [1, 2, 3, 4])
      const held = async (n: MeshNodeImpl): Promise<number> => (await n.store.stats(key.id)).inbox.count
      await until(async () => await held(s1) === 0 && await held(s2) === 0, 'both replicas acknowledged', 20_000)
    } finally {
      await atS1.close()
    }
  })
})

/**
 * A sender's node of its own (data dir, fixed port: it can be started again as the same node)
 * bootstrapped to `home`, with hana on the home node and alice on the sender's, each knowing
 * the other's record.
 */
async function receiptSetup (home: MeshNodeImpl, restarted: Array<{ node: MeshNodeImpl, dir: string }>) {
  const senderDir = tempDir()
  const senderOpts: CreateNodeOptions = { dir: senderDir, listen: [`/ip4/127.0.0.1/tcp/${await freePort()}`], api: false, bootstrap: [home.multiaddrs()[0]] }
  const a = await createNode(senderOpts)
  restarted.push({ node: a, dir: senderDir })
  const hana = await home.agent('hana')
  const alice = await a.agent('alice')
  await a.waitForAgent(hana.id)
  await home.waitForAgent(alice.id)
  return { a, senderDir, senderOpts, hana, alice }
}

describe('a receipt whose sender is unreachable', () => {
  const { nodes, restarted } = nodesWithRestarts()

  test('is kept by the home node and reaches the sender once its node is back', async () => {
    const home = await nodes.start()
    const setup = await receiptSetup(home, restarted)
    const { senderDir, senderOpts, hana } = setup
    let { a, alice } = setup
    // Stored while hana reads nothing; then the sender's node goes away.
    const sent: Array<{ id: string }> = []
    for (let i = 1; i <= 3; i++) sent.push(await alice.send(hana.id, { i }, { durable: true }))
    await a.stop()
    // hana takes them: the home acknowledges, and cannot forward her receipt yet.
    assert.deepEqual((await take(hana.messages(), 3)).map(m => (m.data() as { i: number }).i), [1, 2, 3])
    await until(async () => (await home.store.stats(hana.id)).inbox.count === 0, 'inbox acknowledged')
    await until(() => (home.status().store?.durable.receiptsPending ?? 0) > 0, 'receipt kept for the unreachable sender')
    assert.equal(home.status().store?.durable.receiptsDropped, 0)
    // The sender's node comes back (same identity, same address): the receipt follows.
    a = await createNode(senderOpts)
    restarted.push({ node: a, dir: senderDir })
    alice = await a.agent('alice')
    const receipts = alice.receipts()
    const covered = new Set<string>()
    const rit = receipts[Symbol.asyncIterator]()
    while (covered.size < 3) {
      const r = await within(rit.next(), 60_000, 'receipt after the sender came back')
      for (const id of verifyReceipt(r.value.envelope.bytes, { by: hana.id }).ids) covered.add(id)
    }
    assert.deepEqual([...covered].sort(), sent.map(s => s.id).sort())
    await until(async () => (await a.log({ id: sent[2].id, event: 'sent' })).records[0]?.status === 'acked', 'sender log acked', 30_000)
    await until(() => home.status().store?.durable.receiptsPending === 0, 'nothing left to forward')
    assert.ok((home.status().store?.durable.receiptsRetried ?? 0) > 0)
  })
})

describe('a replica that misses the acknowledgement notice', () => {
  const nodes = new Nodes()
  after(async () => { await nodes.stopAll() })

  test('is told again and drops its copies within seconds, not at its next hand-over a minute later', async () => {
    const s1 = await nodes.start({ roles: ['full', 'storage'] })
    const boot = [s1.multiaddrs()[0]]
    const home = await nodes.start({ bootstrap: boot })
    const a = await nodes.start({ bootstrap: boot })
    const ivy = await home.agent('ivy')
    const alice = await a.agent('alice')
    await a.waitForAgent(ivy.id)
    await until(() => a.nodeRecords().some(r => r.roles.includes('storage')), 'the storage node known at the sender')
    const held = async (): Promise<number> => (await s1.store.stats(ivy.id)).inbox.count
    for (let i = 1; i <= 2; i++) assert.equal((await alice.send(ivy.id, { i }, { durable: true })).durable?.replicas, 1)
    await until(async () => await held() === 2, 'replica copies at the storage node')
    // The replica has offered its copies to the (reachable) home node once: it offers them again only a minute later.
    await until(() => s1.status().store?.durable.handedOver === 2, 'the replica\'s first hand-over')
    // The home node's last request to the replica failed a moment ago: its first notice fails at once.
    const downUntil = (home.durable as unknown as { downUntil: Map<string, number> }).downUntil
    downUntil.set(s1.peerId, Date.now() + 1500)
    assert.deepEqual((await take(ivy.messages(), 2)).map(m => (m.data() as { i: number }).i), [1, 2])
    await until(async () => (await home.store.stats(ivy.id)).inbox.count === 0, 'acknowledged at the home node')
    await until(async () => await held() === 0, 'replica copies dropped after the notice was sent again', 15_000)
  })
})

describe('a replica whose hand-over is still being stored when the agent acknowledges', () => {
  const { nodes, restarted } = nodesWithRestarts()
  type Enqueue = (env: Envelope, peer: string | undefined, replicaOf?: string) => Promise<'stored' | 'duplicate'>
  type ReplicaSet = (recipient: string, exclude: Set<string>, includeSelf: boolean) => string[]
  const proto = DurableService.prototype as unknown as { enqueue: Enqueue, replicaSet: ReplicaSet }
  const { enqueue, replicaSet } = proto
  after(() => { proto.enqueue = enqueue; proto.replicaSet = replicaSet })

  test('is told of the acknowledgement: it drops its copies within the notice\'s retries, not at its hand-over a minute later', async () => {
    const s1 = await nodes.start({ roles: ['full', 'storage'] })
    const setup = await storageSetup(nodes, restarted, s1, 'jo')
    const { s2, homeOpts, homeDir, agent: jo, alice } = setup
    let home = setup.home
    const homeId = home.peerId
    await home.stop()
    for (let i = 1; i <= 3; i++) assert.equal((await alice.send(jo.id, { i }, { durable: true })).durable?.replicas, 2)
    const held = async (n: MeshNodeImpl): Promise<number> => (await n.store.stats(jo.id)).inbox.count
    // The restarted home stores s1's hand-over slowly (a starved store): s1's puts are received
    // (and found not yet processed) first, stored only once jo has acknowledged the copies s2
    // handed over, which are stored once s1's are received.
    let acked!: () => void
    const joAcked = new Promise<void>(resolve => { acked = resolve })
    let received!: () => void
    const s1Received = new Promise<void>(resolve => { received = resolve })
    // And it has not heard the storage nodes' records yet (as just after a restart on a loaded
    // machine): the replicas it tells are those that handed copies over.
    proto.replicaSet = function (this: { c: { peerId: string } }, recipient, exclude, includeSelf) {
      return this.c.peerId === homeId ? [] : replicaSet.call(this, recipient, exclude, includeSelf)
    }
    proto.enqueue = async function (this: { c: { peerId: string } }, env, peer, replicaOf) {
      if (this.c.peerId === homeId && replicaOf == null) {
        if (peer === s1.peerId) { received(); await joAcked }
        if (peer === s2.peerId) await s1Received
      }
      return await enqueue.call(this, env, peer, replicaOf)
    }
    home = await createNode(homeOpts)
    restarted.push({ node: home, dir: homeDir })
    const jo2 = await home.agent('jo')
    assert.deepEqual((await take(jo2.messages(), 3, 30_000)).map(m => (m.data() as { i: number }).i), [1, 2, 3])
    await until(async () => await held(s2) === 0 && (await home.store.stats(jo.id)).inbox.count === 0, 'acknowledged at the home and s2')
    acked()
    // The notice is retried for 7 s (1, 2, 4 s); s1 heard of it within that, not a minute later.
    await until(async () => await held(s1) === 0, 's1 told of the acknowledgement', 15_000)
  })
})

describe('a restarted home node that has not heard the storage nodes\' records again yet', () => {
  const { nodes, restarted } = nodesWithRestarts()
  after(() => { hidden.clear() })

  test('pulls from the storage nodes it remembers before delivering: a message sent to it after the restart comes after those the replicas hold', async () => {
    const s1 = await nodes.start({ roles: ['full', 'storage'] })
    const setup = await storageSetup(nodes, restarted, s1, 'kai')
    const { s2, a, homeOpts, homeDir, agent: kai, alice } = setup
    const homeId = setup.home.peerId
    // The home keeps the storage nodes it knows in its data dir (from its once-a-second maintenance).
    const file = join(homeDir, STORAGE_NODES_FILE)
    await until(async () => existsSync(file) && (dagCbor.decode(await readFile(file)) as unknown[]).length === 2, 'both storage nodes written to the home\'s data dir')
    // The replicas do not offer their copies by themselves: only a pull from the home brings them.
    const holds = [s1, s2].map(holdHandOver)
    await setup.home.stop()
    for (let i = 1; i <= 5; i++) {
      const r = await alice.send(kai.id, { i }, { durable: true })
      assert.equal(r.durable?.home, undefined)
      assert.equal(r.durable?.replicas, 2)
    }
    // Restarted, and blind to the storage nodes' records (as just after a restart on a loaded machine).
    hidden.add(homeId)
    const home = await createNode(homeOpts)
    restarted.push({ node: home, dir: homeDir })
    const inbox = (await home.agent('kai')).messages()
    // Message 6 goes to the home node itself (the sender's node tries it again at once).
    ;(a.durable as unknown as { downUntil: Map<string, number> }).downUntil.delete(homeId)
    const sixth = await alice.send(kai.id, { i: 6 }, { durable: true })
    assert.equal(sixth.durable?.home, homeId)
    // Replicated to the remembered storage nodes too.
    assert.equal(sixth.durable?.replicas, 2)
    for (const h of holds) h.release()
    const got = await take(inbox, 6, 30_000)
    assert.deepEqual(got.map(m => (m.data() as { i: number }).i), [1, 2, 3, 4, 5, 6])
    // The replicas' log records of the hand-over name the sender and the type.
    await until(async () => (await s1.log({ event: 'relayed', agent: kai.id })).records.length >= 5, 'relayed records at s1')
    for (const r of (await s1.log({ event: 'relayed', agent: kai.id })).records) {
      assert.equal(r.from, alice.id)
      assert.equal(r.type, 'inform')
    }
  })
})

describe('remembered storage nodes', () => {
  const { restarted } = nodesWithRestarts()

  test('a damaged or foreign file is ignored: the node starts and remembers nothing', async () => {
    for (const bytes of [new Uint8Array([0xff, 0x00, 0x13]), dagCbor.encode([new Uint8Array([1, 2, 3]), 'x']), dagCbor.encode({ a: 1 })]) {
      const dir = tempDir()
      writeFileSync(join(dir, STORAGE_NODES_FILE), bytes)
      const n = await createNode({ dir, listen: ['/ip4/127.0.0.1/tcp/0'], api: false, store: { replicaWaitMs: 0 } })
      restarted.push({ node: n, dir })
      assert.equal((n.durable as unknown as { remembered: Map<string, unknown> }).remembered.size, 0)
      await n.stop()
    }
  })
})

describe('a home node just started, before it has heard of the storage nodes', () => {
  const nodes = new Nodes()
  after(async () => { await nodes.stopAll() })
  after(() => { hidden.clear() })

  test('waits for their records (bounded by replicaWaitMs) before it answers the sender: k replicas, not fewer', async () => {
    const s1 = await nodes.start({ roles: ['full', 'storage'] })
    const boot = [s1.multiaddrs()[0]]
    await nodes.start({ roles: ['full', 'storage'], bootstrap: boot })
    const home = await nodes.start({ bootstrap: boot, store: { replicaWaitMs: 30_000 } })
    hidden.add(home.peerId)
    const a = await nodes.start({ bootstrap: boot })
    const lee = await home.agent('lee')
    const alice = await a.agent('alice')
    await a.waitForAgent(lee.id)
    // The home hears of the storage nodes one second after the send.
    setTimeout(() => { hidden.delete(home.peerId) }, 1000).unref()
    const r = await alice.send(lee.id, { i: 1 }, { durable: true })
    assert.equal(r.durable?.home, home.peerId)
    assert.equal(r.durable?.replicas, 2)
    assert.deepEqual((await take(lee.messages(), 1)).map(m => (m.data() as { i: number }).i), [1])
  })

  test('past replicaWaitMs it answers with the replicas it has', async () => {
    const s1 = await nodes.start({ roles: ['full', 'storage'] })
    const home = await nodes.start({ bootstrap: [s1.multiaddrs()[0]], store: { replicaWaitMs: 1000 } })
    hidden.add(home.peerId)
    const a = await nodes.start({ bootstrap: [s1.multiaddrs()[0]] })
    const max = await home.agent('max')
    const alice = await a.agent('alice')
    await a.waitForAgent(max.id)
    const r = await alice.send(max.id, { i: 1 }, { durable: true })
    assert.equal(r.durable?.home, home.peerId)
    assert.equal(r.durable?.replicas, 0)
    assert.deepEqual((await take(max.messages(), 1)).map(m => (m.data() as { i: number }).i), [1])
  })
})

describe('acknowledgement notices', () => {
  const nodes = new Nodes()
  after(async () => { await nodes.stopAll() })

  test('go to the nodes that hold copies, not to the sender\'s node', async () => {
    const s1 = await nodes.start({ roles: ['full', 'storage'] })
    const home = await nodes.start({ bootstrap: [s1.multiaddrs()[0]] })
    const a = await nodes.start({ bootstrap: [s1.multiaddrs()[0]] })
    const nia = await home.agent('nia')
    const alice = await a.agent('alice')
    await a.waitForAgent(nia.id)
    await until(() => home.nodeRecords().some(r => r.roles.includes('storage')), 'the storage node known at the home')
    const served: string[] = []
    for (const n of [a, s1]) {
      const durable = n.durable as unknown as { serve: (req: { op: string }, peer: string) => Promise<unknown> }
      const serve = durable.serve.bind(n.durable)
      durable.serve = async (req, peer) => { if (req.op === 'ack') served.push(n === a ? 'sender' : 'replica'); return await serve(req, peer) }
    }
    for (let i = 1; i <= 3; i++) assert.equal((await alice.send(nia.id, { i }, { durable: true })).durable?.replicas, 1)
    assert.deepEqual((await take(nia.messages(), 3)).map(m => (m.data() as { i: number }).i), [1, 2, 3])
    await until(async () => (await s1.store.stats(nia.id)).inbox.count === 0, 'the replica told')
    await until(async () => (await a.log({ event: 'sent', status: 'acked' })).records.length === 3, 'receipts at the sender')
    assert.ok(served.includes('replica'))
    assert.ok(!served.includes('sender'), `ack notices served: ${served.join(', ')}`)
  })
})

describe('a receipt kept for an unreachable sender, across a restart of the home node', () => {
  const { restarted } = nodesWithRestarts()

  test('is written to the home\'s data dir, read back at start, and reaches the sender once its node is back', async () => {
    const homeDir = tempDir()
    const homeOpts: CreateNodeOptions = { dir: homeDir, listen: [`/ip4/127.0.0.1/tcp/${await freePort()}`], api: false }
    let home = await createNode(homeOpts)
    restarted.push({ node: home, dir: homeDir })
    const setup = await receiptSetup(home, restarted)
    const { senderDir, senderOpts, hana, alice } = setup
    let { a } = setup
    const sent: string[] = []
    for (let i = 1; i <= 3; i++) sent.push((await alice.send(hana.id, { i }, { durable: true })).id)
    await a.stop()
    // hana takes them while the sender's node is down: the receipt waits at the home node.
    assert.deepEqual((await take(hana.messages(), 3)).map(m => (m.data() as { i: number }).i), [1, 2, 3])
    await until(async () => (await home.store.stats(hana.id)).inbox.count === 0, 'inbox acknowledged')
    await until(() => (home.status().store?.durable.receiptsPending ?? 0) > 0, 'receipt kept for the unreachable sender')
    const file = join(homeDir, PENDING_RECEIPTS_FILE)
    const filed = async (): Promise<string[]> => {
      if (!existsSync(file)) return []
      return decodeReceiptList(await readFile(file), { network: home.network, now: Date.now(), max: RECEIPT_RETRY.maxPending }).receipts.flatMap(r => r.ids)
    }
    await until(async () => (await filed()).length === 3, 'the receipt in the data dir')
    assert.deepEqual((await filed()).sort(), [...sent].sort())
    // The home node restarts before the sender's node is back: the receipt is read back.
    await home.stop()
    home = await createNode(homeOpts)
    restarted.push({ node: home, dir: homeDir })
    assert.ok((home.status().store?.durable.receiptsPending ?? 0) > 0, 'receipts read back at start')
    // The sender's node comes back: its log learns that all three were acknowledged.
    a = await createNode(senderOpts)
    restarted.push({ node: a, dir: senderDir })
    await a.agent('alice')
    const acked = async (): Promise<string[]> => (await a.log({ event: 'sent', status: 'acked' })).records.map(r => r.id).filter(id => sent.includes(id))
    await until(async () => (await acked()).length === 3, 'the sender\'s log: acked', 60_000)
    await until(() => home.status().store?.durable.receiptsPending === 0, 'nothing left to forward')
    // Forwarded: it leaves the file too (at the next maintenance tick).
    await until(async () => (await filed()).length === 0, 'the file emptied')
  })

  test('one whose first forward is under way when the home node stops was written before the messages were acknowledged, and reaches the sender after the restart', async () => {
    const homeDir = tempDir()
    const homeOpts: CreateNodeOptions = { dir: homeDir, listen: [`/ip4/127.0.0.1/tcp/${await freePort()}`], api: false }
    let home = await createNode(homeOpts)
    restarted.push({ node: home, dir: homeDir })
    const { a, hana, alice } = await receiptSetup(home, restarted)
    const sent: string[] = []
    for (let i = 1; i <= 3; i++) sent.push((await alice.send(hana.id, { i }, { durable: true })).id)
    // The home's forwards of receipts never finish (a link that takes the frame and then stalls).
    const c = (home.durable as unknown as { c: { route: (env: Envelope) => Promise<unknown> } }).c
    const route = c.route
    let forwards = 0
    c.route = async (env) => { if (env.type === 'receipt') { forwards++; return await new Promise(() => {}) } return await route(env) }
    assert.deepEqual((await take(hana.messages(), 3)).map(m => (m.data() as { i: number }).i), [1, 2, 3])
    await until(async () => (await home.store.stats(hana.id)).inbox.count === 0 && forwards > 0, 'acknowledged, the receipt on its way')
    // Already in the data dir (a crash now would keep it); on the old code only a failed forward wrote it.
    const file = join(homeDir, PENDING_RECEIPTS_FILE)
    assert.ok(existsSync(file), 'pending receipts written before the forward')
    assert.deepEqual(decodeReceiptList(await readFile(file), { network: home.network, now: Date.now(), max: RECEIPT_RETRY.maxPending }).receipts.flatMap(r => r.ids).sort(), [...sent].sort())
    // Not one waiting for its sender: its first forward has not failed.
    assert.equal(home.status().store?.durable.receiptsPending, 0)
    await home.stop()
    // Restarted, and reaching the sender's node (which stayed up) through it as bootstrap.
    home = await createNode({ ...homeOpts, bootstrap: [a.multiaddrs()[0]] })
    restarted.push({ node: home, dir: homeDir })
    const acked = async (): Promise<string[]> => (await a.log({ event: 'sent', status: 'acked' })).records.map(r => r.id).filter(id => sent.includes(id))
    await until(async () => (await acked()).length === 3, 'the sender\'s log: acked', 30_000)
  })

  test('at start, entries that do not verify, are expired or are damaged are left out; a damaged file is ignored', async () => {
    const dir = tempDir()
    const opts: CreateNodeOptions = { dir, listen: ['/ip4/127.0.0.1/tcp/0'], api: false, store: { replicaWaitMs: 0 } }
    let n = await createNode(opts)
    restarted.push({ node: n, dir })
    const network = n.network
    await n.stop()
    const by = generateAgentKey()
    const to = generateAgentKey()
    const id = 'bciqmcmvsz7vpklmppedjometftmiuy7ntcju4ebyefdmdvivipnzhpq'
    const receipt = (fields: Partial<Envelope> = {}): Envelope => signEnvelope({
      v: 1, net: network, mode: 'direct', type: 'receipt', from: by.id, to: [to.id], ts: Date.now(), ttl: 3600, hops: 8, prio: 1, corr: id,
      ct: 'application/json', body: new TextEncoder().encode(JSON.stringify(receiptPayload([id as Envelope['id']]))), ...fields
    } as never, by)
    const good = receipt()
    const altered = receipt({ ts: Date.now() - 1 }).bytes.slice()
    altered[altered.length - 1] ^= 1
    const entries = [
      good.bytes,
      good.bytes, // twice: kept once
      receipt({ ts: Date.now() - 120_000, ttl: 60 }).bytes, // expired
      receipt({ net: 'elsewhere' as never, ts: Date.now() - 2 }).bytes, // another network
      receipt({ type: 'inform', ts: Date.now() - 3 }).bytes, // not a receipt
      altered, // signature does not verify
      new Uint8Array([1, 2, 3])
    ]
    writeFileSync(join(dir, PENDING_RECEIPTS_FILE), encodeReceiptList(entries))
    n = await createNode(opts)
    restarted.push({ node: n, dir })
    assert.equal(n.status().store?.durable.receiptsPending, 1)
    assert.equal(n.status().store?.durable.receiptsDropped, 1)
    await n.stop()
    // Written back without the entries left out (the one receipt is still undelivered: its sender is nowhere).
    const back = decodeReceiptList(await readFile(join(dir, PENDING_RECEIPTS_FILE)), { network, now: Date.now(), max: 10 })
    assert.deepEqual(back.receipts.map(r => r.envelope.id), [good.id])
    assert.equal(back.expired + back.invalid, 0)
    for (const bytes of [new Uint8Array([0xff, 0x00, 0x13]), dagCbor.encode({ a: 1 }), new Uint8Array(0)]) {
      writeFileSync(join(dir, PENDING_RECEIPTS_FILE), bytes)
      n = await createNode(opts)
      restarted.push({ node: n, dir })
      assert.equal(n.status().store?.durable.receiptsPending, 0)
      await n.stop()
    }
  })
})

describe('receipts kept for unreachable senders', () => {
  const nodes = new Nodes()
  after(async () => { await nodes.stopAll() })

  test('are bounded by count and by bytes: the oldest are given up first', async () => {
    const n = await nodes.start({ store: { replicaWaitMs: 0 } })
    type Kept = { env: { id: string, bytes: Uint8Array }, to: string, attempts: number, nextAt: number }
    const d = n.durable as unknown as { keepReceipt: (p: Kept) => void, pendingReceipts: Map<string, Kept> }
    // Not due: the maintenance tick leaves them alone.
    const kept = (id: string, size: number): Kept => ({ env: { id, bytes: new Uint8Array(size) }, to: 'did:key:z', attempts: 1, nextAt: Number.POSITIVE_INFINITY })
    for (let i = 0; i <= RECEIPT_RETRY.maxPending; i++) d.keepReceipt(kept(`r${i}`, 10))
    assert.equal(d.pendingReceipts.size, RECEIPT_RETRY.maxPending)
    assert.ok(!d.pendingReceipts.has('r0') && d.pendingReceipts.has('r1'))
    assert.equal(n.status().store?.durable.receiptsDropped, 1)
    const big = Math.floor(RECEIPT_RETRY.maxBytes / 2) - 1000
    for (const id of ['b1', 'b2', 'b3']) d.keepReceipt(kept(id, big))
    // b3 did not fit beside the small ones and b1 and b2: all the small ones went, then b1.
    assert.deepEqual([...d.pendingReceipts.keys()], ['b2', 'b3'])
    assert.equal(n.status().store?.durable.receiptsDropped, 1 + RECEIPT_RETRY.maxPending + 1)
    d.pendingReceipts.clear()
  })

  test('are not written into the data dir after the node stopped (a receipt acknowledged as it stops, a write racing the dir\'s removal)', async () => {
    const dir = tempDir()
    try {
      const n = await createNode({ dir, listen: ['/ip4/127.0.0.1/tcp/0'], api: false })
      await n.stop()
      type Kept = { env: { id: string, bytes: Uint8Array }, to: string, attempts: number, nextAt: number }
      const d = n.durable as unknown as { keepReceipt: (p: Kept) => void, saveReceipts: () => Promise<void> }
      d.keepReceipt({ env: { id: 'late', bytes: new Uint8Array(10) }, to: 'did:key:z', attempts: 0, nextAt: Number.POSITIVE_INFINITY })
      await d.saveReceipts()
      // On the old code the file appeared.
      assert.deepEqual(readdirSync(dir).filter(f => f.startsWith(PENDING_RECEIPTS_FILE)), [])
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

/** Keeps node `n` from reaching `peer` on the durable protocol until `restore` (as a link cut between the two only). */
function cutDurable (n: MeshNodeImpl, peer: string): { restore: () => void } {
  const down = (n.durable as unknown as { downUntil: Map<string, number> }).downUntil
  const timer = setInterval(() => { down.set(peer, Date.now() + 60_000) }, 20)
  down.set(peer, Date.now() + 60_000)
  return { restore: () => { clearInterval(timer); down.delete(peer) } }
}

/**
 * A fall-back: `holders`' hand-overs held (not on their ticks), `a` cut off from `home`, and
 * durable sends of `{ i }` for i in 1..n, each acknowledged by the 2 replicas alone; then the
 * cut is lifted. Returns the holds.
 */
async function fallBack (a: MeshNodeImpl, home: MeshNodeImpl, holders: MeshNodeImpl[], alice: Agent, to: string, n: number): Promise<Array<{ release: () => void }>> {
  const holds = holders.map(holdHandOver)
  const cut = cutDurable(a, home.peerId)
  for (let i = 1; i <= n; i++) {
    const r = await alice.send(to, { i }, { durable: true })
    assert.equal(r.durable?.home, undefined)
    assert.equal(r.durable?.replicas, 2)
  }
  cut.restore()
  return holds
}

/** The recipient's first message, then (the held hand-overs released) the other `n - 1`: their `i`s in the order they came. */
async function afterRelease (inbox: Subscription, holds: Array<{ release: () => void }>, n: number): Promise<number[]> {
  const first = await take(inbox, 1, 30_000)
  for (const h of holds) h.release()
  const rest = await take(inbox, n - 1, 30_000)
  return [...first, ...rest].map(m => (m.data() as { i: number }).i)
}

describe('a sender that fell back to the replica set while the home node was up all along', () => {
  const { nodes, restarted } = nodesWithRestarts()

  test('its next message to the home directly is delivered after the ones the replicas hold', async () => {
    const s1 = await nodes.start({ roles: ['full', 'storage'] })
    const setup = await storageSetup(nodes, restarted, s1, 'olga')
    const { s2, a, home, agent: olga, alice } = setup
    const inbox = olga.messages()
    // The replicas hand over late (their next tick), after the sender has reached the home again.
    const holds = await fallBack(a, home, [s1, s2], alice, olga.id, 5)
    const sixth = await alice.send(olga.id, { i: 6 }, { durable: true })
    assert.equal(sixth.durable?.home, home.peerId)
    // On the old code 6 was delivered at once, before 1..5 (still on the replicas).
    assert.deepEqual(await afterRelease(inbox, holds, 6), [1, 2, 3, 4, 5, 6])
    // Every copy is dropped once olga acknowledged: the replicas' and the sender's node's own.
    const held = async (n: MeshNodeImpl): Promise<number> => (await n.store.stats(olga.id)).inbox.count
    await until(async () => await held(s1) === 0 && await held(s2) === 0 && await held(a) === 0, 'copies acknowledged', 30_000)
  })

  test('with every replica down by the time of the direct send', async () => {
    const s1 = await nodes.start({ roles: ['full', 'storage'] })
    const setup = await storageSetup(nodes, restarted, s1, 'quin')
    const { s2, a, home, agent: quin, alice } = setup
    const inbox = quin.messages()
    const cut = cutDurable(a, home.peerId)
    const holds = [s1, s2].map(holdHandOver)
    for (let i = 1; i <= 3; i++) assert.equal((await alice.send(quin.id, { i }, { durable: true })).durable?.replicas, 2)
    // Both replicas go away before they handed anything over.
    await Promise.all([s1.stop(), s2.stop()])
    for (const h of holds) h.release()
    cut.restore()
    assert.equal((await alice.send(quin.id, { i: 4 }, { durable: true })).durable?.home, home.peerId)
    // On the old code only 4 arrived: 1..3 were on the stopped replicas alone.
    assert.deepEqual((await take(inbox, 4, 30_000)).map(m => (m.data() as { i: number }).i), [1, 2, 3, 4])
  })

  test('a sender\'s node with the storage role, itself one of the replica set', async () => {
    const s1 = await nodes.start({ roles: ['full', 'storage'] })
    const boot = [s1.multiaddrs()[0]]
    // Two storage nodes in all besides the home: the set (k = 2) is s1 and the sender's node.
    const a = await nodes.start({ roles: ['full', 'storage'], bootstrap: boot })
    const home = await nodes.start({ bootstrap: boot })
    const rae = await home.agent('rae')
    const alice = await a.agent('alice')
    await storageKnown(a, home, rae.id)
    const inbox = rae.messages()
    const holds = await fallBack(a, home, [s1, a], alice, rae.id, 3)
    assert.equal((await a.store.stats(rae.id)).inbox.count, 3, 'the sender\'s node holds its copies as a member of the set')
    assert.equal((await alice.send(rae.id, { i: 4 }, { durable: true })).durable?.home, home.peerId)
    assert.deepEqual(await afterRelease(inbox, holds, 4), [1, 2, 3, 4])
  })

  test('across a restart of the sender\'s node between the fall-back and the direct send', async () => {
    const s1 = await nodes.start({ roles: ['full', 'storage'] })
    const boot = [s1.multiaddrs()[0]]
    const s2 = await nodes.start({ roles: ['full', 'storage'], bootstrap: boot })
    const home = await nodes.start({ bootstrap: boot })
    const aDir = tempDir()
    const aOpts: CreateNodeOptions = { dir: aDir, listen: [`/ip4/127.0.0.1/tcp/${await freePort()}`], api: false, bootstrap: boot }
    let a = await createNode(aOpts)
    restarted.push({ node: a, dir: aDir })
    const pia = await home.agent('pia')
    let alice = await a.agent('alice')
    await storageKnown(a, home, pia.id)
    const inbox = pia.messages()
    const holds = await fallBack(a, home, [s1, s2], alice, pia.id, 4)
    await a.stop()
    a = await createNode(aOpts)
    restarted.push({ node: a, dir: aDir })
    alice = await a.agent('alice')
    await a.waitForAgent(pia.id)
    const fifth = await alice.send(pia.id, { i: 5 }, { durable: true })
    assert.equal(fifth.durable?.home, home.peerId)
    assert.deepEqual(await afterRelease(inbox, holds, 5), [1, 2, 3, 4, 5])
  })
})
