/**
 * Pure parts of the store, without a database: topic patterns in SQL, filters, cursors,
 * the query builder, the enqueue planner and the group commit.
 */
import { test, describe } from 'node:test'
import assert from 'node:assert/strict'
import { topicMatches } from '../../src/core/topics.ts'
import { patternToRegex, parseTopicFilter, prefixUpperBound, parseLogFilter, filterKey, encodeLogCursor, decodeLogCursor, encodeInboxCursor, decodeInboxCursor, buildLogQuery, parseQueryOptions, logIdHash, bucketsOf, type QueryDialect } from '../../src/store/query.ts'
import { MAX_RUN, decodeMembers, encodeMembers, findMembers, memberIdAt, planLogRows, runLength, RunFormatError } from '../../src/store/log-runs.ts'
import { planEnqueue, usageKeyOf, usageMapKey, heldKey, type PlanState } from '../../src/store/plan.ts'
import { createGroupCommit } from '../../src/store/group-commit.ts'
import { normalizeEntry, normalizeLogRecord, payloadChecksum } from '../../src/store/validate.ts'
import { defaultQuota, mergeQuota } from '../../src/store/config.ts'
import { numberPlaceholders } from '../../src/store/postgres.ts'
import { InvalidQueryError, QuotaExceededError } from '../../src/store/errors.ts'
import type { InboxEntryInit } from '../../src/store/types.ts'
import type { AgentId, MessageId } from '../../src/core/ids.ts'

describe('topic patterns as SQL', () => {
  const topics = ['a', 'b', 'a/b', 'a/c', 'a/b/c', 'a/b/c/d', 'x/b/c', 'a.b/c', 'axb/c', 'a+b/c', 'aab/c', 'a/bc', 'a/(b)', 'a/[b]', 'a/b$', 'a/^b', 'a/b|c', 'a/{1}', 'a/b?', 'a\\b/c', 'é/ü']
  const patterns = ['#', '*', 'a', 'a/#', 'a/*', '*/b', '*/#', 'a/*/c', '*/*/*', 'a.b/*', 'a+b/#', 'a/(b)', 'a/[b]', 'a/b$', 'a/^b', 'a/b|c', 'a/{1}', 'a/b?', 'a\\b/#', 'é/*', '*/*/*/#']

  test('patternToRegex agrees with topicMatches', () => {
    for (const p of patterns) {
      const re = new RegExp(patternToRegex(p), 'u')
      for (const t of topics) assert.equal(re.test(t), topicMatches(p, t), `${p} vs ${t}`)
    }
  })

  test('literal prefix and its upper bound', () => {
    assert.deepEqual(parseTopicFilter('a/b'), { pattern: 'a/b', exact: true, prefix: 'a/b' })
    assert.deepEqual(parseTopicFilter('a/b/*/c'), { pattern: 'a/b/*/c', exact: false, prefix: 'a/b/' })
    assert.deepEqual(parseTopicFilter('#'), { pattern: '#', exact: false, prefix: '' })
    assert.equal(prefixUpperBound('a/b/'), 'a/b0')
    for (const t of topics) {
      const inRange = t >= 'a/' && t < prefixUpperBound('a/')
      assert.equal(inRange, t.startsWith('a/'), t)
    }
    assert.throws(() => parseTopicFilter('a/#/b'), InvalidQueryError)
  })
})

