/**
 * The message log's writer (src/log/recorder.ts) over a real SQLite store: what it is told
 * comes back from the log record for record — also when consecutive observations travel as
 * runs (`LogRecordInit.next`) — and its counts and bounds hold.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DatabaseSync } from 'node:sqlite'
import { LogRecorder, type MessageObservation } from '../../src/log/recorder.ts'
import { openStore, type LogRecordInit, type MessageStore } from '../../src/store/index.ts'
import { encodeMembers } from '../../src/store/log-runs.ts'
import type { Envelope } from '../../src/core/envelope.ts'

const quiet = { trace () {}, debug () {}, info () {}, warn () {}, error () {}, child () { return quiet } } as never

/** The fields of an envelope the recorder reads. */
function env (id: string, o: Partial<Record<'from' | 'topic' | 'type' | 'conv' | 'schema', string>> & { to?: string[], ts?: number, size?: number } = {}): Envelope {
  const { size, ...rest } = o
  return { id, from: 'did:key:zAlice', topic: 'sensors/a', type: 'inform', ts: 1_700_000_000_000, bytes: new Uint8Array(size ?? 300), ...rest } as unknown as Envelope
}

async function withRecorder (fn: (rec: LogRecorder, store: MessageStore, path: string) => Promise<void>, o: { maxBuffered?: number, payloads?: 'conversation' | 'all' | 'none' } = {}): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'fm-recorder-'))
  const store = await openStore({ kind: 'sqlite', path: join(dir, 'store.db') })
  const rec = new LogRecorder({ store, logger: quiet, retention: { maxAgeMs: 0, maxBytes: 0 }, flushEveryMs: 5, ...o })
  try {
    await fn(rec, store, join(dir, 'store.db'))
  } finally {
    await rec.stop()
    await store.close()
    rmSync(dir, { recursive: true, force: true })
  }
}

test('every observation is a record, in order, with its own id, size and time — runs included', async () => {
  await withRecorder(async (rec, store) => {
    const obs: MessageObservation[] = []
    // Two batch frames from Alice, one from Bob between, a direct message, a rejection, a conversation message.
    for (let i = 0; i < 700; i++) obs.push({ event: 'received', env: env(`a${i}`, { ts: 1_700_000_000_000 + i, size: 300 + (i % 5) }), peer: 'peerA' })
    obs.push({ event: 'received', env: env('d0', { to: ['did:key:zBob'] }), peer: 'peerA' })
    for (let i = 0; i < 20; i++) obs.push({ event: 'received', env: env(`b${i}`, { from: 'did:key:zBob' }), peer: 'peerB' })
    obs.push({ event: 'rejected', id: 'r0', reason: 'bad-signature: x', peer: 'peerB' })
    obs.push({ event: 'received', env: env('c0', { conv: 'conv-1' }), peer: 'peerA' })
    for (let i = 0; i < 5; i++) obs.push({ event: 'sent', env: env(`s${i}`) })
    for (const o of obs) rec.observe(o)
    assert.equal(rec.stats().buffered, obs.length)
    await rec.flush()
    assert.deepEqual(rec.stats(), { written: obs.length, dropped: 0, failed: 0, buffered: 0 })
    const page = await store.query({}, { limit: 1000 })
    assert.deepEqual(page.records.map(r => r.id), obs.map(o => o.env?.id ?? o.id))
    for (let i = 0; i < 700; i++) {
      const r = page.records[i]
      assert.deepEqual([r.size, r.originTs, r.from, r.topic, r.peer, r.event, r.status], [300 + (i % 5), 1_700_000_000_000 + i, 'did:key:zAlice', 'sensors/a', 'peerA', 'received', 'ok'], `a${i}`)
    }
    assert.deepEqual(page.records[700].to, ['did:key:zBob'])
    assert.equal(page.records[721].reason, 'bad-signature: x')
    assert.equal(page.records[722].hasBytes, true)
    assert.deepEqual(page.records.map(r => r.seq - page.records[0].seq), obs.map((_, i) => i))
    assert.deepEqual((await store.query({ agent: 'did:key:zBob' })).records.map(r => r.id), ['d0', ...Array.from({ length: 20 }, (_, i) => `b${i}`)])
    assert.deepEqual((await store.query({ id: 'a650' })).records.map(r => r.id), ['a650'])
  })
})

test('a flush closes the open run: later observations are new records, nothing is lost or doubled', async () => {
  await withRecorder(async (rec, store) => {
    for (let round = 0; round < 5; round++) {
      for (let i = 0; i < 30; i++) rec.observe({ event: 'received', env: env(`m${round}-${i}`), peer: 'p' })
      if (round % 2 === 0) await rec.flush()
      else await new Promise(resolve => setTimeout(resolve, 20))
    }
    await rec.flush()
    const ids = (await store.query({}, { limit: 1000 })).records.map(r => r.id)
    assert.deepEqual(ids, Array.from({ length: 150 }, (_, k) => `m${Math.floor(k / 30)}-${k % 30}`))
  })
})

