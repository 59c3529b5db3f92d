import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import {
  classifyRecord, createDisseminationParams, createDisseminator, defaultDisseminationParams, groupTargets, isFeasible,
  matchesAny, SELF_SLOT, validateDisseminationParams, type NodeId, type OriginEntry
} from '../../src/dissemination/index.ts'
import { SeenCache } from '../../src/dissemination/seen.ts'
import type { MessageId, Topic } from '../../src/core/ids.ts'
import type { TopicPattern } from '../../src/core/topics.ts'
import { TestNet } from './net.ts'

const id = (s: string): NodeId => s as NodeId

function entry (over: Partial<OriginEntry> = {}): OriginEntry {
  return {
    seq: 5, patterns: ['a/#' as TopicPattern], fd: 3, vias: [id('B')], viaSlots: [7], slot: 1,
    expiresAt: 1e9, requestedAt: Number.NEGATIVE_INFINITY, requestTries: 0, sig: undefined, ...over
  }
}

describe('dissemination parameters', () => {
  test('defaults are valid and createX fills them in', () => {
    validateDisseminationParams({ ...defaultDisseminationParams })
    assert.deepEqual(createDisseminationParams(), { ...defaultDisseminationParams })
    assert.equal(createDisseminationParams({ refreshMs: 1000, holdMs: 3000 }).holdMs, 3000)
  })

  test('bad values and unknown fields are refused with the field named', () => {
    const bad: Array<Record<string, unknown>> = [
      { maxOrigins: 0 }, { maxInterestHops: 1.5 }, { refreshMs: -1 }, { dedupWindowMs: Number.NaN },
      { refreshMs: 1000, holdMs: 1500 }, { maxLocalPatterns: 10, maxPatternsPerRecord: 5 }, { nope: 1 }
    ]
    for (const b of bad) {
      assert.throws(() => createDisseminationParams(b), (err: Error & { code?: string }) => err.code === 'InvalidArgumentError', JSON.stringify(b))
    }
  })
})

describe('routing decisions (pure)', () => {
  test('feasibility: strictly closer than we ever were', () => {
    assert.equal(isFeasible(1, 2), true)
    assert.equal(isFeasible(2, 2), false)
    assert.equal(isFeasible(3, 2), false)
  })

  test('classifyRecord', () => {
    const B = id('B'); const C = id('C')
    assert.equal(classifyRecord(undefined, { seq: 1, hops: 0 }, B, 32), 'new')
    assert.equal(classifyRecord(undefined, { seq: 1, hops: 32 }, B, 32), 'hop-limit')
    assert.equal(classifyRecord(entry(), { seq: 6, hops: 9 }, C, 32), 'new', 'a newer seq wins at any distance')
    assert.equal(classifyRecord(entry(), { seq: 4, hops: 0 }, C, 32), 'stale')
    assert.equal(classifyRecord(entry(), { seq: 5, hops: 2 }, B, 32), 'ignore', 'already a via')
    assert.equal(classifyRecord(entry(), { seq: 5, hops: 2 }, C, 32), 'alternate', 'equal cost')
    assert.equal(classifyRecord(entry(), { seq: 5, hops: 1 }, C, 32), 'alternate', 'closer')
    assert.equal(classifyRecord(entry(), { seq: 5, hops: 3 }, C, 32), 'ignore', 'not closer: could loop')
    assert.equal(classifyRecord(entry({ vias: [], viaSlots: [] }), { seq: 5, hops: 2 }, C, 32), 'restore')
    assert.equal(classifyRecord(entry({ vias: [], viaSlots: [] }), { seq: 5, hops: 4 }, C, 32), 'request')
    assert.equal(classifyRecord(entry({ patterns: [] }), { seq: 5, hops: 0 }, C, 32), 'ignore', 'a withdrawal needs no routes')
  })

  test('matchesAny and groupTargets', () => {
    assert.equal(matchesAny(['x/*', 'a/#'], 'a/b/c'), true)
    assert.equal(matchesAny(['x/*', 'a/b'], 'a/b/c'), false)
    const groups = groupTargets([
      entry({ vias: [id('B'), id('C')], viaSlots: [7, 3] }),
      entry({ vias: [id('C')], viaSlots: [9] }),
      entry({ vias: [id('B')], viaSlots: [2] }),
      entry({ vias: [], viaSlots: [] })
    ])
    assert.deepEqual(groups, [['B', [7, 2]], ['C', [9]]])
  })

  test('seen cache: a bounded time window, oldest forgotten first', () => {
    const s = new SeenCache(100, 2)
    assert.equal(s.add('a', Infinity, 0), true)
    assert.equal(s.add('a', Infinity, 50), false)
    assert.equal(s.add('a', Infinity, 100), false, 'the window is inclusive')
    assert.equal(s.add('a', Infinity, 101), true, 'window passed')
    assert.equal(s.add('b', Infinity, 102), true)
    assert.equal(s.add('c', Infinity, 103), true)
    assert.equal(s.size, 2)
    assert.equal(s.has('a', 104), false, 'evicted when full')
    assert.equal(s.has('c', 104), true)
    s.sweep(250)
    assert.equal(s.size, 0)
  })
})