describe('filters and cursors', () => {
  test('filters normalize; the fingerprint ignores key and list order', () => {
    const a = parseLogFilter({ status: ['acked', 'ok', 'ok'], agent: 'x', since: 5 })
    const b = parseLogFilter({ since: 5, agent: 'x', status: ['ok', 'acked'], topic: undefined })
    assert.deepEqual(a, { agent: 'x', since: 5, status: ['acked', 'ok'] })
    assert.equal(filterKey(a), filterKey(b))
    assert.notEqual(filterKey(a), filterKey(parseLogFilter({ agent: 'y', since: 5, status: ['ok', 'acked'] })))
  })

  test('cursors round-trip and are bound to their filter, order and inbox', () => {
    const c = encodeLogCursor('asc', 42, 'k1')
    assert.match(c, /^[A-Za-z0-9_-]+$/)
    assert.equal(decodeLogCursor(c, 'asc', 'k1'), 42)
    assert.throws(() => decodeLogCursor(c, 'desc', 'k1'), InvalidQueryError)
    assert.throws(() => decodeLogCursor(c, 'asc', 'k2'), InvalidQueryError)
    const i = encodeInboxCursor('bob', 7)
    assert.equal(decodeInboxCursor(i, 'bob'), 7)
    assert.throws(() => decodeInboxCursor(i, 'carol'), InvalidQueryError)
    assert.throws(() => decodeLogCursor(i, 'asc', 'k1'), InvalidQueryError)
    for (const bad of [undefined, 5, '', 'x'.repeat(300), 'a b', Buffer.from('fm1|log|asc|01|k1').toString('base64url'), Buffer.from('fm2|log|asc|1|k1').toString('base64url')]) {
      assert.throws(() => decodeLogCursor(bad, 'asc', 'k1'), InvalidQueryError, String(bad))
    }
  })

  test('the query builder: conditions, parameters, one extra row', () => {
    const d: QueryDialect = { table: n => `s.${n}`, topicMatch: (col, p) => ({ sql: `match(${col}, ?)`, value: `re:${p}` }) }
    const f = parseLogFilter({ agent: 'bob', topic: 'a/*/c', status: ['ok', 'acked'], since: 1, until: 9 })
    const page = parseQueryOptions(f, { limit: 10, order: 'desc', cursor: encodeLogCursor('desc', 100, filterKey(f)) })
    const q = buildLogQuery(f, page, { from: 50, to: 100, take: 10 }, d)
    assert.match(q.sql, /FROM s\.log l LEFT JOIN s\.log_names ns ON ns\.nid = l\.sender .* WHERE /)
    assert.match(q.sql, /\(l\.sender = \(SELECT nid FROM s\.log_names WHERE name = \?\) OR l\.rcpt = \(SELECT nid FROM s\.log_names WHERE name = \?\) OR EXISTS \(SELECT 1 FROM s\.log_to t WHERE t\.agent = \(SELECT nid FROM s\.log_names WHERE name = \?\) AND t\.seq = l\.seq\)\)/)
    assert.match(q.sql, /l\.topic IN \(SELECT n\.nid FROM s\.log_names n WHERE n\.name >= \? AND n\.name < \? AND match\(n\.name, \?\)\)/)
    // Rows holding records in 50 … 99: a run that starts up to MAX_RUN positions earlier may reach in.
    assert.match(q.sql, /l\.seq > \? AND l\.seq < \? AND l\.seq \+ l\.n > \? ORDER BY l\.seq DESC LIMIT 11$/)
    assert.doesNotMatch(q.sql, /l\.payload[^_]/)
    // Status: the row's, or (a run) one of its members' own in log_status.
    assert.match(q.sql, /\(l\.status IN \(\?, \?\) OR \(l\.n > 1 AND EXISTS \(SELECT 1 FROM s\.log_status o WHERE o\.s >= l\.seq AND o\.s < l\.seq \+ l\.n AND o\.status IN \(\?, \?\)\)\)\)/)
    assert.deepEqual(q.params, ['bob', 'bob', 'bob', 'a/', 'a0', 're:a/*/c', 1, 9, 'acked', 'ok', 'acked', 'ok', 50 - MAX_RUN, 100, 50])
    assert.equal(page.after, 100)
    assert.equal((q.sql.match(/\?/g) ?? []).length, q.params.length)
    assert.match(buildLogQuery(f, { ...page, includeBytes: true }, { from: 0, to: 1, take: 1 }, d).sql, /l\.payload FROM/)
    // By id: the id-index buckets the window spans, the hash, the full id.
    const byId = parseLogFilter({ id: 'm1' })
    const qi = buildLogQuery(byId, parseQueryOptions(byId, {}), { from: 65_530, to: 65_540, take: 5 }, d)
    assert.match(qi.sql, /\(l\.seq >> 16\) IN \(\?, \?\) AND l\.idh = \? AND l\.id = \?/)
    // …or a run's member: log_ids by the buckets of 2^12 positions the window spans, the hash, the window.
    assert.match(qi.sql, /OR \(l\.n > 1 AND l\.seq IN \(SELECT \(SELECT MAX\(g\.seq\) FROM s\.log g WHERE g\.seq <= x\.s\) FROM s\.log_ids x WHERE x\.b IN \(\?, \?\) AND x\.idh = \? AND x\.s >= \? AND x\.s < \?\)\)/)
    assert.deepEqual(qi.params, [0, 1, logIdHash('m1'), 'm1', 15, 16, logIdHash('m1'), 65_530, 65_540, 65_530 - MAX_RUN, 65_540, 65_530])
  })

  test('the log id hash is fixed (part of the stored format)', () => {
    // Stored in every log row: a change here needs a schema migration.
    assert.deepEqual(['', 'm1', 'bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy'].map(logIdHash), [939191937157965, 1732623759232647, 3605611687726361])
    for (const id of ['a', 'b', 'ab', 'ba', 'm1', 'm2']) {
      const h = logIdHash(id)
      assert.ok(Number.isSafeInteger(h) && h >= 0, id)
    }
    assert.notEqual(logIdHash('ab'), logIdHash('ba'))
    assert.deepEqual(bucketsOf(0, 1).params, [0])
    assert.deepEqual(bucketsOf(65_535, 65_537).params, [0, 1])
    assert.deepEqual(bucketsOf(131_072, 131_072).params, [2])
  })

  test('placeholders are renumbered for PostgreSQL outside literals', () => {
    assert.equal(numberPlaceholders("SELECT ?, '?', ? FROM t WHERE a = '' AND b = ?"), "SELECT $1, '?', $2 FROM t WHERE a = '' AND b = $3")
  })
})

