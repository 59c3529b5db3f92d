/**
 * Durable send throughput and latency: fedmesh store-and-forward beside NATS JetStream.
 *
 *   fedmesh:   sender agent (this process, its own node) → recipient's home node (a child
 *              process) → SQLite inbox, fsync'd (synchronous FULL) → acknowledged to the
 *              sender. The send resolves only after the stable write. No replicas (k = 0):
 *              one copy on one disk, as JetStream R1 below.
 *   JetStream: nats-server -js with file storage (started here, own port and temp dir),
 *              nats.js async publish, each publish resolved by the server's ack.
 *
 * Both: 256-byte payloads, `--window` sends in flight, `--count` messages, one publisher.
 * Afterwards every message is counted at the far end (inbox entries / stream messages):
 * "lost" must be 0. Latency is per send, from the call to its acknowledgement. Before
 * measuring, WARM_SENDS sends go out 512 in flight (so V8 has optimised the shared path: a run of a
 * few thousand lone sends otherwise measures unoptimised code and the compiler threads), then
 * 500 at the window measured. CPU is also split per thread (Linux schedstat).
 *
 *   node bench/durable.ts [--count N] [--seconds S] [--window W[,W…]] [--json] [--only fedmesh|jetstream] [--sync full|normal]
 *
 * `--count` sends per window (20,000 by default); `--seconds S` instead sends for S seconds per
 * window (then `--count` is only a ceiling), as npm run bench's sustained row does.
 *
 * `--window 64,512,2048` measures each window in turn on the same processes (a sweep: how
 * each system scales with the sends an application keeps in flight).
 *
 * `--sync normal`: the home node's SQLite commits without an fsync (an acknowledged message
 * survives a killed process, not a power cut) — the guarantee JetStream's default file
 * storage gives (it fsyncs every 2 minutes, `sync_interval`); the default `full` fsyncs
 * every commit before the acknowledgement. The figures printed include CPU µs per message
 * at the sending process and at the home node / nats-server (all threads).
 * FEDMESH_BENCH_PROF_DIR=<dir> makes the home node write a CPU profile there.
 *
 * `npm run bench` also runs it (benchRows below) and puts its rows in the same table.
 */
import { spawn, fork, type ChildProcess } from 'node:child_process'
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'

const PAYLOAD_BYTES = 256
const NATS_SERVER = '/usr/sbin/nats-server'
const HOST = '127.0.0.1'
/**
 * Sends before any phase, WARM_WINDOW in flight: enough calls of every function on the
 * shared path for V8 to optimise it (TurboFan compiles a function after some thousands of
 * calls). Without it a window-1 run measures mostly unoptimised code and the compiler
 * threads: at 200–500 sends a second that lasts 10–40 s.
 */
const WARM_SENDS = 5_000
const WARM_WINDOW = 512
/** Then, before each phase, this many at the phase's own window (its own code path: `put` rather than `putb`). */
const PHASE_WARM_SENDS = 500
/**
 * The most sends of a timed run: `--seconds`, and bench/run.ts's sustained row (last, 512 in
 * flight, for its `--duration`: 5 s by default, every other measure's window). RUN_COUNT sends
 * last well under a second on a fast machine, so their rate carries the start of each
 * system's run (V8's compiler threads in the sender, the stream's or the inbox's first
 * pages); the sustained row shows where each settles.
 */
const SUSTAINED_MAX = 2_000_000

// ---- child: the recipient's home node ----------------------------------------------------

if (process.argv[2] === '--home') {
  const { createNode } = await import('../src/node/mesh-node.ts')
  const dir = process.argv[3]
  const synchronous = process.argv[4] === 'normal' ? 'normal' : 'full'
  // Quotas out of the way: this measures the write path, not the admission limits.
  const big = 1_000_000_000_000
  const node = await createNode({ dir, listen: [`/ip4/${HOST}/tcp/0`], api: false, store: { synchronous, quota: { inboxCount: big, inboxBytes: big, senderCount: big, senderBytes: big, senderTotalCount: big, senderTotalBytes: big } } })
  const bob = await node.agent('bob')
  process.send?.({ event: 'ready', addr: node.multiaddrs()[0], bob: bob.id })
  process.on('message', (m: { op: string }) => {
    void (async () => {
      if (m.op === 'detach') { await bob.close(); process.send?.({ event: 'detached' }) }
      if (m.op === 'count') process.send?.({ event: 'count', count: (await node.store.stats(bob.id)).inbox.count, cpuUs: cpuUs(), mainUs: mainCpuUs(), threads: threadsCpuUs(process.pid) })
      if (m.op === 'stop') { await node.stop(); process.exit(0) }
    })()
  })
} else if (process.argv[1] != null && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  // Run as a script (npm run bench:durable); bench/run.ts imports benchRows instead.
  await main()
}

