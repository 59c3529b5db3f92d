/**
 * The message log's cost per record: N `received` records of a topic stream (the records a
 * subscriber's node writes for every topic message, `--batch` in a row from one sender on one
 * topic, as batch frames bring them) through `LogRecorder` → SQLite store,
 * paced like a stream (a slice every few ms, so the recorder's 50 ms batching behaves as in
 * a node), and the CPU it took per record — on the main thread (building, checking and
 * posting records) and on the other threads (the store's writer thread inserting them, plus
 * V8's helpers), read from /proc (Linux).
 *
 *   node bench/log-rows.ts                       # this checkout
 *   node bench/log-rows.ts --base /tmp/log-base  # and another checkout, alternating, same run
 *   node bench/log-rows.ts --records 100000 --rounds 3 --rate 30000
 *   node bench/log-rows.ts --threads             # also each thread's CPU (stderr)
 *   node bench/log-rows.ts --batch 1             # every record from another sender and topic (no runs)
 *   node bench/log-rows.ts --conv                # request–reply records: each in a conversation, its wire bytes kept (no runs)
 *   node bench/log-rows.ts --node-heap            # as in a node: each envelope made when observed, garbage and a live heap beside
 *
 * `--base DIR` is a checkout of another version (e.g. `git worktree add /tmp/log-base <commit>`
 * plus a `node_modules` symlink); the runs alternate base / this so both see the same machine.
 * The figure that matters on the 2-core bench machine is the total per record.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { pathToFileURL } from 'node:url'

const { values: args } = parseArgs({
  options: {
    records: { type: 'string', default: '60000' },
    rounds: { type: 'string', default: '3' },
    rate: { type: 'string', default: '30000' },
    base: { type: 'string' },
    json: { type: 'boolean', default: false },
    threads: { type: 'boolean', default: false },
    batch: { type: 'string', default: '256' },
    conv: { type: 'boolean', default: false },
    'node-heap': { type: 'boolean', default: false }
  }
})
const N = Number(args.records)
const ROUNDS = Number(args.rounds)
const RATE = Number(args.rate)
/** Records in a row from one sender on one topic (a batch frame's publications); 1 = every record from another. */
const BATCH = Number(args.batch)
if (!Number.isSafeInteger(N) || N < 1000 || !Number.isSafeInteger(ROUNDS) || ROUNDS < 1 || !Number.isSafeInteger(RATE) || RATE < 1000 || !Number.isSafeInteger(BATCH) || BATCH < 1) {
  throw new Error('--records ≥ 1000, --rounds ≥ 1, --rate ≥ 1000, --batch ≥ 1')
}

/**
 * `--node-heap`: the garbage collector's work as in a topic node, which this bench otherwise
 * leaves out: each envelope (its id string) is made when it is observed instead of all of them
 * beforehand (so they die once the log lets go of them), each record comes with ~2 KB of
 * short-lived garbage (a node's per-message allocations: decoding, checks, delivery), and
 * ~25 MB of live objects stand for a node's heap (code, modules, state), which every major GC
 * marks. V8's threads then show what the log's records cost in promotions.
 */
const NODE_HEAP = args['node-heap'] === true
const ballast: unknown[] = []
if (NODE_HEAP) for (let i = 0; i < 250_000; i++) ballast.push({ i, s: `live-${i}`, next: ballast[i - 1] })
let sink: unknown
function churn (): void {
  const g: unknown[] = []
  for (let k = 0; k < 24; k++) g.push({ k, a: [k, k + 1, k + 2], b: { c: k } })
  sink = g
}

const TICK_MS = 5
const PER_TICK = Math.max(1, Math.round(RATE * TICK_MS / 1000))
const CLK_TCK = 100

/** CPU of the calling thread, µs (schedstat: nanoseconds, not the 10 ms ticks of `stat`). */
function threadCpu (): number {
  return Number(readFileSync('/proc/thread-self/schedstat', 'utf8').split(' ')[0]) / 1000
}

