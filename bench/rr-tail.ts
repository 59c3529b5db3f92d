/**
 * Request–reply tail harness: what a round trip between agents on two node processes costs,
 * and which of the slow ones each process caused itself.
 *
 * Two node processes (`createNode` + one agent each, as bench/systems/fedmesh.ts), the
 * requester sends `--warmup` sequential `agent.request`s of `--size` bytes (8,000: after
 * 1,000, V8 still compiled hot functions on its worker threads through the window), then
 * `--count` measured ones; the responder's handler echoes the payload. Over the measured window both
 * processes record, on one clock (`performance.timeOrigin + now()`):
 *
 * - CPU: `process.cpuUsage` (all threads), each thread's (/proc/self/task), and the main thread's alone (`process.threadCpuUsage`),
 *   the latter also in units of one Ed25519 verification timed in the same process at the
 *   window's start and end, which cancels out the machine's speed at the moment;
 * - bytes allocated on the V8 heap (`v8.GCProfiler`: heap used before each GC minus after the last);
 * - GC events (`PerformanceObserver('gc')`: kind, start, duration);
 * - message-log appends (each `store.log()` call of `LogRecorder`: its part on the event loop —
 *   the call and the group commit's hand-off to the writer thread — and when it completed).
 *
 * A round trip over `--slow` ms (2) is counted as caused by an event of either process that
 * overlaps it. Several trees (checkouts of fedmesh, `--trees a,b`) run alternately,
 * `--pairs` times, and the summary gives each measure's range per tree.
 *
 *   node bench/rr-tail.ts --trees /work/wt/base,. --pairs 3
 *   node bench/rr-tail.ts --profile cpu      # + top self-time functions per process
 *   node bench/rr-tail.ts --profile heap     # + top allocating functions (sampled, GC'd objects included)
 *   node bench/rr-tail.ts --profile heap --callers   # … keyed by function and its caller
 *   node bench/rr-tail.ts --profile timeline  # + what each main thread ran during the slow round trips and the appends
 *   node bench/rr-tail.ts --profile cpu --save DIR   # … and the raw profiles (requester.cpuprofile, …) in DIR
 */
import { fork, type ChildProcess } from 'node:child_process'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { createWriteStream, readdirSync, readFileSync } from 'node:fs'
import { generateKeyPairSync, sign, verify } from 'node:crypto'
import { loadavg, tmpdir } from 'node:os'
import { basename, dirname, join, resolve } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { constants, performance, PerformanceObserver } from 'node:perf_hooks'
import { Session } from 'node:inspector/promises'
import v8 from 'node:v8'
import { parseArgs } from 'node:util'

const SCRIPT = fileURLToPath(import.meta.url)
const STEP_TIMEOUT_MS = 180_000

interface Options { trees: string[], pairs: number, count: number, warmup: number, size: number, slow: number, profile?: 'cpu' | 'heap' | 'timeline', flags: string[], json: boolean, top: number, callers: boolean, save?: string }

type Role = 'requester' | 'responder'
interface GcEvent { kind: 'scavenge' | 'mark-compact' | 'other', start: number, dur: number }
interface Append { start: number, dur: number, done?: number }
interface HotSpot { fn: string, share: number }
interface ProcStats {
  role: Role
  cpuUs: number
  mainCpuUs: number
  /** Main-thread CPU µs of one Ed25519 verification, at the start and end of the window (mean). */
  verifyUs: number
  allocated: number
  gcs: GcEvent[]
  appends: Append[]
  hot?: HotSpot[]
  /** With `--profile timeline`: the main thread's CPU profile samples, on the common clock (ms), and each one's label. */
  timeline?: { t: number[], label: number[], labels: string[] }
  /** CPU ms of each of the process's threads over the window, by thread name (Linux: /proc/self/task). */
  threads?: Record<string, number>
}
interface RunResult {
  tree: string
  load: [number, number]
  starts: number[]
  durs: number[]
  procs: Record<Role, ProcStats>
}

// ---- child ---------------------------------------------------------------------------------

const now = (): number => performance.timeOrigin + performance.now()

/** CPU time of this (the main) thread, in µs. */
function mainThreadCpuUs (): number {
  const u = process.threadCpuUsage()
  return u.user + u.system
}

const CALIBRATION_VERIFIES = 400

/**
 * Main-thread CPU µs of one Ed25519 verification now: the unit that makes CPU figures of
 * runs on a loaded, shared machine comparable (the machine's speed at that moment cancels out).
 */
function verifyCostUs (): number {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519')
  const data = new Uint8Array(53).fill(1)
  const sig = sign(null, data, privateKey)
  const t0 = mainThreadCpuUs()
  for (let i = 0; i < CALIBRATION_VERIFIES; i++) if (!verify(null, data, publicKey, sig)) throw new Error('calibration signature does not verify')
  return (mainThreadCpuUs() - t0) / CALIBRATION_VERIFIES
}