describe('log runs', () => {
  const rec = (id: string, o: Record<string, unknown> = {}): ReturnType<typeof normalizeLogRecord> =>
    normalizeLogRecord({ id: id as MessageId, event: 'received', from: 'alice' as AgentId, topic: 't', size: id.length, originTs: 1000, ...o }, 5000, 0)

  test('members round-trip: ids of any length and script, sizes, origin times either side of the first', () => {
    const members = [{ id: 'a', size: 0, originTs: 1_700_000_000_000 }, { id: 'é'.repeat(200), size: 2 ** 40, originTs: 1_699_999_999_000 }, { id: 'bafy' + 'x'.repeat(52), size: 300, originTs: 1_700_000_086_400 }]
    const bytes = encodeMembers(members, 1_700_000_000_000)
    assert.deepEqual(decodeMembers(bytes, 3, 1_700_000_000_000), members)
    // Every truncation, and a count that does not match, is refused.
    for (let cut = 0; cut < bytes.length; cut++) assert.throws(() => decodeMembers(bytes.subarray(0, cut), 3, 0), RunFormatError, `cut at ${cut}`)
    assert.throws(() => decodeMembers(bytes, 2, 0), RunFormatError)
    assert.throws(() => decodeMembers(bytes, 4, 0), RunFormatError)
    assert.throws(() => decodeMembers(new Uint8Array([0, 1, 0]), 1, 0), RunFormatError, 'an empty id')
  })

  test('a member by id without decoding the others', () => {
    const members = [{ id: 'a', size: 1, originTs: 10 }, { id: 'bé', size: 300, originTs: 7 }, { id: 'a', size: 2, originTs: 12 }, { id: 'ab', size: 3, originTs: 10 }]
    const bytes = encodeMembers(members, 10)
    assert.deepEqual(findMembers(bytes, 4, 10, 'a'), [{ k: 0, id: 'a', size: 1, originTs: 10 }, { k: 2, id: 'a', size: 2, originTs: 12 }])
    assert.deepEqual(findMembers(bytes, 4, 10, 'bé'), [{ k: 1, id: 'bé', size: 300, originTs: 7 }])
    assert.deepEqual(findMembers(bytes, 4, 10, 'b'), [])
    assert.throws(() => findMembers(bytes, 5, 10, 'a'), RunFormatError)
    assert.throws(() => findMembers(bytes.subarray(0, bytes.length - 1), 4, 10, 'a'), RunFormatError)
    assert.deepEqual([0, 1, 2, 3, 4].map(k => memberIdAt(bytes, k)), ['a', 'bé', 'a', 'ab', null])
    assert.equal(memberIdAt(bytes.subarray(0, 3), 1), null)
  })

  test('which records share a row', () => {
    const same = [rec('a'), rec('b'), rec('c')]
    assert.equal(runLength(same, 0), 3)
    // Any shared field that differs, or anything a record holds of its own, ends the run.
    for (const o of [{ from: 'bob' }, { topic: 'u' }, { event: 'sent' }, { status: 'pending' }, { peer: 'p' }, { type: 'x' }, { schema: 's' }, { proto: 'q' }, { receivedTs: 1 }]) {
      assert.equal(runLength([rec('a'), rec('b', o)], 0), 1, JSON.stringify(o))
    }
    for (const o of [{ to: ['bob'] }, { conv: 'c' }, { reason: 'r' }, { ackedTs: 1 }, { bytes: new Uint8Array(1) }, { originTs: undefined }]) {
      assert.equal(runLength([rec('a'), rec('b', o)], 0), 1, JSON.stringify(o))
      assert.equal(runLength([rec('a', o), rec('b')], 0), 1, JSON.stringify(o))
    }
    // One recipient, the same in each (a durable sender's `sent` records): a run; two recipients: not.
    assert.equal(runLength([rec('a', { to: ['bob'] }), rec('b', { to: ['bob'] }), rec('c', { to: ['bob'] })], 0), 3)
    assert.equal(runLength([rec('a', { to: ['bob'] }), rec('b', { to: ['carol'] })], 0), 1)
    assert.equal(runLength([rec('a', { to: ['bob', 'carol'] }), rec('b', { to: ['bob', 'carol'] })], 0), 1)
    const long = Array.from({ length: MAX_RUN + 3 }, (_, i) => rec(`m${i}`))
    assert.deepEqual(planLogRows(long).map(r => r.members?.length ?? 1), [MAX_RUN, 3])
    // A record's own `next` ones: its run, split at MAX_RUN; not joined with neighbours.
    const ids = Array.from({ length: MAX_RUN }, (_, i) => `n${i}` as MessageId)
    const withNext = rec('n', { next: { ids, sizes: ids.map(() => 1), originTs: ids.map(() => 7) } })
    const plan = planLogRows([rec('a'), withNext, rec('z')])
    assert.deepEqual(plan.map(r => [r.head.id, r.members?.length ?? 1]), [['a', 1], ['n', MAX_RUN], ['n511', 1], ['z', 1]])
    assert.deepEqual(plan[2].head.originTs, 7)
    assert.equal(plan[2].head.next, null)
  })
})

