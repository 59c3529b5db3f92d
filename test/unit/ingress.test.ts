import { test, describe } from 'node:test'
import assert from 'node:assert/strict'
import * as dagCbor from '@ipld/dag-cbor'
import {
  verifyIngress, checkEnvelopeContext, DedupCache, RejectionCounter, REJECTION_REASONS, SEMANTIC_REJECTION_REASONS, DEFAULT_INGRESS,
  type IngressOptions, type IngressResult, type RejectionReason, type RejectionRecord
} from '../../src/core/ingress.ts'
import { signEnvelope, messageIdFromBytes, SIGNATURE_DOMAIN, type EnvelopeFields } from '../../src/core/envelope.ts'
import { agentKeyFromSeed, type AgentKey } from '../../src/core/keys.ts'
import type { NetworkId, Topic } from '../../src/core/ids.ts'
import { unhex, utf8 } from '../helpers/reference.ts'

const alice = agentKeyFromSeed(unhex('0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20'))
const mallory = agentKeyFromSeed(unhex('2122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f40'))
const NOW = 1_800_000_000_000
const SKEW = 30_000
const opts: IngressOptions = { network: 'test' as NetworkId, maxBytes: 4096, clockSkewMs: SKEW }

const fields = (over: Partial<EnvelopeFields> = {}): EnvelopeFields => ({
  v: 1, net: 'test' as NetworkId, mode: 'topic', type: 'inform', from: alice.id, topic: 'a/b' as Topic, ts: NOW, ttl: 60, hops: 2, prio: 1,
  ct: 'application/json', body: utf8('{"n":1}'), ...over
})
const wire = (over: Partial<EnvelopeFields> = {}): Uint8Array => signEnvelope(fields(over), alice).bytes

/** Signs `f` with `signer` whatever `f.from` says: how a forger would build an envelope. */
function signAs (f: EnvelopeFields, signer: AgentKey): Uint8Array {
  const { multihash } = messageIdFromBytes(dagCbor.encode(f))
  const sig = signer.sign(Uint8Array.from([...SIGNATURE_DOMAIN, ...multihash]))
  return dagCbor.encode({ ...f, sig })
}

function check (bytes: Uint8Array, { hop = 0, dedup = new DedupCache(), now = NOW } = {}): IngressResult {
  return verifyIngress(bytes, hop, opts, dedup, now)
}
const reason = (r: IngressResult): string => r.ok ? 'ok' : r.reason

