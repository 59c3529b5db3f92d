/**
 * Crash safety. A child process writes durably as fast as it can and reports each write
 * once its promise resolved; the test SIGKILLs it at seeded random points (some during
 * open), reopens the store and checks that every reported write is there, intact (checksum
 * and content), once, and in per-sender order. Then corruption: a store whose file has an
 * overwritten page, a flipped payload byte or a torn tail is refused at open with
 * `StoreCorruptError` — not served, not a crash.
 */
import { test, describe, after } from 'node:test'
import assert from 'node:assert/strict'
import { fork } from 'node:child_process'
import { mkdtemp, rm, readFile, writeFile, truncate, copyFile, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DatabaseSync } from 'node:sqlite'
import { createStore, type MessageStore, type StoreConfig } from '../../src/store/index.ts'
import type { AgentId, MessageId } from '../../src/core/ids.ts'
import { crashPayload, seededRandom } from './fixtures/crash-shared.ts'
import { createPgHarness, postgresAvailability, PG_URL } from './pg-harness.ts'

const WRITER = new URL('./fixtures/crash-writer.ts', import.meta.url).pathname
const SEED = Number(process.env.FEDMESH_CRASH_SEED ?? 20260301)
const TRIALS = 20
const WORKERS = 24

const root = await mkdtemp(join(tmpdir(), 'fedmesh-crash-'))
after(async () => { await rm(root, { recursive: true, force: true }) })

interface Acked {
  entries: Map<string, { recipient: string, sender: string, seq: number }>
  logs: Set<string>
  marks: Map<string, string>
}

interface TrialResult { acked: Acked, killedBeforeReady: boolean }

/** Runs one writer and kills it `delayMs` after it is ready (or after start, if `early`). */
async function runTrial (config: StoreConfig, trial: number, delayMs: number, early: boolean): Promise<TrialResult> {
  const acked: Acked = { entries: new Map(), logs: new Set(), marks: new Map() }
  const child = fork(WRITER, [JSON.stringify({ config, trial, workers: WORKERS })], {
    execPath: process.execPath,
    execArgv: ['--disable-warning=ExperimentalWarning'],
    stdio: ['ignore', 'ignore', 'inherit', 'ipc']
  })
  const exited = new Promise<void>(resolve => child.once('exit', () => resolve()))
  let ready = false
  const readyP = new Promise<void>((resolve, reject) => {
    child.on('message', (m: any) => {
      if (m.ready === true) { ready = true; resolve() }
      else if (m.enqueued != null) acked.entries.set(m.enqueued, { recipient: m.recipient, sender: m.sender, seq: m.seq })
      else if (m.log != null) acked.logs.add(m.log)
      else if (m.mark != null) acked.marks.set(m.mark, m.agent)
    })
    child.once('exit', (code, signal) => { if (!ready) reject(new Error(`writer exited before ready (${code ?? signal})`)) })
  })
  try {
    if (early) {
      await new Promise(resolve => setTimeout(resolve, delayMs))
    } else {
      await Promise.race([readyP, new Promise((_, reject) => setTimeout(() => reject(new Error('writer not ready in 15 s')), 15_000))])
      await new Promise(resolve => setTimeout(resolve, delayMs))
    }
  } finally {
    child.kill('SIGKILL')
    await exited
    readyP.catch(() => {})
  }
  return { acked, killedBeforeReady: !ready }
}