/** CPU ms used so far by each thread of this process, summed by thread name; empty where there is no /proc. */
function threadCpuMs (): Map<string, number> {
  const by = new Map<string, number>()
  let tasks: string[] = []
  try { tasks = readdirSync('/proc/self/task') } catch { return by }
  const tick = 1000 / 100 // USER_HZ
  for (const tid of tasks) {
    let stat: string
    try { stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8') } catch { continue }
    const close = stat.lastIndexOf(')')
    const comm = stat.slice(stat.indexOf('(') + 1, close).replace(/[0-9]+$/, '#')
    // Node names few of its threads: tell them apart by id (the main thread's is the pid).
    const name = String(process.pid) === tid ? 'main' : `${comm}:${tid}`
    const f = stat.slice(close + 2).split(' ')
    by.set(name, (by.get(name) ?? 0) + (Number(f[11]) + Number(f[12])) * tick)
  }
  return by
}

async function child (): Promise<void> {
  const send = (m: unknown): void => { process.send?.(m) }
  const inbox: Array<Record<string, any>> = []
  let wake: (() => void) | undefined
  process.on('message', (m: Record<string, any>) => { inbox.push(m); wake?.() })
  const next = async (): Promise<Record<string, any>> => {
    while (inbox.length === 0) await new Promise<void>(resolve => { wake = resolve })
    return inbox.shift() as Record<string, any>
  }
  const init = await next()
  const tree = init.tree as string
  const role = init.role as Role
  const { createNode } = await import(pathToFileURL(join(tree, 'src/index.ts')).href)
  const { LogRecorder } = await import(pathToFileURL(join(tree, 'src/log/recorder.ts')).href)

  let recording = false
  const appends: Append[] = []
  // Each `store.log()` call of the recorder is an append: its synchronous part and the group
  // commit's hand-off to the writer thread (a microtask queued by the call, so one queued after
  // it runs when that is done) on the event loop, and when its commit came back.
  const flush = LogRecorder.prototype.flush
  const wrapped = new WeakSet<object>()
  LogRecorder.prototype.flush = function (this: { o: { store: { log: (r: unknown[]) => Promise<void> } } }): Promise<void> {
    const store = this.o.store
    if (!wrapped.has(store)) {
      wrapped.add(store)
      const log = store.log.bind(store)
      store.log = (records: unknown[]): Promise<void> => {
        if (!recording) return log(records)
        const start = now()
        const p = log(records)
        const a: Append = { start, dur: now() - start }
        queueMicrotask(() => { a.dur = now() - start })
        appends.push(a)
        void p.finally(() => { a.done = now() })
        return p
      }
    }
    return flush.call(this)
  }
  const gcs: GcEvent[] = []
  const obs = new PerformanceObserver((list) => {
    if (!recording) return
    for (const e of list.getEntries()) {
      const k = ((e as PerformanceEntry & { detail?: { kind?: number } }).detail)?.kind
      gcs.push({ kind: k === constants.NODE_PERFORMANCE_GC_MINOR ? 'scavenge' : k === constants.NODE_PERFORMANCE_GC_MAJOR ? 'mark-compact' : 'other', start: performance.timeOrigin + e.startTime, dur: e.duration })
    }
  })
  obs.observe({ entryTypes: ['gc'] })

  const dir = await mkdtemp(join(tmpdir(), `fedmesh-rr-${role}-`))
  const node = await createNode({ dir, listen: ['/ip4/127.0.0.1/tcp/0'], bootstrap: init.peer?.addrs ?? [], api: false })
  const agent = await node.agent(role)
  if (role === 'responder') agent.handle((msg: { payload: Uint8Array }) => msg.payload)
  else await node.waitForAgent(init.peer.agentId, { signal: AbortSignal.timeout(60_000) })
  send({ type: 'ready', addrs: node.multiaddrs(), agentId: agent.id })

  const payload = new Uint8Array(init.size as number).fill(7)
  const request = async (): Promise<void> => {
    const reply = await agent.request(init.peer.agentId, payload, { timeout: 10_000 })
    if (reply.payload.length !== payload.length) throw new Error('reply payload differs')
  }
  let session: Session | undefined
  let cpu0 = process.cpuUsage()
  let main0 = 0
  let verify0 = 0
  let gcProfiler: InstanceType<typeof v8.GCProfiler> | undefined
  let heap0 = 0
  let threads0 = new Map<string, number>()
  for (;;) {
    const m = await next()
    if (m.cmd === 'warmup') {
      for (let i = 0; i < m.n; i++) await request()
      send({ type: 'warm' })
    } else if (m.cmd === 'begin') {
      if (init.profile != null) {
        session = new Session()
        session.connect()
        if (init.profile === 'cpu' || init.profile === 'timeline') {
          await session.post('Profiler.enable')
          await session.post('Profiler.setSamplingInterval', { interval: init.profile === 'timeline' ? 50 : 100 })
          await session.post('Profiler.start')
        } else {
          await session.post('HeapProfiler.enable')
          await session.post('HeapProfiler.startSampling', { samplingInterval: 256, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true })
        }
      }
      gcProfiler = new v8.GCProfiler()
      heap0 = v8.getHeapStatistics().used_heap_size
      gcProfiler.start()
      verify0 = verifyCostUs()
      main0 = mainThreadCpuUs()
      cpu0 = process.cpuUsage()
      threads0 = threadCpuMs()
      recording = true
      if (process.env.RR_TAIL_CHILD_LOG !== undefined) process.stdout.write('=== begin\n')
      send({ type: 'begun' })
    } else if (m.cmd === 'run') {
      const starts: number[] = []
      const durs: number[] = []
      for (let i = 0; i < m.n; i++) {
        const t0 = now()
        await request()
        starts.push(t0)
        durs.push(now() - t0)
      }
      send({ type: 'rtts', starts, durs })
    } else if (m.cmd === 'end') {
      recording = false
      if (process.env.RR_TAIL_CHILD_LOG !== undefined) process.stdout.write('=== end\n')
      const cpu = process.cpuUsage(cpu0)
      const threads: Record<string, number> = {}
      for (const [name, ms] of threadCpuMs()) { const d = ms - (threads0.get(name) ?? 0); if (d > 0) threads[name] = d }
      const main = mainThreadCpuUs() - main0
      const verifyUs = (verify0 + verifyCostUs()) / 2
      const heap1 = v8.getHeapStatistics().used_heap_size
      const prof = gcProfiler?.stop()
      let allocated = 0
      let after = heap0
      for (const s of prof?.statistics ?? []) {
        allocated += s.beforeGC.heapStatistics.usedHeapSize - after
        after = s.afterGC.heapStatistics.usedHeapSize
      }
      allocated += heap1 - after
      let hot: HotSpot[] | undefined
      let timeline: ProcStats['timeline']
      if (session != null) {
        const cpuProfile = init.profile !== 'heap'
        const profile = cpuProfile ? (await session.post('Profiler.stop')).profile : (await session.post('HeapProfiler.stopSampling')).profile
        session.disconnect()
        hot = cpuProfile ? cpuHotSpots(profile as { nodes: CpuNode[] }, m.top, m.callers) : heapHotSpots(profile as { head: HeapNode }, m.top, m.callers)
        if (init.profile === 'timeline') timeline = sampleTimeline(profile as CpuProfile)
        if (m.save !== undefined) await writeFile(join(m.save, `${role}.${cpuProfile ? 'cpuprofile' : 'heapprofile'}`), JSON.stringify(profile))
      }
      send({ type: 'stats', stats: { role, cpuUs: cpu.user + cpu.system, mainCpuUs: main, verifyUs, allocated, gcs, appends, hot, timeline, threads } satisfies ProcStats })
    } else if (m.cmd === 'stop') {
      obs.disconnect()
      await node.stop()
      await rm(dir, { recursive: true, force: true })
      process.exit(0)
    }
  }
}

interface CpuNode { id: number, callFrame: { functionName: string, url: string, lineNumber: number }, hitCount?: number, children?: number[] }
interface CpuProfile { nodes: CpuNode[], startTime: number, samples: number[], timeDeltas: number[] }

/**
 * Each sample of a CPU profile on the common clock, labelled by what ran: `(idle)`, `(garbage
 * collector)`, `(program)`, or the leaf function and the area of the stack under it (the first
 * fedmesh or library frame from the root that is not the event loop's own). V8 stamps samples
 * with CLOCK_MONOTONIC µs, the clock of `process.hrtime`, so one reading of both maps them.
 */
function sampleTimeline (profile: CpuProfile): NonNullable<ProcStats['timeline']> {
  const offset = now() - Number(process.hrtime.bigint()) / 1e6
  const byId = new Map<number, CpuNode>()
  const parent = new Map<number, number>()
  for (const n of profile.nodes) { byId.set(n.id, n); for (const c of n.children ?? []) parent.set(c, n.id) }
  const labels: string[] = []
  const labelIx = new Map<string, number>()
  const nodeLabel = new Map<number, number>()
  const labelOf = (id: number): number => {
    let ix = nodeLabel.get(id)
    if (ix !== undefined) return ix
    const n = byId.get(id) as CpuNode
    let name = frameName(n.callFrame)
    if (!name.startsWith('(')) {
      // The stack's area: the outermost frame from fedmesh's src/ or a library, below the root.
      let area = ''
      for (let up: number | undefined = id; up !== undefined; up = parent.get(up)) {
        const f = (byId.get(up) as CpuNode).callFrame
        const m = /\/src\/([a-z-]+)\/|\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(f.url)
        if (m != null) area = m[1] ?? m[2]
      }
      name = `${area} :: ${name}`
    }
    ix = labelIx.get(name)
    if (ix === undefined) { ix = labels.length; labels.push(name); labelIx.set(name, ix) }
    nodeLabel.set(id, ix)
    return ix
  }
  const t: number[] = []
  const label: number[] = []
  let ts = profile.startTime
  for (let i = 0; i < profile.samples.length; i++) {
    ts += profile.timeDeltas[i]
    t.push(ts / 1000 + offset)
    label.push(labelOf(profile.samples[i]))
  }
  return { t, label, labels }
}
interface HeapNode { callFrame: { functionName: string, url: string, lineNumber: number }, selfSize: number, children: HeapNode[] }

function frameName (f: { functionName: string, url: string, lineNumber: number }): string {
  const url = f.url.replace(/^.*\/node_modules\/((?:@[^/]+\/)?[^/]+)\/(?:dist\/)?(?:src\/)?/, '$1:').replace(/^file:\/\/.*?\/(src|bench)\//, '$1/')
  const file = url === '' ? '' : ` ${url}:${f.lineNumber + 1}`
  return `${f.functionName === '' ? '(anonymous)' : f.functionName}${file}`
}

/** Self time by function (with `callers`: by function and its caller), as shares of all samples. */
function cpuHotSpots (profile: { nodes: CpuNode[] }, top: number, callers: boolean): HotSpot[] {
  const by = new Map<string, number>()
  const parent = new Map<number, CpuNode>()
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n)
  let total = 0
  for (const n of profile.nodes) {
    const hits = n.hitCount ?? 0
    total += hits
    const up = parent.get(n.id)
    const k = frameName(n.callFrame) + (callers && up !== undefined ? ` ← ${frameName(up.callFrame)}` : '')
    by.set(k, (by.get(k) ?? 0) + hits)
  }
  return [...by].sort((a, b) => b[1] - a[1]).slice(0, top).map(([fn, n]) => ({ fn, share: n / Math.max(1, total) }))
}

/** Bytes allocated by function (with `callers`: and its caller; sampled), as shares of all sampled bytes. */
function heapHotSpots (profile: { head: HeapNode }, top: number, callers: boolean): HotSpot[] {
  const by = new Map<string, number>()
  let total = 0
  const walk = (n: HeapNode, up?: HeapNode): void => {
    total += n.selfSize
    const k = frameName(n.callFrame) + (callers && up !== undefined ? ` ← ${frameName(up.callFrame)}` : '')
    by.set(k, (by.get(k) ?? 0) + n.selfSize)
    for (const c of n.children) walk(c, n)
  }
  walk(profile.head)
  return [...by].sort((a, b) => b[1] - a[1]).slice(0, top).map(([fn, n]) => ({ fn, share: n / Math.max(1, total) }))
}

// ---- parent --------------------------------------------------------------------------------

class Child {
  readonly proc: ChildProcess
  private readonly inbox: Array<Record<string, any>> = []
  private wake?: () => void
  private output = ''
  private exited = false
  readonly name: string

  constructor (name: string, flags: string[]) {
    this.name = name
    this.proc = fork(SCRIPT, ['--child'], { execPath: process.execPath, execArgv: [...process.execArgv, ...flags], stdio: ['ignore', 'pipe', 'pipe', 'ipc'] })
    // RR_TAIL_CHILD_LOG=DIR keeps each child's whole output (e.g. of --trace-opt) in DIR/<name>.<pid>.log.
    const logDir = process.env.RR_TAIL_CHILD_LOG
    const log = logDir === undefined ? undefined : createWriteStream(join(logDir, `${name}.${this.proc.pid ?? 0}.log`))
    const keep = (b: Buffer): void => { log?.write(b); this.output = (this.output + b.toString()).slice(-4000) }
    this.proc.stdout?.on('data', keep)
    this.proc.stderr?.on('data', keep)
    this.proc.on('message', (m: Record<string, any>) => { this.inbox.push(m); this.wake?.() })
    this.proc.on('exit', () => { this.exited = true; this.wake?.() })
  }

  send (m: unknown): void { this.proc.send(m as object) }

  async next (type: string): Promise<Record<string, any>> {
    const deadline = Date.now() + STEP_TIMEOUT_MS
    for (;;) {
      const m = this.inbox.shift()
      if (m !== undefined) {
        if (m.type !== type) throw new Error(`${this.name}: expected '${type}', got '${String(m.type)}'`)
        return m
      }
      if (this.exited) throw new Error(`${this.name} exited:\n${this.output}`)
      if (Date.now() > deadline) throw new Error(`${this.name}: no '${type}' within ${STEP_TIMEOUT_MS} ms`)
      await new Promise<void>(resolve => {
        const t = setTimeout(resolve, 1000)
        this.wake = () => { clearTimeout(t); resolve() }
      })
    }
  }

  async stop (): Promise<void> {
    if (this.exited) return
    this.send({ cmd: 'stop' })
    const t = setTimeout(() => { this.proc.kill('SIGKILL') }, 10_000)
    await new Promise<void>(resolve => { if (this.exited) resolve(); else this.proc.once('exit', () => { resolve() }) })
    clearTimeout(t)
  }
}

async function runOnce (tree: string, o: Options): Promise<RunResult> {
  const load0 = loadavg()[0]
  const responder = new Child('responder', o.flags)
  const requester = new Child('requester', o.flags)
  try {
    responder.send({ tree, role: 'responder', size: o.size, profile: o.profile })
    const r = await responder.next('ready')
    requester.send({ tree, role: 'requester', size: o.size, profile: o.profile, peer: { addrs: r.addrs, agentId: r.agentId } })
    await requester.next('ready')
    requester.send({ cmd: 'warmup', n: o.warmup })
    await requester.next('warm')
    for (const c of [responder, requester]) { c.send({ cmd: 'begin' }); await c.next('begun') }
    requester.send({ cmd: 'run', n: o.count })
    const rtts = await requester.next('rtts')
    const procs = {} as Record<Role, ProcStats>
    for (const c of [requester, responder]) {
      c.send({ cmd: 'end', top: o.top, callers: o.callers, save: o.save })
      const s = (await c.next('stats')).stats as ProcStats
      procs[s.role] = s
    }
    return { tree, load: [load0, loadavg()[0]], starts: rtts.starts, durs: rtts.durs, procs }
  } finally {
    await Promise.all([requester.stop(), responder.stop()])
  }
}

interface Summary {
  p50: number
  p90: number
  p99: number
  max: number
  slow: number
  /** Slow round trips overlapping an event of either process (GC or a log append). */
  selfSlow: number
  /**
   * Round trips that overlap a log append's writer-thread time (from its start to its
   * completion, either process) — that thread competes with both main threads for the
   * cores — as [slow among them, all of them]; and the same for the others.
   */
  writer: { slowIn: number, in: number, slowOut: number, out: number }
  /**
   * Slow round trips overlapping an own GC or an append of either process beyond what the
   * slow share of the round trips overlapping neither predicts for them (on a loaded machine
   * many slow round trips overlap such an event by chance): [GC, appends], and the share of
   * slow round trips among those overlapping each, against the others'.
   */
  excess: { gc: number, app: number, gcShare: [number, number], appShare: [number, number] }
  perProc: Record<Role, { cpuUs: number, mainCpuUs: number, verifies: number, allocB: number, scavenges: number, markCompacts: number, appends: number, appendMs: number, appendMaxMs: number, slowGc: number, slowAppend: number }>
}

function quantile (sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]
}