describe('verifyIngress', () => {
  const produced = new Set<RejectionReason>()
  const expect = (bytes: Uint8Array, want: RejectionReason, o: Parameters<typeof check>[1] = {}): IngressResult => {
    const r = check(bytes, o)
    assert.equal(reason(r), want)
    if (!r.ok) { produced.add(r.reason); assert.ok(r.detail.length > 0) }
    return r
  }

  test('defaults are the documented ones', () => {
    assert.equal(DEFAULT_INGRESS.clockSkewMs, 30_000)
    assert.equal(DEFAULT_INGRESS.maxBytes, 1024 * 1024)
  })

  test('accepts a valid envelope and returns it', () => {
    const env = signEnvelope(fields(), alice)
    const r = check(env.bytes)
    assert.ok(r.ok)
    assert.equal(r.envelope.id, env.id)
    assert.equal(r.envelope.from, alice.id)
    assert.deepEqual(r.envelope.body, utf8('{"n":1}'))
  })

  test('too-large: one byte over the limit; exactly the limit is accepted', () => {
    // Find a body length whose envelope is exactly maxBytes long.
    let len = 3000
    let bytes = wire({ body: new Uint8Array(len) })
    for (let i = 0; i < 10 && bytes.length !== opts.maxBytes; i++) {
      len += opts.maxBytes - bytes.length
      bytes = wire({ body: new Uint8Array(len) })
    }
    assert.equal(bytes.length, opts.maxBytes)
    assert.equal(reason(check(bytes)), 'ok')
    const over = wire({ body: new Uint8Array(len + 1) })
    assert.equal(over.length, opts.maxBytes + 1)
    const r = expect(over, 'too-large')
    assert.equal(r.ok ? undefined : r.id, undefined, 'no id before decoding')
  })

  test('malformed: garbage, truncation, trailing bytes, not a map', () => {
    const good = wire()
    for (const bytes of [
      new Uint8Array(0), Uint8Array.from([0xff]), Uint8Array.from([0x1c]), utf8('{"v":1}'),
      good.subarray(0, good.length - 1), Uint8Array.from([...good, 0x00]), dagCbor.encode([1, 2]), dagCbor.encode('map'), dagCbor.encode(null)
    ]) expect(bytes, 'malformed')
  })

  test('non-canonical: unsorted keys, non-minimal integer, indefinite-length map', () => {
    const good = wire()
    const obj = dagCbor.decode(good) as Record<string, unknown>
    // Keys in reverse canonical order.
    const entries = Object.entries(obj).reverse()
    const unsorted = Buffer.concat([Buffer.from([0xa0 + entries.length]), ...entries.flatMap(([k, v]) => [dagCbor.encode(k), dagCbor.encode(v as never)])])
    expect(unsorted, 'non-canonical')
    // `hops` 2 written as 0x18 0x02 instead of 0x02.
    const hopsKey = Buffer.from('64686f707302', 'hex')
    const at = Buffer.from(good).indexOf(hopsKey)
    assert.ok(at > 0)
    expect(Buffer.concat([good.subarray(0, at + 5), Buffer.from([0x18, 0x02]), good.subarray(at + 6)]), 'non-canonical')
    // The same map with an indefinite-length header.
    expect(Buffer.concat([Buffer.from([0xbf]), good.subarray(1), Buffer.from([0xff])]), 'non-canonical')
  })

  test('bad-field: an unknown field, a missing signature', () => {
    const obj = dagCbor.decode(wire()) as Record<string, unknown>
    expect(dagCbor.encode({ ...obj, extra: 1 }), 'bad-field')
    const { sig: _sig, ...unsigned } = obj
    expect(dagCbor.encode(unsigned), 'bad-field')
    expect(dagCbor.encode({ ...obj, ttl: 0 }), 'bad-field')
  })

  test('bad-signature: forged (signed by a key other than `from`), or a flipped signature bit', () => {
    // The same construction with the right key is accepted, so the forgery fails only for its key.
    assert.equal(reason(check(signAs(fields(), alice))), 'ok')
    expect(signAs(fields(), mallory), 'bad-signature')
    const t = new Uint8Array(wire())
    const sigAt = Buffer.from(t).indexOf(Buffer.from('6373696758', 'hex')) + 6
    t[sigAt + 5] ^= 0x01
    expect(t, 'bad-signature')
  })

  test('wrong-network', () => {
    const r = expect(wire({ net: 'other' as NetworkId }), 'wrong-network')
    assert.equal(r.ok ? undefined : r.id, signEnvelope(fields({ net: 'other' as NetworkId }), alice).id, 'context rejections carry the id')
  })

  test('from-future: beyond the skew bound; exactly at the bound is accepted', () => {
    assert.equal(reason(check(wire({ ts: NOW + SKEW }))), 'ok')
    expect(wire({ ts: NOW + SKEW + 1 }), 'from-future')
  })

  test('expired: after ts + ttl + skew; exactly at the bound is accepted', () => {
    const ttl = 60
    assert.equal(reason(check(wire({ ts: NOW - ttl * 1000 - SKEW, ttl }))), 'ok')
    expect(wire({ ts: NOW - ttl * 1000 - SKEW - 1, ttl }), 'expired')
    // The same bytes, judged at different times.
    const bytes = wire({ ttl: 1 })
    assert.equal(reason(check(bytes, { now: NOW + 1000 + SKEW })), 'ok')
    assert.equal(reason(check(bytes, { now: NOW + 1000 + SKEW + 1 })), 'expired')
    assert.equal(reason(check(bytes, { now: NOW - SKEW })), 'ok')
    assert.equal(reason(check(bytes, { now: NOW - SKEW - 1 })), 'from-future')
  })

  test('hop-limit: the frame hop count against the signed limit', () => {
    const bytes = wire({ hops: 2 })
    assert.equal(reason(check(bytes, { hop: 2 })), 'ok')
    expect(bytes, 'hop-limit', { hop: 3 })
    const local = wire({ hops: 0 })
    assert.equal(reason(check(local, { hop: 0 })), 'ok')
    assert.equal(reason(check(local, { hop: 1 })), 'hop-limit')
  })

  test('duplicate: the same id twice; a different nonce is a different message', () => {
    const dedup = new DedupCache()
    const bytes = wire()
    assert.equal(reason(check(bytes, { dedup })), 'ok')
    const r = expect(bytes, 'duplicate', { dedup })
    assert.equal(r.ok ? undefined : r.id, signEnvelope(fields(), alice).id)
    // Re-signing the same fields gives the same bytes, hence the same id.
    assert.equal(reason(check(wire(), { dedup })), 'duplicate')
    assert.equal(reason(check(wire({ nonce: 1 }), { dedup })), 'ok')
    // A fresh cache (another node) accepts it.
    assert.equal(reason(check(bytes)), 'ok')
  })

  test('a replay is refused until and after the id is forgotten', () => {
    const dedup = new DedupCache()
    const bytes = wire({ ttl: 1 })
    const last = NOW + 1000 + SKEW
    assert.equal(reason(check(bytes, { dedup })), 'ok')
    assert.equal(reason(check(bytes, { dedup, now: last })), 'duplicate', 'remembered through the last accepted instant')
    assert.equal(reason(check(bytes, { dedup, now: last + 1 })), 'expired')
    assert.equal(reason(check(bytes, { dedup, now: last + 5000 })), 'expired')
  })

  test('rejected envelopes are not remembered', () => {
    const dedup = new DedupCache()
    const bytes = wire({ hops: 1 })
    assert.equal(reason(check(bytes, { dedup, hop: 2 })), 'hop-limit')
    assert.equal(dedup.size, 0)
    assert.equal(reason(check(bytes, { dedup, hop: 1 })), 'ok', 'accepted on a shorter path')
  })

  test('checks run in the documented order', () => {
    // bad signature before wrong network
    assert.equal(reason(check(signAs(fields({ net: 'other' as NetworkId }), mallory))), 'bad-signature')
    // wrong network before freshness
    assert.equal(reason(check(wire({ net: 'other' as NetworkId, ts: NOW + 10 * SKEW }))), 'wrong-network')
    // from-future before hop limit
    assert.equal(reason(check(wire({ ts: NOW + 2 * SKEW }), { hop: 99 })), 'from-future')
    // expired before hop limit
    assert.equal(reason(check(wire({ ts: 0 }), { hop: 99 })), 'expired')
    // hop limit before duplicate
    const dedup = new DedupCache()
    const bytes = wire()
    check(bytes, { dedup })
    assert.equal(reason(check(bytes, { dedup, hop: 99 })), 'hop-limit')
    // size before anything: garbage over the limit is too-large, not malformed
    assert.equal(reason(check(new Uint8Array(opts.maxBytes + 1).fill(0xff))), 'too-large')
  })

  test('DedupCache tells message ids apart by their digest, and other strings by all of them', () => {
    const dedup = new DedupCache()
    const ids: string[] = []
    for (let i = 0; i < 50_000; i++) ids.push(messageIdFromBytes(Uint8Array.of(i & 255, (i >> 8) & 255, i >> 16)).id)
    for (const id of ids) assert.ok(dedup.add(id, 2_000, 1_000), 'a new id is not a duplicate')
    for (const id of ids) assert.ok(dedup.has(id, 1_000))
    // Two 56-character strings that differ only outside the digest characters of an id.
    const a = 'x'.repeat(56)
    const b = 'x'.repeat(55) + 'y'
    assert.ok(dedup.add(a, 2_000, 1_000))
    assert.ok(dedup.add(b, 2_000, 1_000))
    assert.ok(!dedup.add(ids[7], 2_000, 1_000))
  })

  test('verifyIngress never throws on arbitrary bytes', () => {
    let seed = 12345
    const rand = (): number => { seed = (seed * 1103515245 + 12345) & 0x7fffffff; return seed }
    const good = wire()
    for (let i = 0; i < 500; i++) {
      const bytes = new Uint8Array(good)
      for (let j = 0; j < 1 + (rand() % 4); j++) bytes[rand() % bytes.length] = rand() & 0xff
      const r = check(bytes.subarray(0, bytes.length - (rand() % 3)))
      if (!r.ok) assert.ok((REJECTION_REASONS as readonly string[]).includes(r.reason))
    }
  })

  test('every envelope reason in REJECTION_REASONS was produced above', () => {
    // The semantic reasons come from the node's schema check (test/semantic/node.test.ts).
    assert.deepEqual([...produced].sort(), REJECTION_REASONS.filter(r => !(SEMANTIC_REJECTION_REASONS as readonly string[]).includes(r)).sort())
  })
})

