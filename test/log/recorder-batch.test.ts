/**
 * The message log's writer told about a batch in one observation (`envs`: a home node's
 * `stored` of a `putb`'s envelopes): the log holds exactly the records that one observation
 * per envelope would have made — ids, sizes, times, recipients, runs and order.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { LogRecorder, type MessageObservation } from '../../src/log/recorder.ts'
import { openStore, type LogRecord } from '../../src/store/index.ts'
import type { Envelope } from '../../src/core/envelope.ts'

const quiet = { trace () {}, debug () {}, info () {}, warn () {}, error () {}, child () { return quiet } } as never

function env (id: string, to: string, i: number): Envelope {
  return { id, from: 'did:key:zAlice', to: [to], type: 'inform', ts: 1_700_000_000_000 + i, bytes: new Uint8Array(200 + (i % 7)) } as unknown as Envelope
}

/** The records `observations` leave in a fresh log (seq and times of writing left out). */
async function logOf (observations: MessageObservation[], maxBuffered?: number): Promise<{ records: Array<Partial<LogRecord>>, dropped: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'fm-recorder-batch-'))
  const store = await openStore({ kind: 'sqlite', path: join(dir, 'store.db') })
  const rec = new LogRecorder({ store, logger: quiet, retention: { maxAgeMs: 0, maxBytes: 0 }, flushEveryMs: 5, ...(maxBuffered != null ? { maxBuffered } : {}) })
  try {
    for (const o of observations) rec.observe(o)
    await rec.flush()
    const { records } = await store.query({}, { limit: 1000 })
    const dropped = rec.stats().dropped
    return { records: records.map(({ seq, receivedTs, ...r }) => r), dropped }
  } finally {
    await rec.stop()
    await store.close()
    rmSync(dir, { recursive: true, force: true })
  }
}

test('one observation of `envs` leaves the records of one observation per envelope, runs and order included', async () => {
  // Two batches for Bob with a refusal between, one for Carol, then one message alone.
  const a = Array.from({ length: 600 }, (_, i) => env(`a${i}`, 'did:key:zBob', i))
  const b = Array.from({ length: 40 }, (_, i) => env(`b${i}`, i < 20 ? 'did:key:zBob' : 'did:key:zCarol', i))
  const refused: MessageObservation = { event: 'rejected', env: env('x0', 'did:key:zBob', 0), peer: 'p1', reason: 'QuotaExceeded: full' }
  const alone: MessageObservation = { event: 'stored', env: env('c0', 'did:key:zBob', 3), status: 'pending', peer: 'p2' }
  const batched = await logOf([
    { event: 'stored', envs: a, status: 'pending', peer: 'p1' },
    refused,
    { event: 'stored', envs: b, status: 'pending', peer: 'p1' },
    alone
  ])
  const single = await logOf([
    ...a.map((e): MessageObservation => ({ event: 'stored', env: e, status: 'pending', peer: 'p1' })),
    refused,
    ...b.map((e): MessageObservation => ({ event: 'stored', env: e, status: 'pending', peer: 'p1' })),
    alone
  ])
  assert.equal(batched.records.length, 642)
  assert.deepEqual(batched.records, single.records)
  assert.deepEqual(batched.records.slice(598, 603).map(r => [r.id, r.event, r.size, r.originTs, r.to]), [
    ['a598', 'stored', 200 + (598 % 7), 1_700_000_000_598, ['did:key:zBob']],
    ['a599', 'stored', 200 + (599 % 7), 1_700_000_000_599, ['did:key:zBob']],
    ['x0', 'rejected', 200, 1_700_000_000_000, ['did:key:zBob']],
    ['b0', 'stored', 200, 1_700_000_000_000, ['did:key:zBob']],
    ['b1', 'stored', 201, 1_700_000_000_001, ['did:key:zBob']]
  ])
  assert.deepEqual(batched.records[622].to, ['did:key:zCarol'])
})

test('past maxBuffered, the envelopes of one observation over the bound are counted as dropped', async () => {
  const a = Array.from({ length: 50 }, (_, i) => env(`a${i}`, 'did:key:zBob', i))
  const { records, dropped } = await logOf([{ event: 'stored', envs: a, status: 'pending', peer: 'p1' }], 30)
  assert.deepEqual(records.map(r => r.id), a.slice(0, 30).map(e => e.id))
  assert.equal(dropped, 20)
})