function summarise (r: RunResult, slowMs: number): Summary {
  const n = r.durs.length
  const sorted = [...r.durs].sort((a, b) => a - b)
  const slow: number[] = []
  for (let i = 0; i < n; i++) if (r.durs[i] > slowMs) slow.push(i)
  const overlaps = (i: number, a: number, b: number): boolean => r.starts[i] <= b && a <= r.starts[i] + r.durs[i]
  const self = new Set<number>()
  const perProc = {} as Summary['perProc']
  for (const role of ['requester', 'responder'] as const) {
    const p = r.procs[role]
    const gcSlow = new Set<number>()
    const appSlow = new Set<number>()
    for (const i of slow) {
      if (p.gcs.some(g => overlaps(i, g.start, g.start + g.dur))) { gcSlow.add(i); self.add(i) }
      if (p.appends.some(a => overlaps(i, a.start, a.start + a.dur) || (a.done !== undefined && overlaps(i, a.done, a.done)))) { appSlow.add(i); self.add(i) }
    }
    perProc[role] = {
      cpuUs: p.cpuUs / n,
      mainCpuUs: p.mainCpuUs / n,
      verifies: p.mainCpuUs / n / p.verifyUs,
      allocB: p.allocated / n,
      scavenges: p.gcs.filter(g => g.kind === 'scavenge').length,
      markCompacts: p.gcs.filter(g => g.kind === 'mark-compact').length,
      appends: p.appends.length,
      appendMs: p.appends.reduce((sum, a) => sum + a.dur, 0) / Math.max(1, p.appends.length),
      appendMaxMs: Math.max(0, ...p.appends.map(a => a.dur)),
      slowGc: gcSlow.size,
      slowAppend: appSlow.size
    }
  }
  const writer = { slowIn: 0, in: 0, slowOut: 0, out: 0 }
  const windows = [...r.procs.requester.appends, ...r.procs.responder.appends].filter(a => a.done !== undefined)
  for (let i = 0; i < n; i++) {
    const inside = windows.some(a => overlaps(i, a.start, a.done as number))
    const isSlow = r.durs[i] > slowMs
    if (inside) { writer.in++; if (isSlow) writer.slowIn++ } else { writer.out++; if (isSlow) writer.slowOut++ }
  }
  const gcs = [...r.procs.requester.gcs, ...r.procs.responder.gcs]
  const apps = [...r.procs.requester.appends, ...r.procs.responder.appends]
  let gcIn = 0; let gcSlowIn = 0; let appIn = 0; let appSlowIn = 0; let none = 0; let noneSlow = 0
  for (let i = 0; i < n; i++) {
    const isSlow = r.durs[i] > slowMs
    const g = gcs.some(e => overlaps(i, e.start, e.start + e.dur))
    const a = apps.some(e => overlaps(i, e.start, e.start + e.dur) || (e.done !== undefined && overlaps(i, e.done, e.done)))
    if (g) { gcIn++; if (isSlow) gcSlowIn++ }
    if (a) { appIn++; if (isSlow) appSlowIn++ }
    if (!g && !a) { none++; if (isSlow) noneSlow++ }
  }
  const base = noneSlow / Math.max(1, none)
  const excess = { gc: gcSlowIn - gcIn * base, app: appSlowIn - appIn * base, gcShare: [gcSlowIn / Math.max(1, gcIn), base] as [number, number], appShare: [appSlowIn / Math.max(1, appIn), base] as [number, number] }
  return { p50: quantile(sorted, 0.5), p90: quantile(sorted, 0.9), p99: quantile(sorted, 0.99), max: sorted[n - 1], slow: slow.length, selfSlow: self.size, writer, excess, perProc }
}