describe('interest propagation', () => {
  test('a record floods with distances, next hops towards the origin, and labels', () => {
    const net = new TestNet().add('A', 'B', 'C', 'D').link('A-B', 'B-C', 'C-D').run()
    net.subscribe('D', 'a/#').run()
    const c = net.node('C').originEntry(id('D'))
    const a = net.node('A').originEntry(id('D'))
    assert.equal(c?.fd, 1)
    assert.deepEqual(c?.vias, ['D'])
    assert.deepEqual(c?.viaSlots, [SELF_SLOT], 'D labels itself 0')
    assert.equal(a?.fd, 3)
    assert.deepEqual(a?.vias, ['B'])
    assert.equal(a?.viaSlots[0], net.node('B').originEntry(id('D'))?.slot, "A knows B's label for D")
    assert.deepEqual(a?.patterns, ['a/#'])
    assert.equal(net.node('D').originEntry(id('D')), undefined, 'no entry for itself')
  })

  test('interest stops at maxInterestHops', () => {
    const net = new TestNet({ maxInterestHops: 2 }).add('A', 'B', 'C', 'D').link('A-B', 'B-C', 'C-D').run()
    net.subscribe('D', 'a/#').run()
    assert.ok(net.node('B').originEntry(id('D')) !== undefined)
    assert.equal(net.node('A').originEntry(id('D')), undefined)
  })

  test('one record per node aggregates its patterns; patterns are reference-counted', () => {
    const net = new TestNet().add('A', 'B').link('A-B').run()
    net.subscribe('B', 'x/#').subscribe('B', 'a/b').subscribe('B', 'a/b').run()
    assert.deepEqual(net.node('A').originEntry(id('B'))?.patterns, ['a/b', 'x/#'])
    const mark = net.sent.length
    net.unsubscribe('B', 'a/b').run()
    assert.equal(net.framesSince(mark, 'interest').length, 0, 'still subscribed once: nothing to announce')
    net.unsubscribe('B', 'a/b').run()
    assert.deepEqual(net.node('A').originEntry(id('B'))?.patterns, ['x/#'])
    assert.deepEqual(net.node('B').localPatterns(), ['x/#'])
  })

  test('equal-cost neighbours become alternates; a closer one replaces them', () => {
    //    B
    //  /   \
    // A     D
    //  \   /
    //    C
    const net = new TestNet().add('A', 'B', 'C', 'D').link('A-B', 'A-C', 'B-D', 'C-D').run()
    net.subscribe('D', 'a/#').run()
    assert.deepEqual(net.node('A').originEntry(id('D'))?.vias, ['B', 'C'])
    net.link('A-D').run()
    assert.deepEqual(net.node('A').originEntry(id('D'))?.vias, ['D'])
    assert.equal(net.node('A').originEntry(id('D'))?.fd, 1)
  })

  test('a new neighbour receives the table (sync)', () => {
    const net = new TestNet().add('A', 'B', 'C').link('A-B').run()
    net.subscribe('A', 'a/#').subscribe('B', 'b/#').run()
    net.link('B-C').run()
    assert.deepEqual(net.node('C').originEntry(id('A'))?.vias, ['B'])
    assert.equal(net.node('C').originEntry(id('A'))?.fd, 2)
    assert.deepEqual(net.node('C').originEntry(id('B'))?.patterns, ['b/#'])
  })

  test('records are batched per neighbour until the flush time, one record per origin', () => {
    const net = new TestNet({ interestBatchMs: 25 }).add('A', 'B').link('A-B').run()
    const b = net.node('B')
    net.subscribe('B', 'x/1').subscribe('B', 'x/2').subscribe('B', 'x/3').run()
    assert.equal(net.sent.length, 0, 'held back')
    assert.equal(b.nextTickAt(), 25)
    net.advance(25)
    const frames = net.framesSince(0, 'interest').filter(f => f.from === 'B')
    assert.equal(frames.length, 1)
    assert.equal(frames[0].frame.kind === 'interest' && frames[0].frame.records.length, 1, 'three changes, one record with the latest patterns')
    const sync = net.framesSince(0, 'interest').filter(f => f.from === 'A')
    assert.deepEqual(sync.map(f => f.frame.kind === 'interest' && f.frame.records.length), [0], 'a table sync is sent even when empty')
    assert.deepEqual(net.node('A').originEntry(id('B'))?.patterns, ['x/1', 'x/2', 'x/3'])
  })

  test('refresh re-announces with a higher seq; origins not refreshed are forgotten', () => {
    const net = new TestNet({ refreshMs: 1000, holdMs: 3000, sweepIntervalMs: 100 }).add('A', 'B').link('A-B').run()
    net.subscribe('B', 'a/#').run()
    const seq0 = net.node('A').originEntry(id('B'))?.seq as number
    net.advance(1000)
    assert.ok((net.node('A').originEntry(id('B'))?.seq as number) > seq0)
    // Isolate A's view: a B that stops announcing is forgotten after holdMs.
    const lonely = new TestNet({ refreshMs: 1000, holdMs: 3000, sweepIntervalMs: 100 }).add('A', 'B').link('A-B').run()
    lonely.subscribe('B', 'a/#').run()
    lonely.nodes.delete('B') // B goes silent without the link going down
    for (let t = 0; t < 32; t++) lonely.advance(100)
    assert.equal(lonely.node('A').originEntry(id('B')), undefined)
    assert.equal(lonely.node('A').sizes().origins, 0)
  })

  test('a restarted origin outbids its previous incarnation', () => {
    const net = new TestNet().add('A', 'B').link('A-B').run()
    net.now = 5000
    net.subscribe('B', 'a/#').run()
    const old = net.node('A').originEntry(id('B'))?.seq as number
    // B restarts with no memory and a clock behind the old seq.
    net.nodes.set('B', createDisseminator<string>({ self: id('B'), params: { interestBatchMs: 0 } }))
    net.now = 10
    net.apply('B', net.node('B').neighbourUp(id('A'), net.now))
    net.apply('A', net.node('A').neighbourDown(id('B'), net.now))
    net.apply('A', net.node('A').neighbourUp(id('B'), net.now))
    net.run()
    const now = net.node('A').originEntry(id('B'))
    assert.ok((now?.seq as number) > old, 'B announced above the seq it learned back from A')
    assert.deepEqual(now?.patterns, [], 'a withdrawal: the new B has no subscriptions')
  })
})

