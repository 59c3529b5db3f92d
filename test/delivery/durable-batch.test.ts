/**
 * Batched durable sends: the direct envelope encoder lays out `dlv.durable`; `puts`
 * requests (decoding, per-envelope answers); the PutBatcher; and, across two nodes, durable
 * sends made in one tick share one batch signature and one `puts` request while each is
 * still stored or refused on its own (a quota refusal of one never affects another).
 */
import { test, describe, after } from 'node:test'
import assert from 'node:assert/strict'
import * as dagCbor from '@ipld/dag-cbor'
import { generateAgentKey } from '../../src/core/keys.ts'
import { batchOf, decodeEnvelope, encodeEnvelopeFields, signEnvelopes, type EnvelopeFields } from '../../src/core/envelope.ts'
import type { NetworkId } from '../../src/core/ids.ts'
import { decodeRequest, decodeResponse, MAX_PUTS, MAX_PUTS_BYTES, type DurableAnswer } from '../../src/delivery/wire.ts'
import { PUTS_PER_REQUEST } from '../../src/delivery/put-batch.ts'
import { PutBatcher, type PutTarget, type PutWaiter } from '../../src/delivery/put-batch.ts'
import type { Message, Subscription } from '../../src/node/types.ts'
import { Nodes, within } from '../helpers/api.ts'
import { plainDurablePeer } from '../helpers/peers.ts'
import type { Libp2p } from 'libp2p'

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')

describe('durable envelopes on the direct encoder', () => {
  test('dlv.durable is laid out byte-identically to DAG-CBOR (with sig and bp)', () => {
    const key = generateAgentKey()
    for (const dlv of [{ durable: true }, { seq: 1_700_000_000_000_000, durable: true }, { ack: true, seq: 5, dedup: false, maxMs: 9000, durable: false, retries: 3 }]) {
      const f: EnvelopeFields = {
        v: 1, net: 'fedmesh' as NetworkId, mode: 'direct', type: 'inform', from: key.id, to: [key.id], ts: 1_700_000_000_000, ttl: 60, hops: 8, prio: 1,
        dlv, ct: 'application/octet-stream', body: new Uint8Array(256).fill(0x61)
      }
      const sig = new Uint8Array(64).fill(5)
      const bp = { n: 3, i: 2, path: [new Uint8Array(32).fill(9)] }
      assert.equal(hex(encodeEnvelopeFields(f)), hex(dagCbor.encode(f)))
      assert.equal(hex(encodeEnvelopeFields(f, sig, bp)), hex(dagCbor.encode({ ...f, sig, bp: [3, 2, bp.path] })))
      // The prepared path splices sig and bp in: marks are set (not the generic fallback).
      const marks = { v: 0, net: 0 }
      encodeEnvelopeFields(f, undefined, undefined, marks)
      assert.ok(marks.v > 0 && marks.net > marks.v)
    }
  })
})

describe('puts requests', () => {
  test('well-formed puts decode; malformed ones are refused', () => {
    const e = new Uint8Array([1, 2, 3])
    assert.equal(decodeRequest(dagCbor.encode({ r: 1, op: 'puts', es: [e, e] }))?.op, 'puts')
    assert.equal(decodeRequest(dagCbor.encode({ r: 1, op: 'puts', es: [e], home: '12D3KooW', ho: true }))?.op, 'puts')
    for (const bad of [
      { r: 1, op: 'puts', es: [] },
      { r: 1, op: 'puts', es: e },
      { r: 1, op: 'puts', es: [e, 'x'] },
      { r: 1, op: 'puts', es: [e], ho: 1 },
      { r: 1, op: 'puts', es: [e], home: '' },
      { r: 1, op: 'puts', es: Array.from({ length: MAX_PUTS + 1 }, () => e) },
      { r: 1, op: 'puts', es: [new Uint8Array(MAX_PUTS_BYTES), e] }
    ]) assert.equal(decodeRequest(dagCbor.encode(bad)), undefined, JSON.stringify(Object.keys(bad)))
  })

  test('responses carry one answer per envelope; malformed answers are refused', () => {
    const ok = decodeResponse(dagCbor.encode({ r: 1, ok: true, rs: [{ ok: true, st: 'stored', n: 0 }, { ok: false, code: 'QuotaExceededError', msg: 'full', d: { quota: 'sender-count' } }] }))
    assert.equal(ok?.ok === true ? ok.rs?.length : -1, 2)
    assert.equal(decodeResponse(dagCbor.encode({ r: 1, ok: true, rs: [{ ok: true, st: 'lost' }] })), undefined)
    assert.equal(decodeResponse(dagCbor.encode({ r: 1, ok: true, rs: [{ ok: false, code: 'X' }] })), undefined)
    assert.equal(decodeResponse(dagCbor.encode({ r: 1, ok: true, rs: [{ ok: true, rs: [] }] })), undefined)
    assert.equal(decodeResponse(dagCbor.encode({ r: 1, ok: true, rs: 'x' })), undefined)
    // The all-alike answer of a putb: `st` alone, a known status only.
    assert.equal(decodeResponse(dagCbor.encode({ r: 1, ok: true, st: 'duplicate' }))?.ok, true)
    assert.equal(decodeResponse(dagCbor.encode({ r: 1, ok: true, st: 'lost' })), undefined)
  })
})