test('past maxBuffered, observations are counted as dropped, run members too', async () => {
  await withRecorder(async (rec, store) => {
    for (let i = 0; i < 25; i++) rec.observe({ event: 'received', env: env(`x${i}`), peer: 'p' })
    assert.deepEqual(rec.stats(), { written: 0, dropped: 5, failed: 0, buffered: 20 })
    await rec.flush()
    assert.equal((await store.stats()).log.count, 20)
  }, { maxBuffered: 20 })
})

test('a durable sender\'s `sent` records (one recipient, pending) travel as a run, and acknowledgements change only their own records', async () => {
  await withRecorder(async (rec, store, path) => {
    const bob = 'did:key:zBob'
    // Rows as stored (a second, read-only connection; WAL: it sees what was committed).
    const rows = (table: string): number => {
      const db = new DatabaseSync(path, { readOnly: true })
      try { return Number((db.prepare(`SELECT COUNT(*) AS c FROM ${table}`).get() as { c: number }).c) } finally { db.close() }
    }
    // 300 durable sends to Bob, then 3 to Carol, then 2 to Bob with another status.
    for (let i = 0; i < 300; i++) rec.observe({ event: 'sent', env: env(`p${i}`, { to: [bob], topic: undefined, ts: 1_700_000_000_000 + i }), status: 'pending' })
    for (let i = 0; i < 3; i++) rec.observe({ event: 'sent', env: env(`q${i}`, { to: ['did:key:zCarol'], topic: undefined }), status: 'pending' })
    for (let i = 0; i < 2; i++) rec.observe({ event: 'sent', env: env(`r${i}`, { to: [bob], topic: undefined }), status: 'failed' })
    await rec.flush()
    assert.equal(rec.stats().written, 305)
    assert.equal(rows('log'), 3, 'three runs: to Bob pending, to Carol, to Bob failed')
    const all = (await store.query({}, { limit: 1000 })).records
    assert.deepEqual(all.map(r => `${r.id}:${r.status}:${r.to.join()}`), [
      ...Array.from({ length: 300 }, (_, i) => `p${i}:pending:${bob}`), ...[0, 1, 2].map(i => `q${i}:pending:did:key:zCarol`), `r0:failed:${bob}`, `r1:failed:${bob}`])
    // Receipts: Bob acknowledges some (only records sent by Alice to Bob are touched).
    for (const id of ['p0', 'p17', 'p299']) rec.updateStatus(id as never, 'acked', 1_700_000_000_500, { event: 'sent', from: 'did:key:zAlice' as never, to: bob as never })
    rec.updateStatus('q1' as never, 'acked', 1_700_000_000_500, { event: 'sent', from: 'did:key:zAlice' as never, to: bob as never })
    await rec.flush()
    const acked = (await store.query({ status: 'acked' })).records
    assert.deepEqual(acked.map(r => [r.id, r.ackedTs]), [['p0', 1_700_000_000_500], ['p17', 1_700_000_000_500], ['p299', 1_700_000_000_500]])
    assert.equal((await store.query({ status: 'pending' }, { limit: 1000 })).records.length, 300)
    assert.deepEqual([rows('log'), rows('log_status')], [3, 3], 'no run rewritten: an entry per acknowledged member')
  })
})