describe('checkEnvelopeContext', () => {
  test('is pure given now', () => {
    const env = signEnvelope(fields({ ttl: 10 }), alice)
    assert.equal(reason(checkEnvelopeContext(env, 0, opts, NOW)), 'ok')
    assert.equal(reason(checkEnvelopeContext(env, 0, { ...opts, clockSkewMs: 0 }, NOW + 10_001)), 'expired')
    assert.equal(reason(checkEnvelopeContext(env, 0, { ...opts, clockSkewMs: 0 }, NOW + 10_000)), 'ok')
    assert.equal(reason(checkEnvelopeContext(env, 0, { ...opts, clockSkewMs: 0 }, NOW - 1)), 'from-future')
    assert.equal(reason(checkEnvelopeContext(env, 0, { ...opts, network: 'x' as NetworkId }, NOW)), 'wrong-network')
  })
})

describe('DedupCache', () => {
  test('remembers an id through its expiry instant, then forgets it', () => {
    const d = new DedupCache()
    assert.equal(d.add('x', 100, 0), true)
    assert.equal(d.has('x'), true)
    assert.equal(d.add('x', 100, 50), false)
    assert.equal(d.add('x', 100, 100), false, 'still remembered at expiresAt')
    assert.equal(d.add('x', 300, 101), true, 'forgotten after expiresAt')
    assert.equal(d.add('x', 300, 200), false, 'the new expiry applies')
    assert.equal(d.size, 1)
  })

  test('sweeps expired ids', () => {
    const d = new DedupCache()
    for (let i = 0; i < 10; i++) d.add(`old${i}`, 500, 0)
    d.add('live', 100_000, 0)
    assert.equal(d.size, 11)
    d.add('new', 100_000, 5000)
    assert.equal(d.size, 2)
    assert.equal(d.has('old0'), false)
    assert.equal(d.has('live'), true)
  })

  test('is bounded: when full, the oldest-inserted ids go first', () => {
    const d = new DedupCache(3)
    for (const id of ['a', 'b', 'c']) assert.ok(d.add(id, 10_000, 0))
    assert.ok(d.add('d', 10_000, 0))
    assert.equal(d.size, 3)
    assert.deepEqual(['a', 'b', 'c', 'd'].map(id => d.has(id)), [false, true, true, true])
    assert.ok(d.add('e', 10_000, 1))
    assert.deepEqual(['b', 'c', 'd', 'e'].map(id => d.has(id)), [false, true, true, true])
    for (let i = 0; i < 100; i++) d.add(`x${i}`, 10_000, 2)
    assert.equal(d.size, 3)
  })

  test('when full, expired ids are dropped before live ones', () => {
    const d = new DedupCache(3)
    d.add('short', 500, 0)
    d.add('b', 10_000, 0)
    d.add('c', 10_000, 0)
    d.add('d', 10_000, 2000)
    assert.deepEqual(['short', 'b', 'c', 'd'].map(id => d.has(id)), [false, true, true, true])
  })

  test('a re-added expired id does not evict anything', () => {
    const d = new DedupCache(2)
    d.add('a', 100, 0)
    d.add('b', 10_000, 0)
    assert.ok(d.add('a', 10_000, 200))
    assert.deepEqual([d.has('a'), d.has('b'), d.size], [true, true, 2])
  })

  test('behaves like a Map of id → expiry (the model) under random adds, deletes, sweeps and evictions', () => {
    // The model: what the cache promises, written the obvious way.
    class Model {
      readonly m = new Map<string, number>()
      last = 0
      readonly max: number
      constructor (max: number) { this.max = max }
      add (id: string, exp: number, now: number): boolean {
        const seen = this.m.get(id)
        if (seen !== undefined && seen >= now) return false
        if (now - this.last > 1000) { this.last = now; for (const [k, e] of this.m) if (e < now) this.m.delete(k) }
        if (seen === undefined) for (const k of this.m.keys()) { if (this.m.size < this.max) break; this.m.delete(k) }
        this.m.set(id, exp)
        return true
      }
    }
    let seed = 7
    const rand = (n: number): number => { seed = (seed * 1103515245 + 12345) & 0x7fffffff; return seed % n }
    for (const max of [1, 5, 64, 3000]) {
      const d = new DedupCache(max)
      const model = new Model(max)
      let now = 0
      for (let i = 0; i < 20_000; i++) {
        now += rand(40)
        const id = `m${rand(max * 3)}`
        const exp = now + 100 + rand(3000)
        if (rand(10) === 0) {
          // A message refused after it was recorded is forgotten (DedupCache.delete).
          d.delete(id)
          model.m.delete(id)
          assert.equal(d.has(id), false)
          continue
        }
        assert.equal(d.add(id, exp, now), model.add(id, exp, now), `add #${i} (${id}) with max ${max}`)
        assert.equal(d.size, model.m.size, `size after add #${i} with max ${max}`)
      }
      for (let k = 0; k < max * 3; k++) assert.equal(d.has(`m${k}`), model.m.has(`m${k}`))
    }
  })

  test('matches the model across growth and compaction moves (many seeds; ids kept until removed)', () => {
    // Ids that do not expire, so every difference is one of order or of bookkeeping: the
    // oldest-first eviction when full, deletes of held and moved ids, and lookups while a
    // move is under way (the cache moves 64 slots per insert, 1,024 per sweep).
    for (let seed0 = 1; seed0 <= 8; seed0++) {
      let seed = seed0 * 7919
      const rand = (n: number): number => { seed = (seed * 1103515245 + 12345) & 0x7fffffff; return seed % n }
      // 300: full most of the time, with moves (from 512 slots to 1,024, then compactions)
      // while the oldest ids are evicted.
      const max = [300, 2500, 300, 5000][seed0 % 4]
      const d = new DedupCache(max)
      const model = new Map<string, number>()
      let now = 0
      let next = 0
      const ids: string[] = []
      const pick = (): string => ids.length > 0 && rand(3) > 0 ? ids[rand(ids.length)] : `n${next++}`
      let moves = 0
      for (let phase = 0; phase < 4; phase++) {
        // Even phases grow the cache; odd ones delete about as much as they add, leaving
        // holes and tombstones that force same-size moves (compactions).
        const deletes = phase % 2 === 0 ? 20 : 48
        const movedBefore = d.movedSlots
        for (let i = 0; i < 4 * max; i++) {
          now += rand(3)
          const op = rand(100)
          const id = pick()
          if (op < deletes) {
            d.delete(id)
            model.delete(id)
          } else if (op < deletes + 10) {
            assert.equal(d.has(id, now), model.has(id), `has ${id} (seed ${seed0}, phase ${phase}, op ${i})`)
            continue
          } else if (op < deletes + 11) {
            d.sweep(now)
          } else {
            const fresh = !model.has(id)
            if (fresh) for (const k of model.keys()) { if (model.size < max) break; model.delete(k) }
            if (fresh) model.set(id, now)
            assert.equal(d.add(id, 1e12, now), fresh, `add ${id} (seed ${seed0}, phase ${phase}, op ${i})`)
            if (fresh) ids.push(id)
          }
          assert.equal(d.size, model.size, `size (seed ${seed0}, phase ${phase}, op ${i})`)
          if (ids.length > 4 * max) ids.splice(0, max)
        }
        moves += d.movedSlots - movedBefore
        for (const id of ids) assert.equal(d.has(id), model.has(id), `end of phase ${phase}: ${id}`)
      }
      // Growth (max 2,500 and 5,000: from 1,024 slots to 4,096 and 8,192) or compactions ran.
      assert.ok(moves > max, `moved ${moves} slots in all (seed ${seed0})`)
    }
  })

  test('when full during a move, evicts the oldest ids first (moved ones before those still to move)', () => {
    // 1,000 ids in a ring of 1,024; removing some in the middle and adding more fills the
    // ring (holes included), which starts a move to 2,048 slots while the cache is full.
    for (const holes of [30, 100, 400]) {
      const d = new DedupCache(1000)
      const model = new Map<string, true>()
      const add = (id: string): void => {
        if (!model.has(id)) for (const k of model.keys()) { if (model.size < 1000) break; model.delete(k) }
        model.set(id, true)
        d.add(id, 1e12, 0)
      }
      for (let i = 0; i < 1000; i++) add(`a${i}`)
      for (let i = 0; i < holes; i++) { d.delete(`a${300 + 2 * i}`); model.delete(`a${300 + 2 * i}`) }
      const movedBefore = d.movedSlots
      for (let i = 0; i < holes + 200; i++) {
        add(`b${i}`)
        assert.equal(d.size, model.size)
        // Now and then an old id again (a duplicate, or a fresh add if it was evicted).
        if (i % 7 === 0) add(`a${i * 3}`)
      }
      assert.ok(d.movedSlots > movedBefore, 'a move ran')
      for (const p of ['a', 'b']) for (let i = 0; i < 1000; i++) assert.equal(d.has(`${p}${i}`), model.has(`${p}${i}`), `${p}${i} with ${holes} holes`)
    }
  })

  test('never moves more than a bounded number of slots in one add, however large it grows', () => {
    // The old resize moved every id in one add (36 ms at 2^19 ids); now each insert moves
    // at most 64 slots and the sweep an add may run at most 1,024.
    const n = 300_000
    const d = new DedupCache(n)
    let most = 0
    let mostWithoutSweep = 0
    let now = 0
    let lastSweep = 0
    for (let i = 0; i < n; i++) {
      const before = d.movedSlots
      now += 3
      // add sweeps when a second has passed since the last sweep.
      const sweeps = now - lastSweep > 1000
      if (sweeps) lastSweep = now
      assert.ok(d.add(`id${i}`, 1e12, now))
      const moved = d.movedSlots - before
      most = Math.max(most, moved)
      if (!sweeps) mostWithoutSweep = Math.max(mostWithoutSweep, moved)
    }
    assert.equal(d.size, n)
    // It grew from 1,024 slots to 2^19, so it moved at least the 2^18 ids of the last doubling.
    assert.ok(d.movedSlots >= 2 ** 18, `moved ${d.movedSlots} in all`)
    assert.ok(most <= 64 + 1024, `one add moved ${most} slots`)
    assert.ok(mostWithoutSweep <= 64, `one add without a sweep moved ${mostWithoutSweep} slots`)
    for (let i = 0; i < n; i += 997) assert.equal(d.has(`id${i}`), true)
    assert.equal(d.has('id-absent'), false)
  })

  test('compaction is incremental too: a cache churned by deletes moves a bounded number of slots per add', () => {
    const d = new DedupCache(100_000)
    for (let i = 0; i < 60_000; i++) d.add(`keep${i}`, 1e12, 0)
    let most = 0
    const movedBefore = d.movedSlots
    for (let i = 0; i < 400_000; i++) {
      const before = d.movedSlots
      d.add(`churn${i}`, 1e12, 0)
      d.delete(`churn${i}`)
      most = Math.max(most, d.movedSlots - before)
    }
    assert.ok(d.movedSlots - movedBefore >= 60_000, 'the churn forced at least one compaction')
    assert.ok(most <= 64, `one add moved ${most} slots`)
    assert.equal(d.size, 60_000)
    for (let i = 0; i < 60_000; i += 101) assert.equal(d.has(`keep${i}`), true)
  })

  test('adding to a full cache costs O(1), not a scan of the cache', () => {
    const n = 100_000
    const d = new DedupCache(n)
    for (let i = 0; i < n; i++) d.add(`id${i}`, 1e12, 0)
    const start = performance.now()
    for (let i = 0; i < 20_000; i++) d.add(`more${i}`, 1e12, 0)
    const ms = performance.now() - start
    assert.equal(d.size, n)
    assert.ok(ms < 2000, `20 000 adds to a full cache took ${ms.toFixed(0)} ms`)
  })
})