describe('putb requests', () => {
  test('well-formed putb decode; malformed ones are refused', () => {
    const s = new Uint8Array(64)
    const e = new Uint8Array(40)
    const h = new Uint8Array(32)
    assert.equal(decodeRequest(dagCbor.encode({ r: 1, op: 'putb', s, l: [e, e] }))?.op, 'putb')
    assert.equal(decodeRequest(dagCbor.encode({ r: 1, op: 'putb', s, l: [h, e, h], home: '12D3KooW', ho: true }))?.op, 'putb')
    for (const bad of [
      { r: 1, op: 'putb', s, l: [e] },
      { r: 1, op: 'putb', s, l: [h, h] },
      { r: 1, op: 'putb', s: new Uint8Array(63), l: [e, e] },
      { r: 1, op: 'putb', l: [e, e] },
      { r: 1, op: 'putb', s, l: [e, 'x'] },
      { r: 1, op: 'putb', s, l: [e, e], ho: 1 },
      { r: 1, op: 'putb', s, l: Array.from({ length: 1025 }, () => e) },
      { r: 1, op: 'putb', s, l: [new Uint8Array(MAX_PUTS_BYTES), e] }
    ]) assert.equal(decodeRequest(dagCbor.encode(bad)), undefined, JSON.stringify(Object.keys(bad)))
  })
})

