/**
 * One fedmesh node for the soak run (bench/footprint.ts), run the way `fedmesh node start`
 * runs one: the same V8 flags, dist/ when it is built and fresh (bin/runtime.js).
 *
 *   soak-node.ts sub                          subscribes to soak/#, counts distinct messages
 *   soak-node.ts pub <multiaddr> <rate> <s> [ttl]   publishes 256-byte messages at <rate>/s for <s> seconds
 *                                                  (TTL <ttl> s if given, else the SDK's default)
 *
 * stdout, one JSON line each: {event:'ready'}, {event:'probe-seen'} (sub), and every second a
 * sample: RSS, heap, the worst event-loop delay of that second (monitorEventLoopDelay at 1 ms
 * resolution) and the messages handled so far (sub: distinct data messages received; pub:
 * publishes resolved), and at the end {event:'published'} (pub). The publisher sends probes until
 * it reads `go` on stdin — the orchestrator says so once the subscriber has seen one — so
 * that the count measures the steady state, not subscription propagation. Every loop is
 * bounded in time.
 */
import { monitorEventLoopDelay, PerformanceObserver, constants as perfConstants } from 'node:perf_hooks'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { prepareNodeProcess, moduleUrl } from '../../bin/runtime.js'

await prepareNodeProcess()
const { createNode } = await import(moduleUrl('index').href) as typeof import('../../src/index.ts')

const [role = 'sub', addr = '', rateText = '2000', secondsText = '60', ttlText = ''] = process.argv.slice(2)
const sendOptions = ttlText === '' ? {} : { ttl: Number(ttlText) }
const KIND_PROBE = 0
const KIND_DATA = 1
const PROBE_TIMEOUT_MS = 60_000
const out = (m: unknown): void => { process.stdout.write(JSON.stringify(m) + '\n') }
const sleep = async (ms: number): Promise<void> => { await new Promise(resolve => setTimeout(resolve, ms)) }

const dir = mkdtempSync(join(tmpdir(), 'fm-soak-'))
const node = await createNode({ dir, listen: ['/ip4/127.0.0.1/tcp/0'], api: false, bootstrap: role === 'pub' ? [addr] : [] })
const agent = await node.agent(role)
let count = 0