describe('forwarding', () => {
  test('a topic message goes only along the path to the subscriber, delivered once', () => {
    const net = new TestNet().add('A', 'B', 'C', 'D', 'E').link('A-B', 'B-C', 'C-D', 'B-E').run()
    net.subscribe('D', 'a/#').run()
    const mark = net.sent.length
    net.publish('A', 'm1', 'a/x').run()
    const data = net.framesSince(mark, 'data').map(s => `${s.from}>${s.to}`)
    assert.deepEqual(data, ['A>B', 'B>C', 'C>D'])
    assert.deepEqual(net.deliveredIds('D'), ['m1'])
    for (const n of ['A', 'B', 'C', 'E']) assert.deepEqual(net.deliveredIds(n), [], `${n} has no interest`)
    const last = net.framesSince(mark, 'data')[2].frame
    assert.deepEqual(last.kind === 'data' && last.targets, [SELF_SLOT])
    const before = net.sent.length
    net.publish('A', 'm2', 'b/x').run()
    assert.equal(net.sent.length, before, 'no subscriber for b/x: nothing sent')
  })

  test('one copy per next hop carries the labels of every origin behind it', () => {
    // A – B – C, C – D, C – E; D and E subscribe; B subscribes too.
    const net = new TestNet().add('A', 'B', 'C', 'D', 'E').link('A-B', 'B-C', 'C-D', 'C-E').run()
    net.subscribe('D', 'a/#').subscribe('E', 'a/*').subscribe('B', 'a/x').run()
    const mark = net.sent.length
    net.publish('A', 'm', 'a/x').run()
    const data = net.framesSince(mark, 'data')
    assert.deepEqual(data.map(s => `${s.from}>${s.to}`), ['A>B', 'B>C', 'C>D', 'C>E'])
    const ab = data[0].frame
    assert.equal(ab.kind === 'data' && ab.targets?.length, 3, 'A→B is for B, D and E')
    for (const n of ['B', 'D', 'E']) assert.deepEqual(net.deliveredIds(n), ['m'])
    assert.deepEqual(net.deliveredIds('C'), [])
  })

  test('a publication to one, two, three and four neighbours: one send each, in the routes\' order, each with its labels', () => {
    // The actions' send list is made as [x], then [x, y], then pushed to: each length is covered.
    for (let n = 1; n <= 4; n++) {
      const peers = ['B', 'C', 'D', 'E'].slice(0, n)
      const net = new TestNet().add('A', ...peers).link(...peers.map(p => `A-${p}`)).run()
      for (const p of peers) net.subscribe(p, 'a/#').run()
      const routes = net.node('A').routesFor('a/x' as Topic)
      const sends = net.node('A').publish({ id: `m${n}` as MessageId, topic: 'a/x' as Topic, maxHops: 4, expiresAt: 60_000, payload: 'p' }, 0).send
      assert.equal(sends.length, n)
      assert.deepEqual(sends.map(s => s.to), routes.map(r => r[0]))
      assert.deepEqual([...sends.map(s => s.to)].sort(), peers)
      for (let k = 0; k < n; k++) {
        const f = sends[k].frame
        assert.ok(f.kind === 'data')
        assert.deepEqual(f.targets, routes[k][1])
        assert.equal(f.message.id, `m${n}`)
        assert.equal(f.message.hops, 1)
      }
    }
  })

  test('the publisher delivers to its own subscribers; duplicates are dropped', () => {
    const net = new TestNet().add('A', 'B').link('A-B').run()
    net.subscribe('A', 'a/#').run()
    net.publish('A', 'm', 'a/x').run()
    assert.deepEqual(net.deliveredIds('A'), ['m'])
    const again = net.node('A').publish({ id: 'm' as MessageId, topic: 'a/x' as Topic, maxHops: 4, expiresAt: 1e9, payload: 'm' }, 0)
    assert.deepEqual(again.dropped.map(d => d.reason), [])
    assert.equal(again.deliver.length, 0)
    assert.equal(net.node('A').counters.dropped.duplicate, 1, 'duplicates are counted, not returned')
  })

  test('broadcast floods every node exactly once', () => {
    const net = new TestNet().add('A', 'B', 'C', 'D').link('A-B', 'A-C', 'B-D', 'C-D', 'B-C').run()
    const mark = net.sent.length
    net.publish('A', 'b1', undefined).run()
    for (const n of ['A', 'B', 'C', 'D']) assert.deepEqual(net.deliveredIds(n), ['b1'], n)
    // A sends to 2, B and C to 2 others each, D to 1 (not back to its first sender).
    assert.equal(net.framesSince(mark, 'data').length, 2 + 2 + 2 + 1)
  })

  test('expired, hop-limited, malformed and unknown-sender input is dropped with a reason', () => {
    const net = new TestNet().add('A', 'B', 'C').link('A-B', 'B-C').run()
    net.subscribe('C', '#').run()
    const b = net.node('B')
    const msg = { id: 'x' as MessageId, topic: 't' as Topic, maxHops: 4, hops: 1, expiresAt: 100, payload: 'p' }
    assert.deepEqual(b.receive(id('A'), { kind: 'data', message: msg, targets: [1] }, 200).dropped.map(d => d.reason), ['expired'])
    assert.deepEqual(b.receive(id('A'), { kind: 'data', message: { ...msg, id: 'y' as MessageId, hops: 5, expiresAt: 1e9 }, targets: [1] }, 0).dropped.map(d => d.reason), ['hop-limit'])
    assert.deepEqual(b.receive(id('A'), { kind: 'data', message: { ...msg, topic: undefined } as never }, 0).dropped.map(d => d.reason), ['malformed'])
    assert.deepEqual(b.receive(id('A'), { kind: 'data', message: { ...msg, id: 'z' as MessageId, expiresAt: 1e9 }, targets: [-1] }, 0).dropped.map(d => d.reason), ['malformed'])
    assert.deepEqual(b.receive(id('Z'), { kind: 'interest', records: [] }, 0).dropped.map(d => d.reason), ['not-neighbour'])
    assert.deepEqual(b.receive(id('A'), { kind: 'bogus' } as never, 0).dropped.map(d => d.reason), ['malformed'])
    const bad = [
      { origin: 'Q', seq: -1, patterns: [], hops: 0, slot: 0 },
      { origin: 'Q', seq: 1, patterns: ['a/#/b'], hops: 0, slot: 0 },
      { origin: 'Q', seq: 1, patterns: ['b', 'a'], hops: 0, slot: 0 },
      { origin: '', seq: 1, patterns: [], hops: 0, slot: 0 }
    ]
    assert.deepEqual(b.receive(id('A'), { kind: 'interest', records: bad as never }, 0).dropped.map(d => d.reason), ['malformed', 'malformed', 'malformed', 'malformed'])
    assert.equal(b.originEntry(id('Q')), undefined)
    // A label this node never gave out.
    assert.deepEqual(b.receive(id('A'), { kind: 'data', message: { ...msg, id: 'w' as MessageId, expiresAt: 1e9 }, targets: [999] }, 0).dropped.map(d => d.reason), ['no-route'])
    assert.throws(() => b.publish({ id: 'p' as MessageId, topic: 'bad//topic' as Topic, maxHops: 1, expiresAt: 1e9, payload: '' }, 0), /publication/)
    assert.throws(() => b.localSubscribe('a/#/b', 0), (err: Error & { code?: string }) => err.code === 'InvalidTopicError')
  })

  test('until a first table sync arrives, a node floods its own topic messages', () => {
    const net = new TestNet().add('A', 'B', 'C').link('A-B').run()
    net.subscribe('B', 'a/#').run()
    // C comes up next to A and publishes before A's sync has reached it.
    net.apply('C', net.node('C').neighbourUp(id('A'), 0))
    net.apply('A', net.node('A').neighbourUp(id('C'), 0))
    net.publish('C', 'early', 'a/x').run()
    assert.deepEqual(net.deliveredIds('B'), ['early'])
    const mark = net.sent.length
    net.publish('C', 'later', 'a/x').run()
    assert.deepEqual(net.deliveredIds('B'), ['early', 'later'])
    assert.deepEqual(net.framesSince(mark, 'data').map(f => `${f.from}>${f.to}`), ['C>A', 'A>B'], 'routed once warm')
  })

  test('a full table floods its own topic messages instead of missing subscribers', () => {
    const net = new TestNet({ maxOrigins: 1 }).add('A', 'B', 'C', 'D').link('A-B', 'A-C', 'A-D').run()
    net.subscribe('B', 'a/#').subscribe('C', 'a/#').run()
    assert.equal(net.node('A').counters.dropped['table-full'], 1)
    net.publish('A', 'm', 'a/x').run()
    assert.deepEqual(net.deliveredIds('B'), ['m'])
    assert.deepEqual(net.deliveredIds('C'), ['m'])
    assert.deepEqual(net.deliveredIds('D'), [], 'flooded, but delivered only where it matches')
  })
})

