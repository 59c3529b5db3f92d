/**
 * The benchmark harness's arithmetic (bench/lib): ratios and their orientation, the rows of
 * the one table / JSON document, the fan-out tally, the soak's trend. Pure functions, no
 * processes.
 */
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { deliveryCheck, ratio, toJsonRows, toRows, formatReport, type SystemRun } from '../../bench/lib/report.ts'
import { fanoutResult, subscribersOf } from '../../bench/lib/measure.ts'
import { slope, summarizeSoak, type Sample } from '../../bench/lib/soak.ts'
import type { SubscriberReport } from '../../bench/lib/types.ts'

const sub = (distinct: number, extra: Partial<SubscriberReport> = {}): SubscriberReport =>
  ({ received: distinct, distinct, duplicates: 0, firstAt: 1000, lastAt: 2000, badSize: 0, ...extra })

function run (system: string, msgs: number | null, fan: number | null, p50: number, p99: number): SystemRun {
  const tp = { msgsPerSec: msgs ?? 0, sent: 10, received: 10, loss: 0, duplicates: 0, complete: true, windowMs: 1, sendRate: 1 }
  const fo = { msgsPerSec: fan ?? 0, subscribers: 10, processes: 3, sent: 10, delivered: 100, loss: 0, duplicates: 0, complete: true, minPerSubscriber: 10, windowMs: 1, sendRate: 1 }
  return {
    system,
    description: system,
    throughput: msgs == null ? { ok: false, error: 'broke' } : { ok: true, value: tp },
    fanout: fan == null ? { ok: false, error: 'broke' } : { ok: true, value: fo },
    requestReply: { ok: true, value: { count: 1, timeouts: 0, meanMs: p50, p50Ms: p50, p99Ms: p99, maxMs: p99 } }
  }
}

