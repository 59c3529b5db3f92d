/**
 * The compliance suite on SQLite, plus what only SQLite has: WAL and fsync settings,
 * read-only access next to a writer, and files that are not (or no longer) stores.
 */
import { test, describe, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DatabaseSync } from 'node:sqlite'
import { createStore, type CommonStoreConfig, type MessageStore, type SqliteStoreConfig } from '../../src/store/index.ts'
import { storeCompliance, entry, A, type StoreHarness, type StoreLocation } from './compliance.ts'
import { NEW_STORE_PAGE_SIZE, sqliteDialect } from '../../src/store/sqlite.ts'
import { runIdsInsert } from '../../src/store/ops.ts'
import type { MessageId } from '../../src/core/ids.ts'

const root = await mkdtemp(join(tmpdir(), 'fedmesh-store-'))
after(async () => { await rm(root, { recursive: true, force: true }) })

let counter = 0

export function sqliteLocation (overrides: Partial<SqliteStoreConfig> = {}): StoreLocation & { path: string } {
  const path = join(root, `store-${counter++}.db`)
  const stores: MessageStore[] = []
  return {
    path,
    create: (o?: CommonStoreConfig) => {
      const s = createStore({ path, ...overrides, ...o })
      stores.push(s)
      return s
    },
    raw: async (sql, params = []) => {
      const db = new DatabaseSync(path)
      try {
        const stmt = db.prepare(sql)
        if (/^\s*(SELECT|PRAGMA|EXPLAIN)/i.test(sql)) return stmt.all(...params as never[]) as Array<Record<string, unknown>>
        stmt.run(...params as never[])
        return []
      } finally {
        db.close()
      }
    },
    table: (name) => name,
    dispose: async () => {
      for (const s of stores) await s.close().catch(() => {})
      for (const suffix of ['', '-wal', '-shm']) await rm(path + suffix, { force: true })
    }
  }
}

const harness = async (): Promise<StoreHarness> => ({ fresh: async () => sqliteLocation() })

storeCompliance('sqlite', harness)