/** CPU (µs) of every thread of this process, by thread name and id. */
function tasksCpu (): Map<string, number> {
  const out = new Map<string, number>()
  for (const tid of readdirSync('/proc/self/task')) {
    try {
      const f = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8')
      const name = f.slice(f.indexOf('(') + 1, f.lastIndexOf(')'))
      const rest = f.slice(f.lastIndexOf(')') + 2).split(' ')
      out.set(`${name}#${tid}`, (Number(rest[11]) + Number(rest[12])) * 1e6 / CLK_TCK)
    } catch {}
  }
  return out
}

function processCpu (): number {
  const u = process.cpuUsage()
  return u.user + u.system
}

const B32 = 'abcdefghijklmnopqrstuvwxyz234567'
function fakeId (i: number, len: number, prefix: string): string {
  let s = prefix
  let x = (i + 1) * 2654435761
  for (let k = s.length; k < len; k++) { s += B32[x & 31]; x = Math.floor(x / 7) + k * 40503 }
  // Flat, as ids decoded from the wire are (a string built with += is a rope until flattened).
  return Buffer.from(s, 'latin1').toString('latin1')
}

const STREAM_BYTES = new Uint8Array(300)
const STREAM_NOW = Date.now()
/** Envelope `i` of a stream of `n` (`--node-heap` makes each when it is observed). */
function makeEnvelope (i: number, salt: number, n: number): Record<string, unknown> {
  const k = Math.floor(i / BATCH)
  return { id: fakeId(i + salt * n, 56, 'b'), from: SENDERS[k & 3], topic: TOPICS[k % 16], type: 'event', ts: STREAM_NOW + i, bytes: STREAM_BYTES }
}
const SENDERS = [0, 1, 2, 3].map(i => fakeId(i, 56, 'did:key:z6Mk'))
const TOPICS = Array.from({ length: 16 }, (_, k) => `sensors/room-${k}/temp`)

/** Envelopes as a subscriber's router hands them to `observe` (only the fields the recorder reads). */
function makeStream (n: number, salt: number): Array<Record<string, unknown>> {
  const senders = [0, 1, 2, 3].map(i => fakeId(i, 56, 'did:key:z6Mk'))
  const bytes = new Uint8Array(300)
  const out: Array<Record<string, unknown>> = []
  const now = Date.now()
  for (let i = 0; i < n; i++) {
    const k = Math.floor(i / BATCH)
    const id = fakeId(i + salt * n, 56, 'b')
    if (args.conv === true) out.push({ id, from: senders[i & 1], to: [senders[(i & 1) ^ 1]], conv: id, type: i % 2 === 0 ? 'request' : 'reply', ts: now + i, bytes })
    else out.push({ id, from: senders[k & 3], topic: `sensors/room-${k % 16}/temp`, type: 'event', ts: now + i, bytes })
  }
  return out
}

const PEER = fakeId(7, 52, '12D3KooW')

interface Impl { name: string, openStore: (c: unknown) => Promise<any>, LogRecorder: new (o: any) => any }

async function loadImpl (name: string, root: string): Promise<Impl> {
  const store = await import(pathToFileURL(join(root, 'src/store/index.ts')).href)
  const rec = await import(pathToFileURL(join(root, 'src/log/recorder.ts')).href)
  return { name, openStore: store.openStore, LogRecorder: rec.LogRecorder }
}

const quiet = { trace () {}, debug () {}, info () {}, warn (o: unknown, m: string) { console.error(m, o) }, error (o: unknown, m: string) { console.error(m, o) }, child () { return quiet } }

interface RunResult { name: string, mainUs: number, otherUs: number, totalUs: number, written: number }