/**
 * What each process's main thread did during the slow round trips, against all round trips:
 * busy and idle milliseconds per round trip, and the labels that took most of the slow ones'
 * time (in ms per slow round trip, next to the same per average round trip).
 */
function timelineReport (r: RunResult, slowMs: number, top: number): string {
  const n = r.durs.length
  const slowIx = new Set<number>()
  for (let i = 0; i < n; i++) if (r.durs[i] > slowMs) slowIx.add(i)
  const out: string[] = []
  let bothIdleSlow = 0
  const busyIn = new Map<Role, Float64Array>()
  for (const role of ['requester', 'responder'] as const) {
    const tl = r.procs[role].timeline
    if (tl === undefined) continue
    const busy = new Float64Array(n)
    const slowBy = new Float64Array(tl.labels.length)
    const allBy = new Float64Array(tl.labels.length)
    // Round trips are sequential and sorted by start: walk samples and round trips together.
    let j = 0
    for (let k = 1; k < tl.t.length; k++) {
      const t = tl.t[k]
      const dt = t - tl.t[k - 1]
      while (j < n && r.starts[j] + r.durs[j] < t) j++
      if (j >= n) break
      if (t < r.starts[j]) continue
      const lab = tl.label[k]
      allBy[lab] += dt
      if (!tl.labels[lab].startsWith('(idle)')) busy[j] += dt
      if (slowIx.has(j)) slowBy[lab] += dt
    }
    busyIn.set(role, busy)
    // What the main thread ran inside the appends' event-loop parts.
    const inApp = new Float64Array(tl.labels.length)
    const apps = r.procs[role].appends
    let a = 0
    for (let k = 1; k < tl.t.length && a < apps.length; k++) {
      const t = tl.t[k]
      while (a < apps.length && apps[a].start + apps[a].dur < t) a++
      if (a < apps.length && t >= apps[a].start) inApp[tl.label[k]] += t - Math.max(tl.t[k - 1], apps[a].start)
    }
    const appTotal = inApp.reduce((x, y) => x + y, 0)
    out.push(`  ${role}: inside ${apps.length} appends (${appTotal.toFixed(2)} ms sampled):`)
    for (const ix of [...inApp.keys()].sort((x, y) => inApp[y] - inApp[x]).slice(0, top)) if (inApp[ix] > 0) out.push(`    ${(100 * inApp[ix] / appTotal).toFixed(1).padStart(5)}%  ${tl.labels[ix]}`)
    let sb = 0
    let ab = 0
    for (let i = 0; i < n; i++) { ab += busy[i]; if (slowIx.has(i)) sb += busy[i] }
    out.push(`  ${role}: busy ms per round trip, slow ${(sb / Math.max(1, slowIx.size)).toFixed(3)} vs all ${(ab / n).toFixed(3)}; top labels in slow round trips (ms per slow / per any):`)
    const order = [...slowBy.keys()].sort((a, b) => slowBy[b] - slowBy[a]).slice(0, top)
    for (const ix of order) out.push(`    ${(slowBy[ix] / Math.max(1, slowIx.size)).toFixed(3).padStart(7)} / ${(allBy[ix] / n).toFixed(3).padStart(6)}  ${tl.labels[ix]}`)
  }
  const q = busyIn.get('requester')
  const p = busyIn.get('responder')
  if (q !== undefined && p !== undefined) {
    let slowTime = 0
    let slowBusy = 0
    for (const i of slowIx) {
      slowTime += r.durs[i]
      slowBusy += q[i] + p[i]
      if (q[i] + p[i] < 0.5 * r.durs[i]) bothIdleSlow++
    }
    out.unshift(`  slow ${slowIx.size}: mean ${(slowTime / Math.max(1, slowIx.size)).toFixed(2)} ms, of which main threads busy ${(slowBusy / Math.max(1, slowIx.size)).toFixed(2)} ms; ${bothIdleSlow} with both main threads busy under half the time`)
  }
  return out.join('\n')
}