/** Everything the writer reported is in the store, intact, once, in per-sender order. */
async function verifyTrial (store: MessageStore, trial: number, acked: Acked): Promise<void> {
  const recipients = new Set([0, 1, 2].map(i => `did:key:zR${trial}x${i}`))
  const found = new Map<string, { sender: string, seq?: number }>()
  for (const r of recipients) {
    let cursor: string | undefined
    const lastSeq = new Map<string, number>()
    for (let page = 0; page < 10_000; page++) {
      const p = await store.pending(r as AgentId, { limit: 1000, afterCursor: cursor })
      for (const e of p.entries) {
        assert.equal(found.has(e.id), false, `duplicate ${e.id}`)
        found.set(e.id, { sender: e.sender, seq: e.senderSeq })
        assert.deepEqual(e.bytes, crashPayload(e.id, 256), `content of ${e.id}`)
        const prev = lastSeq.get(e.sender) ?? -1
        assert.ok((e.senderSeq ?? -1) > prev, `order of ${e.sender}: ${String(e.senderSeq)} after ${prev}`)
        lastSeq.set(e.sender, e.senderSeq ?? -1)
      }
      cursor = p.cursor
      if (!p.more) break
    }
  }
  for (const [id, a] of acked.entries) {
    const f = found.get(id)
    assert.ok(f != null, `acknowledged enqueue ${id} lost`)
    assert.equal(f.sender, a.sender)
    assert.equal(f.seq, a.seq)
  }

  const logIds: string[] = []
  let cursor: string | undefined
  for (let page = 0; page < 10_000; page++) {
    const p = await store.query({ conversation: `crash-${trial}` }, { limit: 1000, cursor, includeBytes: true })
    for (const r of p.records) {
      logIds.push(r.id)
      assert.deepEqual(r.bytes, crashPayload(r.id, 64), `log payload of ${r.id}`)
    }
    cursor = p.cursor
    if (!p.more) break
  }
  assert.equal(new Set(logIds).size, logIds.length, 'no log record twice')
  const logSet = new Set(logIds)
  for (const id of acked.logs) assert.ok(logSet.has(id), `acknowledged log record ${id} lost`)

  for (const [id, agent] of acked.marks) assert.equal(await store.isProcessed(agent as AgentId, id as MessageId), true, `acknowledged mark ${id} lost`)
}

async function crashTrials (config: StoreConfig, trials: number = TRIALS): Promise<string> {
  const random = seededRandom(SEED)
  let total = 0
  let early = 0
  for (let trial = 0; trial < trials; trial++) {
    // One trial in five is killed while still starting (opening, migrating, recovering).
    const killEarly = random() < 0.2
    const delay = killEarly ? Math.floor(random() * 400) : 20 + Math.floor(random() * 700)
    const { acked, killedBeforeReady } = await runTrial(config, trial, delay, killEarly)
    if (killedBeforeReady) early++
    total += acked.entries.size + acked.logs.size + acked.marks.size
    const store = createStore(config)
    await store.open()
    try {
      await verifyTrial(store, trial, acked)
    } finally {
      await store.close()
    }
  }
  // The trials must have exercised something: writes acknowledged, and some kills at start.
  assert.ok(total > 50 * trials, `only ${total} writes acknowledged over ${trials} trials`)
  const full = createStore({ ...config, verify: 'full' })
  await full.open()
  await full.close()
  return `${total} acknowledged writes over ${trials} trials, ${early} killed before ready (seed ${SEED})`
}

describe('crash safety', () => {
  test(`sqlite: SIGKILL at random points loses no acknowledged write, duplicates nothing (${TRIALS} trials)`, { timeout: 240_000 }, async (t) => {
    t.diagnostic(await crashTrials({ path: join(root, 'crash.db') }))
  })

  // synchronous=NORMAL skips the fsync per commit: the claim is that a killed process
  // (not a power cut) still loses nothing, because the commit is in the OS page cache.
  test('sqlite synchronous=NORMAL: a killed process loses no acknowledged write either (8 trials)', { timeout: 120_000 }, async (t) => {
    t.diagnostic(await crashTrials({ path: join(root, 'crash-normal.db'), synchronous: 'normal' }, 8))
  })

  test(`postgres: SIGKILL at random points loses no acknowledged write, duplicates nothing (${TRIALS} trials)`, { timeout: 240_000 }, async (t) => {
    const availability = await postgresAvailability()
    if (availability.failure != null) assert.fail(availability.failure)
    if (availability.skip !== false) { t.skip(availability.skip); return }
    const h = await createPgHarness()
    const loc = await h.location()
    try {
      t.diagnostic(await crashTrials({ kind: 'postgres', url: PG_URL, schema: loc.schema }))
    } finally {
      await loc.dispose()
      await h.teardown?.()
    }
  })
})