test('a run\'s `next`: every member exact by position and id (non-ASCII ids too), the column as encodeMembers writes it, control characters refused', async () => {
  await withRecorder(async (_rec, store, path) => {
    const T0 = 1_700_000_000_000
    const base = { event: 'received' as const, from: 'did:key:zAlice' as never, topic: 't/a', type: 'inform', peer: 'peerA', receivedTs: T0 + 50 }
    const ascii = Array.from({ length: 300 }, (_, i) => `b${'x'.repeat(i % 70)}${i}`)
    const unicode = ['u1', 'ü2', 'u3🙂', 'u4']
    const runOf = (head: string, ids: string[], ts: number): LogRecordInit => ({ ...base, id: head as never, size: 7, originTs: ts, next: { ids: ids as never[], sizes: ids.map((_, i) => 100 + i * 300), originTs: ids.map((_, i) => ts + i - 20) } })
    await store.log([runOf('h0', ascii, T0), runOf('hé', unicode, T0 + 1), runOf('h2', ['a1', 'a2'], T0 + 2)])
    const got = (await store.query({}, { limit: 1000 })).records
    const expect = [['h0', ascii, T0], ['hé', unicode, T0 + 1], ['h2', ['a1', 'a2'], T0 + 2]] as const
    assert.deepEqual(got.map(r => [r.id, r.size, r.originTs]), expect.flatMap(([h, ids, ts]) => [[h, 7, ts], ...ids.map((id, i) => [id, 100 + i * 300, ts + i - 20])]))
    for (const id of ['b0', `b${'x'.repeat(69)}69`, 'ü2', 'u3🙂', 'hé', 'a2']) assert.deepEqual((await store.query({ id: id as never })).records.map(r => r.id), [id])
    // The stored column is what encodeMembers writes (the format of the rows does not depend on the path).
    const db = new DatabaseSync(path, { readOnly: true })
    try {
      const rows = db.prepare('SELECT n, origin_ts, members FROM log ORDER BY seq').all() as Array<{ n: number, origin_ts: number, members: Uint8Array }>
      assert.deepEqual(rows.map(r => r.n), [301, 5, 3])
      expect.forEach(([h, ids, ts], k) => {
        const members = [{ id: h, size: 7, originTs: ts }, ...ids.map((id, i) => ({ id, size: 100 + i * 300, originTs: ts + i - 20 }))]
        assert.deepEqual(Buffer.from(rows[k].members), Buffer.from(encodeMembers(members, ts)), h)
      })
    } finally { db.close() }
    // Ids with a control character or DEL are refused, naming the member; nothing is written.
    for (const bad of ['a\u0000', 'a\u001f', 'a\u007f', 'a\n']) {
      await assert.rejects(store.log([runOf('z', ['ok', bad], T0)]), (e: Error & { details?: { field?: string } }) => e.name === 'InvalidArgumentError' && e.details?.field === 'records[0].next.ids[1].id')
    }
    assert.equal((await store.stats()).log.count, 309)
  })
})

test('the payloads of one append share a buffer on the way to the writer: each record keeps exactly its own bytes', async () => {
  await withRecorder(async (_rec, store) => {
    const wire = Buffer.alloc(4096, 0xee)
    const payloads = [new Uint8Array([1, 2, 3]), new Uint8Array(0), wire.subarray(100, 600).fill(7), new Uint8Array(300).fill(9), wire.subarray(1000, 1001)]
    const records: LogRecordInit[] = payloads.map((bytes, i) => ({ id: `p${i}` as never, event: 'sent', from: 'did:key:zAlice' as never, conv: 'c1' as never, type: 'request', bytes }))
    // Records without payload between them, and a record refused for its payload: nothing of that call is written.
    records.splice(2, 0, { id: 'x0' as never, event: 'received', size: 5 })
    await assert.rejects(store.log([...records, { id: 'bad' as never, event: 'sent', bytes: 'no' as never }]), { name: 'InvalidArgumentError' })
    await store.log(records)
    wire.fill(0) // the caller reuses its buffer: the log holds copies
    const got = (await store.query({}, { limit: 100, includeBytes: true })).records
    assert.deepEqual(got.map(r => r.id), ['p0', 'p1', 'x0', 'p2', 'p3', 'p4'])
    const want = [[1, 2, 3], [], null, Array(500).fill(7), Array(300).fill(9), [0xee]]
    assert.deepEqual(got.map(r => r.bytes == null ? null : [...r.bytes]), want)
    assert.deepEqual(got.map(r => r.size), [3, 0, 5, 500, 300, 1])
  })
})

/** A store whose `log()` calls are seen (sizes, and what ran between them) and can be held back. */
function spyStore (store: MessageStore): { store: MessageStore, calls: number[], events: string[], hold: () => () => void } {
  const calls: number[] = []
  const events: string[] = []
  let gate: Promise<void> | undefined
  const spy = new Proxy(store, {
    get (target, key) {
      if (key === 'log') {
        return async (records: LogRecordInit[]) => {
          calls.push(records.length)
          events.push(`log${calls.length}`)
          const n = calls.length
          setImmediate(() => { events.push(`turn${n}`) })
          if (gate !== undefined) await gate
          await target.log(records)
        }
      }
      const v = Reflect.get(target, key)
      return typeof v === 'function' ? v.bind(target) : v
    }
  })
  const hold = (): (() => void) => {
    let release!: () => void
    gate = new Promise<void>(resolve => { release = resolve })
    return () => { gate = undefined; release() }
  }
  return { store: spy, calls, events, hold }
}