// The worst delay per second: a 1 ms resolution histogram, reset after each sample.
const delay = monitorEventLoopDelay({ resolution: 1 })
delay.enable()
const started = Date.now()
// The heap right after the latest full (mark-compact) GC: the live heap, without the garbage
// that heapUsed also counts between collections — its trend is the one that shows a leak.
let heapAfterGcMB = NaN
let fullGcs = 0
// GC pauses of the current second (reset with each sample): the longest, its kind, and the
// total — to tell a stall that is a collection from one that is not.
const GC_KINDS: Record<number, string> = {
  [perfConstants.NODE_PERFORMANCE_GC_MINOR]: 'scavenge',
  [perfConstants.NODE_PERFORMANCE_GC_MAJOR]: 'mark-compact',
  [perfConstants.NODE_PERFORMANCE_GC_INCREMENTAL]: 'incremental',
  [perfConstants.NODE_PERFORMANCE_GC_WEAKCB]: 'weak-callbacks'
}
let gcMaxMs = 0
let gcMaxKind = ''
let gcTotalMs = 0
let gcCount = 0
const gcObserver = new PerformanceObserver((list) => {
  for (const e of list.getEntries()) {
    const kind = ((e as { detail?: { kind?: number } }).detail)?.kind ?? 0
    gcTotalMs += e.duration
    gcCount++
    if (e.duration > gcMaxMs) { gcMaxMs = e.duration; gcMaxKind = GC_KINDS[kind] ?? String(kind) }
    if (kind !== perfConstants.NODE_PERFORMANCE_GC_MAJOR) continue
    heapAfterGcMB = Math.round(process.memoryUsage().heapUsed / 1048576 * 10) / 10
    fullGcs++
  }
})
gcObserver.observe({ entryTypes: ['gc'] })
/** RssAnon and RssFile of /proc/self/status (MB): the process's own memory and mapped files (the binary's pages). */
const rssParts = (): { anonMB: number, fileMB: number } => {
  const status = readFileSync('/proc/self/status', 'utf8')
  const kb = (name: string): number => Number(new RegExp(`${name}:\\s+(\\d+) kB`).exec(status)?.[1] ?? NaN)
  return { anonMB: Math.round(kb('RssAnon') / 1024 * 10) / 10, fileMB: Math.round(kb('RssFile') / 1024 * 10) / 10 }
}
// FEDMESH_SOAK_HEAP_SNAPSHOT=DIR and FEDMESH_SOAK_HEAP_SNAPSHOT_AT=150,300 (seconds into the
// run): heap snapshots at those times too, to compare what is retained (bench/README.md).
const snapshotAt = (process.env.FEDMESH_SOAK_HEAP_SNAPSHOT_AT ?? '').split(',').filter(x => x !== '').map(Number)
const snapshot = async (label: string): Promise<void> => {
  const target = process.env.FEDMESH_SOAK_HEAP_SNAPSHOT
  if (target == null) return
  const { writeHeapSnapshot } = await import('node:v8')
  writeHeapSnapshot(join(target, `soak-${role}-${process.pid}-${label}.heapsnapshot`))
}
const sample = (): void => {
  const m = process.memoryUsage()
  const elapsed = (Date.now() - started) / 1000
  while (snapshotAt.length > 0 && elapsed >= snapshotAt[0]) void snapshot(`t${snapshotAt.shift()}`)
  out({
    event: 'sample',
    t: elapsed,
    rssMB: Math.round(m.rss / 1048576 * 10) / 10,
    heapMB: Math.round(m.heapUsed / 1048576 * 10) / 10,
    heapAfterGcMB,
    fullGcs,
    ...rssParts(),
    // Memory outside the JavaScript heap that V8 knows of (ArrayBuffers, Buffers): the rest of
    // RSS beyond heap and code is the allocator's and native libraries' (SQLite, OpenSSL).
    externalMB: Math.round(m.external / 1048576 * 10) / 10,
    // CPU time used so far (user + system, all threads), ms: CPU per message between runs.
    cpuMs: Math.round((process.cpuUsage().user + process.cpuUsage().system) / 1000),
    maxLoopDelayMs: Math.round(delay.max / 1e5) / 10,
    gcMaxMs: Math.round(gcMaxMs * 10) / 10,
    gcMaxKind,
    gcTotalMs: Math.round(gcTotalMs * 10) / 10,
    gcCount,
    count
  })
  delay.reset()
  gcMaxMs = 0
  gcMaxKind = ''
  gcTotalMs = 0
  gcCount = 0
}
const sampler = setInterval(sample, 1000)

// FEDMESH_SOAK_CPU_PROF=DIR: a CPU profile of the main thread over the whole run (1 ms
// sampling unless FEDMESH_SOAK_CPU_PROF_US says otherwise), written at the end, its start on
// the samples' clock in `event: 'profile'` — to see what runs during a stall (docs/PERFORMANCE.md,
// "Soak and tail, session 5").
// Node does not take --cpu-prof from NODE_OPTIONS, and a soak node's command line is the harness's.
const profileDir = process.env.FEDMESH_SOAK_CPU_PROF
const profiler = profileDir == null ? undefined : await (async () => {
  const { Session } = await import('node:inspector/promises')
  const session = new Session()
  session.connect()
  await session.post('Profiler.enable')
  await session.post('Profiler.setSamplingInterval', { interval: Number(process.env.FEDMESH_SOAK_CPU_PROF_US ?? 1000) })
  await session.post('Profiler.start')
  out({ event: 'profile', t: (Date.now() - started) / 1000 })
  return {
    stop: async (): Promise<void> => {
      const { profile } = await session.post('Profiler.stop')
      writeFileSync(join(profileDir, `soak-${role}-${process.pid}.cpuprofile`), JSON.stringify(profile))
      session.disconnect()
    }
  }
})()