describe('RejectionCounter', () => {
  test('starts at zero for every reason', () => {
    const c = new RejectionCounter()
    assert.deepEqual(Object.keys(c.counts).sort(), [...REJECTION_REASONS].sort())
    assert.ok(Object.values(c.counts).every(n => n === 0))
    assert.equal(c.total(), 0)
    assert.deepEqual(c.list(), [])
  })

  test('counts per reason, keeps the most recent, newest first', () => {
    const seen: RejectionRecord[] = []
    const c = new RejectionCounter({ keep: 3, onReject: (r) => seen.push(r) })
    const before = Date.now()
    c.record({ reason: 'expired', detail: 'e1', peer: 'p1' })
    c.record({ reason: 'malformed', detail: 'm1' })
    c.record({ reason: 'expired', detail: 'e2', id: 'bxyz' as never })
    c.record({ reason: 'duplicate', detail: 'd1' })
    assert.equal(c.counts.expired, 2)
    assert.equal(c.counts.malformed, 1)
    assert.equal(c.counts.duplicate, 1)
    assert.equal(c.counts['bad-signature'], 0)
    assert.equal(c.total(), 4)
    assert.deepEqual(c.list().map(r => r.detail), ['d1', 'e2', 'm1'], 'only `keep` records are kept')
    assert.deepEqual(c.list({ reason: 'expired' }).map(r => r.detail), ['e2'])
    assert.deepEqual(c.list({ limit: 1 }).map(r => r.detail), ['d1'])
    assert.deepEqual(seen.map(r => r.detail), ['e1', 'm1', 'e2', 'd1'])
    assert.equal(seen[0].peer, 'p1')
    assert.equal(seen[2].id, 'bxyz')
    assert.ok(seen.every(r => r.at >= before && r.at <= Date.now()))
  })
})

describe('ingress: compressed payloads', () => {
  test('rejects a gzip body that does not inflate, or inflates past the limit', async () => {
    const { gzipSync } = await import('node:zlib')
    const { generateAgentKey, signEnvelope, verifyIngress, DedupCache } = await import('../../src/index.ts')
    const key = generateAgentKey()
    const opts = { network: 'test' as never, maxBytes: 4096, clockSkewMs: 30_000 }
    const mk = (body: Uint8Array) => signEnvelope({
      v: 1, net: 'test' as never, mode: 'topic', type: 'inform', from: key.id, topic: 'a/b' as never, ts: Date.now(), ttl: 60, hops: 2, prio: 1,
      ct: 'text/plain', enc: 'gzip', body
    }, key).bytes
    const reason = (b: Uint8Array): string => { const r = verifyIngress(b, 0, opts, new DedupCache()); return r.ok ? 'ok' : r.reason }
    assert.equal(reason(mk(new Uint8Array(gzipSync(Buffer.from('hello'))))), 'ok')
    assert.equal(reason(mk(Uint8Array.from([1, 2, 3, 4]))), 'bad-field')
    assert.equal(reason(mk(new Uint8Array(gzipSync(Buffer.alloc(100_000))))), 'bad-field')
  })
})