async function withSpiedRecorder (o: { flushEveryMs: number, flushAtRecords?: number }, fn: (rec: LogRecorder, spy: ReturnType<typeof spyStore>, store: MessageStore) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'fm-recorder-'))
  const store = await openStore({ kind: 'sqlite', path: join(dir, 'store.db') })
  const spy = spyStore(store)
  const rec = new LogRecorder({ store: spy.store, logger: quiet, retention: { maxAgeMs: 0, maxBytes: 0 }, ...o })
  try {
    await fn(rec, spy, store)
  } finally {
    await rec.stop()
    await store.close()
    rmSync(dir, { recursive: true, force: true })
  }
}

/** Waits until `cond` holds, polling every millisecond (for at most 5 s). */
async function until (cond: () => boolean): Promise<void> {
  for (let i = 0; i < 5000 && !cond(); i++) await new Promise(resolve => setTimeout(resolve, 1))
  assert.ok(cond(), 'condition not met within 5 s')
}

test('records observed while an append commits wait for the next window: one append per window, not a chain chasing the traffic', async () => {
  // On the old code the append went on until the buffer was empty: a second store.log() with the two records at once.
  await withSpiedRecorder({ flushEveryMs: 60_000, flushAtRecords: 3 }, async (rec, spy, store) => {
    const release = spy.hold()
    // Conversation messages: records of their own (no runs).
    for (let i = 0; i < 3; i++) rec.observe({ event: 'received', env: env(`m${i}`, { conv: 'c1' }), peer: 'p' })
    await until(() => spy.calls.length === 1)
    rec.observe({ event: 'sent', env: env('m3', { conv: 'c1' }) })
    rec.observe({ event: 'sent', env: env('m4', { conv: 'c1' }) })
    release()
    await until(() => rec.stats().written === 3)
    for (let i = 0; i < 20; i++) await new Promise(resolve => setImmediate(resolve))
    assert.deepEqual(spy.calls, [3])
    assert.deepEqual(rec.stats(), { written: 3, dropped: 0, failed: 0, buffered: 2 })
    // flush() (queries, stop) still writes everything observed before it.
    await rec.flush()
    assert.deepEqual(spy.calls, [3, 2])
    assert.deepEqual((await store.query({}, { limit: 10 })).records.map(r => r.id), ['m0', 'm1', 'm2', 'm3', 'm4'])
  })
})

test('an append hands its records over in slices of 256, one per event-loop turn, in order; runs count as one', async () => {
  await withSpiedRecorder({ flushEveryMs: 60_000 }, async (rec, spy, store) => {
    for (let i = 0; i < 600; i++) rec.observe({ event: 'received', env: env(`c${i}`, { conv: 'c1' }), peer: 'p' })
    // A topic stream: 2,000 records in runs of up to 512, four buffered records — one call.
    for (let i = 0; i < 2000; i++) rec.observe({ event: 'received', env: env(`t${i}`), peer: 'q' })
    await rec.flush()
    assert.deepEqual(spy.calls, [256, 256, 88 + 4])
    // The event loop turned between the calls.
    assert.deepEqual(spy.events.slice(0, 4), ['log1', 'turn1', 'log2', 'turn2'])
    assert.deepEqual(rec.stats(), { written: 2600, dropped: 0, failed: 0, buffered: 0 })
    const ids = (await store.query({}, { limit: 1000 })).records.map(r => r.id)
    assert.deepEqual(ids.slice(0, 600), Array.from({ length: 600 }, (_, i) => `c${i}`))
    assert.equal((await store.stats()).log.count, 2600)
  })
})

test('a slice the store refuses is counted as failed (thrown or rejected); the other slices are written', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'fm-recorder-'))
  const store = await openStore({ kind: 'sqlite', path: join(dir, 'store.db') })
  let call = 0
  const failing = new Proxy(store, {
    get (target, key) {
      const v = Reflect.get(target, key)
      if (key !== 'log') return typeof v === 'function' ? v.bind(target) : v
      return (records: LogRecordInit[]) => {
        call++
        if (call === 2) throw new Error('refused at once')
        if (call === 3) return Promise.reject(new Error('refused later'))
        return target.log(records)
      }
    }
  })
  const rec = new LogRecorder({ store: failing, logger: quiet, retention: { maxAgeMs: 0, maxBytes: 0 }, flushEveryMs: 60_000 })
  try {
    for (let i = 0; i < 700; i++) rec.observe({ event: 'received', env: env(`c${i}`, { conv: 'c1' }), peer: 'p' })
    await rec.flush()
    assert.deepEqual(rec.stats(), { written: 256, dropped: 0, failed: 444, buffered: 0 })
    assert.deepEqual((await store.query({}, { limit: 1000 })).records.map(r => r.id), Array.from({ length: 256 }, (_, i) => `c${i}`))
  } finally {
    await rec.stop()
    await store.close()
    rmSync(dir, { recursive: true, force: true })
  }
})
