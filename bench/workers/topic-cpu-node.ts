/**
 * One node process of bench/topic-cpu.ts: a fedmesh node (of the source tree given as
 * argv[2]) with a publisher agent (and `localSubs` subscriber agents beside it) or `agents`
 * subscriber agents on `bench/data`. It reports
 * its own CPU (process.cpuUsage: every thread, the log's writer included) per measured
 * message. Driven over IPC by topic-cpu.ts; every wait is bounded by the orchestrator's
 * deadline (it kills this process), every loop in count.
 */
import { setImmediate as yieldToLoop, setTimeout as sleep } from 'node:timers/promises'
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { Session } from 'node:inspector/promises'

const [tree, role, countArg, agentsArg, localArg, profileDir, profileKind] = process.argv.slice(2)
/** `heap`: the window's allocations by site (sampled, collected ones included) instead of its CPU profile. */
const heapProfile = profileKind === 'heap'
const count = Number(countArg)
const agents = Number(agentsArg ?? '1')
const localSubs = Number(localArg ?? '0')
const TOPIC = 'bench/data'
/** Warm-up publications (payload byte 0 = 1) per round, and the most rounds. */
const WARM_BATCH = 2000
const WARM_ROUNDS = 200
const YIELD_EVERY = 256

const { createNode } = await import(join(tree, 'src/index.ts')) as typeof import('../../src/index.ts')
const inbox: unknown[] = []
let wake: (() => void) | undefined
process.on('message', (m) => {
  // A diagnostic request is answered at once, whatever the process is waiting for.
  if ((m as { type?: string }).type === 'diag') { send(diag()); return }
  inbox.push(m); wake?.()
})
process.on('disconnect', () => { process.exit(1) })
async function next (): Promise<{ bootstrap?: string[] }> {
  while (inbox.length === 0) await new Promise<void>(resolve => { wake = resolve })
  return inbox.shift() as { bootstrap?: string[] }
}
const send = (m: object): void => { process.send?.(m) }

/**
 * Threads this process had before the node was created: besides the main thread, V8's
 * platform workers (GC helpers: concurrent marking and sweeping, parallel scavenges;
 * concurrent compilers) and Node's own. Threads started later are the store's writer (a
 * Worker) and libuv's pool, if used.
 */
const startThreads = new Set(readdirSync('/proc/self/task'))

/**
 * CPU seconds of each thread of this process (Linux /proc; empty elsewhere), by what it is:
 * `main`, `v8` (the threads there at start, summed) and each later thread by its id.
 */
function threadCpu (): Map<string, number> {
  const out = new Map<string, number>()
  let tids: string[] = []
  try { tids = readdirSync('/proc/self/task') } catch { return out }
  for (const tid of tids) {
    try {
      const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'latin1')
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      const name = tid === String(process.pid) ? 'main' : startThreads.has(tid) ? 'v8' : `t${tid}`
      out.set(name, (out.get(name) ?? 0) + (Number(f[11]) + Number(f[12])) / 100)
    } catch { /* the thread ended */ }
  }
  return out
}

/**
 * The measured window of this process: its CPU (every thread), the main thread's event-loop
 * utilization (busy share of wall time: 1 means this end bounds the rate) and, when a
 * profile directory is given, a CPU profile of the main thread over that window only.
 */
class Window {
  private readonly cpu = process.cpuUsage()
  private readonly threads = threadCpu()
  private readonly t0 = performance.now()
  private readonly elu = performance.eventLoopUtilization()
  private readonly session: Session | undefined
  private constructor (session: Session | undefined) { this.session = session }
  static async open (): Promise<Window> {
    if (profileDir === undefined || profileDir === '') return new Window(undefined)
    const session = new Session()
    session.connect()
    if (heapProfile) {
      // Allocations over the window, the ones already collected included (where GC time comes from).
      await session.post('HeapProfiler.enable')
      await session.post('HeapProfiler.startSampling', { samplingInterval: 1024, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true })
    } else {
      await session.post('Profiler.enable')
      await session.post('Profiler.start')
    }
    return new Window(session)
  }

  async close (): Promise<{ cpu: number, elu: number, wallMs: number, threads: Record<string, number> }> {
    const u = process.cpuUsage(this.cpu)
    const elu = performance.eventLoopUtilization(this.elu).utilization
    const wallMs = performance.now() - this.t0
    // Main, V8's workers, the busiest later thread (the store's writer) and the rest.
    const threads: Record<string, number> = { main: 0, v8: 0, writer: 0, rest: 0 }
    const later: number[] = []
    for (const [name, s] of threadCpu()) {
      const us = (s - (this.threads.get(name) ?? 0)) * 1e6 / count
      if (name === 'main' || name === 'v8') threads[name] = us
      else later.push(us)
    }
    later.sort((a, b) => b - a)
    threads.writer = later[0] ?? 0
    for (const us of later.slice(1)) threads.rest += us
    for (const k of Object.keys(threads)) threads[k] = +threads[k].toFixed(2)
    if (this.session !== undefined) {
      if (heapProfile) {
        const { profile } = await this.session.post('HeapProfiler.stopSampling')
        writeFileSync(join(profileDir, `${role}-${process.pid}.heapprofile`), JSON.stringify(profile))
      } else {
        const { profile } = await this.session.post('Profiler.stop')
        writeFileSync(join(profileDir, `${role}-${process.pid}.cpuprofile`), JSON.stringify(profile))
      }
      this.session.disconnect()
    }
    return { cpu: (u.user + u.system) / count, elu: +elu.toFixed(3), wallMs: Math.round(wallMs), threads }
  }
}