if (role === 'sub') {
  // Distinct data messages by sequence number: a duplicate is not a delivery.
  let seen = new Uint8Array(1 << 16)
  let probeSeen = false
  let lastAt = Date.now()
  void (async () => {
    for await (const msg of agent.subscribe('soak/#')) {
      const p = msg.payload
      if (p[0] === KIND_PROBE) {
        if (!probeSeen) { probeSeen = true; out({ event: 'probe-seen' }) }
        continue
      }
      if (p[0] !== KIND_DATA) continue
      const seq = new DataView(p.buffer, p.byteOffset, p.byteLength).getUint32(1)
      if ((seq >>> 3) >= seen.length) { const g = new Uint8Array(Math.max((seq >>> 3) + 1, seen.length * 2)); g.set(seen); seen = g }
      const bit = 1 << (seq & 7)
      if ((seen[seq >>> 3] & bit) === 0) { seen[seq >>> 3] |= bit; count++ }
      lastAt = Date.now()
    }
  })()
  out({ event: 'ready', addr: node.multiaddrs()[0] })
  // Until the run is over and nothing has arrived for 3 s, or 60 s past the end.
  const seconds = Number(secondsText)
  const hardEnd = started + PROBE_TIMEOUT_MS + (seconds + 60) * 1000
  let done = false
  createInterface({ input: process.stdin }).on('line', (l) => { if (l.trim() === 'end') done = true })
  while (Date.now() < hardEnd && !(done && Date.now() - lastAt > 3000)) await sleep(200)
} else {
  out({ event: 'ready' })
  let go = false
  createInterface({ input: process.stdin }).on('line', (l) => { if (l.trim() === 'go') go = true })
  const payload = (kind: number, seq: number): Uint8Array => {
    const b = new Uint8Array(256).fill(0x61)
    b[0] = kind
    new DataView(b.buffer).setUint32(1, seq)
    return b
  }
  const probeEnd = Date.now() + PROBE_TIMEOUT_MS
  for (let i = 0; !go && Date.now() < probeEnd; i++) {
    await agent.publish('soak/probe', payload(KIND_PROBE, i)).catch(() => {})
    await sleep(50)
  }
  if (!go) throw new Error(`the subscriber saw no probe in ${PROBE_TIMEOUT_MS} ms`)
  const rate = Number(rateText)
  const seconds = Number(secondsText)
  const t0 = Date.now()
  const end = t0 + seconds * 1000
  let seq = 0
  let failed = 0
  // Paced in 10 ms slices: the slice's share of the rate, awaited together.
  while (Date.now() < end) {
    const slice = Date.now()
    // At most 100 ms worth at once: a publisher that falls behind does not burst without bound.
    const due = Math.min(Math.floor((slice - t0) / 1000 * rate) - seq, Math.ceil(rate / 10))
    const batch = []
    for (let i = 0; i < due; i++) batch.push(agent.publish('soak/x', payload(KIND_DATA, seq++), sendOptions).then(() => { count++ }, () => { failed++ }))
    await Promise.all(batch)
    const wait = 10 - (Date.now() - slice)
    if (wait > 0) await sleep(wait)
  }
  out({ event: 'published', count, failed, seconds: (Date.now() - t0) / 1000 })
}
clearInterval(sampler)
sample()
// For finding what the node holds under load (bench/README.md): FEDMESH_SOAK_HEAP_SNAPSHOT=DIR.
await snapshot('end')
await profiler?.stop()
await node.stop()
// The message log of a long soak takes hundreds of MB of disk.
rmSync(dir, { recursive: true, force: true })
process.exit(0)