describe('PutBatcher', () => {
  const target: PutTarget = { peer: 'p1', addrs: [] }

  test('puts of one turn to one target go out together, answers in order', async () => {
    const calls: Array<{ t: PutTarget, es: Uint8Array[] }> = []
    const b = new PutBatcher(async (t, es) => {
      calls.push({ t, es })
      return es.map((e): DurableAnswer => e[0] % 2 === 0 ? { ok: true, st: 'stored' } : { ok: false, code: 'QuotaExceededError', msg: `no ${e[0]}` })
    })
    const answers = await Promise.all([0, 1, 2, 3].map(async i => await b.put(target, new Uint8Array([i]))))
    const other = await b.put({ peer: 'p2', addrs: [] }, new Uint8Array([4]))
    assert.equal(calls.length, 2)
    assert.deepEqual(calls[0].es.map(e => e[0]), [0, 1, 2, 3])
    assert.deepEqual(answers.map(a => a.ok), [true, false, true, false])
    assert.equal(answers[1].ok === false ? answers[1].msg : '', 'no 1')
    assert.equal(other.ok, true)
  })

  test('a lone put to an idle node goes out without waiting a turn; puts to a busy node gather for the next turn', async () => {
    const calls: number[][] = []
    let release!: () => void
    const gate = new Promise<void>(resolve => { release = resolve })
    const b = new PutBatcher(async (_t, es) => {
      calls.push(es.map(e => e[0]))
      if (calls.length === 1) await gate
      return es.map((): DurableAnswer => ({ ok: true, st: 'stored' }))
    })
    let turned = false
    setImmediate(() => { turned = true })
    const p1 = b.put(target, new Uint8Array([1]))
    // A few rounds of promise jobs, no turn of the event loop: the request is out.
    for (let i = 0; i < 3; i++) await Promise.resolve()
    assert.equal(turned, false)
    assert.deepEqual(calls, [[1]])
    // The first request is unanswered: these two wait for the next turn and go together.
    const p2 = b.put(target, new Uint8Array([2]))
    const p3 = b.put(target, new Uint8Array([3]))
    for (let i = 0; i < 3; i++) await Promise.resolve()
    assert.deepEqual(calls, [[1]])
    await new Promise(resolve => setImmediate(resolve))
    assert.deepEqual(calls, [[1], [2, 3]])
    release()
    assert.deepEqual((await Promise.all([p1, p2, p3])).map(a => a.ok), [true, true, true])
    // Idle again: the next lone put goes out at once.
    const p4 = b.put(target, new Uint8Array([4]))
    await Promise.resolve()
    assert.deepEqual(calls.at(-1), [4])
    assert.equal((await p4).ok, true)
  })

  test('a full batch is sent at once; a failed request rejects its puts only', async () => {
    let n = 0
    const b = new PutBatcher(async (_t, es) => {
      n++
      if (n === 1) throw new Error('link down')
      return es.map((): DurableAnswer => ({ ok: true, st: 'stored' }))
    })
    assert.ok(PUTS_PER_REQUEST <= MAX_PUTS)
    const ps = Array.from({ length: PUTS_PER_REQUEST + 3 }, async (_, i) => await b.put(target, new Uint8Array([i & 255])))
    const settled = await Promise.allSettled(ps)
    assert.equal(n, 2)
    assert.equal(settled.filter(s => s.status === 'rejected').length, PUTS_PER_REQUEST)
    assert.equal(settled.filter(s => s.status === 'fulfilled').length, 3)
  })

  test('a caller that aborts stops waiting; the others get their answers', async () => {
    let release!: () => void
    const gate = new Promise<void>(resolve => { release = resolve })
    const b = new PutBatcher(async (_t, es) => { await gate; return es.map((): DurableAnswer => ({ ok: true, st: 'stored' })) })
    const ac = new AbortController()
    const p1 = b.put(target, new Uint8Array([1]), ac.signal)
    const p2 = b.put(target, new Uint8Array([2]))
    await new Promise(resolve => setImmediate(resolve))
    ac.abort(new Error('gave up'))
    await assert.rejects(p1, /abort/)
    release()
    assert.equal((await p2).ok, true)
    await assert.rejects(b.put(target, new Uint8Array([3]), ac.signal), /abort/)
  })

  test('putTo tells each waiter once: its answer, the request\'s failure, or its abort (then nothing more); the abort listener goes with the answer', async () => {
    let n = 0
    let release!: () => void
    const gate = new Promise<void>(resolve => { release = resolve })
    const b = new PutBatcher(async (_t, es) => {
      n++
      if (n === 2) throw new Error('link down')
      await gate
      return es.map((e): DurableAnswer => e[0] === 2 ? { ok: false, code: 'QuotaExceededError', msg: 'full' } : { ok: true, st: 'stored' })
    })
    const told: string[][] = [[], [], [], [], []]
    const waiter = (i: number): PutWaiter<Uint8Array> => ({
      e: new Uint8Array([i]),
      answered: (a) => { told[i].push(a.ok ? 'ok' : a.code) },
      failed: (err) => { told[i].push(err.message) }
    })
    const aborted = new AbortController()
    const kept = new AbortController()
    let listeners = 0
    const add = kept.signal.addEventListener.bind(kept.signal)
    const remove = kept.signal.removeEventListener.bind(kept.signal)
    kept.signal.addEventListener = ((...args: Parameters<AbortSignal['addEventListener']>) => { listeners++; add(...args) }) as AbortSignal['addEventListener']
    kept.signal.removeEventListener = ((...args: Parameters<AbortSignal['removeEventListener']>) => { listeners--; remove(...args) }) as AbortSignal['removeEventListener']
    b.putTo(target, waiter(0), kept.signal)
    b.putTo(target, waiter(1), aborted.signal)
    b.putTo(target, waiter(2))
    assert.equal(listeners, 1)
    await new Promise(resolve => setImmediate(resolve))
    aborted.abort(new Error('gave up'))
    // The request in flight when the others come: they go in the next one, which fails.
    b.putTo({ peer: 'p2', addrs: [] }, waiter(3))
    await new Promise(resolve => setImmediate(resolve))
    release()
    await new Promise(resolve => setImmediate(resolve))
    await new Promise(resolve => setImmediate(resolve))
    assert.deepEqual(told.slice(0, 3), [['ok'], ['durable put aborted'], ['QuotaExceededError']])
    assert.deepEqual(told[3], ['link down'])
    assert.equal(listeners, 0)
    kept.abort(new Error('late'))
    const early = new AbortController()
    early.abort(new Error('before'))
    b.putTo(target, waiter(4), early.signal)
    assert.deepEqual(told[4], ['durable put aborted'])
    assert.deepEqual(told[0], ['ok'])
  })
})

