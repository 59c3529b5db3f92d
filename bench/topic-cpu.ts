/**
 * CPU per topic message in each node process, for one source tree: a publisher agent on one
 * node → one subscriber agent on another (1 → 1), or with `--fanout`, → two nodes of five
 * subscriber agents each. Each process measures its own CPU (every thread) from the first
 * measured message to the last one delivered, after a warm-up; prints one JSON line:
 * µs per message at the publisher and at each subscriber node (per published message, so a
 * fan-out node's figure covers its five deliveries), and the wall-clock rate.
 *
 *   node bench/topic-cpu.ts [--tree DIR] [--count N] [--fanout | --layout L,S,S…] [--threads] [--profile DIR [--heap]] [-- node flags]
 *
 * `--layout 4,3,3` is the layout of run.ts's fan-out measure: the publisher's node hosts L
 * subscriber agents of its own (its figure covers their deliveries), and each further node,
 * bootstrapped from the publisher's, hosts S.
 *
 * `elu` is each main thread's event-loop utilization over its measured window (1: that end was
 * busy all the time and bounds the rate). `--profile DIR` writes a CPU profile of each main
 * thread over its measured window only (no start-up, no warm-up) into DIR; with `--heap`, a
 * sampled allocation profile of the window instead (`.heapprofile`: bytes allocated by site,
 * the objects already collected included — where the garbage collector's work comes from).
 *
 * Every few seconds the harness asks each process for its progress and what its topic path
 * dropped (TopicPath.stats: link-full drops, frames thrown away by links that closed, the core's drops by reason, each link's queue and
 * write buffer) and whether the publisher waits in drain(); the result line carries the drops
 * (`drops`), and a run with no progress for `--stall S` seconds (default 60) prints every
 * process's state and exits with 2 instead of waiting for the deadline. `--stop I,AT,MS`
 * stops subscriber node I (0: the first node after the publisher's) with SIGSTOP AT ms after
 * the measured run starts, for MS ms (a descheduled receiver), then SIGCONT; repeatable.
 * `--watch` prints each process's progress every 5 s.
 *
 * Wall-clock rates on a shared machine are noise; compare CPU per message of two trees in
 * alternating runs (docs/PERFORMANCE.md "Topic path, session 6").
 */