const f0 = (x: number): string => x.toFixed(0)
const f2 = (x: number): string => x.toFixed(2)

function row (label: string, r: RunResult, s: Summary): string {
  const q = s.perProc.requester
  const p = s.perProc.responder
  return [
    label.padEnd(14),
    `load ${r.load.map(x => x.toFixed(1)).join('→')}`,
    `cpu ${f0(q.cpuUs)}/${f0(p.cpuUs)} µs (main ${f0(q.mainCpuUs)}/${f0(p.mainCpuUs)} = ${f2(q.verifies)}/${f2(p.verifies)} verifies)`,
    `alloc ${f2(q.allocB / 1024)}/${f2(p.allocB / 1024)} KB`,
    `scav ${q.scavenges}/${p.scavenges} mc ${q.markCompacts}/${p.markCompacts} app ${q.appends}/${p.appends} (${f2(q.appendMs)}/${f2(p.appendMs)} ms, max ${f2(q.appendMaxMs)}/${f2(p.appendMaxMs)})`,
    `slow ${s.slow} self ${s.selfSlow} (gc ${q.slowGc}/${p.slowGc} app ${q.slowAppend}/${p.slowAppend})`,
    `writer ${s.writer.slowIn}/${s.writer.in} vs ${s.writer.slowOut}/${s.writer.out}`,
    `excess gc ${s.excess.gc.toFixed(1)} app ${s.excess.app.toFixed(1)} (slow share ${f2(100 * s.excess.gcShare[0])}/${f2(100 * s.excess.appShare[0])} vs ${f2(100 * s.excess.appShare[1])} %)`,
    `p50 ${f2(s.p50)} p90 ${f2(s.p90)} p99 ${f2(s.p99)} max ${f2(s.max)} ms`
  ].join('  ')
}