describe('batched durable sends between nodes', () => {
  const nodes = new Nodes()
  after(async () => { await nodes.stopAll() })

  async function take (sub: Subscription, n: number): Promise<Message[]> {
    const out: Message[] = []
    const it = sub[Symbol.asyncIterator]()
    while (out.length < n) {
      const r = await within(it.next(), 20_000, `message ${out.length + 1} of ${n}`)
      if (r.done === true) break
      out.push(r.value)
    }
    return out
  }

  test('one tick of sends: batch-signed, stored or refused per message, delivered in order once', async () => {
    const b = await nodes.start({ store: { quota: { senderCount: 5 } } })
    const a = await nodes.start({ bootstrap: [b.multiaddrs()[0]] })
    const carol = await b.agent('carol-batch')
    const alice = await a.agent('alice-batch')
    await a.waitForAgent(carol.id)
    const results = await Promise.allSettled(Array.from({ length: 12 }, async (_, i) => await alice.send(carol.id, { i }, { durable: true })))
    // The first five fit the sender quota; each of the others is refused, typed, on its own.
    assert.deepEqual(results.map(r => r.status), [...Array(5).fill('fulfilled'), ...Array(7).fill('rejected')])
    for (const r of results.slice(5)) assert.equal(((r as PromiseRejectedResult).reason as { code?: string }).code, 'QuotaExceededError')
    assert.equal((await b.store.stats(carol.id)).inbox.count, 5)
    // Stored alone and still verifiable alone: each inbox entry carries its inclusion proof.
    const pending = await b.store.pending(carol.id, { limit: 10 })
    for (const e of pending.entries) {
      const d = decodeEnvelope(e.bytes)
      assert.ok(d.ok)
      assert.equal(d.envelope.bp?.n, 12)
    }
    assert.equal(b.status().store?.durable.stored, 5)
    // The home's log: a `stored` record per stored message (told in one observation for the
    // batch), then a `rejected` one per refusal, in leaf order, each from the sender's node.
    const sentIds = results.slice(0, 5).map(r => (r as PromiseFulfilledResult<{ id: string }>).value.id)
    const homeLog = (await b.log({ agent: carol.id }, { limit: 100 })).records.filter(r => r.event === 'stored' || r.event === 'rejected')
    assert.deepEqual(homeLog.map(r => r.event), [...Array(5).fill('stored'), ...Array(7).fill('rejected')])
    assert.deepEqual(homeLog.slice(0, 5).map(r => r.id), sentIds)
    for (const r of homeLog) assert.equal(r.peer, a.peerId)
    const got = await take(carol.messages(), 5)
    assert.deepEqual(got.map(m => (m.data() as { i: number }).i), [0, 1, 2, 3, 4])
    const rejected = await a.log({ event: 'sent', status: 'failed' })
    assert.equal(rejected.records.length, 7)
  })
  test('sends of one batch submitted out of leaf order: each gets its own answer', async () => {
    const b = await nodes.start({ store: { quota: { senderCount: 3 } } })
    const a = await nodes.start({ bootstrap: [b.multiaddrs()[0]] })
    const dave = await b.agent('dave-batch')
    await a.waitForAgent(dave.id)
    const key = generateAgentKey()
    const envs = signEnvelopes(Array.from({ length: 6 }, (_, i): EnvelopeFields => ({
      v: 1, net: a.network, mode: 'direct', type: 'inform', from: key.id, to: [dave.id], ts: Date.now(), ttl: 60, hops: 4, prio: 1,
      dlv: { seq: i + 1, durable: true }, ct: 'application/octet-stream', body: new Uint8Array([i])
    })), key)
    // One request, leaves 5 … 0 as given: the home stores in leaf order, so leaves 0–2 fit the
    // quota and 3–5 are refused — each answer must reach its own envelope's caller.
    const reversed = [5, 4, 3, 2, 1, 0]
    const results = await Promise.allSettled(reversed.map(async i => await a.transport.submit(envs[i])))
    assert.deepEqual(results.map(r => r.status === 'fulfilled' ? r.value.id : (r.reason as { code?: string }).code), reversed.map(i => i < 3 ? envs[i].id : 'QuotaExceededError'))
    assert.equal((await b.store.stats(dave.id)).inbox.count, 3)
  })
})