describe('sqlite specifics', () => {
  test('WAL mode and synchronous=FULL by default; NORMAL on request', async () => {
    for (const [sync, durability] of [[undefined, 'power-loss'], ['normal', 'process-crash']] as const) {
      const loc = sqliteLocation(sync == null ? {} : { synchronous: sync })
      try {
        const store = loc.create()
        await store.open()
        assert.equal(store.info().durability, durability)
        assert.equal((await loc.raw('PRAGMA journal_mode'))[0].journal_mode, 'wal')
        assert.equal((await loc.raw('PRAGMA application_id'))[0].application_id, 0x666d7368)
        await store.enqueue(entry('w1'))
        assert.equal((await loc.raw('SELECT COUNT(*) AS n FROM inbox'))[0].n, 1)
        await store.close()
      } finally {
        await loc.dispose()
      }
    }
  })

  test('a run\'s log_ids insert does not ABORT halfway (no statement journal), and its entries are all written', async () => {
    // A multi-row statement that may abort (a NOT NULL or key check with ABORT) gets a
    // statement journal, spilled to a temp file for a run's hundreds of entries.
    const loc = sqliteLocation()
    try {
      const store = loc.create()
      await store.open()
      const plan = await loc.raw(`EXPLAIN ${runIdsInsert(sqliteDialect)}`)
      // Constraint checks that ABORT (P2 = 2) are what make SQLite keep one.
      const aborts = plan.filter(r => (r.opcode === 'Halt' || r.opcode === 'HaltIfNull') && Number(r.p2) === 2)
      assert.deepEqual(aborts.map(r => `${String(r.opcode)} ${String(r.p1)} ${String(r.p4)}`), [])
      const now = Date.now()
      const ids = Array.from({ length: 300 }, (_, i) => `m-${i}` as MessageId)
      await store.log([{ id: ids[0], event: 'received', from: A('sender'), topic: 't', type: 'event', size: 1, originTs: now, next: { ids: ids.slice(1), sizes: ids.slice(1).map(() => 1), originTs: ids.slice(1).map(() => now) } }])
      assert.equal((await loc.raw('SELECT COUNT(*) AS n FROM log_ids'))[0].n, 300)
      for (const id of [ids[1], ids[150], ids[299]]) assert.deepEqual((await store.query({ id })).records.map(r => r.id), [id])
      await store.close()
    } finally {
      await loc.dispose()
    }
  })

  test('a new store has 8 KB pages; an existing file keeps its page size and is served', async () => {
    const fresh = sqliteLocation()
    const old = sqliteLocation()
    try {
      const store = fresh.create()
      await store.open()
      assert.equal((await fresh.raw('PRAGMA page_size'))[0].page_size, NEW_STORE_PAGE_SIZE)
      assert.equal(NEW_STORE_PAGE_SIZE, 8192)
      await store.close()
      // A file made before (SQLite's default 4 096), with a table of its own already in it.
      const db = new DatabaseSync(old.path)
      db.exec('PRAGMA page_size = 4096')
      db.exec('CREATE TABLE other (x INTEGER)')
      db.close()
      const kept = old.create()
      await kept.open()
      for (let i = 0; i < 40; i++) assert.equal((await kept.enqueue(entry(`p${i}`, { size: 900 }))).status, 'stored')
      assert.equal((await kept.pending(A('Bob'), { limit: 100 })).entries.length, 40)
      await kept.close()
      assert.equal((await old.raw('PRAGMA page_size'))[0].page_size, 4096)
      assert.equal((await old.raw('PRAGMA integrity_check'))[0].integrity_check, 'ok')
    } finally {
      await fresh.dispose()
      await old.dispose()
    }
  })

  test('read-only access next to a running writer sees committed data and refuses writes', async () => {
    const loc = sqliteLocation()
    try {
      const writer = loc.create()
      await writer.open()
      await writer.enqueue(entry('ro1'))
      await writer.log([{ id: entry('ro1').id, event: 'stored', size: 1 }])
      const reader = createStore({ path: loc.path, readOnly: true })
      await reader.open()
      try {
        assert.equal(reader.info().readOnly, true)
        assert.equal((await reader.query({})).records.length, 1)
        await writer.log([{ id: entry('ro2').id, event: 'stored', size: 1 }])
        assert.equal((await reader.query({})).records.length, 2)
        assert.deepEqual((await reader.pending(entry('x').recipient)).entries.map(e => e.id), ['ro1'])
        await assert.rejects(reader.enqueue(entry('ro3')), { code: 'StoreReadOnlyError' })
        await assert.rejects(reader.log([{ id: entry('ro3').id, event: 'sent', size: 1 }]), { code: 'StoreReadOnlyError' })
      } finally {
        await reader.close()
      }
      await writer.close()
      // Also with no writer running (the WAL folded into the file at close).
      const later = createStore({ path: loc.path, readOnly: true })
      await later.open()
      assert.equal((await later.query({})).records.length, 2)
      await later.close()
    } finally {
      await loc.dispose()
    }
  })

  test('read-only open of a missing or empty file is refused', async () => {
    const path = join(root, 'missing.db')
    await assert.rejects(createStore({ path, readOnly: true }).open(), { code: 'StoreIOError' })
    const empty = join(root, 'empty.db')
    await writeFile(empty, '')
    await assert.rejects(createStore({ path: empty, readOnly: true }).open(), { code: 'StoreVersionError' })
  })

  test('a file that is not a database, or another application\'s database, is refused', async () => {
    const junk = join(root, 'junk.db')
    await writeFile(junk, Buffer.alloc(8192, 0x5a))
    await assert.rejects(createStore({ path: junk }).open(), { code: 'StoreCorruptError' })
    const foreign = join(root, 'foreign.db')
    const db = new DatabaseSync(foreign)
    db.exec('CREATE TABLE inbox (x INTEGER)')
    db.close()
    await assert.rejects(createStore({ path: foreign }).open(), { code: 'StoreVersionError' })
    const other = join(root, 'other-app.db')
    const db2 = new DatabaseSync(other)
    db2.exec('PRAGMA application_id = 1234; CREATE TABLE t (x INTEGER)')
    db2.close()
    await assert.rejects(createStore({ path: other }).open(), { code: 'StoreVersionError' })
  })

  test('a directory that does not exist is a StoreIOError', async () => {
    await assert.rejects(createStore({ path: join(root, 'no', 'such', 'dir', 's.db') }).open(), { code: 'StoreIOError' })
  })

  test('config is validated', () => {
    assert.throws(() => createStore({ path: '' }), { code: 'InvalidArgumentError' })
    assert.throws(() => createStore({ kind: 'mysql' } as never), { code: 'InvalidArgumentError' })
    assert.throws(() => createStore({ path: 'x', groupCommit: { maxBatch: 0 } }), { code: 'InvalidArgumentError' })
    assert.throws(() => createStore({ path: 'x', quota: { inboxCount: -5 } }), { code: 'InvalidArgumentError' })
    assert.throws(() => createStore({ path: 'x', verify: 'sometimes' as never }), { code: 'InvalidArgumentError' })
    assert.equal(A('x'), 'did:key:zx')
  })
})