/** Measured messages delivered here, published (publisher), and since when the publisher waits in drain(). */
const progress = { got: 0, published: 0, drainSince: 0, drains: 0, drainMs: 0 }
/**
 * This process's progress and what its topic path dropped or holds: the harness asks for it
 * every few seconds, prints it when a run stalls, and adds the drops to its result.
 */
function diag (): object {
  const node = diagNode
  if (node === undefined) return { type: 'diag', role, pid: process.pid }
  const topics = (node as unknown as { router: { topics: { stats: () => unknown } } }).router.topics.stats()
  const st = node.status()
  const rejected = Object.fromEntries(Object.entries(st.rejections).filter(([, n]) => n > 0))
  return {
    type: 'diag',
    role,
    pid: process.pid,
    ...progress,
    inDrainMs: progress.drainSince === 0 ? 0 : Math.round(performance.now() - progress.drainSince),
    // Round trip of libp2p's last connection-monitor ping on each connection (ms): one that
    // takes longer than its timeout (5 s at least) gets the connection aborted.
    pingRtt: (node as unknown as { net: { getConnections: () => Array<{ rtt?: number }> } }).net.getConnections().map(c => c.rtt ?? null),
    counters: st.counters,
    rejected,
    topics
  }
}

let diagNode: Awaited<ReturnType<typeof createNode>> | undefined
const init = await next()
const dir = mkdtempSync(join(tmpdir(), 'topic-cpu-'))
const node = await createNode({ dir, listen: ['/ip4/127.0.0.1/tcp/0'], bootstrap: init.bootstrap ?? [], api: false })
diagNode = node

/**
 * `n` subscriber agents; `onWarm` once all have had a warm-up round, `onDone(window)` once all
 * have every measured message (`window`: opened at the first one).
 */
async function subscribers (n: number, onWarm: () => void, onDone: (window: Promise<Window>) => void): Promise<void> {
  let got = 0
  let warm = 0
  let window: Promise<Window> | undefined
  for (let i = 0; i < n; i++) {
    const agent = await node.agent(`sub-${i}`)
    agent.subscribe(TOPIC, {
      onMessage: (msg) => {
        if (msg.payload[0] === 1) {
          if (++warm === WARM_BATCH * n) onWarm()
          return
        }
        if (got === 0) window = Window.open()
        progress.got++
        if (++got === count * n) onDone(window as Promise<Window>)
      }
    })
  }
}

if (role === 'sub') {
  await subscribers(agents, () => { send({ type: 'warm' }) }, (window) => {
    void window.then(async w => await w.close()).then(r => { send({ type: 'done', ...r }) })
  })
  send({ type: 'ready', addrs: node.multiaddrs() })
} else {
  let localDone: () => void = () => {}
  const localAll = localSubs === 0 ? Promise.resolve() : new Promise<void>(resolve => { localDone = resolve })
  await subscribers(localSubs, () => {}, () => { localDone() })
  const agent = await node.agent('pub')
  send({ type: 'ready', addrs: node.multiaddrs() })
  const timedDrain = async (): Promise<void> => {
    progress.drainSince = performance.now()
    await agent.drain()
    progress.drainMs += performance.now() - progress.drainSince
    progress.drains++
    progress.drainSince = 0
  }
  const publish = async (n: number, kind: number): Promise<void> => {
    for (let i = 0; i < n; i++) {
      const p = new Uint8Array(256)
      p[0] = kind
      if (kind === 0) progress.published++
      if (!agent.publishBuffered(TOPIC, p)) await timedDrain()
      if (i % YIELD_EVERY === YIELD_EVERY - 1) await yieldToLoop()
    }
    await timedDrain()
  }
  await next() // warm up: until every subscriber process saw a whole warm-up round
  let warmed = false
  const warming = (async () => {
    for (let r = 0; r < WARM_ROUNDS && !warmed; r++) { await publish(WARM_BATCH, 1); await sleep(300) }
  })()
  await next() // go
  warmed = true
  await warming
  await sleep(500)
  const window = await Window.open()
  await publish(count, 0)
  await next() // the subscribers have all
  await localAll
  send({ type: 'done', ...await window.close() })
}
await next() // stop
await node.stop()
rmSync(dir, { recursive: true, force: true })
process.exit(0)