describe('putb from a plain libp2p peer', () => {
  const nodes = new Nodes()
  let peer: Libp2p | undefined
  after(async () => { await peer?.stop(); await nodes.stopAll() })

  test('one signature for the batch; each carried envelope stored or refused alone; a bad batch refused whole', async () => {
    const net = 'putbnet' as NetworkId
    const home = await nodes.start({ network: net })
    const carol = await home.agent('carol-putb')
    const plain = await plainDurablePeer(home.multiaddrs()[0], net)
    peer = plain.peer
    const { client } = plain
    const key = generateAgentKey()
    const fields = (i: number, over: Partial<EnvelopeFields> = {}): EnvelopeFields => ({
      v: 1, net, mode: 'direct', type: 'inform', from: key.id, to: [carol.id], ts: Date.now(), ttl: 60, hops: 4, prio: 1,
      dlv: { seq: i + 1, durable: true }, ct: 'application/octet-stream', body: new Uint8Array([i]), ...over
    })
    const putb = async (envs: ReturnType<typeof signEnvelopes>, carry: number[], s?: Uint8Array): Promise<unknown> => {
      const b = batchOf(envs[0])
      assert.ok(b != null)
      const l = b.leaves.map((leaf, i) => carry.includes(i) ? b.unsigned[i] as Uint8Array : leaf)
      const res = await client.request({ op: 'putb', s: s ?? b.sig, l }, { timeoutMs: 10_000 })
      const { r: _r, ...answer } = res
      return answer
    }
    const count = async (): Promise<number> => (await home.store.stats(carol.id)).inbox.count

    // The home node has replicas configured (the default) but knows no storage node: the
    // batch goes to the store as one enqueueMany, not an enqueue per envelope.
    const store = home.store
    const enqueueMany = store.enqueueMany.bind(store)
    let batches = 0
    store.enqueueMany = async (...args: Parameters<typeof enqueueMany>) => { batches++; return await enqueueMany(...args) }

    // All four carried and stored: one answer for all.
    const four = signEnvelopes([0, 1, 2, 3].map(i => fields(i)), key)
    assert.deepEqual(await putb(four, [0, 1, 2, 3]), { ok: true, st: 'stored' })
    assert.equal(await count(), 4)
    assert.equal(batches, 1)
    // Stored alone, verifiable alone: each inbox entry has its wire bytes with `bp` — the
    // signer's bytes exactly, though the store keeps the signature and leaves once (schema 8).
    for (const [i, e] of (await home.store.pending(carol.id, { limit: 10 })).entries.entries()) {
      const d = decodeEnvelope(e.bytes)
      assert.ok(d.ok)
      assert.equal(d.envelope.bp?.n, 4)
      assert.deepEqual(Buffer.from(e.bytes), Buffer.from(four[i].bytes))
    }
    // A retransmission is answered again: duplicate.
    assert.deepEqual(await putb(four, [1, 3]), { ok: true, st: 'duplicate' })
    // Stored and duplicate in one batch: an answer each, not one for all.
    const three = signEnvelopes([10, 11, 12].map(i => fields(i)), key)
    assert.deepEqual(await putb(three, [1]), { ok: true, st: 'stored' })
    const again = await putb(three, [0, 1, 2]) as { ok: true, rs: DurableAnswer[] }
    assert.deepEqual(again.rs.map(a => a.ok ? a.st : a.code), ['stored', 'duplicate', 'stored'])
    assert.equal(await count(), 7)

    // Mixed: one expired, one not durable, one good — an answer each, in leaf order; the others of the batch by hash.
    const mixed = signEnvelopes([fields(4, { ts: Date.now() - 3_600_000 }), fields(5, { dlv: { seq: 6 } }), fields(6), fields(7)], key)
    const res = await putb(mixed, [0, 1, 2]) as { ok: true, rs: DurableAnswer[] }
    assert.equal(res.ok, true)
    assert.deepEqual(res.rs.map(a => a.ok ? a.st : a.code), ['MessageExpiredError', 'InvalidEnvelopeError', 'stored'])
    assert.equal(await count(), 8)

    // A wrong signature, or a leaf changed after signing: the batch is refused whole, nothing stored.
    const other = signEnvelopes([fields(8), fields(9)], key)
    const forged = new Uint8Array(64).fill(7)
    assert.equal(((await putb(other, [0, 1], forged)) as { code?: string }).code, 'InvalidEnvelopeError')
    const b = batchOf(other[0])
    assert.ok(b != null)
    const tampered = new Uint8Array(b.unsigned[1] as Uint8Array)
    tampered[tampered.length - 1] ^= 1
    const answer = await client.request({ op: 'putb', s: b.sig, l: [b.unsigned[0] as Uint8Array, tampered] }, { timeoutMs: 10_000 })
    assert.equal(answer.ok === false ? answer.code : answer.st, 'InvalidEnvelopeError')
    assert.equal(await count(), 8)
    await client.close()
  })
})
