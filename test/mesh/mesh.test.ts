/**
 * Five fedmesh nodes in separate OS processes on loopback, bootstrapped from the first.
 * Agents on different nodes use every messaging pattern; a sixth node joins late;
 * one node is killed and the rest keep working.
 */
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { Mesh, type NodeProc } from '../helpers/mesh.ts'
import { DEGRADED_LATENCY_MS } from '../../src/net/peers.ts'

/**
 * Bound on requests that must succeed: a first request may also find the agent's node and
 * dial it, which on a loaded machine (every node a process on two cores) can outlast the
 * default 10 s request timeout.
 */
const REPLY_MS = 30_000

/** Waits (bounded) until `node` would send a message on `topic` to every one of `peers`. */
async function waitInterest (node: NodeProc, topic: string, peers: string[]): Promise<void> {
  let known: string[] = []
  for (let i = 0; i < 200; i++) {
    known = await node.call('interest', { topic })
    if (peers.every(p => known.includes(p))) return
    await new Promise(resolve => setTimeout(resolve, 50))
  }
  assert.fail(`interest in ${topic} of ${peers.join(', ')} never reached the publisher (knows ${known.join(', ')})`)
}

describe('mesh of 5 node processes', { timeout: 290_000 }, () => {
  const mesh = new Mesh()
  const ids: string[] = []
  let n: NodeProc[]

  before(async () => {
    for (let i = 0; i < 5; i++) await mesh.start()
    n = mesh.nodes
    for (let i = 0; i < 5; i++) ids.push(await n[i].call('agent', { name: `a${i}` }))
    // Every node can find every agent's record (directory announcements or the DHT).
    // Bounded generously: on a loaded machine the five processes share two cores.
    await Promise.all(n.map(node => Promise.all(ids.map(id => node.call('waitForAgent', { id, timeoutMs: 90_000 }, 100_000)))))
    // Gossip mesh is formed once a probe from node 0 reaches every other node.
    for (let i = 1; i < 5; i++) await n[i].call('subscribe', { agent: `a${i}`, pattern: 'probe/#', sub: 'probe' })
    for (let k = 0; k < 100 && !n.slice(1).every(x => x.received('probe').length > 0); k++) {
      await n[0].call('publish', { agent: 'a0', topic: 'probe/x', data: { k } })
      await Promise.race(n.slice(1).map(x => x.until(() => x.received('probe').length > 0, 'probe', 200).catch(() => {})))
    }
    assert.ok(n.slice(1).every(x => x.received('probe').length > 0), 'gossip mesh formed')
  })

  after(async () => { await mesh.stopAll() })

  it('pub/sub with wildcards delivers each message exactly once to every matching subscriber', async () => {
    await n[1].call('subscribe', { agent: 'a1', pattern: 'sensors/#', sub: 'all' })
    await n[2].call('subscribe', { agent: 'a2', pattern: 'sensors/*/temp', sub: 'temps' })
    await n[3].call('subscribe', { agent: 'a3', pattern: 'sensors/room1/temp', sub: 'room1' })
    await n[4].call('subscribe', { agent: 'a4', pattern: 'other/#', sub: 'other' })
    // Overlapping subscriptions of one agent each see the message once.
    await n[3].call('subscribe', { agent: 'a3', pattern: 'sensors/+/x'.replace('+', '*'), sub: 'x' })
    // Topic messages go only to nodes whose interest the publisher's node has learnt:
    // wait until the new subscriptions have reached node 0.
    const peerOf = async (x: NodeProc): Promise<string> => (await x.call('status')).peerId
    await waitInterest(n[0], 'sensors/room1/temp', await Promise.all([n[1], n[2], n[3]].map(peerOf)))
    await waitInterest(n[0], 'sensors/room2/hum', [await peerOf(n[1])])
    await waitInterest(n[0], 'other/end', [await peerOf(n[4])])
    for (let i = 0; i < 20; i++) {
      await n[0].call('publish', { agent: 'a0', topic: 'sensors/room1/temp', data: { i } })
      await n[0].call('publish', { agent: 'a0', topic: 'sensors/room2/hum', data: { i } })
    }
    await n[1].until(() => n[1].received('all').length >= 40, 'a1 gets 40')
    await n[2].until(() => n[2].received('temps').length >= 20, 'a2 gets 20')
    await n[3].until(() => n[3].received('room1').length >= 20, 'a3 gets 20')
    // Sentinel: once it arrived everywhere, anything duplicated would have arrived too.
    await n[0].call('publish', { agent: 'a0', topic: 'sensors/end/temp', data: 'end' })
    await n[0].call('publish', { agent: 'a0', topic: 'other/end', data: 'end' })
    await n[1].until(() => n[1].received('all').some(m => m.data === 'end'), 'sentinel a1')
    await n[2].until(() => n[2].received('temps').some(m => m.data === 'end'), 'sentinel a2')
    await n[4].until(() => n[4].received('other').some(m => m.data === 'end'), 'sentinel a4')
    const unique = (xs: Array<{ id: string }>): number => new Set(xs.map(x => x.id)).size
    assert.equal(n[1].received('all').length, 41)
    assert.equal(unique(n[1].received('all')), 41)
    assert.equal(n[2].received('temps').length, 21)
    assert.ok(n[2].received('temps').every(m => m.topic?.endsWith('/temp')))
    assert.equal(n[3].received('room1').length, 20)
    assert.equal(n[3].received('x').length, 0)
    assert.deepEqual(n[4].received('other').map(m => m.data), ['end'])
    assert.ok(n[1].received('all').every(m => m.from === ids[0]))
  })

  it('direct messages reach an agent on another node, with confirmation', async () => {
    await n[3].call('inbox', { agent: 'a3', sub: 'inbox3' })
    const res = await n[1].call('send', { agent: 'a1', to: ids[3], data: { hello: 'a3' }, options: { confirm: true } })
    assert.deepEqual(res.confirmed, [ids[3]])
    await n[3].until(() => n[3].received('inbox3').length === 1, 'direct message')
    const m = n[3].received('inbox3')[0]
    assert.deepEqual(m.data, { hello: 'a3' })
    assert.equal(m.from, ids[1])
    assert.equal(m.mode, 'direct')
  })

  it('request–reply, with typed errors for no responder, timeout, cancellation and failure', async () => {
    await n[2].call('handle', { agent: 'a2', kind: 'echo' })
    const reply = await n[4].call('request', { agent: 'a4', to: ids[2], data: { q: 7 }, options: { timeout: REPLY_MS } })
    assert.deepEqual(reply.data, { echo: { q: 7 }, by: 'a2' })
    assert.equal(reply.from, ids[2])

    await assert.rejects(n[4].call('request', { agent: 'a4', to: ids[3], data: 1, options: { timeout: REPLY_MS } }), { code: 'NoRespondersError' })

    await n[1].call('agent', { name: 'slow' })
    await n[1].call('handle', { agent: 'slow', kind: 'silent' })
    const slowId = await n[1].call('agent', { name: 'slow' })
    await n[4].call('waitForAgent', { id: slowId })
    await assert.rejects(n[4].call('request', { agent: 'a4', to: slowId, data: 1, options: { timeout: 300 } }), { code: 'TimeoutError' })
    await assert.rejects(n[4].call('requestCancel', { agent: 'a4', to: slowId, data: 1, afterMs: 100 }), { code: 'AbortError' })

    await n[1].call('agent', { name: 'grumpy' })
    await n[1].call('handle', { agent: 'grumpy', kind: 'fail' })
    const grumpy = await n[1].call('agent', { name: 'grumpy' })
    await n[0].call('waitForAgent', { id: grumpy })
    await assert.rejects(n[0].call('request', { agent: 'a0', to: grumpy, data: 1, options: { timeout: REPLY_MS } }), { code: 'RemoteError', message: /handler says no/ })

    await assert.rejects(n[0].call('request', { agent: 'a0', to: 'did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK', data: 1, options: { timeout: 3000 } }), { code: /AgentNotFoundError|TimeoutError/ })
  })

  it('broadcast reaches every other agent; multicast only the listed ones', async () => {
    for (const i of [1, 2, 4]) await n[i].call('inbox', { agent: `a${i}`, sub: `bc${i}` })
    await n[0].call('broadcast', { agent: 'a0', data: { all: true } })
    for (const i of [1, 2, 3, 4]) {
      const sub = i === 3 ? 'inbox3' : `bc${i}`
      await n[i].until(() => n[i].received(sub).some(m => m.mode === 'broadcast'), `broadcast at a${i}`)
    }
    const res = await n[0].call('multicast', { agent: 'a0', to: [ids[1], ids[3]], data: { some: true }, options: { confirm: true } })
    assert.deepEqual([...res.confirmed].sort(), [ids[1], ids[3]].sort())
    await n[1].until(() => n[1].received('bc1').some(m => m.mode === 'multicast'), 'multicast a1')
    await n[3].until(() => n[3].received('inbox3').some(m => m.mode === 'multicast'), 'multicast a3')
    // a2 was not listed: a direct message sent after the multicast arrives, the multicast never does.
    await n[0].call('send', { agent: 'a0', to: ids[2], data: 'after', options: { confirm: true } })
    await n[2].until(() => n[2].received('bc2').some(m => m.data === 'after'), 'marker at a2')
    assert.ok(!n[2].received('bc2').some(m => m.mode === 'multicast'))
  })

  it('ordered delivery keeps per-sender order; priorities and retries are accepted', async () => {
    await n[4].call('inbox', { agent: 'a4', sub: 'ord' })
    const sends = []
    for (let i = 0; i < 30; i++) sends.push(n[1].call('send', { agent: 'a1', to: ids[4], data: i, options: { ordered: true, retries: 2, priority: i % 4 } }))
    await Promise.all(sends)
    await n[4].until(() => n[4].received('ord').length >= 30, 'ordered messages')
    assert.deepEqual(n[4].received('ord').map(m => m.data), Array.from({ length: 30 }, (_, i) => i))
  })

  it('streams between agents on two nodes carry data with backpressure', async () => {
    await n[4].call('streamCounter', { agent: 'a4' })
    const res = await n[1].call('streamSend', { agent: 'a1', to: ids[4], chunks: 256, chunkBytes: 16384 })
    assert.equal(res.total, 256 * 16384)
  })

  it('a node that joins later discovers the others and receives', async () => {
    const late = await mesh.start()
    const id = await late.call('agent', { name: 'late' })
    await late.call('subscribe', { agent: 'late', pattern: 'sensors/#', sub: 'late' })
    await late.call('handle', { agent: 'late', kind: 'echo' })
    await late.call('waitForAgent', { id: ids[2] })
    for (let k = 0; k < 100 && late.received('late').length === 0; k++) {
      await n[0].call('publish', { agent: 'a0', topic: 'sensors/late/temp', data: { k } })
      await late.until(() => late.received('late').length > 0, 'late delivery', 200).catch(() => {})
    }
    assert.ok(late.received('late').length > 0, 'late node receives pub/sub')
    const reply = await late.call('request', { agent: 'late', to: ids[2], data: 'hi', options: { timeout: REPLY_MS } })
    assert.equal(reply.data.by, 'a2')
    await n[3].call('waitForAgent', { id })
    const back = await n[3].call('request', { agent: 'a3', to: id, data: 'yo', options: { timeout: REPLY_MS } })
    assert.equal(back.data.by, 'late')
  })

  it('peers show status, latency, last seen, quality and roles from signed node records', async () => {
    // A live peer is 'connected', or 'degraded' when its measured round trip is over
    // DEGRADED_LATENCY_MS or pings failed: on a loaded machine a loopback ping can take that long.
    const live = (p: any): boolean => p.status === 'connected' || p.status === 'degraded'
    const others = new Set((await Promise.all(n.slice(1, 5).map(x => x.call('status')))).map(s => s.peerId))
    let seen: any[] = []
    const deadline = Date.now() + 30_000
    for (let i = 0; i < 300 && Date.now() < deadline; i++) {
      seen = (await n[0].call('peers')).filter((p: any) => others.has(p.peerId))
      if (seen.length === 4 && seen.every(p => live(p) && p.latencyMs != null && p.roles != null)) break
      await new Promise(resolve => setTimeout(resolve, 100))
    }
    assert.equal(seen.length, 4)
    for (const p of seen) {
      assert.ok(live(p), `peer ${p.peerId} is ${p.status}`)
      assert.equal(typeof p.latencyMs, 'number')
      if (p.status === 'degraded') assert.ok(p.latencyMs > DEGRADED_LATENCY_MS || p.pingFailures >= 3, `degraded at ${p.latencyMs} ms, ${p.pingFailures} failures`)
      assert.ok(p.lastSeen > Date.now() - 60_000)
      assert.ok(p.quality > 0 && p.quality <= 1)
      assert.deepEqual(p.roles, ['full'])
      assert.ok(p.capacity.cpus >= 1)
    }
  })

  it('killing one node does not stop the rest', async () => {
    const killedId = (await n[3].call('status')).peerId
    n[3].kill()
    await n[3].until(() => n[3].exited, 'node 3 exit')
    const before = n[1].received('all').length
    await n[2].call('publish', { agent: 'a2', topic: 'sensors/after/kill', data: 'alive' })
    await n[1].until(() => n[1].received('all').length > before, 'pub/sub after kill')
    const reply = await n[4].call('request', { agent: 'a4', to: ids[2], data: 'still there?', options: { timeout: REPLY_MS } })
    assert.equal(reply.data.by, 'a2')
    const status = await n[0].call('status')
    assert.ok(status.peers >= 3)
    let killed: any
    const deadline = Date.now() + 30_000
    for (let i = 0; i < 300 && killed?.status !== 'disconnected' && Date.now() < deadline; i++) {
      killed = (await n[0].call('peers')).find((p: any) => p.peerId === killedId)
      if (killed?.status !== 'disconnected') await new Promise(resolve => setTimeout(resolve, 100))
    }
    assert.equal(killed?.status, 'disconnected')
    assert.equal(killed.quality, 0)
  })
})