import { fork, type ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { dirname, resolve } from 'node:path'

const here = dirname(fileURLToPath(import.meta.url))
const args = process.argv.slice(2)
const dash = args.indexOf('--')
const own = dash >= 0 ? args.slice(0, dash) : args
const nodeFlags = dash >= 0 ? args.slice(dash + 1) : []
const opt = (name: string): string | undefined => { const i = own.indexOf(name); return i >= 0 ? own[i + 1] : undefined }
const tree = resolve(opt('--tree') ?? resolve(here, '..'))
const count = Number(opt('--count') ?? 100_000)
const fanout = own.includes('--fanout')
const layout = opt('--layout')?.split(',').map(Number)
if (layout !== undefined && (layout.length < 2 || layout.some(n => !Number.isInteger(n) || n < 0) || layout.slice(1).some(n => n < 1))) {
  throw new Error('--layout takes the publisher node\'s subscriber count, then at least one subscriber node\'s count (≥ 1), e.g. 4,3,3')
}
const threads = own.includes('--threads')
const profileDir = opt('--profile') !== undefined ? resolve(opt('--profile') as string) : ''
// With --heap, the profiles are of the window's allocations (by site) instead of its CPU time.
const profileKind = own.includes('--heap') ? 'heap' : 'cpu'
const DEADLINE_MS = 600_000
const watch = own.includes('--watch')
const STALL_MS = Number(opt('--stall') ?? 60) * 1000
const stops = own.flatMap((a, i) => a === '--stop' ? [own[i + 1].split(',').map(Number)] : [])
if (stops.some(s => s.length !== 3 || s.some(n => !Number.isInteger(n) || n < 0))) throw new Error('--stop takes I,AT,MS: subscriber node, ms after the start, ms stopped')

const deadline = setTimeout(() => { console.error('topic-cpu: deadline passed'); stopAll(); process.exit(1) }, DEADLINE_MS)
const children: ChildProcess[] = []
function stopAll (): void { for (const c of children) c.kill() }

interface Diag { type: 'diag', role: string, pid: number, pingRtt?: Array<number | null>, got?: number, published?: number, inDrainMs?: number, drains?: number, topics?: { linkDrops: number, closedFrames: number, closedBytes: number, lastClose?: string, dropped: Record<string, number>, links: Array<{ queuedBytes: number }> } }
const diags = new Map<ChildProcess, Diag>()
interface Reply { type: string, addrs?: string[], cpu?: number, elu?: number, wallMs?: number, threads?: Record<string, number> }
function start (role: 'pub' | 'sub', agents: number, localSubs = 0): { child: ChildProcess, next: () => Promise<Reply> } {
  const child = fork(resolve(here, 'workers/topic-cpu-node.ts'), [tree, role, String(count), String(agents), String(localSubs), profileDir, profileKind], { execArgv: nodeFlags, stdio: 'inherit' })
  children.push(child)
  const replies: Reply[] = []
  let wake: (() => void) | undefined
  child.on('message', (m: Reply) => {
    if (m.type === 'diag') { diags.set(child, m as unknown as Diag); return }
    replies.push(m); wake?.()
  })
  child.on('exit', (code) => { if (code !== 0 && code !== null) { console.error(`topic-cpu: a ${role} process exited with ${code}`); stopAll(); process.exit(1) } })
  const next = async (): Promise<Reply> => {
    while (replies.length === 0) await new Promise<void>(resolve => { wake = resolve })
    return replies.shift() as Reply
  }
  return { child, next }
}

let subs: Array<ReturnType<typeof start>>
let pub: ReturnType<typeof start>
if (layout !== undefined) {
  // As run.ts lays out its fan-out: the publisher's node first, the others bootstrap from it.
  pub = start('pub', 1, layout[0])
  pub.child.send({})
  const first = await pub.next()
  subs = layout.slice(1).map(n => start('sub', n))
  for (const s of subs) { s.child.send({ bootstrap: first.addrs }); await s.next() }
} else {
  subs = fanout ? [start('sub', 5), start('sub', 5)] : [start('sub', 1)]
  subs[0].child.send({})
  const first = await subs[0].next()
  for (const s of subs.slice(1)) { s.child.send({ bootstrap: first.addrs }); await s.next() }
  pub = start('pub', 1)
  pub.child.send({ bootstrap: first.addrs })
  await pub.next()
}
pub.child.send({ type: 'warm-up' })
for (const s of subs) await s.next()
const t0 = Date.now()
pub.child.send({ type: 'go' })
const timers: NodeJS.Timeout[] = []
for (const [i, at, ms] of stops) {
  const c = subs[i]?.child
  if (c === undefined) throw new Error(`--stop: no subscriber node ${i}`)
  timers.push(setTimeout(() => {
    console.error(`topic-cpu: SIGSTOP subscriber node ${i} (pid ${c.pid}) for ${ms} ms`)
    c.kill('SIGSTOP')
    timers.push(setTimeout(() => { c.kill('SIGCONT') }, ms))
  }, at))
}
// Progress watch: each process's diag every 5 s; no change in STALL_MS is a stall.
let lastProgress = ''
let lastChange = Date.now()
const poll = setInterval(() => {
  const now = [...diags.values()].map(d => `${d.got ?? 0}/${d.published ?? 0}`).join(' ')
  if (now !== lastProgress) { lastProgress = now; lastChange = Date.now() }
  if (watch) console.error(`topic-cpu: ${Math.round((Date.now() - t0) / 1000)} s`, [...diags.values()].map(d => JSON.stringify({ role: d.role, got: d.got, published: d.published, inDrainMs: d.inDrainMs, linkDrops: d.topics?.linkDrops, closedFrames: d.topics?.closedFrames, pingRtt: d.pingRtt, queued: d.topics?.links.map(l => l.queuedBytes) })).join(' '))
  if (Date.now() - lastChange > STALL_MS) {
    console.error(`topic-cpu: no progress for ${STALL_MS / 1000} s; each process:`)
    for (const d of diags.values()) console.error(JSON.stringify(d))
    stopAll()
    process.exit(2)
  }
  for (const c of children) if (c.connected) c.send({ type: 'diag' })
}, 5000)
const subDone: Reply[] = []
for (const s of subs) subDone.push(await s.next())
const seconds = (Date.now() - t0) / 1000
pub.child.send({ type: 'subscribers-done' })
const pubDone = await pub.next()
clearInterval(poll)
for (const t of timers) clearTimeout(t)
// The last word on drops: every process's counts now that all is delivered.
diags.clear()
for (const c of children) c.send({ type: 'diag' })
for (let i = 0; i < 100 && diags.size < children.length; i++) await new Promise(resolve => setTimeout(resolve, 20))
const drops = [pub.child, ...subs.map(s => s.child)].map(c => {
  const t = diags.get(c)?.topics
  return t === undefined ? null : { linkFull: t.linkDrops, closedFrames: t.closedFrames, closedBytes: t.closedBytes, ...(t.lastClose === undefined ? {} : { lastClose: t.lastClose }), ...t.dropped }
})
console.log(JSON.stringify({
  tree,
  fanout,
  layout,
  count,
  pub: +(pubDone.cpu as number).toFixed(2),
  subs: subDone.map(r => +(r.cpu as number).toFixed(2)),
  rate: Math.round(count / seconds),
  subRate: subDone.map(r => Math.round(count / (r.wallMs as number) * 1000)),
  elu: { pub: pubDone.elu, subs: subDone.map(r => r.elu) },
  drops,
  ...(threads ? { threads: { pub: pubDone.threads, subs: subDone.map(r => r.threads) } } : {})
}))
const exited = children.map(async c => await new Promise(resolve => c.once('exit', resolve)))
for (const c of children) c.send({ type: 'stop' })
await Promise.race([Promise.all(exited), new Promise(resolve => setTimeout(resolve, 10_000))])
clearTimeout(deadline)
stopAll()
