/**
 * What a status update costs in the message log: N `sent` records of a durable sender (one
 * recipient, status `pending`, appended in batches of 256 as the recorder hands them over),
 * then `updateStatus(id, acked)` for every id, `--step` ids per commit (that many updates in
 * flight at once, which the group commit writes in one transaction) — a receiver that
 * acknowledges a few messages at a time, or many. CPU of the whole process (writer thread
 * included) per record appended and per acknowledgement, SQLite store.
 *
 *   node bench/log-ack.ts                                 # this checkout, steps 1, 4, 16, 256
 *   node bench/log-ack.ts --base /work/wt/x-base          # and another checkout, alternating
 *   node bench/log-ack.ts --records 4096 --rounds 3 --steps 1,4,16,256
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { pathToFileURL } from 'node:url'

const { values: args } = parseArgs({
  options: {
    records: { type: 'string', default: '4096' },
    rounds: { type: 'string', default: '3' },
    steps: { type: 'string', default: '1,4,16,256' },
    base: { type: 'string' }
  }
})
const N = Number(args.records)
const ROUNDS = Number(args.rounds)
const STEPS = String(args.steps).split(',').map(Number)
if (!Number.isSafeInteger(N) || N < 256 || !Number.isSafeInteger(ROUNDS) || ROUNDS < 1 || STEPS.some(s => !Number.isSafeInteger(s) || s < 1 || s > N)) {
  throw new Error('--records ≥ 256, --rounds ≥ 1, --steps 1 … records')
}
const APPEND_BATCH = 256

interface Impl { name: string, openStore: (c: unknown) => Promise<any> }

async function loadImpl (name: string, root: string): Promise<Impl> {
  const store = await import(pathToFileURL(join(root, 'src/store/index.ts')).href)
  return { name, openStore: store.openStore }
}

function cpu (): number {
  const u = process.cpuUsage()
  return u.user + u.system
}

const ALICE = 'did:key:z6MkAliceAliceAliceAliceAliceAliceAliceAliceAlice01'
const BOB = 'did:key:z6MkBobBobBobBobBobBobBobBobBobBobBobBobBobBobBob02'
const idOf = (round: number, i: number): string => `b${String(round).padStart(2, '0')}${String(i).padStart(8, '0')}xq7mfn2kd3vwz5tgh4rjs6ecpa`

interface Result { appendUs: number, ackUs: number }

async function runOnce (impl: Impl, round: number, step: number): Promise<Result> {
  const dir = mkdtempSync(join(tmpdir(), 'fm-log-ack-'))
  const store = await impl.openStore({ kind: 'sqlite', path: join(dir, 'store.db') })
  try {
    const now = Date.now()
    // Warm-up: statements prepared, code compiled.
    await store.log(Array.from({ length: APPEND_BATCH }, (_, i) => ({ id: `w${i}`, event: 'sent', status: 'pending', from: ALICE, to: [BOB], type: 'inform', size: 300, originTs: now })))
    await store.updateStatus('w1', { status: 'acked', ackedTs: now })
    const c0 = cpu()
    for (let i = 0; i < N; i += APPEND_BATCH) {
      const receivedTs = now + i
      await store.log(Array.from({ length: Math.min(APPEND_BATCH, N - i) }, (_, k) => ({
        id: idOf(round, i + k), event: 'sent', status: 'pending', from: ALICE, to: [BOB], type: 'inform', size: 300, originTs: now + i + k, receivedTs
      })))
    }
    const c1 = cpu()
    for (let i = 0; i < N; i += step) {
      const ids = Array.from({ length: Math.min(step, N - i) }, (_, k) => idOf(round, i + k))
      const counts = await Promise.all(ids.map(async id => await store.updateStatus(id, { status: 'acked', ackedTs: now + 1 }, { event: 'sent' })))
      if (counts.some(c => c !== 1)) throw new Error(`${impl.name}: an update did not find its record`)
    }
    const c2 = cpu()
    const acked = await store.query({ status: 'acked', event: 'sent' }, { limit: 1000 })
    if (acked.records.length === 0) throw new Error(`${impl.name}: nothing acknowledged`)
    return { appendUs: (c1 - c0) / N, ackUs: (c2 - c1) / N }
  } finally {
    await store.close()
    rmSync(dir, { recursive: true, force: true })
  }
}

const impls: Impl[] = []
if (args.base != null) impls.push(await loadImpl('base', resolve(args.base)))
impls.push(await loadImpl('this', resolve(import.meta.dirname, '..')))

console.log(`${N} sent records (one recipient, batches of ${APPEND_BATCH}), then updateStatus per id, step ids per commit; CPU µs, all threads; ${ROUNDS} rounds alternating`)
console.log('step   version   append µs/record (rounds)        ack µs/id (rounds)')
for (const step of STEPS) {
  const got = new Map<string, Result[]>()
  for (let r = 0; r < ROUNDS; r++) {
    for (const impl of impls) {
      const res = await runOnce(impl, r, step)
      const l = got.get(impl.name) ?? []
      l.push(res)
      got.set(impl.name, l)
    }
  }
  for (const [name, rs] of got) {
    console.log(`${String(step).padStart(4)}   ${name.padEnd(7)}   ${rs.map(r => r.appendUs.toFixed(1)).join(' / ').padEnd(30)}   ${rs.map(r => r.ackUs.toFixed(1)).join(' / ')}`)
  }
}
