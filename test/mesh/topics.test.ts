/**
 * Topic traffic over the dissemination layer between in-process nodes: batch-signed
 * buffered publishing delivers everything once and in order, and messages go only to
 * nodes whose interest matches — a node that unsubscribes stops receiving them.
 */
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { peerIdFromString } from '@libp2p/peer-id'
import { Nodes, within } from '../helpers/api.ts'
import type { MeshNodeImpl } from '../../src/node/mesh-node.ts'
import type { Agent, Message, Subscription } from '../../src/index.ts'

async function interest (node: MeshNodeImpl, topic: string, peer: string, present: boolean): Promise<void> {
  for (let i = 0; i < 400 && node.topicInterest(topic).includes(peer) !== present; i++) await new Promise(resolve => setTimeout(resolve, 25))
  assert.equal(node.topicInterest(topic).includes(peer), present, `interest of ${peer} in ${topic} ${present ? 'arrived' : 'withdrawn'}`)
}

function collect (sub: Subscription): Message[] {
  const got: Message[] = []
  void (async () => { for await (const m of sub) got.push(m) })()
  return got
}

async function until (pred: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 800 && !pred(); i++) await new Promise(resolve => setTimeout(resolve, 25))
  assert.ok(pred(), what)
}

describe('topics over the dissemination layer', { timeout: 120_000 }, () => {
  const nodes = new Nodes()
  let a: MeshNodeImpl
  let b: MeshNodeImpl
  let pub: Agent
  let subAgent: Agent

  before(async () => {
    a = await nodes.start()
    b = await nodes.start({ bootstrap: [a.multiaddrs()[0]] })
    pub = await a.agent('pub')
    subAgent = await b.agent('sub')
  })
  after(async () => { await nodes.stopAll() })

  it('buffered, batch-signed publishing delivers every message once, in order', async () => {
    const got = collect(subAgent.subscribe('load/#'))
    // A callback subscription beside it (one that throws: the delivery goes on regardless),
    // and one on the publisher's own node.
    const called: Message[] = []
    const cbSub = subAgent.subscribe('load/x', { onMessage: (m) => { called.push(m); if (called.length === 7) throw new Error('consumer bug') } })
    const local: Message[] = []
    const localSub = (await a.agent('local')).subscribe('load/x', { onMessage: (m) => { local.push(m) } })
    await interest(a, 'load/x', b.peerId, true)
    const n = 3000
    let waits = 0
    for (let i = 0; i < n; i++) {
      if (!pub.publishBuffered('load/x', { i })) { waits++; await pub.drain() }
      if (i % 500 === 499) await new Promise(resolve => setImmediate(resolve))
    }
    await within(pub.drain(), 10_000, 'drain')
    await until(() => got.length >= n && called.length >= n && local.length >= n, `all ${n} delivered (got ${got.length}, ${called.length} by callback, ${local.length} locally)`)
    assert.deepEqual(got.map(m => (m.data() as { i: number }).i), Array.from({ length: n }, (_, i) => i))
    assert.deepEqual(called.map(m => m.id), got.map(m => m.id), 'the callback subscription sees the same messages, in the same order')
    assert.deepEqual(local.map(m => m.id), got.map(m => m.id), 'a subscriber on the publishing node too')
    assert.equal(new Set(got.map(m => m.id)).size, n)
    assert.ok(got.every(m => m.envelope.bp !== undefined && m.envelope.bp.n > 1), 'batch-signed')
    assert.ok(waits >= 0)
    assert.equal(Object.values(b.rejections().counts).reduce((x, y) => x + y, 0), 0, 'nothing rejected')
    // Every publication is in both message logs: `sent` at the publisher's node, `received` (once per id) at the subscriber's.
    for (const [node, event] of [[a, 'sent'], [b, 'received']] as const) {
      const ids: string[] = []
      let cursor: string | undefined
      for (let p = 0; p < 10; p++) {
        const page = await node.log({ topic: 'load/x', event }, { limit: 1000, ...(cursor != null ? { cursor } : {}) })
        ids.push(...page.records.map(r => r.id))
        cursor = page.cursor
        if (!page.more) break
      }
      assert.deepEqual(ids, got.map(m => m.id), `${event} records`)
    }
    cbSub.unsubscribe()
    localSub.unsubscribe()
    const iterated: Message[] = []
    for await (const m of cbSub) iterated.push(m)
    assert.equal(iterated.length, 0, 'a callback subscription queues nothing for iteration')
    // The promise-returning publish goes through the same batches.
    const r = await Promise.all([0, 1, 2].map(async i => await pub.publish('load/y', { tail: i })))
    await until(() => got.filter(m => m.topic === 'load/y').length === 3, 'publish() delivered')
    assert.deepEqual(got.filter(m => m.topic === 'load/y').map(m => m.id), r.map(x => x.id))
  })

  it('messages go only to nodes whose interest matches', async () => {
    const sub = subAgent.subscribe('only/here')
    const got = collect(sub)
    await interest(a, 'only/here', b.peerId, true)
    await pub.publish('only/here', 1)
    await until(() => got.length === 1, 'delivered while subscribed')
    sub.unsubscribe()
    await interest(a, 'only/here', b.peerId, false)
    const sentinel = collect(subAgent.subscribe('only/sentinel'))
    await interest(a, 'only/sentinel', b.peerId, true)
    const before = b.status().counters.received
    for (let i = 0; i < 20; i++) await pub.publish('only/here', i)
    await pub.publish('only/sentinel', 'end')
    await until(() => sentinel.length === 1, 'sentinel delivered')
    // Frames on one link arrive in order: the 20 publications were never sent to b.
    assert.equal(b.status().counters.received - before, 1, 'only the sentinel reached node b')
  })

  // Last here: it cuts the connection between the two nodes.
  it('a connection aborted with topic copies unsent: the loss is counted, and drain() returns', async () => {
    const sub = subAgent.subscribe('cut/x', { onMessage () {} })
    await interest(a, 'cut/x', b.peerId, true)
    const before = a.status().topics
    assert.equal(before.closedFrames, 0)
    // ~8 MB queued in one turn: more than the stream takes before its reader has run.
    const payload = new Uint8Array(1024)
    for (let i = 0; i < 8000; i++) pub.publishBuffered('cut/x', payload)
    const draining = pub.drain()
    assert.ok(a.status().topics.queuedBytes > 1024 * 1024, `queued on the link: ${a.status().topics.queuedBytes}`)
    // As libp2p's connection monitor does when the peer does not answer its ping in time.
    for (const c of a.net.getConnections(peerIdFromString(b.peerId))) c.abort(new Error('ping timed out (test)'))
    await within(draining, 10_000, 'drain() after the connection was aborted')
    const after = a.status().topics
    assert.ok(after.closedFrames > 0 && after.closedBytes > 1024 * 1024, `counted as thrown away: ${JSON.stringify(after)}`)
    assert.equal(after.queuedBytes, 0)
    sub.unsubscribe()
  })

})
