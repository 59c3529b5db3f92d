import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import {
  cdfPoints, createPrng, createSimConfig, EventQueue, hopDistances, percentile, randomOverlay, renderCdfSvg,
  runSimulation, shuffle, summarizeSorted, type SimConfig, type SimResult
} from '../../src/sim/index.ts'

/** Delivery ratio of the messages published in [from, to). */
function ratioBetween (r: SimResult, from: number, to: number): number {
  let intended = 0
  let delivered = 0
  for (const m of r.perMessage) {
    if (m.at < from || m.at >= to) continue
    intended += m.intended
    delivered += m.delivered
  }
  assert.ok(intended > 0, `no intended deliveries between ${from} and ${to}`)
  return delivered / intended
}

const small: Partial<SimConfig> = { nodes: 120, messages: 30, intervalMs: 50, warmupMs: 2000, drainMs: 2000, subscribeSpreadMs: 500 }

describe('simulator building blocks', () => {
  test('the generator is seeded, forks independently, and shuffles reproducibly', () => {
    const a = createPrng(42); const b = createPrng(42); const c = createPrng(43)
    const xs = Array.from({ length: 5 }, () => a.next())
    assert.deepEqual(xs, Array.from({ length: 5 }, () => b.next()))
    assert.notDeepEqual(xs, Array.from({ length: 5 }, () => c.next()))
    for (const x of xs) assert.ok(x >= 0 && x < 1)
    assert.notEqual(createPrng(1).fork('x').next(), createPrng(1).fork('y').next())
    assert.equal(createPrng(1).fork('x').next(), createPrng(1).fork('x').next())
    assert.deepEqual(shuffle([1, 2, 3, 4, 5], createPrng(7)), shuffle([1, 2, 3, 4, 5], createPrng(7)))
    const counts = new Array(4).fill(0)
    const p = createPrng(9)
    for (let i = 0; i < 4000; i++) counts[p.int(4)]++
    for (const n of counts) assert.ok(n > 850 && n < 1150, `uniform-ish: ${counts.join(',')}`)
  })

  test('the event queue orders by time, then by insertion', () => {
    const q = new EventQueue<{ t: number, s: number, name: string }>()
    for (const [t, name] of [[5, 'e'], [1, 'a'], [3, 'c1'], [3, 'c2'], [2, 'b'], [3, 'c3']] as const) q.push({ t, s: 0, name })
    const out: string[] = []
    for (let e = q.pop(); e !== undefined; e = q.pop()) out.push(e.name)
    assert.deepEqual(out, ['a', 'b', 'c1', 'c2', 'c3', 'e'])
    const big = new EventQueue<{ t: number, s: number }>()
    const p = createPrng(3)
    for (let i = 0; i < 2000; i++) big.push({ t: p.int(100), s: 0 })
    let last = -1
    for (let e = big.pop(); e !== undefined; e = big.pop()) { assert.ok(e.t >= last); last = e.t }
  })

  test('overlays are connected, near-regular and reproducible', () => {
    const o = randomOverlay(500, 6, createPrng(1))
    const degrees = o.neighbours.map(n => n.length)
    assert.ok(Math.min(...degrees) >= 5, `min degree ${Math.min(...degrees)}`)
    assert.ok(Math.max(...degrees) <= 8, `max degree ${Math.max(...degrees)}`)
    assert.ok([...hopDistances(o, 0)].every(d => d >= 0), 'connected')
    assert.deepEqual(randomOverlay(500, 6, createPrng(1)).edges, o.edges)
    // Even a sparse overlay (degree 1) is joined into one component.
    assert.ok([...hopDistances(randomOverlay(200, 1, createPrng(2)), 0)].every(d => d >= 0))
    for (const [a, b] of o.edges) assert.ok(a < b && o.neighbours[a].includes(b) && o.neighbours[b].includes(a))
  })

  test('percentiles, summaries and CDF points', () => {
    const xs = [100, 100, 200, 200, 200, 300, 300, 400, 500, 600]
    assert.equal(percentile(xs, 50), 200)
    assert.equal(percentile(xs, 95), 600)
    assert.equal(percentile([], 50), Number.NaN)
    assert.deepEqual(summarizeSorted(xs), { count: 10, mean: 290, p50: 200, p95: 600, p99: 600, max: 600 })
    assert.deepEqual(cdfPoints(xs), [[100, 0.2], [200, 0.5], [300, 0.7], [400, 0.8], [500, 0.9], [600, 1]])
    const many = Array.from({ length: 5000 }, (_, i) => i)
    const thin = cdfPoints(many, 50)
    assert.equal(thin.length, 50)
    assert.deepEqual(thin.at(-1), [4999, 1])
  })

  test('the CDF renders as a self-contained SVG', () => {
    const svg = renderCdfSvg([
      { label: '1,000 nodes <all>', points: [[100, 0.1], [300, 0.6], [500, 1]] },
      { label: 'b', points: [[200, 0.5], [700, 1]] }
    ], { title: 'latency & such', markers: [{ x: 500, label: 'target' }], levels: [0.95] })
    assert.match(svg, /^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/)
    assert.match(svg, /<\/svg>\n$/)
    assert.equal((svg.match(/<polyline /g) ?? []).length, 2)
    assert.ok(svg.includes('1,000 nodes &lt;all&gt;') && svg.includes('latency &amp; such'), 'text is escaped')
    assert.ok(!svg.includes('NaN'))
  })

  test('configs are validated, and unbounded interest state is refused up front', () => {
    assert.throws(() => createSimConfig({ nodes: 1 }), /nodes/)
    assert.throws(() => createSimConfig({ loss: 1 }), /loss/)
    assert.throws(() => createSimConfig({ topic: 'a/#' }), /topic/)
    assert.throws(() => createSimConfig({ bogus: 1 } as never), /unknown/)
    assert.throws(() => createSimConfig({ partitions: [{ at: 10, healAt: 5, fraction: 0.5 }] }), /healAt/)
    assert.throws(() => createSimConfig({ nodes: 10_000, subscribers: 'all' }), /maxInterestEntries/)
    assert.equal(createSimConfig({ nodes: 10_000, mode: 'broadcast' }).nodes, 10_000)
  })
})

