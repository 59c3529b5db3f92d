/**
 * CPU per enqueue of each statement the store writer runs, on the store alone: the writer
 * thread's work (executeOps in one transaction per batch), run here on the main thread with
 * each statement timed. 256-byte payloads, one 56-character sender and recipient, sender
 * sequence numbers, `--batch` entries per commit (≈ the home node's batch at 512 in flight).
 *
 *   node bench/store-writer-statements.ts [--count 100000] [--batch 510] [--sync full|normal] [--name-length 56] [--exec SQL …]
 *
 * `--name-length` sets the length of the sender's and recipient's ids (at least 12): how much
 * the names' size in the inbox row and its indexes costs the writer.
 *
 * `--exec` runs SQL on the new store before the enqueues (an experiment: an index or trigger
 * dropped, a PRAGMA), to see what one part of the schema costs the writer.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { createStore } from '../src/store/index.ts'
import { openWriterConnection, sqlOf, sqliteDialect, inWriteTransaction } from '../src/store/sqlite.ts'
import { executeOps, type WriteOp } from '../src/store/ops.ts'
import { normalizeEntry } from '../src/store/validate.ts'
import type { Sql } from '../src/store/backend.ts'
import type { AgentId, MessageId } from '../src/core/ids.ts'

const { values } = parseArgs({ options: { count: { type: 'string', default: '100000' }, batch: { type: 'string', default: '510' }, sync: { type: 'string', default: 'full' }, 'name-length': { type: 'string', default: '56' }, exec: { type: 'string', multiple: true, default: [] } } })
const COUNT = Number(values.count)
const BATCH = Number(values.batch)
const UNLIMITED = { inboxCount: Infinity, inboxBytes: Infinity, senderCount: Infinity, senderBytes: Infinity, senderTotalCount: Infinity, senderTotalBytes: Infinity }

const dir = mkdtempSync(join(tmpdir(), 'fedmesh-stmts-'))
try {
  const path = join(dir, 'store.db')
  const store = createStore({ path, quota: UNLIMITED })
  await store.open()
  await store.close()
  const db = openWriterConnection(path, values.sync === 'normal' ? 'normal' : 'full', 5_000)
  for (const text of values.exec) db.exec(text)
  const inner = sqlOf(db)
  const perStatement = new Map<string, number>()
  const timed = (text: string, t0: number): void => {
    const key = text.replace(/\s+/g, ' ').replace(/(\(\?(, \?)*\)(, )?)+/g, '(…)').replace(/(\?, )+\?/g, '…').slice(0, 90)
    perStatement.set(key, (perStatement.get(key) ?? 0) + process.threadCpuUsage().user + process.threadCpuUsage().system - t0)
  }
  const cpu = (): number => { const u = process.threadCpuUsage(); return u.user + u.system }
  const sql: Sql = {
    all: async (text, params) => { const t0 = cpu(); const r = await inner.all(text, params); timed(text, t0); return r },
    run: async (text, params) => { const t0 = cpu(); const r = await inner.run(text, params); timed(text, t0); return r }
  }
  const nameTail = Math.max(0, Number(values['name-length']) - 12)
  const sender = `did:key:z6Mk${'s'.repeat(nameTail)}` as AgentId
  const recipient = `did:key:z6Mk${'r'.repeat(nameTail)}` as AgentId
  const body = new Uint8Array(256).fill(7)
  const expiresAt = Date.now() + 3_600_000
  let seq = 0
  let commit = 0
  let total = 0
  let norm = 0
  for (let done = 0; done < COUNT; done += BATCH) {
    const n0 = cpu()
    const ops: WriteOp[] = []
    for (let i = 0; i < BATCH; i++, seq++) ops.push({ kind: 'enqueue', entry: normalizeEntry({ recipient, sender, id: `m-${seq}` as MessageId, bytes: body, expiresAt, senderSeq: seq + 1 }), quota: UNLIMITED })
    const t0 = cpu()
    norm += t0 - n0
    let c0 = 0
    await inWriteTransaction(db, false, async () => {
      await executeOps({ sql, d: sqliteDialect, now: Date.now(), keepDeliveredMs: 0 }, ops)
      c0 = cpu()
    })
    const t1 = cpu()
    commit += t1 - c0
    total += t1 - t0
  }
  db.close()
  const us = (x: number): string => (x / COUNT).toFixed(2).padStart(6)
  console.log(`${COUNT} enqueues, ${BATCH} per commit: writer ${us(total)} µs/msg (COMMIT ${us(commit)}); normalizeEntry ${us(norm)} µs/msg (not on the writer)`)
  for (const [k, v] of [...perStatement].sort((a, b) => b[1] - a[1])) console.log(`${us(v)}  ${k}`)
} finally {
  rmSync(dir, { recursive: true, force: true })
}