// ---------------------------------------------------------------------------------------
// Corruption of the database file

const MARKER = Buffer.from('FEDMESH-CORRUPTION-MARKER-0123456789abcdef')

/** A closed store with ~2 MB of inbox entries and log records, no free pages. */
async function makeStoreFile (path: string): Promise<void> {
  const store = createStore({ path })
  await store.open()
  const now = Date.now()
  const writes: Array<Promise<unknown>> = []
  for (let i = 0; i < 3000; i++) {
    const id = `c${i}` as MessageId
    const bytes = i === 1500 ? new Uint8Array(Buffer.concat([MARKER, Buffer.from(crashPayload(id, 200))])) : crashPayload(id, 256)
    writes.push(store.enqueue({ recipient: `did:key:zR${i % 5}` as AgentId, sender: 'did:key:zS' as AgentId, id, bytes, expiresAt: now + 3_600_000 }, { quota: { senderCount: Infinity, inboxCount: Infinity, senderTotalCount: Infinity } }))
    writes.push(store.log([{ id, event: 'stored', conv: 'k', size: 256, bytes: crashPayload(id, 256) }]))
  }
  await Promise.all(writes)
  await store.close()
  const db = new DatabaseSync(path)
  db.exec('VACUUM')
  const free = Number((db.prepare('PRAGMA freelist_count').get() as Record<string, unknown>).freelist_count)
  db.close()
  assert.equal(free, 0)
}

describe('corruption is detected at open', () => {
  let base = ''
  const fresh = async (name: string): Promise<string> => {
    if (base === '') {
      base = join(root, 'base.db')
      await makeStoreFile(base)
    }
    const path = join(root, `${name}.db`)
    await copyFile(base, path)
    return path
  }

  async function refused (path: string, check?: (err: any) => void): Promise<void> {
    const store = createStore({ path })
    await assert.rejects(store.open(), (err: any) => {
      assert.equal(err.code, 'StoreCorruptError', `${err.code}: ${err.message}`)
      check?.(err)
      return true
    })
    await assert.rejects(store.pending('did:key:zR0' as AgentId), { code: 'StoreClosedError' })
  }

  test('the untouched copy opens and serves', async () => {
    const path = await fresh('intact')
    const store = createStore({ path, verify: 'full' })
    await store.open()
    assert.equal((await store.stats()).inbox.count, 3000)
    await store.close()
  })

  test('an overwritten page (seeded garbage) is StoreCorruptError', async () => {
    const random = seededRandom(SEED)
    const size = (await stat(await fresh('probe'))).size
    const pageSize = 4096
    const pages = size / pageSize
    // Several pages from the middle of the file, each in its own copy.
    for (let k = 0; k < 5; k++) {
      const path = await fresh(`page-${k}`)
      const page = Math.floor(pages / 4 + random() * pages / 2)
      const buf = await readFile(path)
      for (let i = 0; i < pageSize; i++) buf[page * pageSize + i] = Math.floor(random() * 256)
      await writeFile(path, buf)
      await refused(path)
    }
  })

  test('a flipped byte inside a stored payload passes the page check and fails the checksum', async () => {
    const path = await fresh('payload')
    const buf = await readFile(path)
    const at = buf.indexOf(MARKER)
    assert.ok(at > 0)
    buf[at + 5] ^= 0x01
    await writeFile(path, buf)
    const db = new DatabaseSync(path)
    assert.equal(Object.values(db.prepare('PRAGMA quick_check').get() as object)[0], 'ok')
    db.close()
    await refused(path, err => { assert.equal(err.details.id, 'c1500') })
  })

  test('a torn file (truncated mid-way) is StoreCorruptError', async () => {
    const path = await fresh('torn')
    const size = (await stat(path)).size
    await truncate(path, Math.floor(size / 2 / 4096) * 4096 + 1000)
    await refused(path)
  })
})
