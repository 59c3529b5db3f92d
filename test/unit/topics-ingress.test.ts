import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import {
  parseTopic, parsePattern, topicMatches, InvalidTopicError, DedupCache, RejectionCounter, verifyIngress, generateAgentKey, signEnvelope,
  REJECTION_REASONS, type EnvelopeFields, type NetworkId, type Topic, type IngressOptions
} from '../../src/index.ts'
import { Reorderer } from '../../src/delivery/ordering.ts'
import { retryDelay } from '../../src/routing/retry.ts'
import { peerQuality, statusAfterPing } from '../../src/net/peers.ts'
import { decodeFrame, encodeFrame } from '../../src/net/frames.ts'

describe('topics', () => {
  it('matches wildcards', () => {
    const cases: Array<[string, string, boolean]> = [
      ['a/b/c', 'a/b/c', true], ['a/b/c', 'a/b', false], ['a/*/c', 'a/b/c', true], ['a/*/c', 'a/b/d', false],
      ['*/b', 'a/b', true], ['a/*', 'a/b/c', false], ['a/#', 'a/b', true], ['a/#', 'a/b/c/d', true], ['a/#', 'a', false],
      ['#', 'a', true], ['#', 'a/b/c', true], ['a/*/#', 'a/b/c', true], ['a/*/#', 'a/b', false], ['*', 'a', true], ['*', 'a/b', false]
    ]
    for (const [p, t, want] of cases) assert.equal(topicMatches(parsePattern(p), parseTopic(t)), want, `${p} vs ${t}`)
  })

  it('validates topics and patterns', () => {
    for (const bad of ['', 'a//b', '/a', 'a/', 'a b', 'a/#', 'a/*', 'a*', 'x'.repeat(257), Array(17).fill('a').join('/'), 42]) {
      assert.throws(() => parseTopic(bad), InvalidTopicError, String(bad))
    }
    for (const bad of ['a/#/b', 'a*/b', '#a', '', 'a//#']) assert.throws(() => parsePattern(bad), InvalidTopicError, bad)
    assert.equal(parsePattern('a/*/#'), 'a/*/#')
  })
})

describe('ingress', () => {
  const key = generateAgentKey()
  const opts: IngressOptions = { network: 'test' as NetworkId, maxBytes: 4096, clockSkewMs: 30_000 }
  const now = 1_800_000_000_000
  const fields = (over: Partial<EnvelopeFields> = {}): EnvelopeFields => ({
    v: 1, net: 'test' as NetworkId, mode: 'topic', type: 'inform', from: key.id, topic: 'a/b' as Topic, ts: now, ttl: 60, hops: 2, prio: 1,
    ct: 'application/json', body: new TextEncoder().encode('1'), ...over
  })
  const reason = (bytes: Uint8Array, hops = 0, dedup = new DedupCache(), at = now): string => {
    const r = verifyIngress(bytes, hops, opts, dedup, at)
    return r.ok ? 'ok' : r.reason
  }

  it('produces every rejection reason', () => {
    const ok = signEnvelope(fields(), key)
    assert.equal(reason(ok.bytes), 'ok')
    assert.equal(reason(signEnvelope(fields({ body: new Uint8Array(5000) }), key).bytes), 'too-large')
    assert.equal(reason(Uint8Array.from([0x1c])), 'malformed')
    const t = new Uint8Array(ok.bytes); t[t.length - 1] ^= 1
    assert.equal(reason(t), 'bad-signature')
    assert.equal(reason(signEnvelope(fields({ net: 'other' as NetworkId }), key).bytes), 'wrong-network')
    assert.equal(reason(signEnvelope(fields({ ts: now - 61_000 - 30_001 }), key).bytes), 'expired')
    assert.equal(reason(signEnvelope(fields({ ts: now - 61_000 - 29_000 }), key).bytes), 'ok', 'inside the skew bound')
    assert.equal(reason(signEnvelope(fields({ ts: now + 30_001 }), key).bytes), 'from-future')
    assert.equal(reason(signEnvelope(fields({ ts: now + 30_000 }), key).bytes), 'ok', 'exactly at the skew bound')
    assert.equal(reason(ok.bytes, 3), 'hop-limit')
    const d = new DedupCache()
    assert.equal(reason(ok.bytes, 0, d), 'ok')
    assert.equal(reason(ok.bytes, 0, d), 'duplicate')
    assert.equal(reason(Uint8Array.from([0xa1, 0x61, 0x76, 0x18, 0x01])), 'non-canonical')
    assert.equal(reason(Uint8Array.from([0xa1, 0x61, 0x76, 0x01])), 'bad-field')
  })

  it('dedup forgets only expired ids and stays bounded', () => {
    const d = new DedupCache(3)
    assert.ok(d.add('x', 100, 0))
    assert.ok(!d.add('x', 100, 50))
    assert.ok(d.add('x', 300, 200), 'expired entry can be re-added')
    for (const id of ['a', 'b', 'c', 'd', 'e']) d.add(id, 10_000, 2000)
    assert.ok(d.size <= 3)
  })

  it('counts rejections per reason and keeps the recent ones', () => {
    const seen: string[] = []
    const c = new RejectionCounter({ keep: 2, onReject: (r) => seen.push(r.reason) })
    c.record({ reason: 'expired', detail: 'x' }); c.record({ reason: 'malformed', detail: 'y' }); c.record({ reason: 'expired', detail: 'z' })
    assert.equal(c.counts.expired, 2)
    assert.equal(c.total(), 3)
    assert.deepEqual(c.list().map(r => r.detail), ['z', 'y'])
    assert.deepEqual(c.list({ reason: 'expired' }).map(r => r.detail), ['z'])
    assert.deepEqual(seen, ['expired', 'malformed', 'expired'])
    assert.equal(REJECTION_REASONS.length, Object.keys(c.counts).length)
  })
})

