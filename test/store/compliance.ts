/**
 * The behavioural suite every `MessageStore` backend must pass. A backend's test file calls
 * `storeCompliance(name, harness)`; the harness hands out fresh, isolated locations (a temp
 * file, a PostgreSQL schema) and raw SQL access to them for the tampering tests.
 */
import { describe, test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { topicMatches } from '../../src/core/topics.ts'
import type { AgentId, MessageId } from '../../src/core/ids.ts'
import {
  QuotaExceededError, StoreClosedError, StoreVersionError,
  type CommonStoreConfig, type InboxBatch, type InboxEntry, type InboxEntryInit, type LogRecordInit, type MessageStore, type QuotaKind
} from '../../src/store/index.ts'
import { createStoreSettings } from '../../src/store/config.ts'
import { INBOX_IDS_GROWTH, INBOX_IDS_TIER0, INBOX_IDS_TOP, SCHEMA_VERSION, schemaStatements } from '../../src/store/schema.ts'
import { postgresDialect, numberPlaceholders } from '../../src/store/postgres.ts'
import { sqliteDialect } from '../../src/store/sqlite.ts'
import { payloadChecksum } from '../../src/store/validate.ts'
import { InvalidArgumentError } from '../../src/core/errors.ts'
import { batchOf, decodeEnvelope, signEnvelopes, type Envelope, type EnvelopeFields } from '../../src/core/envelope.ts'
import { generateAgentKey } from '../../src/core/keys.ts'
import type { NetworkId } from '../../src/core/ids.ts'

export interface StoreLocation {
  /** A new store instance (not open) on this location. */
  create: (overrides?: CommonStoreConfig) => MessageStore
  /** Runs SQL directly on the location; `table(name)` qualifies a table name. */
  raw: (sql: string, params?: unknown[]) => Promise<Array<Record<string, unknown>>>
  table: (name: string) => string
  /** Closes every store created here and removes the location. */
  dispose: () => Promise<void>
}

export interface StoreHarness {
  fresh: () => Promise<StoreLocation>
  /** Called once after the suite. */
  teardown?: () => Promise<void>
}

export const A = (s: string): AgentId => `did:key:z${s}` as AgentId
export const M = (s: string): MessageId => s as MessageId

const ALICE = A('Alice')
const BOB = A('Bob')
const CAROL = A('Carol')
const DAVE = A('Dave')
const HOUR = 3_600_000

export function payload (id: string, size: number): Uint8Array {
  const b = new Uint8Array(size)
  for (let i = 0; i < size; i++) b[i] = (id.charCodeAt(i % id.length) + i) & 0xff
  return b
}

export function entry (id: string, o: Partial<InboxEntryInit> & { size?: number } = {}): InboxEntryInit {
  const { size, ...rest } = o
  return { recipient: BOB, id: M(id), sender: ALICE, bytes: payload(id, size ?? 32), expiresAt: Date.now() + HOUR, ...rest }
}

/** A clock the test moves by hand. */
export function manualClock (start = Date.now()): { now: () => number, set: (t: number) => void, advance: (ms: number) => void } {
  let t = start
  return { now: () => t, set: (v) => { t = v }, advance: (ms) => { t += ms } }
}

async function rejectsWith (p: Promise<unknown>, code: string, check?: (err: any) => void): Promise<void> {
  await assert.rejects(p, (err: any) => {
    assert.equal(err?.code, code, `expected ${code}, got ${err?.code}: ${err?.message}`)
    check?.(err)
    return true
  })
}

async function allPending (store: MessageStore, recipient: AgentId): Promise<string[]> {
  const ids: string[] = []
  let cursor: string | undefined
  for (let i = 0; i < 1000; i++) {
    const page = await store.pending(recipient, { limit: 7, afterCursor: cursor })
    ids.push(...page.entries.map(e => e.id))
    cursor = page.cursor
    if (!page.more) break
  }
  return ids
}

export function storeCompliance (name: string, makeHarness: () => Promise<StoreHarness>, options: { skip?: string | false } = {}): void {
  describe(`MessageStore compliance: ${name}`, { skip: options.skip ?? false }, () => {
    let harness: StoreHarness
    before(async () => { harness = await makeHarness() })
    after(async () => { await harness?.teardown?.() })

    /** Runs `fn` with an open store on a fresh location, cleaned up afterwards. */
    async function withStore (fn: (store: MessageStore, loc: StoreLocation) => Promise<void>, overrides?: CommonStoreConfig): Promise<void> {
      const loc = await harness.fresh()
      try {
        const store = loc.create(overrides)
        await store.open()
        await fn(store, loc)
      } finally {
        await loc.dispose()
      }
    }

    describe('lifecycle', () => {
      test('every call before open and after close rejects with StoreClosedError', async () => {
        const loc = await harness.fresh()
        try {
          const store = loc.create()
          const calls = (s: MessageStore): Array<() => Promise<unknown>> => [
            async () => await s.enqueue(entry('x')),
            async () => await s.pending(BOB),
            async () => await s.inboxes(),
            async () => await s.ack(BOB, [M('x')]),
            async () => await s.expire(),
            async () => await s.stats(),
            async () => await s.markProcessed(BOB, M('x'), Date.now() + HOUR),
            async () => await s.isProcessed(BOB, M('x')),
            async () => await s.log([{ id: M('x'), event: 'sent', size: 1 }]),
            async () => await s.updateStatus(M('x'), { status: 'acked' }),
            async () => await s.query({}),
            async () => await s.conversation('c'),
            async () => await s.retain({ maxAgeMs: 1 })
          ]
          for (const call of calls(store)) await rejectsWith(call(), 'StoreClosedError')
          assert.throws(() => store.info(), StoreClosedError)
          await store.open()
          await store.open() // idempotent
          assert.equal(store.info().schemaVersion, SCHEMA_VERSION)
          assert.ok(['power-loss', 'process-crash'].includes(store.info().durability))
          await store.close()
          await store.close() // idempotent
          for (const call of calls(store)) await rejectsWith(call(), 'StoreClosedError')
          await rejectsWith(store.open(), 'StoreClosedError')
        } finally {
          await loc.dispose()
        }
      })

      test('close finishes the writes already accepted', async () => {
        const loc = await harness.fresh()
        try {
          const store = loc.create()
          await store.open()
          const writes = Array.from({ length: 50 }, async (_, i) => await store.enqueue(entry(`c${i}`)))
          await store.close()
          assert.deepEqual((await Promise.all(writes)).map(r => r.status), new Array(50).fill('stored'))
          const again = loc.create()
          await again.open()
          assert.equal((await again.stats(BOB)).inbox.count, 50)
          await again.close()
        } finally {
          await loc.dispose()
        }
      })

      test('Symbol.asyncDispose closes the store', async () => {
        const loc = await harness.fresh()
        try {
          const store = loc.create()
          await store.open()
          await store[Symbol.asyncDispose]()
          await rejectsWith(store.stats(), 'StoreClosedError')
        } finally {
          await loc.dispose()
        }
      })
    })

    describe('inbox', () => {
      test('an enqueue is durable when it resolves: another instance sees it at once, intact', async () => {
        await withStore(async (store, loc) => {
          const e = entry('d1', { size: 256, priority: 3, senderSeq: 7, replica: true, home: '12D3KooWHome' })
          assert.deepEqual(await store.enqueue(e), { status: 'stored' })
          const other = loc.create()
          await other.open()
          const { entries } = await other.pending(BOB)
          assert.equal(entries.length, 1)
          const got = entries[0]
          assert.deepEqual(got.bytes, e.bytes)
          assert.equal(got.size, 256)
          assert.equal(got.id, 'd1')
          assert.equal(got.sender, ALICE)
          assert.equal(got.recipient, BOB)
          assert.equal(got.priority, 3)
          assert.equal(got.senderSeq, 7)
          assert.equal(got.replica, true)
          assert.equal(got.home, '12D3KooWHome')
          assert.equal(got.expiresAt, e.expiresAt)
          assert.ok(got.enqueuedAt > 0)
          await other.close()
          // And after the writer closes and a fresh instance opens.
          await store.close()
          const third = loc.create()
          await third.open()
          assert.deepEqual((await third.pending(BOB)).entries.map(x => x.id), ['d1'])
          await third.close()
        })
      })

      test('logSync deferred: log-only batches commit (another instance reads them), inbox writes unchanged', async () => {
        await withStore(async (store, loc) => {
          await store.log([{ id: M('lg1'), event: 'sent', size: 1 }, { id: M('lg2'), event: 'received', size: 2 }])
          await Promise.all([store.log([{ id: M('lg3'), event: 'stored', size: 3 }]), store.enqueue(entry('lgq'))])
          assert.equal(await store.updateStatus(M('lg1'), { status: 'acked' }), 1)
          const other = loc.create()
          await other.open()
          const { records } = await other.query({})
          assert.deepEqual(records.map(r => [r.id, r.status]), [['lg1', 'acked'], ['lg2', 'ok'], ['lg3', 'ok']])
          assert.deepEqual((await other.pending(BOB)).entries.map(e => e.id), ['lgq'])
          await other.close()
        }, { logSync: 'deferred' })
        assert.throws(() => createStoreSettings({ path: 'x', logSync: 'sometimes' as 'commit' }), InvalidArgumentError)
      })

      test('inboxes lists recipients with pending entries, by replica flag, paged', async () => {
        await withStore(async (store) => {
          assert.deepEqual(await store.inboxes(), { recipients: [], more: false })
          await store.enqueue(entry('h1'))
          await store.enqueue(entry('r1', { recipient: CAROL, replica: true, home: '12D3KooWHome' }))
          await store.enqueue(entry('r2', { recipient: CAROL, replica: true, home: '12D3KooWHome' }))
          const all = [BOB, CAROL].sort()
          assert.deepEqual((await store.inboxes()).recipients, all)
          assert.deepEqual((await store.inboxes({ replica: true })).recipients, [CAROL])
          assert.deepEqual((await store.inboxes({ replica: false })).recipients, [BOB])
          const first = await store.inboxes({ limit: 1 })
          assert.deepEqual(first, { recipients: [all[0]], more: true })
          assert.deepEqual(await store.inboxes({ limit: 1, after: first.recipients[0] }), { recipients: [all[1]], more: false })
          await store.ack(CAROL, [M('r1'), M('r2')])
          assert.deepEqual((await store.inboxes()).recipients, [BOB])
          await rejectsWith(store.inboxes({ limit: 0 }), 'InvalidQueryError')
          await rejectsWith(store.inboxes({ replica: 'yes' as unknown as boolean }), 'InvalidQueryError')
        })
      })

      test('enqueue is idempotent on (recipient, id), also within one batch and after ack', async () => {
        await withStore(async (store) => {
          assert.deepEqual(await store.enqueue(entry('i1')), { status: 'stored' })
          assert.deepEqual(await store.enqueue(entry('i1')), { status: 'duplicate' })
          const same = await Promise.all([store.enqueue(entry('i2')), store.enqueue(entry('i2')), store.enqueue(entry('i2'))])
          assert.deepEqual(same.map(r => r.status).sort(), ['duplicate', 'duplicate', 'stored'])
          // Same id for another recipient is another entry.
          assert.deepEqual(await store.enqueue(entry('i1', { recipient: CAROL })), { status: 'stored' })
          assert.deepEqual(await allPending(store, BOB), ['i1', 'i2'])
          await store.ack(BOB, [M('i1')])
          // A retransmission of an acknowledged message is still a duplicate until it expires.
          assert.deepEqual(await store.enqueue(entry('i1')), { status: 'duplicate' })
          assert.deepEqual(await allPending(store, BOB), ['i2'])
          assert.equal((await store.stats(BOB)).inbox.count, 1)
        })
      })

      test('many concurrent enqueues all commit (group commit) and all are there', async () => {
        await withStore(async (store) => {
          const n = 600
          const results = await Promise.all(Array.from({ length: n }, async (_, i) =>
            await store.enqueue(entry(`g${i}`, { recipient: [BOB, CAROL, DAVE][i % 3], size: 256 }))))
          assert.ok(results.every(r => r.status === 'stored'))
          const s = await store.stats()
          assert.deepEqual(s.inbox, { count: n, bytes: n * 256 })
          assert.equal((await allPending(store, CAROL)).length, n / 3)
        }, { quota: { inboxCount: 1000, senderCount: 1000 } })
      })

      const quotaCases: Array<{ quota: QuotaKind, limits: CommonStoreConfig['quota'], fill: (i: number) => Partial<InboxEntryInit> & { size?: number }, next: Partial<InboxEntryInit> & { size?: number }, limit: number, current: number }> = [
        { quota: 'inbox-count', limits: { inboxCount: 3 }, fill: i => ({ sender: [ALICE, CAROL, DAVE][i] }), next: { sender: A('Eve') }, limit: 3, current: 3 },
        { quota: 'inbox-bytes', limits: { inboxBytes: 100 }, fill: i => ({ sender: [ALICE, CAROL][i], size: 50 }), next: { sender: DAVE, size: 1 }, limit: 100, current: 100 },
        { quota: 'sender-count', limits: { senderCount: 2 }, fill: () => ({}), next: {}, limit: 2, current: 2 },
        { quota: 'sender-bytes', limits: { senderBytes: 90 }, fill: () => ({ size: 40 }), next: { size: 11 }, limit: 90, current: 80 },
        { quota: 'sender-total-count', limits: { senderTotalCount: 2 }, fill: i => ({ recipient: [BOB, CAROL][i] }), next: { recipient: DAVE }, limit: 2, current: 2 },
        { quota: 'sender-total-bytes', limits: { senderTotalBytes: 64 }, fill: i => ({ recipient: [BOB, CAROL][i], size: 32 }), next: { recipient: DAVE, size: 1 }, limit: 64, current: 64 }
      ]
      for (const c of quotaCases) {
        test(`quota ${c.quota}: rejected with QuotaExceededError and nothing written`, async () => {
          await withStore(async (store) => {
            const fills = c.limits != null && 'inboxCount' in c.limits ? 3 : 2
            for (let i = 0; i < fills; i++) assert.equal((await store.enqueue(entry(`q${i}`, c.fill(i)))).status, 'stored')
            const before = await store.stats()
            const pendingBefore = await Promise.all([BOB, CAROL, DAVE].map(async r => await allPending(store, r)))
            const next = entry('qx', c.next)
            await rejectsWith(store.enqueue(next), 'QuotaExceededError', (err: QuotaExceededError) => {
              assert.ok(err instanceof QuotaExceededError)
              assert.equal(err.quota, c.quota)
              assert.equal(err.limit, c.limit)
              assert.equal(err.current, c.current)
              assert.equal(err.details?.recipient, next.recipient)
              assert.equal(err.details?.sender, next.sender)
            })
            assert.deepEqual(await store.stats(), before)
            assert.deepEqual(await Promise.all([BOB, CAROL, DAVE].map(async r => await allPending(store, r))), pendingBefore)
            // Not remembered either: with the quota lifted for this call, it is stored (not a duplicate).
            assert.deepEqual(await store.enqueue(next, { quota: { [quotaField(c.quota)]: Infinity } }), { status: 'stored' })
          }, { quota: c.limits })
        })
      }

      test('a frozen quota override passed again is honoured; an unfrozen one is read afresh each call; owned bytes are stored as given', async () => {
        await withStore(async (store) => {
          const frozen = Object.freeze({ senderCount: 2 })
          for (const id of ['f1', 'f2']) assert.equal((await store.enqueue(entry(id), { quota: frozen, owned: true })).status, 'stored')
          await rejectsWith(store.enqueue(entry('f3'), { quota: frozen }), 'QuotaExceededError')
          const loose: { senderCount: number } = { senderCount: 2 }
          await rejectsWith(store.enqueue(entry('f3'), { quota: loose }), 'QuotaExceededError')
          loose.senderCount = 3
          const owned = entry('f3', { size: 40 })
          assert.equal((await store.enqueue(owned, { quota: loose, owned: true })).status, 'stored')
          const held = (await store.pending(BOB)).entries.find(e => e.id === 'f3')
          assert.deepEqual(held?.bytes, owned.bytes)
        }, { quota: { senderCount: 1 } })
      })

      test('quotas hold within one batch, and ack frees quota', async () => {
        await withStore(async (store) => {
          const results = await Promise.allSettled(Array.from({ length: 10 }, async (_, i) => await store.enqueue(entry(`b${i}`))))
          assert.equal(results.filter(r => r.status === 'fulfilled').length, 4)
          assert.ok(results.filter(r => r.status === 'rejected').every(r => (r as PromiseRejectedResult).reason instanceof QuotaExceededError))
          assert.equal((await store.stats(BOB)).inbox.count, 4)
          await rejectsWith(store.enqueue(entry('b-late')), 'QuotaExceededError')
          const acked = await store.ack(BOB, (await store.pending(BOB)).entries.slice(0, 2).map(e => e.id))
          assert.equal(acked.acked.length, 2)
          assert.equal((await store.enqueue(entry('b-late'))).status, 'stored')
          assert.equal((await store.stats(BOB)).inbox.count, 3)
        }, { quota: { senderCount: 4 } })
      })

      test('enqueueMany: a batch of 59 (SQLite inserts 16 rows per statement, then 8, 2, 1) keeps every column of every entry', async () => {
        await withStore(async (store) => {
          assert.equal((await store.enqueue(entry('r-held'))).status, 'stored')
          const batch: InboxEntryInit[] = []
          for (let i = 0; i < 59; i++) {
            batch.push(entry(`r${i}`, {
              size: 1 + (i * 37) % 300,
              priority: i % 4,
              expiresAt: Date.now() + HOUR + i,
              ...(i % 3 === 0 ? { senderSeq: 1000 + i } : {}),
              ...(i % 5 === 0 ? { replica: true, home: `peer-${i}` } : {}),
              ...(i % 7 === 0 ? { sender: CAROL } : {})
            }))
          }
          // Duplicates inside the batch and of a held entry: refused, the others still stored.
          const outcomes = await store.enqueueMany([...batch.slice(0, 30), entry('r-held'), batch[4], ...batch.slice(30)])
          const statuses = outcomes.map(o => o.ok ? o.status : (o.error as { code?: string }).code)
          assert.deepEqual(statuses.filter(s => s !== 'stored'), ['duplicate', 'duplicate'])
          assert.equal(statuses[30], 'duplicate')
          assert.equal(statuses[31], 'duplicate')
          const held: InboxEntry[] = []
          let cursor: string | undefined
          for (let i = 0; i < 20; i++) {
            const page = await store.pending(BOB, { limit: 16, afterCursor: cursor })
            held.push(...page.entries)
            cursor = page.cursor
            if (!page.more) break
          }
          assert.deepEqual(held.map(e => e.id), [M('r-held'), ...batch.map(e => e.id)])
          for (const [i, e] of batch.entries()) {
            const got = held[i + 1]
            assert.deepEqual(got.bytes, e.bytes, `bytes of ${e.id}`)
            assert.equal(got.size, e.bytes.length)
            assert.equal(got.priority, e.priority)
            assert.equal(got.expiresAt, e.expiresAt)
            assert.equal(got.sender, e.sender)
            assert.equal(got.senderSeq, e.senderSeq)
            assert.equal(got.replica, e.replica === true)
            assert.equal(got.home, e.home)
          }
          assert.equal((await store.stats(BOB)).inbox.count, 60)
          assert.deepEqual((await store.ack(BOB, [M('r17'), M('r58')])).acked, [M('r17'), M('r58')])
        })
      })

      test('enqueues of one commit under different quotas, with an ack between them: each run keeps its own quota and bytes', async () => {
        await withStore(async (store) => {
          assert.equal((await store.enqueue(entry('q0'))).status, 'stored')
          // Submitted together: one group-commit batch (SQLite: one crossing to the writer thread).
          const strict = store.enqueueMany([entry('q1', { size: 10 }), entry('q2', { size: 20 })], { quota: { senderCount: 2 } })
          const acked = store.ack(BOB, [M('q0')])
          const loose = store.enqueueMany([entry('q3', { size: 30 }), entry('q4', { size: 40, sender: CAROL }), entry('q5', { size: 50 })], { quota: { senderCount: 4 } })
          const [s, a, l] = await Promise.all([strict, acked, loose])
          assert.deepEqual(s.map(o => o.ok ? o.status : (o.error as { code?: string }).code), ['stored', 'QuotaExceededError'])
          assert.deepEqual(a.acked, [M('q0')])
          assert.deepEqual(l.map(o => o.ok ? o.status : (o.error as { code?: string }).code), ['stored', 'stored', 'stored'])
          const held = (await store.pending(BOB)).entries
          assert.deepEqual(held.map(e => [e.id, e.sender, e.size]), [[M('q1'), ALICE, 10], [M('q3'), ALICE, 30], [M('q4'), CAROL, 40], [M('q5'), ALICE, 50]])
          for (const e of held) assert.deepEqual(e.bytes, payload(e.id, e.size))
        })
      })

      test('enqueueMany: each entry stored or refused on its own, in order, quotas counted across the call', async () => {
        await withStore(async (store, loc) => {
          assert.equal((await store.enqueue(entry('m0'))).status, 'stored')
          const outcomes = await store.enqueueMany([
            entry('m1'), entry('m0'), { ...entry('m2'), id: 7 } as never, entry('m3', { expiresAt: Date.now() - 1 }),
            entry('m4'), entry('m1'), entry('m5'), entry('m6')
          ])
          const codes = outcomes.map(o => o.ok ? o.status : (o.error as { code?: string }).code)
          assert.deepEqual(codes, ['stored', 'duplicate', 'InvalidArgumentError', 'MessageExpiredError', 'stored', 'duplicate', 'stored', 'QuotaExceededError'])
          assert.ok(!outcomes[7].ok && outcomes[7].error instanceof QuotaExceededError)
          assert.deepEqual(await store.enqueueMany([]), [])
          const aborted = await store.enqueueMany([entry('m7')], { signal: AbortSignal.abort() }).catch((err: { code?: string }) => err.code)
          assert.equal(aborted, 'AbortError')
          // Committed when it resolved: another instance sees exactly the stored ones, in order.
          const other = loc.create()
          await other.open()
          try {
            assert.deepEqual(await allPending(other, BOB), ['m0', 'm1', 'm4', 'm5'].map(M))
          } finally {
            await other.close()
          }
        }, { quota: { senderCount: 4 } })
      })

      test('delivery order: enqueue order, per-sender sequence numbers respected', async () => {
        await withStore(async (store) => {
          await store.enqueue(entry('a3', { senderSeq: 3 }))
          await store.enqueue(entry('c1', { sender: CAROL }))
          await store.enqueue(entry('a5', { senderSeq: 5 }))
          await store.enqueue(entry('c2', { sender: CAROL }))
          // A late lower sequence number moves ahead of that sender's higher ones only.
          await store.enqueue(entry('a1', { senderSeq: 1 }))
          assert.deepEqual(await allPending(store, BOB), ['a1', 'c1', 'a3', 'c2', 'a5'])
          // Out of order within one batch, interleaved with another sender.
          await Promise.all([
            store.enqueue(entry('a9', { senderSeq: 9 })),
            store.enqueue(entry('c3', { sender: CAROL })),
            store.enqueue(entry('a7', { senderSeq: 7 })),
            store.enqueue(entry('a8', { senderSeq: 8 })),
            store.enqueue(entry('a4', { senderSeq: 4 }))
          ])
          const order = await allPending(store, BOB)
          const alice = order.filter(id => id.startsWith('a'))
          assert.deepEqual(alice, ['a1', 'a3', 'a4', 'a5', 'a7', 'a8', 'a9'])
          assert.deepEqual(order.filter(id => id.startsWith('c')), ['c1', 'c2', 'c3'])
          // Carol's entries kept their slots.
          assert.deepEqual(order.slice(0, 4), ['a1', 'c1', 'a3', 'c2'])
        })
      })

      test('pending pages with cursors: no duplicates or gaps, bad cursors rejected', async () => {
        await withStore(async (store) => {
          for (let i = 0; i < 20; i++) await store.enqueue(entry(`p${String(i).padStart(2, '0')}`))
          const first = await store.pending(BOB, { limit: 8 })
          assert.equal(first.entries.length, 8)
          assert.equal(first.more, true)
          const second = await store.pending(BOB, { limit: 8, afterCursor: first.cursor })
          // New arrivals between pages come after the cursor.
          await store.enqueue(entry('p20'))
          const third = await store.pending(BOB, { limit: 8, afterCursor: second.cursor })
          const ids = [...first.entries, ...second.entries, ...third.entries].map(e => e.id)
          assert.deepEqual(ids, Array.from({ length: 21 }, (_, i) => `p${String(i).padStart(2, '0')}`))
          assert.equal(third.more, false)
          const empty = await store.pending(BOB, { afterCursor: third.cursor })
          assert.deepEqual(empty.entries, [])
          assert.equal(empty.cursor, third.cursor)
          await rejectsWith(store.pending(CAROL, { afterCursor: first.cursor }), 'InvalidQueryError')
          for (const bad of ['', 'nope', '!!!', 'Zm0xfGxvZ3xhc2N8MXxYdWt2MU9fbHRXMk4', Buffer.from('fm1|inbox|x|-1').toString('base64url')]) {
            await rejectsWith(store.pending(BOB, { afterCursor: bad }), 'InvalidQueryError')
          }
          for (const limit of [0, -1, 1001, 1.5]) await rejectsWith(store.pending(BOB, { limit }), 'InvalidQueryError')
        })
      })

      test('ack removes entries from pending and quota; unknown ids are skipped', async () => {
        await withStore(async (store) => {
          for (const id of ['k1', 'k2', 'k3']) await store.enqueue(entry(id, { size: 10 }))
          assert.deepEqual(await store.ack(BOB, [M('k3'), M('nope'), M('k1'), M('k1')]), { acked: ['k3', 'k1'] })
          assert.deepEqual(await allPending(store, BOB), ['k2'])
          assert.deepEqual((await store.stats(BOB)).inbox, { count: 1, bytes: 10 })
          assert.deepEqual(await store.ack(BOB, [M('k1')]), { acked: [] })
          assert.deepEqual(await store.ack(CAROL, [M('k2')]), { acked: [] })
          assert.deepEqual(await store.ack(BOB, []), { acked: [] })
        })
      })

      test('expiry: expired entries are not served, expire() reports them, acked ones are pruned silently', async () => {
        const clock = manualClock(1_000_000)
        await withStore(async (store) => {
          await rejectsWith(store.enqueue(entry('old', { expiresAt: 999_999 })), 'MessageExpiredError')
          await rejectsWith(store.enqueue(entry('now', { expiresAt: 1_000_000 })), 'MessageExpiredError')
          assert.equal((await store.stats()).inbox.count, 0)
          await store.enqueue(entry('e1', { expiresAt: 1_001_000 }))
          await store.enqueue(entry('e2', { expiresAt: 1_002_000, sender: CAROL, replica: true, home: 'peerH' }))
          await store.enqueue(entry('e3', { expiresAt: 1_005_000 }))
          await store.enqueue(entry('e4', { expiresAt: 1_001_500 }))
          await store.ack(BOB, [M('e4')])
          await store.markProcessed(BOB, M('e4'), 1_001_500)
          clock.set(1_002_000)
          assert.deepEqual(await allPending(store, BOB), ['e3'])
          const r = await store.expire()
          assert.deepEqual(r.expired.map(e => [e.id, e.sender, e.recipient]), [['e1', ALICE, BOB], ['e2', CAROL, BOB]])
          assert.equal(r.expired[1].replica, true)
          assert.equal(r.expired[1].home, 'peerH')
          assert.equal(r.expired[0].expiresAt, 1_001_000)
          assert.equal(r.pruned, 2) // e4 (acked) and its processed mark
          assert.equal(r.more, false)
          assert.equal(await store.isProcessed(BOB, M('e4')), false)
          assert.deepEqual((await store.stats(BOB)).inbox.count, 1)
          // Pruned: e4 could now be stored again (it would be refused at ingress as expired anyway).
          assert.deepEqual(await store.expire(), { expired: [], pruned: 0, more: false })
          // An explicit `now`, and the limit.
          for (let i = 0; i < 5; i++) await store.enqueue(entry(`l${i}`, { expiresAt: 1_003_000 }))
          const part = await store.expire(1_003_000, { limit: 2 })
          assert.equal(part.expired.length, 2)
          assert.equal(part.more, true)
          assert.equal((await store.expire(1_003_000)).expired.length, 3)
          await rejectsWith(store.expire(-1), 'InvalidArgumentError')
        }, { clock: clock.now })
      })

      test('keepDeliveredMs: an acked entry keeps its payload for a while, but is not pending', async () => {
        const clock = manualClock(5_000_000)
        await withStore(async (store, loc) => {
          await store.enqueue(entry('r1', { expiresAt: 5_001_000 }))
          await store.ack(BOB, [M('r1')])
          assert.deepEqual(await allPending(store, BOB), [])
          const rows = await loc.raw(`SELECT payload FROM ${loc.table('inbox')} WHERE id = 'r1'`)
          assert.equal(rows.length, 1)
          assert.ok(rows[0].payload != null)
          clock.set(5_002_000)
          assert.equal((await store.expire()).pruned, 0) // expired, but kept for keepDeliveredMs
          clock.set(5_010_000)
          assert.equal((await store.expire()).pruned, 1)
        }, { clock: clock.now, keepDeliveredMs: 10_000 })
      })

      test('malformed entries are refused with InvalidArgumentError and nothing written', async () => {
        await withStore(async (store) => {
          const bad: unknown[] = [
            { ...entry('x'), recipient: '' }, { ...entry('x'), id: 7 }, { ...entry('x'), sender: 'a\nb' },
            { ...entry('x'), bytes: 'abc' }, { ...entry('x'), bytes: new Uint8Array(0) }, { ...entry('x'), bytes: new Uint8Array(1024 * 1024 + 1) },
            { ...entry('x'), expiresAt: 1.5 }, { ...entry('x'), priority: 4 }, { ...entry('x'), senderSeq: -1 },
            { ...entry('x'), replica: 'yes' }, { ...entry('x'), extra: 1 }, null
          ]
          for (const b of bad) await rejectsWith(store.enqueue(b as InboxEntryInit), 'InvalidArgumentError')
          await rejectsWith(store.enqueue(entry('x'), { quota: { inboxCount: -1 } }), 'InvalidArgumentError')
          await rejectsWith(store.enqueue(entry('x'), { quota: { nope: 1 } as never }), 'InvalidArgumentError')
          await rejectsWith(store.ack(BOB, 'x' as never), 'InvalidArgumentError')
          assert.equal((await store.stats()).inbox.count, 0)
        })
      })

      test('an aborted signal writes nothing', async () => {
        await withStore(async (store) => {
          await rejectsWith(store.enqueue(entry('ab'), { signal: AbortSignal.abort() }), 'AbortError')
          // Aborted while queued, before its batch started.
          const ctl = new AbortController()
          const p = store.enqueue(entry('ab2'), { signal: ctl.signal })
          ctl.abort()
          await rejectsWith(p, 'AbortError')
          await rejectsWith(store.pending(BOB, { signal: AbortSignal.abort() }), 'AbortError')
          assert.equal((await store.stats()).inbox.count, 0)
          assert.equal((await store.enqueue(entry('ab2'))).status, 'stored')
        })
      })

      test('stats per recipient and overall', async () => {
        await withStore(async (store) => {
          await store.enqueue(entry('s1', { size: 10 }))
          await store.enqueue(entry('s2', { size: 20, recipient: CAROL }))
          await store.markProcessed(BOB, M('s0'), Date.now() + HOUR)
          await store.log([{ id: M('s1'), event: 'stored', size: 10, bytes: payload('s1', 10) }])
          assert.deepEqual(await store.stats(BOB), { inbox: { count: 1, bytes: 10 }, log: { count: 1, bytes: 256 + 10 }, processed: 1 })
          assert.deepEqual((await store.stats()).inbox, { count: 2, bytes: 30 })
          assert.deepEqual((await store.stats(DAVE)).inbox, { count: 0, bytes: 0 })
        })
      })
    })

    describe('processed marks', () => {
      test('markProcessed / isProcessed, durable across reopen', async () => {
        await withStore(async (store, loc) => {
          assert.equal(await store.isProcessed(BOB, M('m1')), false)
          assert.equal(await store.markProcessed(BOB, M('m1'), Date.now() + HOUR), true)
          assert.equal(await store.markProcessed(BOB, M('m1'), Date.now() + HOUR), false)
          const both = await Promise.all([store.markProcessed(BOB, M('m2'), Date.now() + HOUR), store.markProcessed(BOB, M('m2'), Date.now() + HOUR)])
          assert.deepEqual(both.sort(), [false, true])
          assert.equal(await store.isProcessed(BOB, M('m1')), true)
          assert.equal(await store.isProcessed(CAROL, M('m1')), false)
          await store.close()
          const again = loc.create()
          await again.open()
          assert.equal(await again.isProcessed(BOB, M('m1')), true)
          assert.equal(await again.isProcessed(BOB, M('m2')), true)
          await again.close()
        })
      })
    })

    describe('message log', () => {
      const T0 = 1_700_000_000_000
      const records: LogRecordInit[] = [
        { id: M('L1'), event: 'sent', from: ALICE, to: [BOB], topic: 'sensors/room1/temp', conv: 'c1', type: 'inform', size: 3, originTs: T0, receivedTs: T0 + 1, bytes: payload('L1', 3), schema: 'iot/temp@1.0.0', proto: 'fipa-request', peer: 'peerA' },
        { id: M('L2'), event: 'received', from: BOB, to: [ALICE, CAROL], topic: 'sensors/room2/temp', conv: 'c1', type: 'request', size: 5, receivedTs: T0 + 2, status: 'pending' },
        { id: M('L3'), event: 'relayed', from: CAROL, to: [DAVE], topic: 'sensors/room1/humidity', type: 'inform', size: 7, receivedTs: T0 + 3 },
        { id: M('L4'), event: 'rejected', from: DAVE, topic: 'alerts', size: 9, receivedTs: T0 + 4, reason: 'bad-signature' },
        { id: M('L1'), event: 'delivered', from: ALICE, to: [BOB], topic: 'sensors/room1/temp', conv: 'c1', type: 'inform', size: 3, receivedTs: T0 + 5, status: 'delivered' },
        { id: M('L5'), event: 'stored', from: ALICE, to: [DAVE], topic: 'sensors/room1/temp/raw', conv: 'c2', type: 'inform', size: 4, receivedTs: T0 + 6, bytes: payload('L5', 4) }
      ]
      const ids = (page: { records: Array<{ id: string, event: string }> }): string[] => page.records.map(r => `${r.id}:${r.event}`)

      test('appends are durable and come back field for field', async () => {
        await withStore(async (store, loc) => {
          await store.log(records)
          const other = loc.create()
          await other.open()
          const page = await other.query({}, { includeBytes: true })
          await other.close()
          assert.equal(page.records.length, records.length)
          const r1 = page.records[0]
          assert.deepEqual({ ...r1, bytes: undefined }, {
            seq: r1.seq, id: 'L1', event: 'sent', status: 'ok', from: ALICE, to: [BOB], topic: 'sensors/room1/temp', schema: 'iot/temp@1.0.0', proto: 'fipa-request',
            conv: 'c1', type: 'inform', size: 3, originTs: T0, receivedTs: T0 + 1, peer: 'peerA', hasBytes: true, bytes: undefined
          })
          assert.deepEqual(r1.bytes, payload('L1', 3))
          assert.equal(page.records[3].status, 'rejected')
          assert.equal(page.records[3].reason, 'bad-signature')
          assert.equal(page.records[1].hasBytes, false)
          assert.equal(page.records[1].bytes, undefined)
          const seqs = page.records.map(r => r.seq)
          assert.deepEqual(seqs, [...seqs].sort((a, b) => a - b))
          assert.equal(new Set(seqs).size, seqs.length)
          // Without includeBytes no payload is returned.
          assert.equal((await store.query({ id: 'L1' })).records[0].bytes, undefined)
        })
      })

      test('every filter', async () => {
        await withStore(async (store) => {
          await store.log(records)
          const q = async (f: Parameters<MessageStore['query']>[0]): Promise<string[]> => ids(await store.query(f))
          assert.deepEqual(await q({ id: 'L1' }), ['L1:sent', 'L1:delivered'])
          assert.deepEqual(await q({ agent: CAROL }), ['L2:received', 'L3:relayed'])
          assert.deepEqual(await q({ agent: DAVE }), ['L3:relayed', 'L4:rejected', 'L5:stored'])
          assert.deepEqual(await q({ topic: 'sensors/room1/temp' }), ['L1:sent', 'L1:delivered'])
          assert.deepEqual(await q({ topic: 'sensors/*/temp' }), ['L1:sent', 'L2:received', 'L1:delivered'])
          assert.deepEqual(await q({ topic: 'sensors/room1/#' }), ['L1:sent', 'L3:relayed', 'L1:delivered', 'L5:stored'])
          assert.deepEqual(await q({ topic: 'sensors/#' }), ['L1:sent', 'L2:received', 'L3:relayed', 'L1:delivered', 'L5:stored'])
          assert.deepEqual(await q({ topic: '*/room1/*' }), ['L1:sent', 'L3:relayed', 'L1:delivered'])
          assert.deepEqual(await q({ topic: '#' }), ['L1:sent', 'L2:received', 'L3:relayed', 'L4:rejected', 'L1:delivered', 'L5:stored'])
          assert.deepEqual(await q({ topic: '*' }), ['L4:rejected'])
          assert.deepEqual(await q({ topic: 'alerts/#' }), [])
          assert.deepEqual(await q({ conversation: 'c1' }), ['L1:sent', 'L2:received', 'L1:delivered'])
          assert.deepEqual(await q({ since: T0 + 2, until: T0 + 4 }), ['L2:received', 'L3:relayed'])
          assert.deepEqual(await q({ since: T0 + 6 }), ['L5:stored'])
          assert.deepEqual(await q({ until: T0 + 2 }), ['L1:sent'])
          assert.deepEqual(await q({ status: 'pending' }), ['L2:received'])
          assert.deepEqual(await q({ status: ['delivered', 'rejected'] }), ['L4:rejected', 'L1:delivered'])
          assert.deepEqual(await q({ type: 'request' }), ['L2:received'])
          assert.deepEqual(await q({ event: 'relayed' }), ['L3:relayed'])
          assert.deepEqual(await q({ event: ['sent', 'stored'] }), ['L1:sent', 'L5:stored'])
          assert.deepEqual(await q({ agent: ALICE, topic: 'sensors/room1/#', event: 'stored' }), ['L5:stored'])
          assert.deepEqual(await q({ agent: A('Nobody') }), [])
          assert.deepEqual(ids(await store.query({ conversation: 'c1' }, { order: 'desc' })), ['L1:delivered', 'L2:received', 'L1:sent'])
        })
      })

      test('runs: records that differ only in id, size and origin time share a row, and each is a record of its own', async () => {
        await withStore(async (store, loc) => {
          const TR = T0 + 10_000
          // As a subscriber's node logs batch frames: 700 from Alice on one topic (two runs:
          // at most MAX_RUN per row), one record of its own between, 40 from Bob, 3 more from Alice.
          const run = (who: AgentId, topic: string, prefix: string, n: number, from: number): LogRecordInit[] =>
            Array.from({ length: n }, (_, i) => ({ id: M(`${prefix}${from + i}`), event: 'received' as const, from: who, topic, type: 'inform', size: 100 + ((from + i) % 7), originTs: T0 + (i % 3) - 1, receivedTs: TR, peer: 'peerA' }))
          const all: LogRecordInit[] = [
            ...run(ALICE, 'sensors/a', 'a', 700, 0),
            { id: M('solo'), event: 'received', from: CAROL, to: [BOB], size: 5, receivedTs: TR },
            ...run(BOB, 'sensors/b', 'b', 40, 0),
            ...run(ALICE, 'sensors/a', 'a', 3, 700)
          ]
          await store.log(all)
          const rows = Number((await loc.raw(`SELECT COUNT(*) AS c FROM ${loc.table('log')}`))[0].c)
          assert.equal(rows, 5, 'runs of 512 + 188, a record of its own, a run of 40, a run of 3')
          assert.deepEqual((await store.stats()).log, { count: all.length, bytes: all.length * 256 })
          // Field for field, paged in both orders with small pages (cursors inside runs).
          const want = all.map((r, i) => ({ id: r.id, size: r.size, originTs: r.originTs, from: r.from, topic: r.topic, event: r.event, status: 'ok', receivedTs: TR, seqOffset: i }))
          for (const order of ['asc', 'desc'] as const) {
            const got: Array<typeof want[number] & { seq: number }> = []
            let cursor: string | undefined
            for (let guard = 0; guard < 200; guard++) {
              const page = await store.query({}, { limit: 37, order, ...(cursor != null ? { cursor } : {}) })
              for (const r of page.records) got.push({ id: r.id, size: r.size, originTs: r.originTs, from: r.from, topic: r.topic, event: r.event, status: r.status, receivedTs: r.receivedTs, seqOffset: 0, seq: r.seq })
              cursor = page.cursor
              if (!page.more) break
            }
            const ordered = order === 'asc' ? got : [...got].reverse()
            const base = ordered[0].seq
            assert.deepEqual(ordered.map(r => r.seq), all.map((_, i) => base + i), `${order}: one position per record, no gaps`)
            assert.deepEqual(ordered.map(({ seq, ...r }) => ({ ...r, seqOffset: seq - base })), want, order)
          }
          const q = async (f: Parameters<MessageStore['query']>[0]): Promise<string[]> => (await store.query(f, { limit: 1000 })).records.map(r => r.id)
          // By id: the first, a middle and the last record of a run, and a record of its own.
          for (const id of ['a0', 'a1', 'a511', 'a512', 'a699', 'a700', 'a702', 'b0', 'b39', 'solo']) assert.deepEqual(await q({ id }), [id], id)
          assert.deepEqual(await q({ id: 'a703' }), [])
          assert.equal((await q({ agent: BOB })).length, 41)
          assert.equal((await q({ topic: 'sensors/#' })).length, 743)
          assert.deepEqual((await q({ topic: 'sensors/b' })), all.slice(701, 741).map(r => r.id))
          assert.equal((await q({ since: TR, event: 'received', status: 'ok' })).length, 744)
          assert.deepEqual(await q({ until: TR }), [])
          // A status update of one record splits its run; the others keep theirs.
          assert.equal(await store.updateStatus(M('a300'), { status: 'acked', ackedTs: TR + 5 }), 1)
          assert.equal(await store.updateStatus(M('a300'), { status: 'acked' }, { event: 'sent' }), 0)
          assert.deepEqual(await q({ status: 'acked' }), ['a300'])
          const a300 = (await store.query({ id: 'a300' })).records[0]
          assert.equal(a300.ackedTs, TR + 5)
          assert.equal(a300.size, 100 + (300 % 7))
          assert.deepEqual(await q({ id: 'a299' }), ['a299'])
          assert.deepEqual(await q({ id: 'a301' }), ['a301'])
          assert.equal((await q({ status: 'ok' })).length, all.length - 1)
          const order = (await store.query({}, { limit: 1000 })).records
          assert.deepEqual(order.map(r => r.id), all.map(r => r.id))
          assert.deepEqual(order.map(r => r.seq - order[0].seq), all.map((_, i) => i))
          // Retention by size takes the oldest records, part of a run if that is enough.
          const cut = await store.retain({ maxBytes: (all.length - 100) * 256 })
          assert.deepEqual(cut, { deleted: 100, bytes: 100 * 256, more: false })
          assert.deepEqual((await store.stats()).log, { count: all.length - 100, bytes: (all.length - 100) * 256 })
          assert.deepEqual(await q({ id: 'a99' }), [])
          assert.deepEqual(await q({ id: 'a100' }), ['a100'])
          assert.deepEqual((await store.query({}, { limit: 1000 })).records.map(r => r.id), all.slice(100).map(r => r.id))
          // And with a limit, inside a run.
          assert.deepEqual(await store.retain({ maxBytes: 0 }, { limit: 50 }), { deleted: 50, bytes: 50 * 256, more: true })
          assert.deepEqual(await q({ id: 'a150' }), ['a150'])
          assert.deepEqual(await q({ id: 'a149' }), [])
          // By age: everything is older than the cutoff.
          assert.deepEqual(await store.retain({ maxAgeMs: 1 }, { now: TR + 10 }), { deleted: all.length - 150, bytes: (all.length - 150) * 256, more: false })
          assert.deepEqual((await store.stats()).log, { count: 0, bytes: 0 })
          assert.equal(Number((await loc.raw(`SELECT COUNT(*) AS c FROM ${loc.table('log_ids')}`))[0].c), 0)
          assert.deepEqual(await q({ id: 'a600' }), [])
        })
      })

      test('a record with `next` appends its run: each a record of its own, checked like one', async () => {
        await withStore(async (store, loc) => {
          const ids = Array.from({ length: 600 }, (_, i) => M(`n${i + 1}`))
          const base: LogRecordInit = { id: M('n0'), event: 'sent', from: ALICE, topic: 't/x', type: 'inform', size: 10, originTs: T0, receivedTs: T0 + 1 }
          await store.log([
            { ...base, next: { ids, sizes: ids.map((_, i) => 11 + i), originTs: ids.map((_, i) => T0 + i + 1) } },
            // One recipient: a run too (its members' later status changes are their own).
            { id: M('d0'), event: 'sent', from: ALICE, to: [BOB], size: 1, originTs: T0, next: { ids: [M('d1'), M('d2')], sizes: [2, 3], originTs: [T0, T0] } },
            // Not a run in storage (two recipients): its next ones become records of their own.
            { id: M('e0'), event: 'sent', from: ALICE, to: [BOB, CAROL], size: 1, originTs: T0, next: { ids: [M('e1')], sizes: [2], originTs: [T0] } }
          ])
          const got = (await store.query({}, { limit: 1000 })).records
          assert.deepEqual(got.map(r => r.id), ['n0', ...ids, 'd0', 'd1', 'd2', 'e0', 'e1'])
          assert.deepEqual(got.slice(0, 601).map(r => [r.size, r.originTs, r.from, r.topic, r.event]), Array.from({ length: 601 }, (_, i) => [10 + i, T0 + i, ALICE, 't/x', 'sent']))
          assert.deepEqual(got.slice(601).map(r => [r.size, r.to]), [[1, [BOB]], [2, [BOB]], [3, [BOB]], [1, [BOB, CAROL]], [2, [BOB, CAROL]]])
          assert.deepEqual(got.map(r => r.seq - got[0].seq), got.map((_, i) => i))
          assert.equal((await store.stats()).log.count, 606)
          // 601 records: a row of 512 and one of 89; the three to Bob, a run; the two to Bob and Carol, a row each.
          assert.equal(Number((await loc.raw(`SELECT COUNT(*) AS c FROM ${loc.table('log')}`))[0].c), 5)
          assert.deepEqual((await store.query({ agent: BOB }, { limit: 10 })).records.map(r => r.id), ['d0', 'd1', 'd2', 'e0', 'e1'])
          assert.deepEqual((await store.query({ id: 'n555' })).records.map(r => [r.id, r.size]), [['n555', 565]])
          const bad: unknown[] = [
            { ...base, next: { ids: [M('x')], sizes: [], originTs: [] } },
            { ...base, next: { ids: [''], sizes: [1], originTs: [1] } },
            { ...base, next: { ids: [M('x')], sizes: [-1], originTs: [1] } },
            { ...base, next: { ids: [M('x')], sizes: [1], originTs: [1.5] } },
            { ...base, next: { ids: [M('x')], sizes: [1], originTs: [1], extra: [] } },
            { ...base, next: [] },
            { ...base, bytes: new Uint8Array(10), next: { ids: [M('x')], sizes: [1], originTs: [1] } }
          ]
          for (const b of bad) await rejectsWith(store.log([b as LogRecordInit]), 'InvalidArgumentError')
          // The limit per call counts the records of runs.
          const many = Array.from({ length: 10_000 }, (_, i) => M(`m${i}`))
          await rejectsWith(store.log([{ ...base, next: { ids: many, sizes: many.map(() => 1), originTs: many.map(() => 1) } }]), 'InvalidArgumentError')
          assert.equal((await store.stats()).log.count, 606)
        })
      })

      test('runs with a recipient: a status update of a member is its own (log_status), never a rewrite of the run', async () => {
        await withStore(async (store, loc) => {
          const TR = T0 + 20_000
          const count = async (table: string): Promise<number> => Number((await loc.raw(`SELECT COUNT(*) AS c FROM ${loc.table(table)}`))[0].c)
          // A durable sender's `sent` records of one batch (pending until acknowledged), then 5 more.
          const sent = (prefix: string, n: number): LogRecordInit[] =>
            Array.from({ length: n }, (_, i) => ({ id: M(`${prefix}${i}`), event: 'sent' as const, status: 'pending' as const, from: ALICE, to: [BOB], type: 'inform', size: 10 + i, originTs: T0 + i, receivedTs: TR }))
          const all = [...sent('d', 20), { id: M('solo'), event: 'received' as const, from: CAROL, size: 1, receivedTs: TR }, ...sent('f', 5)]
          await store.log(all)
          assert.equal(await count('log'), 3, 'a run of 20, a record of its own, a run of 5')
          const membersBefore = (await loc.raw(`SELECT seq, members FROM ${loc.table('log')} ORDER BY seq`)).map(r => Buffer.from(r.members as Uint8Array ?? []).toString('hex'))
          const q = async (f: Parameters<MessageStore['query']>[0], limit = 1000): Promise<string[]> => (await store.query(f, { limit })).records.map(r => r.id)
          assert.equal(await store.updateStatus(M('d3'), { status: 'acked', ackedTs: TR + 5 }), 1)
          assert.equal(await store.updateStatus(M('d3'), { reason: 'late' }), 1, 'a second patch adds to the first')
          assert.equal(await store.updateStatus(M('d7'), { status: 'acked' }, { event: 'stored' }), 0)
          assert.equal(await store.updateStatus(M('d19'), { status: 'expired' }), 1)
          assert.equal(await store.updateStatus(M('f4'), { status: 'acked', ackedTs: TR + 9 }), 1)
          // Nothing rewritten: the same rows, members unchanged; one small entry per member changed.
          assert.equal(await count('log'), 3)
          assert.deepEqual((await loc.raw(`SELECT seq, members FROM ${loc.table('log')} ORDER BY seq`)).map(r => Buffer.from(r.members as Uint8Array ?? []).toString('hex')), membersBefore)
          assert.equal(await count('log_status'), 3)
          const d3 = (await store.query({ id: 'd3' })).records
          assert.deepEqual(d3.map(r => [r.id, r.status, r.ackedTs, r.reason, r.size, r.to]), [['d3', 'acked', TR + 5, 'late', 13, [BOB]]])
          const d4 = (await store.query({ id: 'd4' })).records[0]
          assert.deepEqual([d4.status, d4.ackedTs, d4.reason], ['pending', undefined, undefined])
          // Status filters are exact per member, in pages of any size, both orders.
          const pendingIds = all.filter(r => r.status === 'pending' && !['d3', 'd19', 'f4'].includes(r.id)).map(r => r.id)
          assert.deepEqual(await q({ status: 'acked' }), ['d3', 'f4'])
          assert.deepEqual(await q({ status: 'expired' }), ['d19'])
          assert.deepEqual(await q({ status: 'pending' }), pendingIds)
          assert.deepEqual(await q({ status: ['pending', 'ok'] }), all.map(r => r.id).filter(id => !['d3', 'd19', 'f4'].includes(id)))
          assert.deepEqual(await q({ status: 'acked', agent: BOB, event: 'sent' }), ['d3', 'f4'])
          for (const order of ['asc', 'desc'] as const) {
            for (const status of ['pending', 'acked'] as const) {
              const got: string[] = []
              let cursor: string | undefined
              for (let guard = 0; guard < 100; guard++) {
                const page = await store.query({ status }, { limit: 3, order, ...(cursor != null ? { cursor } : {}) })
                got.push(...page.records.map(r => r.id))
                cursor = page.cursor
                if (!page.more) break
              }
              const want = status === 'acked' ? ['d3', 'f4'] : pendingIds
              assert.deepEqual(got, order === 'asc' ? want : [...want].reverse(), `${status} ${order}`)
            }
          }
          assert.deepEqual((await store.query({}, { limit: 1000 })).records.map(r => `${r.id}:${r.status}`), all.map(r => `${r.id}:${['d3', 'f4'].includes(r.id) ? 'acked' : r.id === 'd19' ? 'expired' : r.status ?? 'ok'}`))
          // Retention leaving f4 on its own: its entry moves into its row, and updates go on there.
          assert.deepEqual(await store.retain({ maxBytes: 256 }), { deleted: all.length - 1, bytes: (all.length - 1) * 256, more: false })
          assert.equal(await count('log_status'), 0)
          const f4 = (await store.query({})).records
          assert.deepEqual(f4.map(r => [r.id, r.status, r.ackedTs]), [['f4', 'acked', TR + 9]])
          assert.equal(await store.updateStatus(M('f4'), { status: 'delivered' }), 1)
          assert.deepEqual((await store.query({ status: 'delivered' })).records.map(r => [r.id, r.ackedTs]), [['f4', TR + 9]])
        })
      })

      test('a version 5 store gets log_status at open (version 6), its runs intact', async () => {
        await withStore(async (store, loc) => {
          await store.log(Array.from({ length: 4 }, (_, i) => ({ id: M(`v${i}`), event: 'sent' as const, status: 'pending' as const, from: ALICE, to: [BOB], size: 1, originTs: T0, receivedTs: T0 })))
          await store.close()
          await backToVersion6(loc, store.kind === 'postgres')
          await loc.raw(`DROP TABLE ${loc.table('log_status')}`)
          await loc.raw(`UPDATE ${loc.table('meta')} SET value = '5' WHERE key = 'schema_version'`)
          const again = loc.create()
          await again.open()
          try {
            assert.equal(again.info().schemaVersion, SCHEMA_VERSION)
            assert.equal(await again.updateStatus(M('v2'), { status: 'acked' }), 1)
            assert.deepEqual((await again.query({})).records.map(r => `${r.id}:${r.status}`), ['v0:pending', 'v1:pending', 'v2:acked', 'v3:pending'])
          } finally {
            await again.close()
          }
        })
      })

      test('wildcard topics match exactly as topicMatches does', async () => {
        await withStore(async (store) => {
          const topics = ['a', 'b', 'a/b', 'a/c', 'a/b/c', 'a/b/c/d', 'x/b/c', 'a.b/c', 'a+b/c', 'a/bc', 'ab/c', 'a/b.c', 'A/b', 'a/(b)', 'a/[b]/c', 'a/b$/c', 'a/^b']
          await store.log(topics.map((topic, i) => ({ id: M(`w${i}`), event: 'received', topic, size: 1 })))
          const patterns = ['#', '*', 'a', 'a/#', 'a/*', '*/b', '*/b/#', 'a/*/c', '*/*/*', 'a/b/#', 'a/+', 'a.b/*', 'a+b/#', 'a/(b)', 'a/[b]/#', 'a/b$/*', 'a/^b', '*/#', 'a/b/c/d/#']
          for (const pattern of patterns) {
            const got = (await store.query({ topic: pattern }, { limit: 1000 })).records.map(r => r.topic)
            const expected = topics.filter(t => topicMatches(pattern, t))
            assert.deepEqual(got, expected, pattern)
          }
        })
      })

      test('cursor pagination is stable while new records are appended', async () => {
        await withStore(async (store) => {
          const mk = (id: string, i: number): LogRecordInit => ({ id: M(id), event: 'received', topic: i % 2 === 0 ? 'even/x' : 'odd/x', size: 1, receivedTs: 1000 + i })
          await store.log(Array.from({ length: 10 }, (_, i) => mk(`P${i}`, i)))
          const everything = async (): Promise<string[]> => (await store.query({ topic: '#' }, { limit: 1000 })).records.map(r => r.id)
          for (const order of ['asc', 'desc'] as const) {
            const snapshot = await everything()
            const seen: string[] = []
            let cursor: string | undefined
            let appended = 0
            let appending: Promise<void> = Promise.resolve()
            // Bounded: each page takes 3 records and 2 are appended per page.
            for (let turn = 0; turn < 100; turn++) {
              // The next page is read while an append is under way.
              const [page] = await Promise.all([store.query({ topic: '#' }, { limit: 3, cursor, order }), appending])
              seen.push(...page.records.map(r => r.id))
              await store.log([mk(`${order}${appended}`, appended++)])
              appending = store.log([mk(`${order}${appended}`, appended++)])
              cursor = page.cursor
              if (!page.more) break
            }
            await appending
            assert.equal(new Set(seen).size, seen.length, `${order}: no duplicates`)
            if (order === 'asc') {
              // A gapless prefix of the log, which covers every record there was at the start.
              assert.deepEqual(seen, (await everything()).slice(0, seen.length))
              assert.ok(snapshot.every(id => seen.includes(id)))
            } else {
              // Exactly what there was at the first page, newest first.
              assert.deepEqual(seen, [...snapshot].reverse())
            }
          }
          // With a filter: all pages together equal the unpaged result.
          const full = ids(await store.query({ topic: 'even/#' }, { limit: 1000 }))
          const paged: string[] = []
          let c: string | undefined
          for (let i = 0; i < 100; i++) {
            const p = await store.query({ topic: 'even/#' }, { limit: 4, cursor: c })
            paged.push(...ids(p))
            c = p.cursor
            if (!p.more) break
          }
          assert.deepEqual(paged, full)
        })
      })

      test('a page scans a bounded stretch of the log: short pages with more=true, still no gaps', async () => {
        await withStore(async (store, loc) => {
          await store.log([{ id: M('G1'), event: 'sent', topic: 'rare/x', size: 1 }, { id: M('F1'), event: 'sent', topic: 'common', size: 1 }])
          // Leave 250 000 positions between the two halves, more than one page may scan.
          await loc.raw(`UPDATE ${loc.table('counters')} SET value = value + 250000 WHERE name = 'log_seq'`)
          await store.log([{ id: M('G2'), event: 'sent', topic: 'rare/x', size: 1 }, { id: M('F2'), event: 'sent', topic: 'common', size: 1 }])
          for (const order of ['asc', 'desc'] as const) {
            const seen: string[] = []
            const sizes: number[] = []
            let cursor: string | undefined
            for (let i = 0; i < 20; i++) {
              const page = await store.query({ topic: 'rare/#' }, { limit: 10, cursor, order })
              seen.push(...page.records.map(r => r.id))
              sizes.push(page.records.length)
              cursor = page.cursor
              if (!page.more) break
            }
            assert.deepEqual(seen, order === 'asc' ? ['G1', 'G2'] : ['G2', 'G1'])
            assert.ok(sizes.length > 2, `${order}: the scan stopped early at least once (${sizes.join(',')})`)
          }
        })
      })

      test('malformed filters, options and cursors: InvalidQueryError, nothing changed', async () => {
        await withStore(async (store) => {
          await store.log(records)
          const before = await store.stats()
          const good = await store.query({ topic: 'sensors/#' }, { limit: 2 })
          const badFilters: unknown[] = [
            null, 'x', [], { nope: 1 }, { topic: 'a/#/b' }, { topic: '' }, { topic: 'a//b' }, { topic: 7 }, { since: -1 }, { since: 1.5 },
            { since: 10, until: 5 }, { status: 'weird' }, { status: [] }, { status: ['ok', 'weird'] }, { event: 'eaten' }, { agent: '' },
            { id: 5 }, { conversation: 'x'.repeat(300) }, { type: null }
          ]
          for (const f of badFilters) await rejectsWith(store.query(f as never), 'InvalidQueryError')
          const badOptions: unknown[] = [
            { limit: 0 }, { limit: 1001 }, { limit: 2.5 }, { limit: '10' }, { order: 'sideways' }, { includeBytes: 'yes' },
            { cursor: '' }, { cursor: 'garbage!' }, { cursor: 'Zm0x' }, { cursor: Buffer.from('fm1|log|asc|abc|x').toString('base64url') },
            { cursor: Buffer.from('fm1|log|asc|9007199254740993|x').toString('base64url') }
          ]
          for (const o of badOptions) await rejectsWith(store.query({ topic: 'sensors/#' }, o as never), 'InvalidQueryError')
          // A cursor from another filter or order, or an inbox cursor.
          await rejectsWith(store.query({ topic: 'alerts' }, { cursor: good.cursor }), 'InvalidQueryError')
          await rejectsWith(store.query({ topic: 'sensors/#' }, { cursor: good.cursor, order: 'desc' }), 'InvalidQueryError')
          await store.enqueue(entry('ic'))
          const inboxCursor = (await store.pending(BOB)).cursor
          await rejectsWith(store.query({}, { cursor: inboxCursor }), 'InvalidQueryError')
          await rejectsWith(store.conversation(''), 'InvalidQueryError')
          await rejectsWith(store.conversation('c1', { limit: 0 }), 'InvalidQueryError')
          const after = await store.stats()
          assert.deepEqual(after.log, before.log)
          // The good cursor still works.
          assert.deepEqual(ids(await store.query({ topic: 'sensors/#' }, { cursor: good.cursor, limit: 100 })), ['L3:relayed', 'L1:delivered', 'L5:stored'])
        })
      })

      test('malformed records are refused and nothing of the call is written', async () => {
        await withStore(async (store) => {
          const bad: unknown[] = [
            { id: M('x'), event: 'eaten', size: 1 }, { id: '', event: 'sent', size: 1 }, { id: M('x'), event: 'sent' },
            { id: M('x'), event: 'sent', size: -1 }, { id: M('x'), event: 'sent', status: 'weird', size: 1 }, { id: M('x'), event: 'sent', to: 'bob', size: 1 },
            { id: M('x'), event: 'sent', bytes: new Uint8Array(3), size: 4 }, { id: M('x'), event: 'sent', size: 1, extra: true }
          ]
          for (const b of bad) await rejectsWith(store.log([{ id: M('ok'), event: 'sent', size: 1 }, b as LogRecordInit]), 'InvalidArgumentError')
          await rejectsWith(store.log('x' as never), 'InvalidArgumentError')
          assert.equal((await store.stats()).log.count, 0)
          assert.deepEqual((await store.query({})).records, [])
        })
      })

      test('updateStatus sets status, acked time and reason, per message or per event', async () => {
        await withStore(async (store) => {
          await store.log(records)
          assert.equal(await store.updateStatus(M('L1'), { status: 'acked', ackedTs: T0 + 50 }), 2)
          assert.deepEqual((await store.query({ id: 'L1' })).records.map(r => [r.status, r.ackedTs]), [['acked', T0 + 50], ['acked', T0 + 50]])
          assert.equal(await store.updateStatus(M('L1'), { status: 'failed', reason: 'timeout' }, { event: 'delivered' }), 1)
          assert.deepEqual((await store.query({ id: 'L1' })).records.map(r => [r.status, r.reason]), [['acked', undefined], ['failed', 'timeout']])
          assert.deepEqual(ids(await store.query({ status: 'failed' })), ['L1:delivered'])
          assert.equal(await store.updateStatus(M('nope'), { status: 'acked' }), 0)
          await rejectsWith(store.updateStatus(M('L1'), {}), 'InvalidArgumentError')
          await rejectsWith(store.updateStatus(M('L1'), { status: 'weird' as never }), 'InvalidArgumentError')
          await rejectsWith(store.updateStatus(M('L1'), { status: 'ok' }, { event: 'eaten' as never }), 'InvalidArgumentError')
        })
      })

      test('conversation replay: one record per message, in log order, with its payload', async () => {
        await withStore(async (store) => {
          await store.log([
            { id: M('C2'), event: 'received', conv: 'cv', from: BOB, size: 2, receivedTs: 10 },
            { id: M('C1'), event: 'sent', conv: 'cv', from: ALICE, size: 3, receivedTs: 11, bytes: payload('C1', 3) },
            { id: M('X1'), event: 'sent', conv: 'other', size: 1, bytes: payload('X1', 1) },
            { id: M('C2'), event: 'stored', conv: 'cv', size: 2, receivedTs: 12, bytes: payload('C2', 2) },
            { id: M('C3'), event: 'sent', conv: 'cv', size: 0, bytes: new Uint8Array(0) },
            { id: M('C1'), event: 'delivered', conv: 'cv', size: 3, bytes: payload('C1', 3) }
          ])
          const conv = await store.conversation('cv')
          assert.deepEqual(conv.map(r => [r.id, r.event]), [['C2', 'received'], ['C1', 'sent'], ['C3', 'sent']])
          assert.deepEqual(conv[0].bytes, payload('C2', 2))
          assert.deepEqual(conv[1].bytes, payload('C1', 3))
          assert.deepEqual(conv[2].bytes, new Uint8Array(0))
          assert.equal(conv[0].from, BOB)
          assert.deepEqual((await store.conversation('cv', { limit: 2 })).map(r => r.id), ['C2', 'C1'])
          assert.deepEqual(await store.conversation('none'), [])
        })
      })

      test('retention by age and by size deletes the oldest records', async () => {
        await withStore(async (store) => {
          await store.log(Array.from({ length: 20 }, (_, i) => ({ id: M(`R${i}`), event: 'received' as const, to: [BOB], size: 100, receivedTs: 1000 + i * 10, bytes: payload(`R${i}`, 100) })))
          assert.deepEqual((await store.stats()).log, { count: 20, bytes: 20 * 356 })
          const byAge = await store.retain({ maxAgeMs: 100 }, { now: 1150 })
          assert.deepEqual(byAge, { deleted: 5, bytes: 5 * 356, more: false })
          assert.equal((await store.query({}, { limit: 1 })).records[0].id, 'R5')
          const bySize = await store.retain({ maxBytes: 10 * 356 + 100 })
          assert.deepEqual(bySize, { deleted: 5, bytes: 5 * 356, more: false })
          assert.deepEqual((await store.stats()).log, { count: 10, bytes: 10 * 356 })
          assert.equal((await store.query({}, { limit: 1 })).records[0].id, 'R10')
          // The agent filter forgets deleted records too.
          assert.equal((await store.query({ agent: BOB }, { limit: 1000 })).records.length, 10)
          const limited = await store.retain({ maxBytes: 0 }, { limit: 4 })
          assert.deepEqual(limited, { deleted: 4, bytes: 4 * 356, more: true })
          assert.deepEqual(await store.retain({ maxBytes: 0 }), { deleted: 6, bytes: 6 * 356, more: false })
          assert.deepEqual((await store.stats()).log, { count: 0, bytes: 0 })
          await rejectsWith(store.retain({}), 'InvalidArgumentError')
          await rejectsWith(store.retain({ maxBytes: -1 }), 'InvalidArgumentError')
          // Positions are never reused after deletion.
          await store.log([{ id: M('after'), event: 'sent', size: 1 }])
          assert.equal((await store.query({})).records[0].seq, 21)
        })
      })
      test('retention by age over many appends: records older than the cutoff wherever they sit, within the limit', async () => {
        await withStore(async (store) => {
          const rec = (id: string, receivedTs: number): LogRecordInit => ({ id: M(id), event: 'received', size: 1, receivedTs })
          await store.log([rec('a1', 1000), rec('a2', 1010), rec('a3', 1020)])
          await store.log([rec('b1', 5000), rec('b2', 1005), rec('b3', 6000)])
          await store.log([rec('c1', 1990), rec('c2', 2000)])
          await store.log([rec('d1', 9000)])
          const left = async (): Promise<string[]> => (await store.query({})).records.map(r => r.id)
          const first = await store.retain({ maxAgeMs: 1000 }, { now: 3000, limit: 3 })
          assert.deepEqual(first, { deleted: 3, bytes: 3 * 256, more: true })
          const second = await store.retain({ maxAgeMs: 1000 }, { now: 3000, limit: 3 })
          assert.deepEqual(second, { deleted: 2, bytes: 2 * 256, more: false })
          assert.deepEqual(await left(), ['b1', 'b3', 'c2', 'd1'])
          assert.deepEqual(await store.retain({ maxAgeMs: 1000 }, { now: 3000 }), { deleted: 0, bytes: 0, more: false })
          // Size retention takes the oldest positions; age retention still sees what is left.
          assert.deepEqual(await store.retain({ maxBytes: 3 * 256 }), { deleted: 1, bytes: 256, more: false })
          assert.deepEqual(await store.retain({ maxAgeMs: 1000 }, { now: 7001 }), { deleted: 2, bytes: 2 * 256, more: false })
          assert.deepEqual(await left(), ['d1'])
          assert.deepEqual((await store.stats()).log, { count: 1, bytes: 256 })
        })
      })
    })

    describe('batch entries (schema 8)', () => {
      // A real agent id: the envelopes verify (`to` must be a did:key).
      const TO = generateAgentKey().id
      /** `n` durable envelopes from one key to `to`, signed in one batch, as store entries. */
      function signedBatch (n: number, ttlMs = HOUR): { envs: Envelope[], entries: InboxEntryInit[], batch: InboxBatch } {
        const key = generateAgentKey()
        const envs = signEnvelopes(Array.from({ length: n }, (_, i): EnvelopeFields => ({
          v: 1, net: 'storenet' as NetworkId, mode: 'direct', type: 'inform', from: key.id, to: [TO], ts: Date.now(), ttl: Math.ceil(ttlMs / 1000), hops: 4, prio: 1,
          dlv: { seq: i + 1, durable: true }, ct: 'application/octet-stream', body: new Uint8Array(200).fill(i)
        })), key)
        const sb = batchOf(envs[0])
        assert.ok(sb != null)
        const leaves = new Uint8Array(32 * n)
        sb.leaves.forEach((l, i) => leaves.set(l, 32 * i))
        const batch: InboxBatch = { sig: sb.sig, leaves }
        const entries = envs.map((env, i): InboxEntryInit => ({
          recipient: TO, id: env.id, sender: env.from, bytes: sb.unsigned[i] as Uint8Array, expiresAt: Date.now() + ttlMs, senderSeq: i + 1, batch, leaf: i
        }))
        return { envs, entries, batch }
      }
      const batchRows = async (loc: StoreLocation): Promise<number[]> =>
        (await loc.raw(`SELECT refs FROM ${loc.table('inbox_batches')} ORDER BY bid`)).map(r => Number(r.refs))

      test('one batch row per batch; pending hands out the signer\'s wire bytes, verifiable alone; sizes and quotas count the wire', async () => {
        await withStore(async (store, loc) => {
          const { envs, entries } = signedBatch(6)
          // Leaves 0–3 in one call, 4 in another (same commit or not: a row each commit at most).
          const out = await store.enqueueMany(entries.slice(0, 4), { owned: true })
          assert.deepEqual(out.map(o => o.ok && o.status), ['stored', 'stored', 'stored', 'stored'])
          assert.deepEqual(await store.enqueue(entries[4]), { status: 'stored' })
          assert.deepEqual(await store.enqueue(entries[1]), { status: 'duplicate' })
          const refs = await batchRows(loc)
          assert.equal(refs.reduce((a, b) => a + b, 0), 5)
          assert.ok(refs.length <= 2)
          // The rows hold the unsigned bytes: no signature, no proof.
          const rows = await loc.raw(`SELECT id, size, payload, batch, leaf FROM ${loc.table('inbox')} ORDER BY pos`)
          for (const [i, r] of rows.entries()) {
            assert.equal(Number(r.leaf), i)
            assert.ok(r.batch != null)
            assert.ok((r.payload as Uint8Array).length < envs[i].bytes.length - 64)
            assert.equal(Number(r.size), envs[i].bytes.length)
          }
          const page = await store.pending(TO)
          assert.deepEqual(page.entries.map(e => e.id), envs.slice(0, 5).map(e => e.id))
          for (const [i, e] of page.entries.entries()) {
            assert.deepEqual(Buffer.from(e.bytes), Buffer.from(envs[i].bytes), `entry ${i}: the signer's bytes`)
            assert.equal(e.size, envs[i].bytes.length)
            const d = decodeEnvelope(e.bytes)
            assert.ok(d.ok, 'verifies alone (signature over the root its proof leads to)')
            assert.equal(d.envelope.id, envs[i].id)
          }
          assert.equal((await store.stats(TO)).inbox.bytes, envs.slice(0, 5).reduce((a, e) => a + e.bytes.length, 0))
          // A quota on bytes counts the wire size, not the stored bytes.
          const wire = envs[5].bytes.length
          const used = (await store.stats(TO)).inbox.bytes
          await rejectsWith(store.enqueue(entries[5], { quota: { inboxBytes: used + wire - 1 } }), 'QuotaExceededError')
          assert.deepEqual(await store.enqueue(entries[5], { quota: { inboxBytes: used + wire } }), { status: 'stored' })
        })
      })

      test('the batch row goes with its last payload: acknowledged, expired, pruned after keepDeliveredMs — no row left behind', async () => {
        const clock = manualClock()
        await withStore(async (store, loc) => {
          const a = signedBatch(4)
          await store.enqueueMany(a.entries)
          assert.deepEqual(await batchRows(loc), [4])
          await store.ack(TO, [a.envs[0].id, a.envs[2].id])
          assert.deepEqual(await batchRows(loc), [2])
          await store.ack(TO, [a.envs[0].id])
          assert.deepEqual(await batchRows(loc), [2], 'an acknowledged entry is not released twice')
          await store.ack(TO, [a.envs[1].id, a.envs[3].id])
          assert.deepEqual(await batchRows(loc), [])
          // Retransmissions of acknowledged entries are duplicates and add no row.
          assert.deepEqual((await store.enqueueMany(a.entries)).map(o => o.ok && o.status), ['duplicate', 'duplicate', 'duplicate', 'duplicate'])
          assert.deepEqual(await batchRows(loc), [])
          // Expired: removed with the entries.
          const b = signedBatch(3, 60_000)
          await store.enqueueMany(b.entries)
          assert.deepEqual(await batchRows(loc), [3])
          clock.advance(120_000)
          const res = await store.expire()
          assert.equal(res.expired.length, 3)
          assert.deepEqual(await batchRows(loc), [])
          assert.equal((await loc.raw(`SELECT COUNT(*) AS c FROM ${loc.table('inbox')} WHERE payload IS NOT NULL`)).map(r => Number(r.c))[0], 0)
        }, { clock: clock.now })
        const clock2 = manualClock()
        await withStore(async (store, loc) => {
          const c = signedBatch(2, 60_000)
          await store.enqueueMany(c.entries)
          await store.ack(TO, c.envs.map(e => e.id))
          assert.deepEqual(await batchRows(loc), [2], 'payloads kept after the acknowledgement keep their batch')
          clock2.advance(120_000)
          await store.expire()
          assert.deepEqual(await batchRows(loc), [])
        }, { clock: clock2.now, keepDeliveredMs: 1_000 })
      })

      test('a corrupted batch row, or an inbox row pointing at the wrong leaf, is StoreCorruptError on read and at open', async () => {
        for (const tamper of ['batch', 'leaf', 'payload'] as const) {
          await withStore(async (store, loc) => {
            const { entries } = signedBatch(3)
            await store.enqueueMany(entries)
            await store.enqueue(entry('plain', { recipient: TO }))
            if (tamper === 'batch') await loc.raw(`UPDATE ${loc.table('inbox_batches')} SET crc = crc + 1`)
            else if (tamper === 'leaf') await loc.raw(`UPDATE ${loc.table('inbox')} SET leaf = 2 WHERE leaf = 1`)
            else await loc.raw(`UPDATE ${loc.table('inbox')} SET crc = crc + 1 WHERE leaf = 1`)
            await rejectsWith(store.pending(TO), 'StoreCorruptError')
            await store.close()
            await rejectsWith(loc.create().open(), 'StoreCorruptError', undefined)
            const tool = loc.create({ verify: 'off' })
            await tool.open()
            await rejectsWith(tool.pending(TO), 'StoreCorruptError')
            await tool.close()
          })
        }
      })

      test('malformed batch entries are refused with InvalidArgumentError and nothing written', async () => {
        await withStore(async (store) => {
          const { entries, batch } = signedBatch(2)
          await rejectsWith(store.enqueue({ ...entries[0], leaf: 1 }), 'InvalidArgumentError')
          await rejectsWith(store.enqueue({ ...entries[0], leaf: 2 }), 'InvalidArgumentError')
          await rejectsWith(store.enqueue({ ...entries[0], leaf: undefined }), 'InvalidArgumentError')
          await rejectsWith(store.enqueue({ ...entries[0], batch: { sig: batch.sig.subarray(1), leaves: batch.leaves } }), 'InvalidArgumentError')
          await rejectsWith(store.enqueue({ ...entries[0], batch: { sig: batch.sig, leaves: batch.leaves.subarray(0, 32) } }), 'InvalidArgumentError')
          assert.equal((await store.stats()).inbox.count, 0)
        })
      })

      test('a version 7 store gets inbox_batches at open (version 8): its rows with full wire bytes read as before, batch entries join them', async () => {
        await withStore(async (store, loc) => {
          const old = signedBatch(2)
          // Stored the version 7 way: every row its full wire bytes.
          for (const env of old.envs) await store.enqueue({ recipient: TO, id: env.id, sender: env.from, bytes: env.bytes, expiresAt: Date.now() + HOUR })
          await store.close()
          await backToVersion7(loc, store.kind === 'postgres')
          const again = loc.create()
          await again.open()
          try {
            assert.equal(again.info().schemaVersion, SCHEMA_VERSION)
            const fresh = signedBatch(2)
            await again.enqueueMany(fresh.entries)
            const page = await again.pending(TO)
            assert.deepEqual(page.entries.map(e => Buffer.from(e.bytes)), [...old.envs, ...fresh.envs].map(e => Buffer.from(e.bytes)))
            await again.ack(TO, [...old.envs, ...fresh.envs].map(e => e.id))
            assert.deepEqual(await batchRows(loc), [])
          } finally {
            await again.close()
          }
        })
      })
    })

    describe('integrity', () => {
      test('a tampered inbox payload is StoreCorruptError on read and at open', async () => {
        await withStore(async (store, loc) => {
          await store.enqueue(entry('t1', { size: 64 }))
          await store.enqueue(entry('t2', { size: 64 }))
          await loc.raw(`UPDATE ${loc.table('inbox')} SET crc = crc + 1 WHERE id = 't2'`)
          await rejectsWith(store.pending(BOB), 'StoreCorruptError', err => { assert.equal(err.details.id, 't2') })
          await store.close()
          const again = loc.create()
          await rejectsWith(again.open(), 'StoreCorruptError')
          await rejectsWith(again.stats(), 'StoreClosedError')
          // `verify: 'off'` opens it (for repair tools); the read still refuses the bad entry.
          const tool = loc.create({ verify: 'off' })
          await tool.open()
          await rejectsWith(tool.pending(BOB), 'StoreCorruptError')
          await tool.close()
        })
      })

      test('a tampered log payload is StoreCorruptError in queries, replay and at open', async () => {
        await withStore(async (store, loc) => {
          await store.log([{ id: M('T1'), event: 'sent', conv: 'cc', size: 4, bytes: payload('T1', 4) }])
          await loc.raw(`UPDATE ${loc.table('log')} SET payload_crc = payload_crc + 1`)
          assert.equal((await store.query({})).records.length, 1) // metadata is still served
          await rejectsWith(store.query({}, { includeBytes: true }), 'StoreCorruptError')
          await rejectsWith(store.conversation('cc'), 'StoreCorruptError')
          await store.close()
          await rejectsWith(loc.create().open(), 'StoreCorruptError')
        })
      })

      test('a version 1 store is migrated at open, its data intact', async () => {
        await withStore(async (store, loc) => {
          const exp = Date.now() + 3_600_000
          await store.enqueue({ recipient: BOB, id: M('m1'), sender: ALICE, bytes: payload('m1', 3), expiresAt: exp })
          await store.enqueue({ recipient: DAVE, id: M('m2'), sender: ALICE, bytes: payload('m2', 3), expiresAt: exp, replica: true, home: 'node-h' })
          await store.close()
          await backToVersion6(loc, store.kind === 'postgres')
          // Back to the version 1 schema: no inbox_replica; the message log in its version 1
          // layout (names as text, every recipient in log_to, full indexes), with data in it.
          const pg = store.kind === 'postgres'
          const d = { ...(pg ? postgresDialect('x') : sqliteDialect), table: loc.table }
          const raw = async (q: string, params: unknown[] = []): Promise<unknown> => await loc.raw(pg ? numberPlaceholders(q) : q, params)
          // The inbox in its version 1 layout too (unique (recipient, id), no idh), its rows copied.
          // (PostgreSQL: in place, which keeps the identity sequence of rid; SQLite: a new table.)
          const v1Columns = 'rid, recipient, id, sender, sender_seq, priority, size, payload, crc, enqueued_ts, expires_at, delivered_ts, replica, home, pos'
          if (pg) {
            await raw(`DROP INDEX ${loc.table('inbox_idh')}`)
            await raw(`DROP INDEX ${loc.table('inbox_replica')}`)
            await raw(`ALTER TABLE ${loc.table('inbox')} DROP COLUMN idh`)
            await raw(`ALTER TABLE ${loc.table('inbox')} ADD CONSTRAINT inbox_recipient_id_key UNIQUE (recipient, id)`)
          } else {
            await raw(`CREATE TABLE ${loc.table('inbox_old')} AS SELECT ${v1Columns} FROM ${loc.table('inbox')}`)
            await raw(`DROP TABLE ${loc.table('inbox')}`)
          }
          for (const t of ['log_to', 'log', 'log_names', 'log_spans', 'log_ids', 'log_status']) await raw(`DROP TABLE ${loc.table(t)}`)
          for (const stmt of schemaStatements(d, 1)) if (/^CREATE (TABLE|INDEX) \S*(log|inbox)/.test(stmt) && (!pg || !/inbox/.test(stmt))) await raw(stmt)
          if (!pg) {
            await raw(`INSERT INTO ${loc.table('inbox')} (${v1Columns}) SELECT ${v1Columns} FROM ${loc.table('inbox_old')}`)
            await raw(`DROP TABLE ${loc.table('inbox_old')}`)
          }
          const v1 = [
            { seq: 1, id: 'm1', event: 'stored', status: 'pending', sender: ALICE, to: [BOB], conv: 'c1', size: 3, received: 1000, peer: 'peer-a' },
            { seq: 2, id: 'm3', event: 'sent', status: 'ok', sender: ALICE, to: [BOB, CAROL], topic: 'a/b', size: 1, received: 1001 },
            { seq: 3, id: 'm4', event: 'received', status: 'ok', sender: CAROL, to: [], topic: 'a/c', conv: 'c1', size: 4, received: 1002, bytes: payload('m4', 4), peer: 'peer-a' },
            { seq: 4, id: 'm5', event: 'relayed', status: 'ok', to: [DAVE, DAVE], size: 2, received: 1003 }
          ]
          let bytes = 0
          for (const r of v1) {
            const stored = r.bytes?.length ?? 0
            bytes += 256 + stored
            await raw(`INSERT INTO ${loc.table('log')} (seq, id, event, status, sender, recipients, topic, conv, size, received_ts, peer, payload, payload_crc, stored_bytes) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
              [r.seq, r.id, r.event, r.status, r.sender ?? null, JSON.stringify(r.to), r.topic ?? null, r.conv ?? null, r.size, r.received, r.peer ?? null, r.bytes ?? null, r.bytes != null ? payloadChecksum(r.id, r.bytes) : null, stored])
            for (const a of new Set(r.to)) await raw(`INSERT INTO ${loc.table('log_to')} (agent, seq) VALUES (?, ?)`, [a, r.seq])
          }
          await raw(`UPDATE ${loc.table('counters')} SET value = ? WHERE name = 'log_seq'`, [4])
          await raw(`UPDATE ${loc.table('counters')} SET value = ? WHERE name = 'log_count'`, [4])
          await raw(`UPDATE ${loc.table('counters')} SET value = ? WHERE name = 'log_bytes'`, [bytes])
          await raw(`UPDATE ${loc.table('meta')} SET value = '1' WHERE key = 'schema_version'`)
          const again = loc.create()
          await again.open()
          try {
            assert.equal(again.info().schemaVersion, SCHEMA_VERSION)
            assert.deepEqual((await again.inboxes({ replica: true })).recipients, [DAVE])
            assert.deepEqual((await again.inboxes({ replica: false })).recipients, [BOB])
            assert.deepEqual((await again.pending(BOB)).entries.map(e => e.id), [M('m1')])
            if (pg) {
              const left = await loc.raw(`SELECT COUNT(*) AS c FROM pg_constraint WHERE conrelid = to_regclass($1) AND contype = 'u'`, [loc.table('inbox')]) as Array<{ c: unknown }>
              assert.equal(Number(left[0].c), 0, 'the unique (recipient, id) constraint is gone')
            }
            // The migrated inbox finds its ids (duplicates, acks) through idh.
            assert.deepEqual(await again.enqueue({ recipient: BOB, id: M('m1'), sender: ALICE, bytes: payload('m1', 3), expiresAt: exp }), { status: 'duplicate' })
            assert.deepEqual(await again.enqueue({ recipient: DAVE, id: M('m1'), sender: ALICE, bytes: payload('m1', 3), expiresAt: exp }), { status: 'stored' })
            assert.deepEqual(await again.ack(DAVE, [M('m2'), M('m1')]), { acked: [M('m2'), M('m1')] })
            assert.deepEqual((await again.pending(BOB)).entries.map(e => e.id), [M('m1')])
            const all = (await again.query({})).records
            assert.deepEqual(all.map(r => [r.seq, r.id, r.event, r.status, r.from, r.to, r.topic, r.conv, r.size, r.receivedTs, r.peer, r.hasBytes]),
              v1.map(r => [r.seq, r.id, r.event, r.status, r.sender, r.to, r.topic, r.conv, r.size, r.received, r.peer, r.bytes != null]))
            const find = async (f: Record<string, unknown>): Promise<string[]> => (await again.query(f)).records.map(r => r.id)
            assert.deepEqual(await find({ agent: BOB }), ['m1', 'm3'])
            assert.deepEqual(await find({ agent: CAROL }), ['m3', 'm4'])
            assert.deepEqual(await find({ agent: DAVE }), ['m5'])
            assert.deepEqual(await find({ id: 'm4' }), ['m4'])
            assert.deepEqual(await find({ topic: 'a/#' }), ['m3', 'm4'])
            assert.deepEqual(await find({ topic: 'a/b' }), ['m3'])
            assert.deepEqual(await find({ since: 1001, until: 1003 }), ['m3', 'm4'])
            const conv = await again.conversation('c1')
            assert.deepEqual(conv.map(r => r.id), [M('m1'), M('m4')])
            assert.deepEqual(conv[1].bytes, payload('m4', 4))
            assert.equal(await again.updateStatus(M('m1'), { status: 'delivered' }), 1)
            await again.log([{ id: M('m6'), event: 'sent', from: BOB, to: [ALICE], size: 1 }])
            assert.deepEqual((await again.query({ agent: BOB })).records.map(r => `${r.seq}:${r.id}:${r.status}`), ['1:m1:delivered', '2:m3:ok', '5:m6:ok'])
            assert.deepEqual((await again.stats()).log, { count: 5, bytes: bytes + 256 })
            // Retention by age finds the migrated records through their spans.
            assert.deepEqual(await again.retain({ maxAgeMs: 100 }, { now: 1102 }), { deleted: 2, bytes: 2 * 256, more: false })
            assert.deepEqual(await find({}), ['m4', 'm5', 'm6'])
          } finally {
            await again.close()
          }
        })
      })

      test('a version 6 store (inbox_idh) gets inbox_ids at open (version 7): pending entries deliver, duplicates, moves and acks find them', async () => {
        await withStore(async (store, loc) => {
          const pg = store.kind === 'postgres'
          await store.enqueue(entry('s3', { senderSeq: 3 }))
          await store.enqueue(entry('c1', { sender: CAROL }))
          await store.enqueue(entry('s5', { senderSeq: 5 }))
          await store.enqueue(entry('d1', { recipient: DAVE }))
          await store.ack(BOB, [M('c1')])
          await store.close()
          await backToVersion6(loc, pg)
          const again = loc.create()
          await again.open()
          try {
            assert.equal(again.info().schemaVersion, SCHEMA_VERSION)
            const keys = await loc.raw(`SELECT t, COUNT(*) AS c FROM ${loc.table('inbox_ids')} GROUP BY t`)
            assert.deepEqual(keys.map(r => [Number(r.t), Number(r.c)]), [[INBOX_IDS_TOP, 4]], 'every row\'s key, in the top tier (version 9)')
            const idx = pg
              ? await loc.raw('SELECT 1 AS one FROM pg_indexes WHERE schemaname = $1 AND indexname = $2', [loc.table('inbox').split('.')[0].replace(/"/g, ''), 'inbox_idh'])
              : await loc.raw("SELECT 1 AS one FROM sqlite_master WHERE type = 'index' AND name = 'inbox_idh'")
            assert.equal(idx.length, 0, 'inbox_idh is dropped')
            assert.deepEqual(await allPending(again, BOB), ['s3', 's5'])
            // Duplicates of migrated entries, pending and acknowledged.
            assert.deepEqual(await again.enqueue(entry('s3', { senderSeq: 3 })), { status: 'duplicate' })
            assert.deepEqual(await again.enqueue(entry('c1', { sender: CAROL })), { status: 'duplicate' })
            // A lower sequence number moves the migrated ones back.
            await again.enqueue(entry('s1', { senderSeq: 1 }))
            assert.deepEqual(await allPending(again, BOB), ['s1', 's3', 's5'])
            assert.deepEqual((await again.ack(BOB, [M('s3'), M('d1')])).acked, [M('s3')])
            assert.deepEqual(await allPending(again, BOB), ['s1', 's5'])
            assert.deepEqual((await again.pending(DAVE)).entries.map(e => e.id), [M('d1')])
            assert.deepEqual((await again.ack(DAVE, [M('d1')])).acked, [M('d1')])
          } finally {
            await again.close()
          }
        })
      })

      test(`inbox_ids: tier 0 moves to tier 1 at ${INBOX_IDS_TIER0} keys; both tiers answer; deleted rows take their keys`, async () => {
        const clock = manualClock(1_000_000)
        await withStore(async (store, loc) => {
          const n = INBOX_IDS_TIER0 + 100
          const ids = Array.from({ length: n }, (_, i) => `t${i}`)
          for (let i = 0; i < n; i += 512) {
            const out = await store.enqueueMany(ids.slice(i, i + 512).map(id => entry(id, { expiresAt: id === 't0' ? 1_001_000 : 2_000_000 })))
            assert.ok(out.every(o => o.ok && o.status === 'stored'))
          }
          const tiers = async (): Promise<number[][]> => (await loc.raw(`SELECT t, COUNT(*) AS c FROM ${loc.table('inbox_ids')} GROUP BY t ORDER BY t`)).map(r => [Number(r.t), Number(r.c)])
          const moved = (await tiers()).find(([t]) => t === 1)?.[1] ?? 0
          assert.ok(moved >= INBOX_IDS_TIER0, `tier 1 holds ${moved} keys`)
          assert.equal((await tiers()).reduce((a, [, c]) => a + c, 0), n)
          // An id of each tier: a duplicate, and acknowledged by its key.
          const last = ids[n - 1]
          const dup = await store.enqueueMany([entry('t1'), entry(last), entry('t-new')])
          assert.deepEqual(dup.map(o => o.ok && o.status), ['duplicate', 'duplicate', 'stored'])
          assert.deepEqual((await store.ack(BOB, [M('t1'), M(last), M('t-unknown')])).acked, [M('t1'), M(last)])
          clock.set(1_002_000)
          const r = await store.expire()
          assert.deepEqual(r.expired.map(e => e.id), [M('t0')])
          assert.equal((await tiers()).reduce((a, [, c]) => a + c, 0), n)
          // The expired entry's key went with its row: the id is new again.
          assert.deepEqual(await store.enqueue(entry('t0', { expiresAt: 2_000_000 })), { status: 'stored' })
        }, { clock: clock.now, quota: { inboxCount: Infinity, inboxBytes: Infinity, senderCount: Infinity, senderBytes: Infinity, senderTotalCount: Infinity, senderTotalBytes: Infinity } })
      })

      test(`inbox_ids in levels (version 9): tier k moves into tier k + 1 every ${INBOX_IDS_TIER0}·${INBOX_IDS_GROWTH}^k inserts, higher tiers first; every tier answers`, async () => {
        const clock = manualClock(1_000_000)
        await withStore(async (store, loc) => {
          const tiers = async (): Promise<number[][]> => (await loc.raw(`SELECT t, COUNT(*) AS c FROM ${loc.table('inbox_ids')} GROUP BY t ORDER BY t`)).map(r => [Number(r.t), Number(r.c)])
          // The moves follow the inbox_pos counter: set it just below a boundary, then insert across it.
          const across = async (boundary: number, prefix: string, n: number): Promise<void> => {
            await loc.raw(`UPDATE ${loc.table('counters')} SET value = ${boundary - Math.floor(n / 2)} WHERE name = 'inbox_pos'`)
            const out = await store.enqueueMany(Array.from({ length: n }, (_, i) => entry(`${prefix}${i}`, { expiresAt: i === 0 ? 1_001_000 : 2_000_000 })))
            assert.ok(out.every(o => o.ok && o.status === 'stored'))
          }
          await across(INBOX_IDS_TIER0, 'a', 30)
          assert.deepEqual(await tiers(), [[1, 30]])
          await across(INBOX_IDS_TIER0 * INBOX_IDS_GROWTH, 'b', 20)
          assert.deepEqual(await tiers(), [[1, 20], [2, 30]], 'tier 1 moved into tier 2 before tier 0 moved into tier 1')
          await across(INBOX_IDS_TIER0 * INBOX_IDS_GROWTH ** 2, 'c', 10)
          assert.deepEqual(await tiers(), [[1, 10], [2, 20], [3, 30]])
          await across(INBOX_IDS_TIER0 * INBOX_IDS_GROWTH ** 3, 'd', 6)
          assert.equal(INBOX_IDS_TOP, 3)
          assert.deepEqual(await tiers(), [[1, 6], [2, 10], [3, 50]], 'the top tier takes tier 2 and keeps its own')
          await store.enqueue(entry('e0', { expiresAt: 2_000_000 }))
          assert.deepEqual(await tiers(), [[0, 1], [1, 6], [2, 10], [3, 50]])
          // An id of each tier: a duplicate, and acknowledged by its key.
          const one = ['a1', 'b1', 'c1', 'd1', 'e0']
          assert.deepEqual((await store.enqueueMany(one.map(id => entry(id)))).map(o => o.ok && o.status), one.map(() => 'duplicate'))
          assert.deepEqual((await store.ack(BOB, [...one, 'zz'].map(M))).acked, one.map(M))
          // Expired rows take their keys with them, from any tier; the ids are new again.
          clock.set(1_002_000)
          assert.deepEqual((await store.expire()).expired.map(e => e.id).sort(), ['a0', 'b0', 'c0', 'd0'].map(M))
          assert.deepEqual(await tiers(), [[0, 1], [1, 5], [2, 9], [3, 48]])
          assert.deepEqual((await store.enqueueMany(['a0', 'b0', 'c0', 'd0'].map(id => entry(id, { expiresAt: 2_000_000 })))).map(o => o.ok && o.status), ['stored', 'stored', 'stored', 'stored'])
        }, { clock: clock.now, quota: { inboxCount: Infinity, inboxBytes: Infinity, senderCount: Infinity, senderBytes: Infinity, senderTotalCount: Infinity, senderTotalBytes: Infinity } })
      })

      test('a version 8 store (inbox_ids in two tiers) gets levels at open (version 9): tier 1 goes to the top tier, keys of every tier are found and deleted with their rows', async () => {
        const clock = manualClock(1_000_000)
        await withStore(async (store, loc) => {
          await store.enqueue(entry('old1', { expiresAt: 1_001_000 }))
          await store.enqueue(entry('old2', { expiresAt: 2_000_000 }))
          await store.enqueue(entry('new1', { expiresAt: 1_001_000 }))
          await store.close()
          await backToVersion8(loc, store.kind === 'postgres')
          // As version 8 left it: two keys moved to tier 1, one in tier 0.
          await loc.raw(`UPDATE ${loc.table('inbox_ids')} SET t = 1 WHERE rid IN (SELECT rid FROM ${loc.table('inbox')} WHERE id IN ('old1', 'old2'))`)
          const tiers = async (): Promise<number[][]> => (await loc.raw(`SELECT t, COUNT(*) AS c FROM ${loc.table('inbox_ids')} GROUP BY t ORDER BY t`)).map(r => [Number(r.t), Number(r.c)])
          assert.deepEqual(await tiers(), [[0, 1], [1, 2]])
          const again = loc.create({ clock: clock.now })
          await again.open()
          try {
            assert.equal(again.info().schemaVersion, SCHEMA_VERSION)
            assert.deepEqual(await tiers(), [[0, 1], [INBOX_IDS_TOP, 2]])
            assert.deepEqual(await allPending(again, BOB), ['old1', 'old2', 'new1'])
            assert.deepEqual((await again.enqueueMany(['old2', 'new1'].map(id => entry(id)))).map(o => o.ok && o.status), ['duplicate', 'duplicate'])
            clock.set(1_002_000)
            assert.deepEqual((await again.expire()).expired.map(e => e.id).sort(), [M('new1'), M('old1')])
            assert.deepEqual(await tiers(), [[INBOX_IDS_TOP, 1]], 'the new trigger deletes the top tier\'s keys')
            assert.deepEqual((await again.ack(BOB, [M('old2')])).acked, [M('old2')])
          } finally {
            await again.close()
          }
        }, { clock: clock.now })
      })

      test('version 10: an enqueue batch writes one inbox_ids key per row it inserts (SQLite: one statement, no trigger per row), none for refused or duplicate entries; a version 9 store migrates', async () => {
        const clock = manualClock(1_000_000)
        await withStore(async (store, loc) => {
          const pg = store.kind === 'postgres'
          const keysMatchRows = async (): Promise<void> => {
            const rows = await loc.raw(`SELECT i.rid, COUNT(x.rid) AS c FROM ${loc.table('inbox')} i LEFT JOIN ${loc.table('inbox_ids')} x ON x.rid = i.rid AND x.idh = i.idh GROUP BY i.rid`)
            assert.ok(rows.every(r => Number(r.c) === 1), 'one key per row')
            const keys = await loc.raw(`SELECT COUNT(*) AS c FROM ${loc.table('inbox_ids')}`)
            assert.equal(Number(keys[0].c), rows.length, 'no key without its row')
          }
          await store.enqueue(entry('v9-a', { expiresAt: 2_000_000 }))
          await store.close()
          if (!pg) {
            // Version 9's row trigger, as an older store has it.
            await loc.raw(`CREATE TRIGGER inbox_ids_add AFTER INSERT ON inbox BEGIN INSERT INTO ${loc.table('inbox_ids')} (t, idh, rid) VALUES (0, NEW.idh, NEW.rid); END`)
          }
          await loc.raw(`UPDATE ${loc.table('meta')} SET value = '9' WHERE key = 'schema_version'`)
          const again = loc.create({ clock: clock.now, quota: { senderCount: 40 } })
          await again.open()
          try {
            assert.equal(again.info().schemaVersion, SCHEMA_VERSION)
            const triggers = pg
              ? await loc.raw(`SELECT tgname AS name FROM pg_trigger WHERE NOT tgisinternal AND tgrelid = '${loc.table('inbox')}'::regclass AND tgname = 'inbox_ids_add'`)
              : await loc.raw("SELECT name FROM sqlite_master WHERE type = 'trigger' AND name = 'inbox_ids_add'")
            // PostgreSQL keeps its statement-level trigger; SQLite's per-row one is gone.
            assert.equal(triggers.length, pg ? 1 : 0)
            // 70 entries in one batch (several INSERT statements): duplicates of the old and of
            // each other, and past the sender's quota of 40 — only the stored ones get keys.
            const ids = Array.from({ length: 70 }, (_, i) => i % 10 === 9 ? 'v9-a' : i % 10 === 8 ? `n${i - 1}` : `n${i}`)
            const expiresAt = (id: string): number => id === 'n0' || id === 'n1' ? 1_001_000 : 2_000_000
            const out = await again.enqueueMany(ids.map(id => entry(id, { expiresAt: expiresAt(id) })))
            const stored = out.filter(o => o.ok && o.status === 'stored').length
            assert.ok(stored > 0 && stored < 70 && out.some(o => !o.ok), 'stored, duplicate and refused entries in one batch')
            await keysMatchRows()
            assert.deepEqual((await again.enqueueMany(['v9-a', 'n0', 'n7'].map(id => entry(id)))).map(o => o.ok && o.status), ['duplicate', 'duplicate', 'duplicate'])
            clock.set(1_002_000)
            assert.ok((await again.expire()).expired.length > 0)
            await keysMatchRows()
            assert.deepEqual(await again.enqueue(entry('n0', { expiresAt: 3_000_000 })), { status: 'stored' })
            await keysMatchRows()
          } finally {
            await again.close()
          }
        }, { clock: clock.now })
      })

      test('a store with a newer schema version is refused', async () => {
        await withStore(async (store, loc) => {
          await store.close()
          await loc.raw(`UPDATE ${loc.table('meta')} SET value = '99' WHERE key = 'schema_version'`)
          await rejectsWith(loc.create().open(), 'StoreVersionError', (err: InstanceType<typeof StoreVersionError>) => { assert.equal(err.details?.version, 99) })
        })
      })
    })
  })
}

/**
 * Takes a store of this code back to schema version 6's layout: the inbox's ids indexed by
 * `inbox_idh (idh)`, no `inbox_ids` and no triggers (rows are written the same by both).
 */
/** Drops triggers on the inbox (PostgreSQL: and their functions). */
async function dropInboxTriggers (loc: StoreLocation, pg: boolean, names: string[]): Promise<void> {
  for (const name of names) {
    if (pg) {
      await loc.raw(`DROP TRIGGER ${name} ON ${loc.table('inbox')}`)
      await loc.raw(`DROP FUNCTION ${loc.table(name)}()`)
    } else {
      await loc.raw(`DROP TRIGGER ${name}`)
    }
  }
}

/** Undoes version 10: SQLite's per-row trigger that writes each inbox row's key. */
async function backToVersion9 (loc: StoreLocation, pg: boolean): Promise<void> {
  if (!pg) await loc.raw(`CREATE TRIGGER inbox_ids_add AFTER INSERT ON inbox BEGIN INSERT INTO ${loc.table('inbox_ids')} (t, idh, rid) VALUES (0, NEW.idh, NEW.rid); END`)
  await loc.raw(`UPDATE ${loc.table('meta')} SET value = '9' WHERE key = 'schema_version'`)
}

/** Undoes version 9: every moved key in tier 1, the delete trigger of version 7 (tiers 0 and 1). */
async function backToVersion8 (loc: StoreLocation, pg: boolean): Promise<void> {
  await backToVersion9(loc, pg)
  const ids = loc.table('inbox_ids')
  await loc.raw(`UPDATE ${ids} SET t = 1 WHERE t > 0`)
  if (pg) {
    await loc.raw(`CREATE OR REPLACE FUNCTION ${loc.table('inbox_ids_drop')}() RETURNS trigger LANGUAGE plpgsql AS $body$ BEGIN DELETE FROM ${ids} x USING old_rows o WHERE x.t IN (0, 1) AND x.idh = o.idh AND x.rid = o.rid; RETURN NULL; END $body$`)
  } else {
    await loc.raw('DROP TRIGGER inbox_ids_drop')
    await loc.raw(`CREATE TRIGGER inbox_ids_drop AFTER DELETE ON inbox BEGIN DELETE FROM ${ids} WHERE t IN (0, 1) AND idh = OLD.idh AND rid = OLD.rid; END`)
  }
  await loc.raw(`UPDATE ${loc.table('meta')} SET value = '8' WHERE key = 'schema_version'`)
}

/** Undoes version 8 (inbox_batches, the inbox's batch and leaf columns); the store must hold no batch entries. */
async function backToVersion7 (loc: StoreLocation, pg: boolean): Promise<void> {
  await backToVersion8(loc, pg)
  const inbox = loc.table('inbox')
  await dropInboxTriggers(loc, pg, ['inbox_batches_update', 'inbox_batches_delete'])
  await loc.raw(`DROP TABLE ${loc.table('inbox_batches')}`)
  await loc.raw(`ALTER TABLE ${inbox} DROP COLUMN batch`)
  await loc.raw(`ALTER TABLE ${inbox} DROP COLUMN leaf`)
  await loc.raw(`UPDATE ${loc.table('meta')} SET value = '7' WHERE key = 'schema_version'`)
}

async function backToVersion6 (loc: StoreLocation, pg: boolean): Promise<void> {
  await backToVersion7(loc, pg)
  const inbox = loc.table('inbox')
  await dropInboxTriggers(loc, pg, ['inbox_ids_add', 'inbox_ids_drop'])
  await loc.raw(`DROP TABLE ${loc.table('inbox_ids')}`)
  await loc.raw(`CREATE INDEX inbox_idh ON ${inbox} (idh)`)
  await loc.raw(`UPDATE ${loc.table('meta')} SET value = '6' WHERE key = 'schema_version'`)
}

function quotaField (q: QuotaKind): string {
  return ({
    'inbox-count': 'inboxCount',
    'inbox-bytes': 'inboxBytes',
    'sender-count': 'senderCount',
    'sender-bytes': 'senderBytes',
    'sender-total-count': 'senderTotalCount',
    'sender-total-bytes': 'senderTotalBytes'
  } as const)[q]
}
