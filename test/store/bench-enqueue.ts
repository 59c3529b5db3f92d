/**
 * Throughput of durable 256-byte enqueues (group commit), per backend and concurrency.
 * Not part of `npm test`. Run:
 *
 *   node test/store/bench-enqueue.ts [--count 50000] [--pg postgres://postgres@127.0.0.1:5432/test]
 *
 * Each enqueue resolves only after its transaction committed (SQLite synchronous=FULL:
 * fsync of the WAL; PostgreSQL: synchronous_commit=on).
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import pg from 'pg'
import { createStore, type StoreConfig } from '../../src/store/index.ts'
import type { AgentId, MessageId } from '../../src/core/ids.ts'

const args = process.argv.slice(2)
const arg = (name: string, def: string): string => { const i = args.indexOf(`--${name}`); return i >= 0 ? args[i + 1] : def }
const COUNT = Number(arg('count', '50000'))
const PG_URL = arg('pg', process.env.FEDMESH_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test')
const UNLIMITED = { inboxCount: Infinity, inboxBytes: Infinity, senderCount: Infinity, senderBytes: Infinity, senderTotalCount: Infinity, senderTotalBytes: Infinity }

async function run (label: string, config: StoreConfig, count: number, inFlight: number): Promise<void> {
  const store = createStore({ ...config, quota: UNLIMITED })
  await store.open()
  const body = randomBytes(256)
  const expiresAt = Date.now() + 3_600_000
  let next = 0
  const t0 = performance.now()
  // `inFlight` callers, each waiting for its write before the next: bounded by `count`.
  await Promise.all(Array.from({ length: inFlight }, async (_, w) => {
    while (next < count) {
      const n = next++
      await store.enqueue({ recipient: `did:key:zR${n % 100}` as AgentId, sender: `did:key:zS${w}` as AgentId, id: `${label}-${n}` as MessageId, bytes: body, expiresAt })
    }
  }))
  const secs = (performance.now() - t0) / 1000
  const stats = await store.stats()
  await store.close()
  if (stats.inbox.count !== count) throw new Error(`expected ${count} entries, found ${stats.inbox.count}`)
  console.log(`${label.padEnd(28)} in flight ${String(inFlight).padStart(5)}  ${String(count).padStart(6)} msgs  ${(count / secs).toFixed(0).padStart(7)} msgs/s`)
}

const dir = await mkdtemp(join(tmpdir(), 'fedmesh-bench-'))
const schemas: string[] = []
try {
  for (const inFlight of [1, 64, 1000]) {
    const n = inFlight === 1 ? Math.min(COUNT, 5000) : COUNT
    await run(`sqlite FULL`, { path: join(dir, `full-${inFlight}.db`) }, n, inFlight)
    await run(`sqlite NORMAL`, { path: join(dir, `normal-${inFlight}.db`), synchronous: 'normal' }, n, inFlight)
    const schema = `fmbench_${process.pid}_${inFlight}`
    schemas.push(schema)
    await run(`postgres`, { kind: 'postgres', url: PG_URL, schema }, inFlight === 1 ? Math.min(COUNT, 2000) : COUNT, inFlight)
  }
} finally {
  await rm(dir, { recursive: true, force: true })
  const admin = new pg.Client(PG_URL)
  await admin.connect().then(async () => {
    for (const s of schemas) await admin.query(`DROP SCHEMA IF EXISTS "${s}" CASCADE`)
  }).catch(() => {}).finally(() => admin.end())
}