describe('simulation', () => {
  test('same seed, same results; another seed, other results', () => {
    const cfg: Partial<SimConfig> = { ...small, subscribers: 0.3, jitterMs: 30, loss: 0.01, seed: 5 }
    const a = runSimulation(cfg)
    const b = runSimulation(cfg)
    assert.deepEqual(a, b)
    const c = runSimulation({ ...cfg, seed: 6 })
    assert.notDeepEqual(c.cdf, a.cdf)
  })

  test('topic messages reach exactly the subscribers, once, along shortest paths', () => {
    const r = runSimulation({ ...small, subscribers: 0.2 })
    assert.equal(r.deliveryRatio, 1)
    assert.equal(r.duplicates, 0)
    assert.equal(r.unwanted, 0)
    assert.deepEqual(r.stretch, { mean: 1, max: 1 })
    assert.equal(r.framesOnDeadLinks, 0)
    assert.ok(r.overhead < 4, `overhead ${r.overhead}: interest routing, not a flood`)
    const flood = runSimulation({ ...small, mode: 'broadcast' })
    assert.equal(flood.deliveryRatio, 1)
    assert.ok(flood.dataFrames > 2 * r.dataFrames, 'a broadcast costs far more frames')
  })

  test('broadcast survives frame loss by redundancy; topic loss stays within (1 - loss)^hops', () => {
    const b = runSimulation({ ...small, mode: 'broadcast', loss: 0.05 })
    assert.ok(b.deliveryRatio >= 0.99, `broadcast ${b.deliveryRatio}`)
    assert.ok(b.framesLost > 0)
    const t = runSimulation({ ...small, subscribers: 0.3, loss: 0.02 })
    assert.ok(t.deliveryRatio > 0.85 && t.deliveryRatio < 1, `topic ${t.deliveryRatio}`)
  })

  test('a partition: each side keeps its own deliveries, and after the heal everyone gets new messages', () => {
    const r = runSimulation({
      nodes: 200, subscribers: 0.3, messages: 80, intervalMs: 100, warmupMs: 2000, drainMs: 2000,
      partitions: [{ at: 3000, healAt: 6500, fraction: 0.5 }], params: { minAnnounceIntervalMs: 200 }
    })
    assert.equal(ratioBetween(r, 2000, 2500), 1, 'before the cut')
    assert.equal(ratioBetween(r, 5000, 6500), 1, 'within each side once routes are repaired')
    assert.equal(ratioBetween(r, 7500, 10_000), 1, 'after the heal')
    const during = r.perMessage.filter(m => m.at >= 5000 && m.at < 6500)
    assert.ok(during.every(m => m.intended < 70), 'receivers on the other side are not counted')
    assert.ok(r.control.lostFrames > 0 && r.control.requestFrames > 0)
  })

  test('churn: nodes leave and come back with fresh state; once it stops, delivery is complete', () => {
    const r = runSimulation({
      nodes: 200, subscribers: 0.3, messages: 80, intervalMs: 100, warmupMs: 2000, drainMs: 2000,
      churn: { ratePerSec: 10, downtimeMs: 1000, from: 2000, until: 5000 }
    })
    assert.ok(r.churn.leaves >= 20, `leaves ${r.churn.leaves}`)
    assert.ok(r.deliveryRatio > 0.9, `overall ${r.deliveryRatio}`)
    assert.equal(ratioBetween(r, 7000, 10_000), 1, 'after churn')
    assert.equal(r.duplicates, 0)
  })

  test('300 nodes, everyone subscribed, 100 ms links: all delivered, p95 within 500 ms', () => {
    const r = runSimulation({ nodes: 300, degree: 6, latencyMs: 100, messages: 50, seed: 3 })
    assert.equal(r.deliveryRatio, 1)
    assert.equal(r.intended, 50 * 299)
    assert.ok(r.latency.p95 <= 500, `p95 ${r.latency.p95}`)
    assert.ok(r.latency.max <= 700, `max ${r.latency.max}`)
    assert.deepEqual(r.stretch, { mean: 1, max: 1 })
    assert.ok(r.overhead < 1.5, `overhead ${r.overhead}`)
    assert.equal(r.originsPerNode.max, 299)
    assert.equal(r.truncated, false)
  })
})