describe('enqueue planner', () => {
  const R = 'bob'
  const e = (id: string, o: Partial<InboxEntryInit> & { size?: number } = {}): ReturnType<typeof normalizeEntry> => normalizeEntry({
    recipient: R as AgentId, id: id as MessageId, sender: 'alice' as AgentId, bytes: new Uint8Array(o.size ?? 10), expiresAt: 1e12, ...o
  })
  const empty = (): PlanState => ({ held: new Set(), usage: new Map(), seqSlots: new Map(), nextPos: 1 })
  const quota = { ...defaultQuota }

  test('stored, duplicate (held or earlier in the batch), and usage', () => {
    const state = empty()
    state.held.add(heldKey(R, 'old'))
    const plan = planEnqueue([{ entry: e('a'), quota }, { entry: e('old'), quota }, { entry: e('a'), quota }, { entry: e('b'), quota }], state)
    assert.deepEqual(plan.outcomes, [{ status: 'stored' }, { status: 'duplicate' }, { status: 'duplicate' }, { status: 'stored' }])
    assert.deepEqual(plan.inserts.map(i => [i.id, i.pos]), [['a', 1], ['b', 2]])
    assert.equal(plan.nextPos, 3)
    assert.deepEqual(plan.usage.find(u => u.scope === 'inbox'), { scope: 'inbox', key: R, count: 2, bytes: 20 })
    assert.deepEqual(plan.usage.find(u => u.scope === 'pair'), { scope: 'pair', key: `${R}\nalice`, count: 2, bytes: 20 })
  })

  test('quotas count what the batch already admitted; a refused entry is not held', () => {
    const state = empty()
    state.usage.set(usageMapKey('inbox', R), { count: 1, bytes: 10 })
    const q = { ...quota, inboxCount: 3 }
    const plan = planEnqueue([{ entry: e('a'), quota: q }, { entry: e('b'), quota: q }, { entry: e('c'), quota: q }, { entry: e('c'), quota: { ...q, inboxCount: 4 } }], state)
    assert.deepEqual(plan.outcomes.slice(0, 2), [{ status: 'stored' }, { status: 'stored' }])
    const err = plan.outcomes[2] as QuotaExceededError
    assert.ok(err instanceof QuotaExceededError)
    assert.deepEqual([err.quota, err.limit, err.current], ['inbox-count', 3, 3])
    assert.deepEqual(plan.outcomes[3], { status: 'stored' })
    assert.deepEqual(plan.usage.find(u => u.scope === 'inbox'), { scope: 'inbox', key: R, count: 4, bytes: 40 })
  })

  test('sequence numbers: a late lower one takes the first higher slot; existing rows move', () => {
    const state = empty()
    // Pending: s5 at pos 10, s7 at pos 12 (another sender holds 11).
    state.seqSlots.set(usageKeyOf('pair', R, 'alice'), [{ recipient: R, id: 's5', seq: 5, pos: 10 }, { recipient: R, id: 's7', seq: 7, pos: 12 }])
    state.nextPos = 13
    const plan = planEnqueue([
      { entry: e('s6', { senderSeq: 6 }), quota },
      { entry: e('s9', { senderSeq: 9 }), quota },
      { entry: e('s4', { senderSeq: 4 }), quota },
      { entry: e('x', { sender: 'carol' as AgentId }), quota }
    ], state)
    // The sender's entries keep their set of slots, now in sequence order (the other
    // sender's slot 11 stays put): s4 [11] s5 s6 s7 s9, then carol's x.
    const pos = new Map<string, number>([...plan.inserts.map(i => [i.id, i.pos] as const), ...plan.moves.map(m => [m.id, m.pos] as const)])
    const order = [...pos.entries()].concat([['[11]', 11]]).filter(([id]) => id !== 'x').sort((a, b) => a[1] - b[1]).map(([id]) => id)
    assert.deepEqual(order, ['s4', '[11]', 's5', 's6', 's7', 's9'])
    assert.deepEqual(plan.moves.map(m => m.id).sort(), ['s5', 's7'])
    assert.ok(pos.get('x')! > pos.get('s9')!)
    assert.equal(plan.nextPos, 17)
    assert.equal(new Set(pos.values()).size, pos.size)
  })
})