function range (xs: number[], fmt: (x: number) => string): string {
  const lo = Math.min(...xs)
  const hi = Math.max(...xs)
  return lo === hi ? fmt(lo) : `${fmt(lo)}–${fmt(hi)}`
}

function summaryTable (byTree: Map<string, Summary[]>): string {
  const measures: Array<[string, (s: Summary) => [number, number] | number, (x: number) => string]> = [
    ['CPU µs per round trip, requester / responder (process)', s => [s.perProc.requester.cpuUs, s.perProc.responder.cpuUs], f0],
    ['  main thread only', s => [s.perProc.requester.mainCpuUs, s.perProc.responder.mainCpuUs], f0],
    ['  main thread, in Ed25519 verifications', s => [s.perProc.requester.verifies, s.perProc.responder.verifies], f2],
    ['KB allocated per round trip', s => [s.perProc.requester.allocB / 1024, s.perProc.responder.allocB / 1024], f2],
    ['scavenges', s => [s.perProc.requester.scavenges, s.perProc.responder.scavenges], f0],
    ['mark-compacts', s => [s.perProc.requester.markCompacts, s.perProc.responder.markCompacts], f0],
    ['log appends', s => [s.perProc.requester.appends, s.perProc.responder.appends], f0],
    ['slow round trips overlapping own GC', s => [s.perProc.requester.slowGc, s.perProc.responder.slowGc], f0],
    ['slow round trips overlapping own append', s => [s.perProc.requester.slowAppend, s.perProc.responder.slowAppend], f0],
    ['slow round trips, all / self-caused', s => [s.slow, s.selfSlow], f0],
    ['  beyond chance: overlapping a GC / an append (either process)', s => [s.excess.gc, s.excess.app], f0],
    ['  % slow overlapping a GC / an append', s => [100 * s.excess.gcShare[0], 100 * s.excess.appShare[0]], f2],
    ['  % slow overlapping neither', s => 100 * s.excess.appShare[1], f2],
    ['% slow while a log writer works / otherwise', s => [100 * s.writer.slowIn / Math.max(1, s.writer.in), 100 * s.writer.slowOut / Math.max(1, s.writer.out)], f2],
    ['p50 ms', s => s.p50, f2],
    ['p99 ms', s => s.p99, f2]
  ]
  const trees = [...byTree.keys()]
  const lines = [`| measure | ${trees.join(' | ')} |`, `|---|${trees.map(() => '---').join('|')}|`]
  for (const [name, get, fmt] of measures) {
    const cells = trees.map(t => {
      const vals = (byTree.get(t) as Summary[]).map(get)
      if (typeof vals[0] === 'number') return range(vals as number[], fmt)
      const pairs = vals as Array<[number, number]>
      return `${range(pairs.map(v => v[0]), fmt)} / ${range(pairs.map(v => v[1]), fmt)}`
    })
    lines.push(`| ${name} | ${cells.join(' | ')} |`)
  }
  return lines.join('\n')
}