// ---- measurement helpers -----------------------------------------------------------------

/** This process's CPU time so far (user + system), µs. */
function cpuUs (): number {
  const u = process.cpuUsage()
  return u.user + u.system
}

/** This thread's CPU time so far (the event loop's; the rest of cpuUs is the store writer, GC and I/O threads), µs. */
function mainCpuUs (): number {
  const u = process.threadCpuUsage()
  return u.user + u.system
}

interface Result {
  system: string, count: number, window: number, seconds: number, perSecond: number, p50Ms: number, p99Ms: number, maxMs: number, lost: number, errors: number
  /** CPU µs per acknowledged message: the sending process, and the receiving node / server. */
  senderCpuUsPerMsg?: number
  homeCpuUsPerMsg?: number
  /** Of those, on the main thread (the event loop); fedmesh only. */
  senderMainCpuUsPerMsg?: number
  homeMainCpuUsPerMsg?: number
  /** CPU µs per message by thread name (Linux only): the sending process, the receiving one. */
  senderThreads?: Record<string, number>
  homeThreads?: Record<string, number>
}

/**
 * A process's CPU time so far per kind of thread (Linux /proc/<pid>/task/<tid>/schedstat, ns
 * resolution; empty elsewhere), µs, keyed "main" (the event loop) or thread name/id (Node names
 * its V8 helper, libuv pool and worker threads all "node").
 */
function threadsCpuUs (pid: number | undefined): Record<string, number> {
  const out: Record<string, number> = {}
  if (pid == null) return out
  try {
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      try {
        const name = readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim()
        const ns = Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0])
        const key = tid === String(pid) ? 'main' : `${name}/${tid}`
        if (Number.isFinite(ns)) out[key] = (out[key] ?? 0) + ns / 1000
      } catch {
        // The thread ended meanwhile.
      }
    }
  } catch {
    // No /proc.
  }
  return out
}

/** Per thread, CPU µs per message between two `threadsCpuUs` readings (threads that ended count as 0 after). */
function threadsPerMsg (before: Record<string, number>, after: Record<string, number>, n: number): Record<string, number> {
  const out: Record<string, number> = {}
  for (const name of new Set([...Object.keys(before), ...Object.keys(after)])) {
    const d = ((after[name] ?? 0) - (before[name] ?? 0)) / n
    // Tenths: the pairs that compare two trees differ by a few µs per message.
    if (Math.abs(d) >= 0.5) out[name] = Math.round(d * 10) / 10
  }
  return out
}

/** Another process's CPU time so far (Linux /proc; NaN elsewhere), µs. */
function procCpuUs (pid: number | undefined): number {
  if (pid == null) return Number.NaN
  try {
    // Fields after the command name (which is in parentheses): utime is the 14th field, stime the 15th.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    const ticks = Number(rest[11]) + Number(rest[12])
    // USER_HZ is 100 on every Linux this runs on (a const up here would not exist yet when the script runs).
    return ticks * 1e6 / 100
  } catch {
    return Number.NaN
  }
}

function percentile (sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN
  return sorted[Math.min(sorted.length, Math.max(1, Math.ceil(p / 100 * sorted.length))) - 1]
}

/**
 * Runs `send(i)` for i < count with `window` in flight; latency per call. With `durationMs`,
 * no send starts after that long (the ones in flight finish): `count` is then a ceiling and
 * the result's `issued` says how many went out.
 */
async function pipeline (count: number, window: number, send: (i: number) => Promise<unknown>, durationMs?: number): Promise<{ seconds: number, latencies: number[], errors: number, issued: number }> {
  const latencies: number[] = []
  let next = 0
  let errors = 0
  const t0 = performance.now()
  const until = durationMs == null ? Number.POSITIVE_INFINITY : t0 + durationMs
  await Promise.all(Array.from({ length: Math.min(window, count) }, async () => {
    while (next < count && performance.now() < until) {
      const i = next++
      const s = performance.now()
      try {
        await send(i)
        latencies.push(performance.now() - s)
      } catch (err) {
        errors++
        if (errors <= 3) process.stderr.write(`send ${i} failed: ${(err as Error).message}\n`)
      }
    }
  }))
  return { seconds: (performance.now() - t0) / 1000, latencies, errors, issued: next }
}