describe('bench ratios', () => {
  test('above 1 means fedmesh is better: rates fedmesh ÷ system, latencies system ÷ fedmesh', () => {
    assert.equal(ratio('throughput', 1000, 4000), 4)
    assert.equal(ratio('fanout', 8000, 2000), 0.25)
    assert.equal(ratio('rtt_p50', 2, 0.5), 4)
    assert.equal(ratio('rtt_p99', 1, 4), 0.25)
    assert.equal(ratio('throughput', null, 5), null)
    assert.equal(ratio('rtt_p50', 1, 0), null)
  })

  test('one row per system and measure, each {system, measure, value, unit, ratio}', () => {
    const runs = [run('nats', 100_000, 200_000, 0.25, 2), run('fedmesh', 20_000, 50_000, 1, 4)]
    const rows = toJsonRows(runs, 'fedmesh', [{ system: 'jetstream', measure: 'durable publish', value: 15_000, unit: 'msgs/s', ratio: 0.5 }])
    assert.deepEqual(rows.map(r => `${r.system}/${r.measure}`), [
      'nats/throughput', 'nats/fanout', 'nats/rtt_p50', 'nats/rtt_p99',
      'fedmesh/throughput', 'fedmesh/fanout', 'fedmesh/rtt_p50', 'fedmesh/rtt_p99',
      'jetstream/durable publish'
    ])
    const get = (s: string, m: string) => rows.find(r => r.system === s && r.measure === m)
    assert.equal(get('nats', 'throughput')?.ratio, 0.2)
    assert.equal(get('nats', 'fanout')?.ratio, 0.25)
    assert.equal(get('nats', 'rtt_p50')?.ratio, 0.25)
    assert.equal(get('nats', 'rtt_p99')?.ratio, 0.5)
    assert.equal(get('fedmesh', 'fanout')?.ratio, 1)
    assert.equal(get('nats', 'rtt_p50')?.unit, 'ms')
    assert.equal(get('nats', 'fanout')?.unit, 'msgs/s')
    for (const r of rows) assert.deepEqual(['system', 'measure', 'value', 'unit', 'ratio'].filter(k => !(k in r)), [])
  })

  test('a failed measurement is a row with value and ratio null and its error, in the table too', () => {
    const runs = [run('aedes', null, null, 0.3, 1), run('fedmesh', 20_000, 50_000, 1, 4)]
    const failed = toRows(runs, 'fedmesh').filter(r => r.system === 'aedes' && r.value == null)
    assert.deepEqual(failed.map(r => [r.measure, r.ratio, r.error]), [['throughput', null, 'broke'], ['fanout', null, 'broke']])
    const text = formatReport(runs, 'fedmesh')
    assert.match(text, /aedes\s+pub\/sub 1→1\s+FAILED/)
    assert.match(text, /fedmesh\s+fan-out 1→10\s+50,000 msgs\/s/)
    assert.match(text, /fedmesh delivery check: PASS/)
  })

  test('the delivery check fails on a loss or a duplicate', () => {
    const lossy = run('fedmesh', 1, 1, 1, 1)
    if (lossy.fanout?.ok === true) lossy.fanout.value = { ...lossy.fanout.value, complete: false, loss: 0.01 }
    assert.deepEqual(deliveryCheck(lossy), ['fedmesh delivery check: FAIL (1→1 complete; fan-out LOST 1.0%; every message counted by sequence number at every subscriber)'])
    const dup = run('fedmesh', 1, null, 1, 1)
    if (dup.throughput.ok) dup.throughput.value = { ...dup.throughput.value, complete: false, duplicates: 3 }
    assert.match(deliveryCheck(dup)[0], /FAIL \(1→1 3 duplicates\;/)
  })
})

describe('bench fan-out', () => {
  test('subscribers are dealt round-robin over the processes', () => {
    const layout = { subscribers: 10, processes: 3 }
    assert.deepEqual([0, 1, 2].map(i => subscribersOf(i, layout)), [4, 3, 3])
    assert.deepEqual([0, 1].map(i => subscribersOf(i, { subscribers: 1, processes: 2 })), [1, 0])
  })

  test('complete only when every subscriber got every message exactly once', () => {
    const layout = { subscribers: 3, processes: 3 }
    const pub = { sent: 100, elapsedMs: 1000, probes: 3 }
    const all = fanoutResult([sub(100), sub(100), sub(100)], pub, layout)
    assert.equal(all.complete, true)
    assert.equal(all.loss, 0)
    assert.equal(all.delivered, 300)
    assert.equal(all.msgsPerSec, 299)
    const lossy = fanoutResult([sub(100), sub(90), sub(100)], pub, layout)
    assert.equal(lossy.complete, false)
    assert.equal(lossy.loss, 10 / 300)
    assert.equal(lossy.minPerSubscriber, 90)
    const dup = fanoutResult([sub(100), sub(100, { received: 101, duplicates: 1 }), sub(100)], pub, layout)
    assert.equal(dup.complete, false)
    assert.equal(dup.loss, 0)
    assert.equal(dup.duplicates, 1)
    assert.equal(fanoutResult([sub(100), sub(100)], pub, layout).complete, false, 'a subscriber missing altogether')
  })
})

describe('soak summary', () => {
  test('slope is least squares', () => {
    assert.equal(slope([0, 1, 2, 3], [1, 3, 5, 7]), 2)
    assert.equal(slope([1], [5]), 0)
  })

  test('the trend covers the second half only, stalls are counted per second', () => {
    // Growing for the first half (caches filling), flat after.
    const samples: Sample[] = Array.from({ length: 120 }, (_, i) => ({
      t: i + 1, rssMB: i < 59 ? 81 + i : 140, heapMB: 30, maxLoopDelayMs: i === 10 || i === 90 ? 150 : 5, count: i
    }))
    const s = summarizeSoak(samples, 100)
    assert.ok(s != null)
    assert.equal(s.rssSlopeMBPerMin, 0)
    assert.equal(s.rssEndMB, 140)
    assert.equal(s.rssMaxMB, 140)
    assert.equal(s.maxLoopDelayMs, 150)
    assert.equal(s.stallSeconds, 2)
    // The one at t = 11 s falls in the load's first 10 s (messages counted from t = 2 s on).
    assert.equal(s.warmupStallSeconds, 1)
    const growing = summarizeSoak(samples.map(x => ({ ...x, rssMB: 100 + x.t / 60 })), 100)
    assert.equal(growing?.rssSlopeMBPerMin, 1)
    assert.equal(summarizeSoak(samples.slice(0, 3), 100), null)
  })

  test('the live-heap trend takes one point per full GC, and each half has its own RSS trend', () => {
    // A full GC every 10 s; the live heap grows 2 MB/min in the first half and stays after,
    // while heap in use saws up and down between collections.
    const samples: Sample[] = Array.from({ length: 240 }, (_, i) => {
      const gcAt = Math.floor((i + 1) / 10) * 10
      return { t: i + 1, rssMB: i < 120 ? 100 + (i + 1) / 60 : 102, heapMB: 50 + (i % 10), heapAfterGcMB: gcAt === 0 ? Number.NaN : 20 + Math.min(gcAt, 120) / 30, fullGcs: gcAt / 10, maxLoopDelayMs: 1, count: i }
    })
    const s = summarizeSoak(samples, 100)
    assert.ok(s != null)
    assert.equal(s.heapAfterGcSlopeFirstHalfMBPerMin, 2)
    assert.equal(s.heapAfterGcSlopeMBPerMin, 0)
    assert.equal(s.rssSlopeFirstHalfMBPerMin, 1)
    assert.equal(s.rssSlopeMBPerMin, 0)
    // Without full GCs (or a single one) in a half there is no live-heap trend.
    assert.equal(summarizeSoak(samples.map(x => ({ ...x, heapAfterGcMB: Number.NaN })), 100)?.heapAfterGcSlopeMBPerMin, null)
  })
})