describe('unsubscribe and neighbour loss', () => {
  test('unsubscribing withdraws the interest everywhere', () => {
    const net = new TestNet().add('A', 'B', 'C').link('A-B', 'B-C').run()
    net.subscribe('C', 'a/#').run()
    assert.equal(net.node('A').routesFor('a/x').length, 1)
    net.unsubscribe('C', 'a/#').run()
    assert.deepEqual(net.node('A').originEntry(id('C'))?.patterns, [])
    assert.equal(net.node('A').routesFor('a/x').length, 0)
    const mark = net.sent.length
    net.publish('A', 'm', 'a/x').run()
    assert.equal(net.framesSince(mark, 'data').length, 0)
  })

  test('losing a next hop falls back to an equal-cost alternate, silently', () => {
    const net = new TestNet().add('A', 'B', 'C', 'D').link('A-B', 'A-C', 'B-D', 'C-D').run()
    net.subscribe('D', 'a/#').run()
    const mark = net.sent.length
    net.unlink('A-B').run()
    assert.deepEqual(net.node('A').originEntry(id('D'))?.vias, ['C'])
    assert.equal(net.framesSince(mark, 'lost').length, 0, 'A was never without a route')
    net.publish('A', 'm', 'a/x').run()
    assert.deepEqual(net.deliveredIds('D'), ['m'])
  })

  test('without a feasible route: lost, a request to the origin, a new announcement, a new route', () => {
    // A – B – D is the short way; A – C – E – D the long one.
    const net = new TestNet({ minAnnounceIntervalMs: 0 }).add('A', 'B', 'C', 'D', 'E').link('A-B', 'B-D', 'A-C', 'C-E', 'E-D').run()
    net.subscribe('D', 'a/#').run()
    const seq0 = net.node('A').originEntry(id('D'))?.seq as number
    assert.deepEqual(net.node('A').originEntry(id('D'))?.vias, ['B'])
    const mark = net.sent.length
    net.unlink('B-D').run()
    assert.ok(net.framesSince(mark, 'lost').length > 0, 'B and then A lost their route')
    assert.ok(net.framesSince(mark, 'request').length > 0, 'C asked D for a new announcement')
    const a = net.node('A').originEntry(id('D'))
    assert.ok((a?.seq as number) > seq0)
    assert.deepEqual(a?.vias, ['C'])
    assert.deepEqual(net.node('B').originEntry(id('D'))?.vias, ['A'])
    net.publish('B', 'm', 'a/x').run()
    assert.deepEqual(net.deliveredIds('D'), ['m'])
  })

  test('a neighbour with a feasible route offers it without a new announcement', () => {
    // B has two routes to D: via C (primary) and via E (alternate at the same distance);
    // A routes via B. C–D fails: B keeps E, nobody starves.
    const net = new TestNet().add('A', 'B', 'C', 'D', 'E').link('A-B', 'B-C', 'B-E', 'C-D', 'E-D').run()
    net.subscribe('D', 'a/#').run()
    const seq0 = net.node('A').originEntry(id('D'))?.seq
    net.unlink('C-D').run()
    assert.equal(net.node('A').originEntry(id('D'))?.seq, seq0, 'repaired without a new announcement')
    net.publish('A', 'm', 'a/x').run()
    assert.deepEqual(net.deliveredIds('D'), ['m'])
  })

  test('a partition withdraws routes across it; healing restores them', () => {
    // Two triangles joined by X–Y.
    const net = new TestNet({ minAnnounceIntervalMs: 0 }).add('A', 'B', 'X', 'Y', 'C', 'D').link('A-B', 'B-X', 'X-A', 'X-Y', 'Y-C', 'C-D', 'D-Y').run()
    net.subscribe('D', 'a/#').subscribe('B', 'a/#').run()
    net.unlink('X-Y').run()
    assert.equal(net.node('A').originEntry(id('D'))?.vias.length, 0, 'no route to the other side')
    assert.equal(net.node('A').routesFor('a/x').length, 1, 'only B, on this side')
    net.publish('A', 'm1', 'a/x').run()
    assert.deepEqual(net.deliveredIds('B'), ['m1'])
    assert.deepEqual(net.deliveredIds('D'), [])
    net.link('X-Y').run()
    net.publish('A', 'm2', 'a/x').run()
    assert.deepEqual(net.deliveredIds('D'), ['m2'])
    assert.deepEqual(net.deliveredIds('B'), ['m1', 'm2'])
  })

  test('an origin that leaves is withdrawn from every table', () => {
    const net = new TestNet().add('A', 'B', 'C').link('A-B', 'B-C', 'A-C').run()
    net.subscribe('C', 'a/#').run()
    net.unlink('B-C', 'A-C').run()
    assert.equal(net.node('A').originEntry(id('C'))?.vias.length, 0)
    assert.equal(net.node('B').originEntry(id('C'))?.vias.length, 0)
    assert.equal(net.node('A').routesFor('a/x').length, 0)
  })

  test('state stays within its bounds', () => {
    const d = createDisseminator<string>({ self: id('A'), params: { maxNeighbours: 2, maxLocalPatterns: 2, maxPatternsPerRecord: 2 } })
    d.neighbourUp(id('B'), 0)
    d.neighbourUp(id('C'), 0)
    assert.deepEqual(d.neighbourUp(id('D'), 0).dropped.map(x => x.reason), ['too-many-neighbours'])
    assert.deepEqual(d.neighbourUp(id('A'), 0).dropped.map(x => x.reason), ['malformed'], 'not its own neighbour')
    d.localSubscribe('a', 0)
    d.localSubscribe('b', 0)
    assert.deepEqual(d.localSubscribe('c', 0).dropped.map(x => x.reason), ['too-many-patterns'])
    const big = { origin: 'Q', seq: 1, patterns: ['a', 'b', 'c'], hops: 0, slot: 0 }
    assert.deepEqual(d.receive(id('B'), { kind: 'interest', records: [big as never] }, 0).dropped.map(x => x.reason), ['too-many-patterns'])
    assert.deepEqual(d.sizes(), { neighbours: 2, localPatterns: 2, origins: 0, routedOrigins: 0, seen: 0, routeCache: 0 })
  })
})