async function runOnce (impl: Impl | null, round: number): Promise<RunResult> {
  const stream = NODE_HEAP ? [] : makeStream(N, round)
  const dir = mkdtempSync(join(tmpdir(), 'fm-log-rows-'))
  let store: any = null
  let recorder: any = null
  try {
    let observe: (o: unknown) => void = () => {}
    if (impl != null) {
      store = await impl.openStore({ kind: 'sqlite', path: join(dir, 'store.db') })
      recorder = new impl.LogRecorder({ store, logger: quiet, retention: { maxAgeMs: 0, maxBytes: 0 } })
      recorder.start()
      observe = recorder.observe
      // Warm up: one batch through, so statement preparation and JIT are not in the figure.
      for (let i = 0; i < 2000; i++) observe({ event: 'received', env: makeStream(1, 1000 + round * 10000 + i)[0], peer: PEER })
      await recorder.flush()
    }
    const t0 = tasksCpu()
    const m0 = threadCpu()
    const p0 = processCpu()
    const pu0 = process.cpuUsage()
    for (let i = 0; i < N; i += PER_TICK) {
      const end = Math.min(N, i + PER_TICK)
      if (NODE_HEAP) {
        for (let j = i; j < end; j++) { churn(); observe({ event: 'received', env: makeEnvelope(j, round, N), peer: PEER }) }
      } else for (let j = i; j < end; j++) observe({ event: 'received', env: stream[j], peer: PEER })
      await new Promise(resolve => setTimeout(resolve, TICK_MS))
    }
    if (recorder != null) await recorder.flush()
    const main = threadCpu() - m0
    const total = processCpu() - p0
    if (args.threads === true && impl != null) {
      const pu = process.cpuUsage(pu0)
      const parts: string[] = [`user ${(pu.user / N).toFixed(2)} sys ${(pu.system / N).toFixed(2)}`]
      for (const [k, v] of tasksCpu()) { const d = v - (t0.get(k) ?? 0); if (d > 0) parts.push(`${k} ${(d / N).toFixed(2)}`) }
      console.error(`${impl.name} µs/record by thread: ${parts.join(', ')}`)
    }
    const written = recorder?.stats().written ?? N
    return { name: impl?.name ?? 'pacing only', mainUs: main / N, otherUs: Math.max(0, total - main) / N, totalUs: total / N, written }
  } finally {
    if (recorder != null) await recorder.stop()
    if (store != null) await store.close()
    rmSync(dir, { recursive: true, force: true })
  }
}

const impls: Impl[] = []
if (args.base != null) impls.push(await loadImpl('base', resolve(args.base)))
impls.push(await loadImpl('this', resolve(import.meta.dirname, '..')))

const results = new Map<string, RunResult[]>()
const add = (r: RunResult): void => { const l = results.get(r.name) ?? []; l.push(r); results.set(r.name, l) }
for (let r = 0; r < ROUNDS; r++) {
  add(await runOnce(null, r))
  for (const impl of impls) {
    const res = await runOnce(impl, r)
    if (res.written < N) throw new Error(`${impl.name}: only ${res.written} of ${N} records written`)
    add(res)
  }
}

const median = (xs: number[]): number => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)] }
const pacing = median((results.get('pacing only') ?? []).map(r => r.totalUs))
const rows = [...results.entries()].filter(([k]) => k !== 'pacing only').map(([name, rs]) => ({
  name,
  main: median(rs.map(r => r.mainUs)) - median((results.get('pacing only') ?? []).map(r => r.mainUs)),
  other: median(rs.map(r => r.otherUs)),
  total: median(rs.map(r => r.totalUs)) - pacing
}))
if (args.json === true) {
  console.log(JSON.stringify({ records: N, rounds: ROUNDS, rate: RATE, pacingUs: pacing, results: rows }, null, 2))
} else {
  const what = args.conv === true ? 'request–reply records (conversation, bytes kept)' : `received records of a topic stream, ${BATCH} in a row from one sender and topic`
  console.log(`${N} ${what} at ${RATE}/s, ${ROUNDS} rounds (medians; pacing loop ${pacing.toFixed(2)} µs/record subtracted)`)
  console.log('version   main µs/rec   other threads µs/rec   total µs/rec')
  for (const r of rows) console.log(`${r.name.padEnd(8)}  ${r.main.toFixed(2).padStart(11)}   ${r.other.toFixed(2).padStart(20)}   ${r.total.toFixed(2).padStart(12)}`)
  if (rows.length === 2) console.log(`this / base: total ${(rows[1].total / rows[0].total).toFixed(2)}, main ${(rows[1].main / rows[0].main).toFixed(2)}, other ${(rows[1].other / rows[0].other).toFixed(2)}`)
}