describe('pure helpers', () => {
  it('reorders per sender, skips a gap after the wait, resets on seq 1', async () => {
    const out: string[] = []
    const r = new Reorderer<string>((x) => out.push(x), { maxWaitMs: 30 })
    r.push('s', 2, 'b'); r.push('s', 1, 'a'); r.push('s', 3, 'c'); r.push('s', 2, 'dup')
    assert.deepEqual(out, ['a', 'b', 'c'])
    r.push('s', 5, 'e')
    await new Promise(resolve => setTimeout(resolve, 60))
    assert.deepEqual(out, ['a', 'b', 'c', 'e'])
    r.push('s', 1, 'restart')
    assert.deepEqual(out.at(-1), 'restart')
    r.close()
  })

  it('backoff grows and is capped', () => {
    assert.equal(retryDelay(1, 200, 10_000, () => 1), 200)
    assert.equal(retryDelay(3, 200, 10_000, () => 1), 800)
    assert.equal(retryDelay(30, 200, 10_000, () => 1), 10_000)
    assert.equal(retryDelay(3, 200, 10_000, () => 0), 400)
  })

  it('peer quality and status', () => {
    assert.equal(peerQuality({ status: 'disconnected', pingFailures: 0 }), 0)
    assert.ok(peerQuality({ status: 'connected', latencyMs: 1, pingFailures: 0 }) > peerQuality({ status: 'connected', latencyMs: 300, pingFailures: 0 }))
    assert.ok(peerQuality({ status: 'connected', latencyMs: 1, pingFailures: 2 }) < peerQuality({ status: 'connected', latencyMs: 1, pingFailures: 0 }))
    assert.equal(statusAfterPing(600, 0), 'degraded')
    assert.equal(statusAfterPing(5, 3), 'degraded')
    assert.equal(statusAfterPing(5, 0), 'connected')
  })

  it('frames round-trip and garbage is refused', () => {
    const f = { t: 2 as const, id: 'bxyz', ok: false, code: 'X', msg: 'm' }
    assert.deepEqual(decodeFrame(encodeFrame(f)), f)
    assert.equal(decodeFrame(Uint8Array.from([0xff])), undefined)
    assert.equal(decodeFrame(encodeFrame({ t: 1, h: -1, e: new Uint8Array() } as never)), undefined)
  })
})