describe('group commit', () => {
  test('submissions in one tick share a batch; those during a commit share the next', async () => {
    const batches: number[][] = []
    let release: (() => void) | null = null
    const gc = createGroupCommit<number, number>({
      maxBatch: 1000,
      maxDelayMs: 0,
      execute: async (ops) => {
        batches.push(ops)
        if (batches.length === 1) await new Promise<void>(resolve => { release = resolve })
        return ops.map(o => o === 13 ? { ok: false as const, error: new Error('thirteen') } : { ok: true as const, value: o * 2 })
      }
    })
    const first = Array.from({ length: 100 }, async (_, i) => await gc.submit(i))
    // Wait until the first batch is executing, then submit more.
    for (let i = 0; i < 100 && batches.length === 0; i++) await new Promise(resolve => setImmediate(resolve))
    const second = Array.from({ length: 50 }, async (_, i) => await gc.submit(1000 + i))
    assert.equal(gc.queued, 50)
    release!()
    const r1 = await Promise.allSettled(first)
    const r2 = await Promise.all(second)
    assert.deepEqual(batches.map(b => b.length), [100, 50])
    assert.equal((r1[13] as PromiseRejectedResult).reason.message, 'thirteen')
    assert.equal((r1[12] as PromiseFulfilledResult<number>).value, 24)
    assert.equal(r2[49], 2098)
  })

  test('maxBatch bounds a batch; a failed batch rejects all its operations; drain waits', async () => {
    const sizes: number[] = []
    const gc = createGroupCommit<number, number>({
      maxBatch: 10,
      maxDelayMs: 2,
      execute: async (ops) => {
        sizes.push(ops.length)
        if (ops.includes(-1)) throw new Error('disk on fire')
        return ops.map(o => ({ ok: true as const, value: o }))
      }
    })
    const all = Array.from({ length: 25 }, async (_, i) => await gc.submit(i === 12 ? -1 : i))
    await gc.drain()
    const results = await Promise.allSettled(all)
    assert.deepEqual(sizes, [10, 10, 5])
    assert.deepEqual(results.map(r => r.status === 'rejected'), Array.from({ length: 25 }, (_, i) => i >= 10 && i < 20))
  })

  test('eager: an idle group commit starts its batch before the next turn, with everything of this task', async () => {
    const batches: number[][] = []
    const gc = createGroupCommit<number, number>({ maxBatch: 100, maxDelayMs: 0, eager: true, execute: async (ops) => { batches.push(ops); return ops.map(o => ({ ok: true as const, value: o })) } })
    const lazy = createGroupCommit<number, number>({ maxBatch: 100, maxDelayMs: 0, execute: async (ops) => { batches.push(ops); return ops.map(o => ({ ok: true as const, value: o })) } })
    const p = [gc.submit(1), gc.submit(2), lazy.submit(3)]
    await Promise.resolve()
    // The eager one has started (one batch with both), the other waits for the next turn.
    assert.deepEqual(batches, [[1, 2]])
    assert.deepEqual(await Promise.all(p), [1, 2, 3])
    assert.deepEqual(batches, [[1, 2], [3]])
  })

  test('submitMany: one promise for many operations, split by maxBatch, outcomes in order; those still queued at an abort are not executed', async () => {
    const batches: number[][] = []
    let release: (() => void) | null = null
    let hold = true
    const gc = createGroupCommit<number, number>({
      maxBatch: 3,
      maxDelayMs: 0,
      execute: async (ops) => {
        batches.push(ops)
        if (hold) {
          hold = false
          await new Promise<void>(resolve => { release = resolve })
        }
        if (ops.includes(5)) throw new Error('disk on fire')
        return ops.map(o => o === 1 ? { ok: false as const, error: new Error('one') } : { ok: true as const, value: o * 2 })
      }
    })
    const all = gc.submitMany([0, 1, 2, 3, 4, 5, 6])
    for (let i = 0; i < 100 && batches.length === 0; i++) await new Promise(resolve => setImmediate(resolve))
    release!()
    const outcomes = await all
    assert.deepEqual(batches, [[0, 1, 2], [3, 4, 5], [6]])
    assert.deepEqual(outcomes.map(o => o.ok ? o.value : o.error.message), [0, 'one', 4, 'disk on fire', 'disk on fire', 'disk on fire', 12])
    assert.deepEqual(await gc.submitMany([]), [])

    batches.length = 0
    hold = true
    const ctl = new AbortController()
    const some = gc.submitMany([7, 8, 9, 10], ctl.signal)
    // The first batch (7, 8, 9) is executing; 10 is still queued when the abort comes.
    for (let i = 0; i < 100 && batches.length === 0; i++) await new Promise(resolve => setImmediate(resolve))
    ctl.abort()
    release!()
    const res = await some
    assert.deepEqual(res.map(o => o.ok ? o.value : (o.error as { code?: string }).code), [14, 16, 18, 'AbortError'])
    assert.deepEqual(batches, [[7, 8, 9]])
    const pre = await gc.submitMany([11], AbortSignal.abort())
    assert.equal(!pre[0].ok && (pre[0].error as { code?: string }).code, 'AbortError')
  })

  test('an operation aborted while queued is never executed', async () => {
    const seen: number[] = []
    const gc = createGroupCommit<number, number>({ maxBatch: 10, maxDelayMs: 0, execute: async (ops) => { seen.push(...ops); return ops.map(o => ({ ok: true as const, value: o })) } })
    const ctl = new AbortController()
    const a = gc.submit(1, ctl.signal)
    const b = gc.submit(2)
    ctl.abort()
    await assert.rejects(a, { code: 'AbortError' })
    assert.equal(await b, 2)
    await assert.rejects(gc.submit(3, AbortSignal.abort()), { code: 'AbortError' })
    assert.deepEqual(seen, [2])
  })
})

describe('checksums and config', () => {
  test('the checksum covers the id and the bytes', () => {
    const b = new Uint8Array([1, 2, 3])
    assert.equal(payloadChecksum('a', b), payloadChecksum('a', new Uint8Array([1, 2, 3])))
    assert.notEqual(payloadChecksum('a', b), payloadChecksum('b', b))
    assert.notEqual(payloadChecksum('a', b), payloadChecksum('a', new Uint8Array([1, 2, 4])))
  })

  test('quota overrides merge over the defaults', () => {
    assert.deepEqual(mergeQuota(defaultQuota, { inboxCount: 5, senderBytes: Infinity }), { ...defaultQuota, inboxCount: 5, senderBytes: Infinity })
    assert.throws(() => mergeQuota(defaultQuota, { inboxCount: 1.5 }), { code: 'InvalidArgumentError' })
  })
})
