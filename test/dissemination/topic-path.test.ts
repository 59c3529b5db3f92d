/**
 * TopicPath, the router's host of the dissemination core, over in-memory links that carry
 * the real encoded frames: interest and data cross a line of three nodes, a copy that fails
 * ingress is neither delivered nor forwarded, and a link that does not drain sheds copies
 * instead of queueing them without bound.
 */
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { agentKeyFromSeed, generateAgentKey } from '../../src/core/keys.ts'
import { decodeEnvelope, signEnvelope, signEnvelopes, wireSize, type Envelope, type EnvelopeFields } from '../../src/core/envelope.ts'
import { nodeIdFromBytes } from '../../src/dissemination/wire.ts'
import { FRAME_BATCH, FRAME_DATA, decodeFrame, encodeDataFrame, type BatchFrame, type ControlFrame, type DataFrame, type Frame, type FrameLink } from '../../src/net/frames.ts'
import { MAX_LINK_QUEUE_BYTES, TopicPath } from '../../src/routing/topic-path.ts'
import type { NetworkId, Topic } from '../../src/core/ids.ts'

const silent = { debug () {}, info () {}, warn () {}, error () {} } as never

interface Host { path: TopicPath, id: string, delivered: Envelope[], rejected: string[], relayed: Array<[string, string]> }

function host (n: number): Host {
  const key = agentKeyFromSeed(new Uint8Array(32).fill(n))
  const id = nodeIdFromBytes(new Uint8Array([0x00, 0x24, 0x08, 0x01, 0x12, 0x20, ...key.publicKey]))
  const h: Host = { id, delivered: [], rejected: [], relayed: [], path: undefined as unknown as TopicPath }
  h.path = new TopicPath({
    self: id,
    sign: (input) => key.sign(input),
    admit: (bytes) => {
      const r = decodeEnvelope(bytes)
      if (!r.ok) { h.rejected.push(r.reason); return undefined }
      return r.envelope
    },
    ingress: { network: 'test' as NetworkId, maxBytes: 1024 * 1024, clockSkewMs: 30_000 },
    admitChecked: (env) => env,
    deliver: (env) => { h.delivered.push(env) },
    relayed: (env, peer) => { h.relayed.push([env.id, peer]) },
    reject: (reason) => { h.rejected.push(reason) },
    clockSkewMs: 30_000,
    logger: silent
  })
  return h
}

/** A one-way in-memory link: frames pushed on `from` arrive (asynchronously) at `to`. */
function link (from: Host, to: Host, opts: { stuck?: boolean } = {}): FrameLink & { pushed: number, frames: Frame[] } {
  const l = {
    isClosed: false,
    pushed: 0,
    frames: [] as Frame[],
    queuedBytes: opts.stuck === true ? MAX_LINK_QUEUE_BYTES + 1 : 0,
    push (bytes: Uint8Array, _prio?: number, _onFail?: unknown, tail?: Uint8Array): boolean {
      l.pushed++
      if (opts.stuck === true) return true
      // A frame in two pieces (FrameLink.push's `tail`) is written as one.
      const frame = tail === undefined ? bytes : new Uint8Array([...bytes, ...tail])
      setImmediate(() => {
        const f = decodeFrame(frame)
        assert.ok(f != null)
        l.frames.push(f)
        if (f.t === FRAME_DATA) to.path.onData(from.id, f as DataFrame)
        else to.path.onControl(from.id, f as ControlFrame)
      })
      return true
    },
    async drained () {}
  }
  return l as unknown as FrameLink & { pushed: number, frames: Frame[] }
}

function connect (a: Host, b: Host): Array<ReturnType<typeof link>> {
  const ab = link(a, b)
  const ba = link(b, a)
  a.path.addLink(b.id, ab)
  b.path.addLink(a.id, ba)
  return [ab, ba]
}

const agent = generateAgentKey()
const fields = (over: Partial<EnvelopeFields> = {}): EnvelopeFields => ({
  v: 1, net: 'test' as NetworkId, mode: 'topic', type: 'inform', from: agent.id, topic: 'line/x' as Topic, ts: Date.now(), ttl: 60, hops: 16, prio: 1,
  ct: 'application/json', body: new TextEncoder().encode('1'), ...over
})
const settle = async (): Promise<void> => { for (let i = 0; i < 20; i++) await new Promise(resolve => setImmediate(resolve)) }
async function until (pred: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 400 && !pred(); i++) await new Promise(resolve => setTimeout(resolve, 10))
  assert.ok(pred(), what)
}