function result (system: string, window: number, run: { seconds: number, latencies: number[], errors: number, issued: number }, delivered: number): Result {
  const sorted = [...run.latencies].sort((a, b) => a - b)
  return {
    system,
    count: run.issued,
    window,
    seconds: run.seconds,
    perSecond: run.latencies.length / run.seconds,
    p50Ms: percentile(sorted, 50),
    p99Ms: percentile(sorted, 99),
    maxMs: sorted[sorted.length - 1] ?? Number.NaN,
    // Acknowledged but not found at the far end.
    lost: Math.max(0, run.latencies.length - delivered),
    errors: run.errors
  }
}

async function freePort (): Promise<number> {
  const srv = createServer()
  await new Promise<void>(resolve => srv.listen(0, HOST, resolve))
  const port = (srv.address() as { port: number }).port
  await new Promise(resolve => srv.close(resolve))
  return port
}

function childEvent<T> (child: ChildProcess, event: string, timeoutMs: number): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { child.off('message', on); reject(new Error(`no ${event} from the child in ${timeoutMs} ms`)) }, timeoutMs)
    const on = (m: { event?: string }): void => { if (m.event === event) { clearTimeout(timer); child.off('message', on); resolve(m as T) } }
    child.on('message', on)
  })
}

// ---- fedmesh -------------------------------------------------------------------------------

/**
 * One measurement on the same processes: `count` sends, `window` in flight — or, with
 * `durationMs`, as many as start in that time (at most `count`).
 */
interface Phase { count: number, window: number, durationMs?: number }