async function parent (): Promise<void> {
  const { values } = parseArgs({
    options: {
      trees: { type: 'string' },
      pairs: { type: 'string', default: '1' },
      count: { type: 'string', default: '3000' },
      warmup: { type: 'string', default: '8000' },
      size: { type: 'string', default: '256' },
      slow: { type: 'string', default: '2' },
      profile: { type: 'string' },
      'node-flags': { type: 'string', default: '' },
      top: { type: 'string', default: '30' },
      json: { type: 'boolean', default: false },
      callers: { type: 'boolean', default: false },
      save: { type: 'string' }
    }
  })
  const int = (s: string, name: string, min: number): number => {
    const n = Number(s)
    if (!Number.isInteger(n) || n < min) throw new Error(`--${name} must be an integer ≥ ${min}`)
    return n
  }
  if (values.profile !== undefined && values.profile !== 'cpu' && values.profile !== 'heap' && values.profile !== 'timeline') throw new Error('--profile is cpu, heap or timeline')
  const o: Options = {
    trees: (values.trees ?? resolve(dirname(SCRIPT), '..')).split(',').map(t => resolve(t)),
    pairs: int(values.pairs, 'pairs', 1),
    count: int(values.count, 'count', 10),
    warmup: int(values.warmup, 'warmup', 0),
    size: int(values.size, 'size', 1),
    slow: Number(values.slow),
    profile: values.profile as Options['profile'],
    flags: values['node-flags'].split(' ').filter(s => s !== ''),
    top: int(values.top, 'top', 1),
    json: values.json,
    callers: values.callers,
    save: values.save === undefined ? undefined : resolve(values.save)
  }
  if (o.save !== undefined) await mkdir(o.save, { recursive: true })
  const names = o.trees.map(t => basename(t))
  const byTree = new Map<string, Summary[]>(names.map(n => [n, []]))
  const all: Array<{ tree: string, summary: Summary, hot?: Record<Role, HotSpot[] | undefined> }> = []
  for (let pair = 0; pair < o.pairs; pair++) {
    for (let t = 0; t < o.trees.length; t++) {
      const r = await runOnce(o.trees[t], o)
      const s = summarise(r, o.slow)
      byTree.get(names[t])?.push(s)
      all.push({ tree: names[t], summary: s, hot: o.profile != null ? { requester: r.procs.requester.hot, responder: r.procs.responder.hot } : undefined })
      process.stderr.write(row(names[t], r, s) + '\n')
      for (const role of ['requester', 'responder'] as const) {
        const th = r.procs[role].threads ?? {}
        process.stderr.write(`  ${role} threads, µs per round trip: ${Object.entries(th).sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${(1000 * v / r.durs.length).toFixed(0)}`).join(', ')}\n`)
      }
      if (o.profile === 'timeline') process.stderr.write(timelineReport(r, o.slow, o.top) + '\n')
      else if (o.profile != null && !o.json) {
        for (const role of ['requester', 'responder'] as const) {
          process.stderr.write(`  ${role} ${o.profile === 'cpu' ? 'self time' : 'bytes allocated'}:\n`)
          for (const h of r.procs[role].hot ?? []) process.stderr.write(`    ${(h.share * 100).toFixed(1).padStart(5)}%  ${h.fn}\n`)
        }
      }
    }
  }
  if (o.json) process.stdout.write(JSON.stringify(all, null, 2) + '\n')
  else process.stdout.write(summaryTable(byTree) + '\n')
}

if (process.argv[2] === '--child') await child()
else await parent()