/** A publisher `a` linked to `b` and `c`, both subscribed to line/#, once a knows both. */
async function star (n: number): Promise<{ a: Host, b: Host, c: Host, ab: ReturnType<typeof link>, ac: ReturnType<typeof link> }> {
  const [a, b, c] = [host(n), host(n + 1), host(n + 2)]
  const [ab] = connect(a, b)
  const [ac] = connect(a, c)
  b.path.subscribe('line/#')
  c.path.subscribe('line/#')
  await until(() => a.path.core.interestedIn('line/x').length === 2, 'interest of b and c at a')
  return { a, b, c, ab, ac }
}

describe('TopicPath over in-memory links', () => {
  test('a line of three: interest reaches the publisher, data reaches the subscriber through the relay', async () => {
    const [a, b, c] = [host(1), host(2), host(3)]
    const [ab] = connect(a, b)
    const [bc] = connect(b, c)
    c.path.subscribe('line/#')
    await until(() => a.path.core.interestedIn('line/x').includes(c.id as never), 'interest of c at a')
    const envs = signEnvelopes([fields({ nonce: 1 }), fields({ nonce: 2 }), fields({ nonce: 3, topic: 'other/x' as Topic })], agent)
    for (const e of envs) a.path.publish(e)
    await until(() => c.delivered.length === 2, 'c got its two messages')
    await settle()
    assert.deepEqual(c.delivered.map(e => e.id), envs.slice(0, 2).map(e => e.id))
    // One batch frame per hop, carrying the two envelopes bound there and the third leaf's hash.
    for (const l of [ab, bc]) {
      const batches = l.frames.filter((f): f is BatchFrame => f.t === FRAME_BATCH)
      assert.equal(batches.length, 1)
      assert.deepEqual(batches[0].l.map(e => e.length === 32), [false, false, true])
      assert.equal(l.frames.filter(f => f.t === FRAME_DATA).length, 0)
    }
    // What c holds still travels alone: its proof and wire bytes are derived, and verify.
    for (const [i, e] of c.delivered.entries()) {
      assert.deepEqual({ n: e.bp?.n, i: e.bp?.i }, { n: 3, i })
      const again = decodeEnvelope(e.bytes)
      assert.ok(again.ok && again.envelope.id === e.id)
      assert.deepEqual(e.bytes, envs[i].bytes)
      assert.equal(wireSize(e), e.bytes.length)
      assert.equal(wireSize(envs[i]), envs[i].bytes.length)
    }
    assert.equal(b.delivered.length, 0, 'the relay has no subscriber')
    // The relay reports each copy it forwards (the message log's `relayed`); the publisher's own sends are not relays.
    assert.deepEqual(b.relayed, envs.slice(0, 2).map(e => [e.id, c.id]))
    assert.deepEqual([a.relayed, c.relayed], [[], []])
    assert.deepEqual([a.rejected, b.rejected, c.rejected], [[], [], []])
    for (const h of [a, b, c]) h.path.stop()
  })

  test('a star: the publisher sends each neighbour one batch frame per batch and priority, whatever the order of the copies', async () => {
    const { a, b, c, ab, ac } = await star(9)
    // Two batches; in each, the priorities alternate, so every copy's group differs from the
    // last copy's (the other neighbour's, or the other priority's).
    const batches = [1, 2].map(k => signEnvelopes(Array.from({ length: 6 }, (_, i) => fields({ nonce: 10 * k + i, prio: 1 + (i % 2) })), agent))
    for (const batch of batches) for (const e of batch) a.path.publish(e)
    const all = batches.flat()
    await until(() => b.delivered.length === all.length && c.delivered.length === all.length, 'b and c got every message')
    await settle()
    for (const [l, h] of [[ab, b], [ac, c]] as const) {
      const frames = l.frames.filter((f): f is BatchFrame => f.t === FRAME_BATCH)
      // Per batch, one frame per priority, each carrying that priority's three envelopes.
      assert.equal(frames.length, 4)
      for (const f of frames) assert.equal(f.l.filter(e => e.length !== 32).length, 3)
      assert.equal(l.frames.filter(f => f.t === FRAME_DATA).length, 0)
      assert.deepEqual(new Set(h.delivered.map(e => e.id)), new Set(all.map(e => e.id)))
      // Within a priority, in publication order.
      for (const prio of [1, 2]) assert.deepEqual(h.delivered.filter(e => e.prio === prio).map(e => e.id), all.filter(e => e.prio === prio).map(e => e.id))
    }
    assert.deepEqual([a.rejected, b.rejected, c.rejected], [[], [], []])
    for (const h of [a, b, c]) h.path.stop()
  })

  test('one batch to two neighbours with different labels: each frame carries its own, the leaves encoded once', async () => {
    // a — b — d and a — c: the copies to b are for b and d (two labels), those to c for c.
    const [a, b, c, d] = [host(30), host(31), host(32), host(33)]
    const [ab] = connect(a, b)
    const [ac] = connect(a, c)
    connect(b, d)
    for (const h of [b, c, d]) h.path.subscribe('line/#')
    await until(() => a.path.core.interestedIn('line/x').length === 3, 'interest of b, c and d at a')
    const batch = signEnvelopes([1, 2, 3].map(nonce => fields({ nonce })), agent)
    for (const e of batch) a.path.publish(e)
    await until(() => [b, c, d].every(h => h.delivered.length === batch.length), 'b, c and d got every message')
    const [fb, fc] = [ab, ac].map(l => l.frames.filter((f): f is BatchFrame => f.t === FRAME_BATCH))
    assert.equal(fb.length, 1)
    assert.equal(fc.length, 1)
    assert.equal(fb[0].x?.length, 2)
    assert.equal(fc[0].x?.length, 1)
    assert.deepEqual(fb[0].l.map(e => Buffer.from(e).toString('hex')), fc[0].l.map(e => Buffer.from(e).toString('hex')))
    for (const h of [b, c, d]) assert.deepEqual(h.delivered.map(e => e.id), batch.map(e => e.id))
    assert.deepEqual([a.rejected, b.rejected, c.rejected, d.rejected], [[], [], [], []])
    for (const h of [a, b, c, d]) h.path.stop()
  })

  test('a copy too large for a batch frame goes alone, between the frames of its batch, and nothing after it is lost', async () => {
    const { a, b, c, ab, ac } = await star(12)
    const large = new Uint8Array(70 * 1024).fill(0x31)
    const batch = signEnvelopes([fields({ nonce: 1 }), fields({ nonce: 2 }), fields({ nonce: 3, body: large }), fields({ nonce: 4 }), fields({ nonce: 5 })], agent)
    for (const e of batch) a.path.publish(e)
    await until(() => b.delivered.length === batch.length && c.delivered.length === batch.length, 'b and c got every message')
    await settle()
    for (const [l, h] of [[ab, b], [ac, c]] as const) {
      const data = l.frames.filter(f => f.t === FRAME_DATA || f.t === FRAME_BATCH)
      assert.deepEqual(data.map(f => f.t === FRAME_BATCH ? (f as BatchFrame).l.filter(e => e.length !== 32).length : 'alone'), [2, 'alone', 2])
      assert.deepEqual(h.delivered.map(e => e.id), batch.map(e => e.id))
    }
    for (const h of [a, b, c]) h.path.stop()
  })

  test('a copy that fails ingress at the relay is neither delivered nor forwarded', async () => {
    const [a, b, c] = [host(4), host(5), host(6)]
    connect(a, b)
    connect(b, c)
    c.path.subscribe('line/#')
    await until(() => a.path.core.interestedIn('line/x').includes(c.id as never), 'interest of c at a')
    const good = signEnvelope(fields(), agent)
    const tampered = new Uint8Array(good.bytes)
    tampered[tampered.length - 1] ^= 1
    const label = b.path.core.originEntry(c.id as never)?.slot as number
    b.path.onData(a.id, decodeFrame(encodeDataFrame(1, tampered, [label])) as DataFrame)
    await settle()
    assert.deepEqual(b.rejected, ['bad-signature'])
    assert.equal(c.delivered.length, 0)
    a.path.publish(good)
    await until(() => c.delivered.length === 1, 'the genuine copy arrives')
    for (const h of [a, b, c]) h.path.stop()
  })

  test('a link that does not drain sheds data copies and counts them; control frames still go', async () => {
    const [a, b] = [host(7), host(8)]
    const stuck = link(a, b, { stuck: true })
    a.path.addLink(b.id, stuck)
    const before = stuck.pushed
    for (let i = 0; i < 5; i++) a.path.publish(signEnvelope(fields({ nonce: i + 1, mode: 'broadcast', topic: undefined }), agent))
    assert.equal(a.path.overflowDrops, 5)
    assert.equal(stuck.pushed, before, 'no data copy queued')
    a.path.subscribe('any/#')
    await until(() => stuck.pushed > before, 'the interest record still goes')
    a.path.stop()
    b.path.stop()
  })
})