async function benchFedmesh (phases: Phase[], synchronous: 'full' | 'normal' = 'full'): Promise<Result[]> {
  const { createNode } = await import('../src/node/mesh-node.ts')
  const homeDir = mkdtempSync(join(tmpdir(), 'fedmesh-bench-home-'))
  const senderDir = mkdtempSync(join(tmpdir(), 'fedmesh-bench-sender-'))
  // FEDMESH_BENCH_PROF_DIR=<dir>: the home node writes a CPU profile there (run the sender with --cpu-prof too).
  const profDir = process.env.FEDMESH_BENCH_PROF_DIR
  const execArgv = profDir != null && profDir !== '' ? [...process.execArgv, '--cpu-prof', `--cpu-prof-dir=${profDir}`] : process.execArgv
  const child = fork(new URL(import.meta.url).pathname, ['--home', homeDir, synchronous], { execPath: process.execPath, execArgv, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  try {
    const ready = await childEvent<{ addr: string, bob: string }>(child, 'ready', 30_000)
    const node = await createNode({ dir: senderDir, listen: [`/ip4/${HOST}/tcp/0`], api: false, bootstrap: [ready.addr] })
    try {
      const alice = await node.agent('alice')
      await node.waitForAgent(ready.bob, { signal: AbortSignal.timeout(30_000) })
      // The recipient is offline: messages wait in its inbox (nothing consumes them meanwhile).
      child.send({ op: 'detach' })
      await childEvent(child, 'detached', 10_000)
      const payload = new Uint8Array(PAYLOAD_BYTES).fill(0x61)
      // Warm-up: connections, statements, JIT.
      await pipeline(WARM_SENDS, WARM_WINDOW, async () => await alice.send(ready.bob, payload, { durable: true }))
      const results: Result[] = []
      for (const { count, window, durationMs } of phases) {
        await pipeline(Math.min(PHASE_WARM_SENDS, count), window, async () => await alice.send(ready.bob, payload, { durable: true }))
        const before = await countAt(child)
        const cpu0 = cpuUs()
        const main0 = mainCpuUs()
        const threads0 = threadsCpuUs(process.pid)
        const run = await pipeline(count, window, async () => {
          const r = await alice.send(ready.bob, payload, { durable: true })
          if (r.durable?.status !== 'stored') throw new Error(`not stored: ${JSON.stringify(r.durable)}`)
        }, durationMs)
        const senderCpu = cpuUs() - cpu0
        const senderMain = mainCpuUs() - main0
        const threads1 = threadsCpuUs(process.pid)
        const after = await countAt(child)
        const res = result(`fedmesh durable (SQLite ${synchronous.toUpperCase()}, k=0)`, window, run, after.count - before.count)
        const acked = Math.max(1, run.latencies.length)
        res.senderCpuUsPerMsg = senderCpu / acked
        res.homeCpuUsPerMsg = (after.cpuUs - before.cpuUs) / acked
        res.senderMainCpuUsPerMsg = senderMain / acked
        res.homeMainCpuUsPerMsg = (after.mainUs - before.mainUs) / acked
        res.senderThreads = threadsPerMsg(threads0, threads1, acked)
        res.homeThreads = threadsPerMsg(before.threads, after.threads, acked)
        results.push(res)
      }
      return results
    } finally {
      await node.stop()
    }
  } finally {
    child.send({ op: 'stop' })
    await new Promise(resolve => { child.once('exit', resolve); setTimeout(() => { child.kill('SIGKILL') }, 10_000).unref() })
    rmSync(homeDir, { recursive: true, force: true })
    rmSync(senderDir, { recursive: true, force: true })
  }
}

/** The inbox count at the home node and its CPU time so far. */
async function countAt (child: ChildProcess): Promise<{ count: number, cpuUs: number, mainUs: number, threads: Record<string, number> }> {
  const p = childEvent<{ count: number, cpuUs: number, mainUs: number, threads: Record<string, number> }>(child, 'count', 30_000)
  child.send({ op: 'count' })
  return await p
}

// ---- JetStream -----------------------------------------------------------------------------

async function benchJetStream (phases: Phase[]): Promise<Result[]> {
  const { connect } = await import('nats')
  const port = await freePort()
  const storeDir = mkdtempSync(join(tmpdir(), 'fedmesh-bench-js-'))
  const server = spawn(NATS_SERVER, ['-js', '-sd', storeDir, '-a', HOST, '-p', String(port)], { stdio: ['ignore', 'ignore', 'pipe'] })
  let stderr = ''
  server.stderr?.on('data', (c: Buffer) => { if (stderr.length < 4096) stderr += c.toString() })
  try {
    let nc
    for (let attempt = 0; attempt < 100 && nc == null; attempt++) {
      try { nc = await connect({ servers: `${HOST}:${port}`, timeout: 1000 }) } catch { await new Promise(resolve => setTimeout(resolve, 100)) }
    }
    if (nc == null) throw new Error(`nats-server did not start: ${stderr}`)
    try {
      const jsm = await nc.jetstreamManager()
      await jsm.streams.add({ name: 'BENCH', subjects: ['bench.>'], storage: 'file' as never })
      const js = nc.jetstream()
      const payload = new Uint8Array(PAYLOAD_BYTES).fill(0x61)
      await pipeline(WARM_SENDS, WARM_WINDOW, async () => await js.publish('bench.warm', payload))
      const results: Result[] = []
      for (const { count, window, durationMs } of phases) {
        await pipeline(Math.min(PHASE_WARM_SENDS, count), window, async () => await js.publish('bench.warm', payload))
        const before = (await jsm.streams.info('BENCH')).state.messages
        const cpu0 = cpuUs()
        const server0 = procCpuUs(server.pid)
        const threads0 = threadsCpuUs(process.pid)
        const serverThreads0 = threadsCpuUs(server.pid)
        const run = await pipeline(count, window, async () => await js.publish('bench.durable', payload), durationMs)
        const senderCpu = cpuUs() - cpu0
        const serverCpu = procCpuUs(server.pid) - server0
        const threads1 = threadsCpuUs(process.pid)
        const serverThreads1 = threadsCpuUs(server.pid)
        const after = (await jsm.streams.info('BENCH')).state.messages
        const res = result('NATS JetStream (file, R1)', window, run, after - before)
        const acked = Math.max(1, run.latencies.length)
        res.senderCpuUsPerMsg = senderCpu / acked
        if (Number.isFinite(serverCpu)) res.homeCpuUsPerMsg = serverCpu / acked
        res.senderThreads = threadsPerMsg(threads0, threads1, acked)
        res.homeThreads = threadsPerMsg(serverThreads0, serverThreads1, acked)
        results.push(res)
      }
      return results
    } finally {
      await nc.close()
    }
  } finally {
    server.kill('SIGTERM')
    await new Promise(resolve => { server.once('exit', resolve); setTimeout(() => { server.kill('SIGKILL') }, 5000).unref() })
    rmSync(storeDir, { recursive: true, force: true })
  }
}

// ---- main ----------------------------------------------------------------------------------

async function main (): Promise<void> {
  const { values } = parseArgs({
    options: {
      count: { type: 'string' },
      seconds: { type: 'string' },
      window: { type: 'string', default: '512' },
      json: { type: 'boolean', default: false },
      only: { type: 'string' },
      sync: { type: 'string', default: 'full' }
    }
  })
  const seconds = values.seconds == null ? undefined : Number(values.seconds)
  if (seconds != null && !(seconds >= 0.5 && seconds <= 600)) throw new Error('--seconds must be 0.5–600')
  // With --seconds, --count is a ceiling (none by default).
  const count = Number(values.count ?? (seconds == null ? 20_000 : SUSTAINED_MAX))
  const windows = values.window.split(',').map(Number)
  if (!Number.isSafeInteger(count) || count < 1 || count > 10_000_000) throw new Error('--count must be 1–10000000')
  if (windows.length > 8 || windows.some(w => !Number.isSafeInteger(w) || w < 1 || w > 100_000)) throw new Error('--window must be 1–100000, or up to 8 of them separated by commas')
  const results: Result[] = []
  if (values.sync !== 'full' && values.sync !== 'normal') throw new Error('--sync must be full or normal')
  const durationMs = seconds == null ? undefined : seconds * 1000
  const phases: Phase[] = windows.map(window => ({ count, window, durationMs }))
  if (values.only == null || values.only === 'fedmesh') results.push(...await benchFedmesh(phases, values.sync))
  if (values.only == null || values.only === 'jetstream') results.push(...await benchJetStream(phases))
  // fedmesh ÷ JetStream at each window both measured.
  const ratios = windows.flatMap(window => {
    const fm = results.find(r => r.window === window && r.system.startsWith('fedmesh'))
    const js = results.find(r => r.window === window && r.system.startsWith('NATS'))
    return fm != null && js != null ? [{ window, throughput: fm.perSecond / js.perSecond, p50: fm.p50Ms / js.p50Ms, p99: fm.p99Ms / js.p99Ms }] : []
  })
  if (values.json === true) {
    const one = windows.length === 1
    process.stdout.write(JSON.stringify({ payloadBytes: PAYLOAD_BYTES, count, window: one ? windows[0] : windows, results, ratios: one ? ratios[0] : ratios }, null, 2) + '\n')
    return
  }
  const rows = results.map(r => [r.system, String(r.count), String(r.window), r.perSecond.toFixed(0), r.p50Ms.toFixed(2), r.p99Ms.toFixed(2), r.maxMs.toFixed(1), String(r.lost), String(r.errors)])
  const headers = ['system', 'messages', 'in flight', 'msgs/s', 'p50 ms', 'p99 ms', 'max ms', 'lost', 'errors']
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map(r => r[i].length)))
  const line = (cells: string[]): string => cells.map((c, i) => i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i])).join('  ')
  process.stdout.write(`durable send, ${PAYLOAD_BYTES}-byte payloads, acknowledged after the stable write\n\n`)
  process.stdout.write([line(headers), line(widths.map(w => '-'.repeat(w))), ...rows.map(line)].join('\n') + '\n')
  for (const r of results) {
    if (r.senderCpuUsPerMsg == null || r.homeCpuUsPerMsg == null) continue
    const main = (all: number, m: number | undefined): string => m != null ? ` (${m.toFixed(1)} on the main thread, ${(all - m).toFixed(1)} on others)` : ''
    process.stdout.write(`\n${r.system}${windows.length > 1 ? `, ${r.window} in flight` : ''}: CPU per message ${r.senderCpuUsPerMsg.toFixed(1)} µs at the sender${main(r.senderCpuUsPerMsg, r.senderMainCpuUsPerMsg)}, ` +
      `${r.homeCpuUsPerMsg.toFixed(1)} µs at the ${r.system.startsWith('NATS') ? 'server' : `home node${main(r.homeCpuUsPerMsg, r.homeMainCpuUsPerMsg)}`}\n`)
    const byThread = (t: Record<string, number> | undefined): string => Object.entries(t ?? {}).sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${v}`).join(', ')
    if (r.senderThreads != null && Object.keys(r.senderThreads).length > 0) {
      process.stdout.write(`  per thread, µs/message (schedstat): sender ${byThread(r.senderThreads)}; ${r.system.startsWith('NATS') ? 'server' : 'home'} ${byThread(r.homeThreads)}\n`)
    }
  }
  for (const q of ratios) {
    process.stdout.write(`\nfedmesh / JetStream${windows.length > 1 ? `, ${q.window} in flight` : ''}: throughput ${q.throughput.toFixed(2)}x, p50 latency ${q.p50.toFixed(2)}x, p99 latency ${q.p99.toFixed(2)}x`)
  }
  if (ratios.length > 0) process.stdout.write('\n')
}

// ---- rows for bench/run.ts -----------------------------------------------------------------

interface BenchRow { system: string, measure: string, value: number | null, unit: string, ratio: number | null, detail?: unknown, error?: string }

/** Messages per system when run from bench/run.ts (the durable measure is count-based). */
const RUN_COUNT = 20_000
const RUN_WINDOW = 512
/**
 * And a deeper window on the same processes: how each scales with more sends in flight
 * (nats.js's publish costs more per message with thousands pending; fedmesh's batches grow).
 */
const DEEP_WINDOW = 2048
/** Then lone sends (one in flight: an agent that awaits each send) on the same processes, for latency. */
const LONE_COUNT = 1_000

/**
 * bench/run.ts's entry: both systems, then rows in its format (ratio: fedmesh ÷ system for
 * rates, system ÷ fedmesh for latencies; above 1 means fedmesh is better).
 */
export async function benchRows (opts: { durationMs: number, size: number, dir: string, log: (line: string) => void }): Promise<BenchRow[]> {
  const seconds = opts.durationMs / 1000
  // The phases, in order on the same processes, and their places in each system's results.
  const [RUN, LONE, DEEP, SUSTAINED] = [0, 1, 2, 3]
  const phases: Phase[] = [
    { count: RUN_COUNT, window: RUN_WINDOW },
    { count: LONE_COUNT, window: 1 },
    { count: RUN_COUNT, window: DEEP_WINDOW },
    { count: SUSTAINED_MAX, window: RUN_WINDOW, durationMs: opts.durationMs }
  ]
  opts.log(`durable: fedmesh, ${RUN_COUNT} sends of ${PAYLOAD_BYTES} B, ${RUN_WINDOW} in flight, then ${LONE_COUNT} one at a time, then ${RUN_COUNT} with ${DEEP_WINDOW} in flight, then ${seconds} s at ${RUN_WINDOW}`)
  const fm = await benchFedmesh(phases)
  const lost = (rs: Result[]): number => rs.reduce((n, r) => n + r.lost, 0)
  const summary = (rs: Result[]): string => `${rs[RUN].perSecond.toFixed(0)} msgs/s (${rs[DEEP].perSecond.toFixed(0)} at ${DEEP_WINDOW} in flight, ${rs[SUSTAINED].perSecond.toFixed(0)} over ${seconds} s), lost ${lost(rs)}; lone send p50 ${rs[LONE].p50Ms.toFixed(2)} ms`
  opts.log(`durable: fedmesh ${summary(fm)}`)
  opts.log('durable: NATS JetStream (file storage, own server)')
  const js = await benchJetStream(phases)
  opts.log(`durable: JetStream ${summary(js)}`)
  const detail = (r: Result): string => `${r.count} sends, ${r.window} in flight, lost ${r.lost}, errors ${r.errors}`
  const deep = `durable send, ${DEEP_WINDOW} in flight`
  // [measure, phase, what of it (rate, p50 or p99), whether the row carries the phase's detail]
  const measures: Array<[string, number, 'rate' | 'p50' | 'p99', boolean]> = [
    ['durable send', RUN, 'rate', true],
    ['durable send p50', RUN, 'p50', false],
    ['durable send p99', RUN, 'p99', false],
    ['lone durable send p50', LONE, 'p50', true],
    ['lone durable send p99', LONE, 'p99', false],
    [deep, DEEP, 'rate', true],
    [`${deep} p99`, DEEP, 'p99', false],
    [`durable send, ${seconds} s sustained`, SUSTAINED, 'rate', true],
    [`durable send, ${seconds} s sustained p99`, SUSTAINED, 'p99', false]
  ]
  const value = (r: Result, what: 'rate' | 'p50' | 'p99'): number => what === 'rate' ? r.perSecond : what === 'p50' ? r.p50Ms : r.p99Ms
  const rows = (rs: Result[], system: string): BenchRow[] => measures.map(([measure, phase, what, withDetail]) => {
    const v = value(rs[phase], what)
    const mine = value(fm[phase], what)
    // Rates: fedmesh ÷ system; latencies: system ÷ fedmesh (above 1: fedmesh better).
    const ratio = rs === fm ? 1 : what === 'rate' ? mine / v : v / mine
    return { system, measure, value: v, unit: what === 'rate' ? 'msgs/s' : 'ms', ratio, ...(withDetail ? { detail: detail(rs[phase]) } : {}) }
  })
  return [...rows(js, 'nats-jetstream'), ...rows(fm, 'fedmesh')]
}
