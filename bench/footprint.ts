/**
 * Footprint and stability, side by side: start-to-ready time and idle RSS of a fedmesh node
 * (`bin/fedmesh.js node start`, as a user runs it) and of nats-server and mosquitto (each
 * started fresh on its own port), then a soak of two fedmesh node processes under steady
 * pub/sub load: RSS trend, worst event-loop stall, messages lost. See bench/README.md.
 *
 *   node bench/footprint.ts [--json] [--soak SECONDS] [--rate MSGS_PER_S] [--idle SECONDS]
 *     --soak 60 (default) for a quick run, --soak 600 for issue 4's ten minutes, 0 for none
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createConnection, createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { createInterface } from 'node:readline'
import { summarizeSoak, type Sample } from './lib/soak.ts'
import { useDist } from '../bin/runtime.js'

const { values } = parseArgs({
  options: {
    json: { type: 'boolean', default: false },
    soak: { type: 'string', default: '60' },
    rate: { type: 'string', default: '2000' },
    idle: { type: 'string', default: '3' },
    ttl: { type: 'string' },
    samples: { type: 'string' },
    help: { type: 'boolean', default: false }
  }
})
if (values.help) {
  process.stdout.write('usage: node bench/footprint.ts [--json] [--soak SECONDS (default 60; 600 = issue 4; 0 = none)] [--rate MSGS_PER_S (default 2000)] [--idle SECONDS (default 3)] [--samples FILE (writes the soak samples as JSON)] [--ttl S (the soak message TTL; default: the SDK default)]\n')
  process.exit(0)
}
function bounded (name: string, text: string, min: number, max: number): number {
  const n = Number(text)
  if (!Number.isFinite(n) || n < min || n > max) throw new Error(`--${name} must be a number in [${min}, ${max}], got ${JSON.stringify(text)}`)
  return n
}
const SOAK_S = bounded('soak', values.soak, 0, 3600)
const RATE = bounded('rate', values.rate, 1, 100_000)
const IDLE_MS = bounded('idle', values.idle, 0.5, 60) * 1000
// A shorter TTL shortens the dedup window (TTL + clock skew), so a short soak reaches the
// steady state sooner (bench/README.md); '' = the SDK's default.
const TTL = values.ttl != null ? String(bounded('ttl', values.ttl, 1, 86_400)) : ''
const ROOT = new URL('..', import.meta.url).pathname
const STALL_MS = 100
const children = new Set<ChildProcess>()
const dirs: string[] = []
const killAll = (): void => { for (const c of children) if (c.exitCode == null && c.signalCode == null) c.kill('SIGKILL') }
process.on('exit', () => { killAll(); for (const d of dirs) rmSync(d, { recursive: true, force: true }) })
process.on('SIGINT', () => { killAll(); process.exit(130) })
const log = (s: string): void => { process.stderr.write(`[footprint] ${s}\n`) }
const tempDir = (prefix: string): string => { const d = mkdtempSync(join(tmpdir(), prefix)); dirs.push(d); return d }

interface Row { system: string, measure: string, value: number, unit: string, ratio?: number }

function rssMB (pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  return m != null ? Math.round(Number(m[1]) / 1024 * 10) / 10 : NaN
}

/** CPU time (user + system) the process has used so far, ms (Linux clock ticks of 10 ms). */
function cpuMs (pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return (Number(fields[11]) + Number(fields[12])) * 10
}

async function freePort (): Promise<number> {
  return await new Promise((resolve) => { const s = createServer(); s.listen(0, '127.0.0.1', () => { const p = (s.address() as { port: number }).port; s.close(() => { resolve(p) }) }) })
}

async function untilAccepting (port: number, deadline: number): Promise<void> {
  while (Date.now() < deadline) {
    const ok = await new Promise<boolean>((resolve) => {
      const c = createConnection({ host: '127.0.0.1', port }, () => { c.destroy(); resolve(true) })
      c.on('error', () => { resolve(false) })
    })
    if (ok) return
    await new Promise(resolve => setTimeout(resolve, 5))
  }
  throw new Error(`port ${port} never accepted`)
}

function start (cmd: string, args: string[], stdin: 'ignore' | 'pipe' = 'ignore'): ChildProcess {
  const c = spawn(cmd, args, { stdio: [stdin, 'pipe', 'pipe'] })
  c.stderr?.resume()
  children.add(c)
  return c
}

async function stop (c: ChildProcess): Promise<void> {
  if (c.exitCode != null || c.signalCode != null) return
  const exited = new Promise(resolve => c.once('exit', resolve))
  c.kill('SIGTERM')
  const t = setTimeout(() => c.kill('SIGKILL'), 5000)
  await exited
  clearTimeout(t)
}

interface Launched { child: ChildProcess, readyMs: number, cpuMs: number }

/** Start-to-ready (wall and CPU) and RSS after `IDLE_MS` of idling, for one system. */
async function footprint (system: string, launch: () => Promise<Launched>): Promise<Row[]> {
  const { child, readyMs, cpuMs: cpu } = await launch()
  await new Promise(resolve => setTimeout(resolve, IDLE_MS))
  const rss = rssMB(child.pid as number)
  await stop(child)
  return [
    { system, measure: 'start to ready', value: Math.round(readyMs), unit: 'ms' },
    { system, measure: 'CPU time to ready', value: cpu, unit: 'ms' },
    { system, measure: 'idle RSS', value: rss, unit: 'MB' }
  ]
}

/** `fedmesh node start` with the HTTP API on, as `npm start` runs it. */
const launchFedmesh = async (): Promise<Launched> => {
  const dir = tempDir('fm-fp-')
  const t0 = performance.now()
  const child = start(process.execPath, [join(ROOT, 'bin/fedmesh.js'), 'node', 'start', '--dir', dir, '--listen', '/ip4/127.0.0.1/tcp/0', '--api', '127.0.0.1:0', '--log-level', 'warn'])
  await new Promise<void>((resolve, reject) => {
    const rl = createInterface({ input: child.stdout as NodeJS.ReadableStream })
    rl.on('line', (l) => { if (l.includes('"ready"')) resolve() })
    child.once('exit', (code) => { reject(new Error(`fedmesh exited ${code}`)) })
  })
  const readyMs = performance.now() - t0
  return { child, readyMs, cpuMs: cpuMs(child.pid as number) }
}
/** Which build bin/fedmesh.js runs (and the soak nodes import): it changes idle RSS by ~30 MB. */
const BUILD = useDist() ? 'dist/' : 'src/ (no fresh dist/: npm run build)'

const launchBroker = (cmd: string, argsFor: (port: number, dir: string) => string[]) => async (): Promise<Launched> => {
  const port = await freePort()
  const dir = tempDir('fp-broker-')
  const t0 = performance.now()
  const child = start(cmd, argsFor(port, dir))
  await untilAccepting(port, Date.now() + 10_000)
  const readyMs = performance.now() - t0
  return { child, readyMs, cpuMs: cpuMs(child.pid as number) }
}

const CANARY = `const h = require('node:perf_hooks').monitorEventLoopDelay({ resolution: 1 }); h.enable(); const t0 = Date.now();
setInterval(() => { process.stdout.write(JSON.stringify({ t: (Date.now() - t0) / 1000, rssMB: 0, heapMB: 0, maxLoopDelayMs: Math.round(h.max / 1e5) / 10, count: 0 }) + '\\n'); h.reset() }, 1000)`

/** Two fedmesh nodes, one publishing at RATE for SOAK_S seconds, one subscribed. */
async function soak (): Promise<Row[]> {
  const worker = join(ROOT, 'bench/workers/soak-node.ts')
  const samples: Record<'pub' | 'sub', Sample[]> = { sub: [], pub: [] }
  const output: Record<'pub' | 'sub', string[]> = { sub: [], pub: [] }
  let published: { count: number, failed: number } | undefined
  let onProbe: (() => void) | undefined
  let onPublished: (() => void) | undefined
  const run = async (role: 'pub' | 'sub', args: string[]): Promise<{ child: ChildProcess, ready: Record<string, unknown>, exited: Promise<void> }> => {
    const child = start(process.execPath, [worker, role, ...args], 'pipe')
    let stderr = ''
    child.stderr?.on('data', (b: Buffer) => { stderr = (stderr + b.toString()).slice(-2000) })
    const exited = new Promise<void>((resolve, reject) => {
      child.once('exit', (code) => { if (code === 0) resolve(); else reject(new Error(`soak ${role} exited ${code}: ${stderr.trim()}`)) })
    })
    exited.catch(() => {})
    const ready = await new Promise<Record<string, unknown>>((resolve, reject) => {
      createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (l) => {
        // Anything else on stdout (e.g. --trace-gc through FEDMESH_V8_FLAGS) is kept for --samples.
        let m
        try { m = JSON.parse(l) } catch { output[role].push(l); return }
        if (m.event === 'ready') resolve(m)
        else if (m.event === 'sample') samples[role].push(m)
        else if (m.event === 'probe-seen') onProbe?.()
        else if (m.event === 'published') { published = m; onPublished?.() }
      })
      exited.catch(reject)
    })
    return { child, ready, exited }
  }
  // The canary: an idle Node process that only measures its own event-loop delay, so that
  // stalls the machine causes (a busy shared host deschedules processes) can be told from
  // the node's own.
  const canary = start(process.execPath, ['-e', CANARY])
  const canarySamples: Sample[] = []
  createInterface({ input: canary.stdout as NodeJS.ReadableStream }).on('line', (l) => { canarySamples.push(JSON.parse(l)) })
  const sub = await run('sub', ['', String(RATE), String(SOAK_S), TTL])
  const probeSeen = new Promise<void>(resolve => { onProbe = resolve })
  const pub = await run('pub', [String(sub.ready.addr), String(RATE), String(SOAK_S), TTL])
  await Promise.race([probeSeen, pub.exited])
  log(`soak: subscriber reached, publishing ${RATE}/s for ${SOAK_S} s`)
  pub.child.stdin?.write('go\n')
  await new Promise<void>((resolve, reject) => { onPublished = resolve; pub.exited.catch(reject) })
  sub.child.stdin?.write('end\n')
  await Promise.all([pub.exited, sub.exited])
  await stop(canary)
  if (values.samples != null) writeFileSync(values.samples, JSON.stringify({ ...samples, canary: canarySamples, output }) + '\n')

  const rows: Row[] = []
  for (const role of ['pub', 'sub'] as const) {
    const s = summarizeSoak(samples[role], STALL_MS)
    if (s == null) continue
    rows.push(
      { system: 'fedmesh', measure: `soak ${role}: RSS trend, second half`, value: s.rssSlopeMBPerMin, unit: `MB/min (first half ${s.rssSlopeFirstHalfMBPerMin})` },
      { system: 'fedmesh', measure: `soak ${role}: RSS at half-time → end`, value: s.rssEndMB, unit: `MB (from ${s.rssHalfMB})` },
      { system: 'fedmesh', measure: `soak ${role}: RSS max`, value: s.rssMaxMB, unit: 'MB' },
      { system: 'fedmesh', measure: `soak ${role}: live heap (after full GCs) trend, second half`, value: s.heapAfterGcSlopeMBPerMin ?? NaN, unit: `MB/min (first half ${s.heapAfterGcSlopeFirstHalfMBPerMin ?? 'n/a'})` },
      { system: 'fedmesh', measure: `soak ${role}: heap in use trend, second half`, value: s.heapSlopeMBPerMin, unit: 'MB/min' },
      { system: 'fedmesh', measure: `soak ${role}: worst event-loop delay`, value: s.maxLoopDelayMs, unit: 'ms' },
      { system: 'fedmesh', measure: `soak ${role}: seconds with a stall > ${STALL_MS} ms`, value: s.stallSeconds, unit: `of ${s.seconds}` },
      { system: 'fedmesh', measure: `soak ${role}: of those, in the load's first 10 s`, value: s.warmupStallSeconds, unit: 'seconds' }
    )
  }
  const c = summarizeSoak(canarySamples, STALL_MS)
  if (c != null) {
    rows.push(
      { system: 'idle canary', measure: 'soak canary: worst event-loop delay (the machine, not fedmesh)', value: c.maxLoopDelayMs, unit: 'ms' },
      { system: 'idle canary', measure: `soak canary: seconds with a stall > ${STALL_MS} ms`, value: c.stallSeconds, unit: `of ${c.seconds}` }
    )
  }
  const delivered = samples.sub.at(-1)?.count ?? 0
  const sent = published?.count ?? 0
  rows.push(
    { system: 'fedmesh', measure: `soak: delivered (${RATE}/s for ${SOAK_S} s)`, value: delivered, unit: `of ${sent} published` },
    { system: 'fedmesh', measure: 'soak: lost', value: Math.max(0, sent - delivered), unit: 'msgs' }
  )
  return rows
}

const rows: Row[] = []
const attempt = async (what: string, fn: () => Promise<Row[]>): Promise<void> => {
  try { rows.push(...await fn()) } catch (err) { log(`${what} failed: ${(err as Error).message}`) }
}
await attempt('fedmesh', async () => await footprint('fedmesh', launchFedmesh))
if (existsSync('/usr/sbin/nats-server')) await attempt('nats-server', async () => await footprint('nats-server', launchBroker('/usr/sbin/nats-server', (p) => ['-a', '127.0.0.1', '-p', String(p)])))
if (existsSync('/usr/sbin/mosquitto')) {
  await attempt('mosquitto', async () => await footprint('mosquitto', launchBroker('/usr/sbin/mosquitto', (p, dir) => {
    const conf = join(dir, 'm.conf')
    writeFileSync(conf, `listener ${p} 127.0.0.1\nallow_anonymous true\npersistence false\n`)
    return ['-c', conf]
  })))
}
log(`fedmesh runs from ${BUILD}`)
if (SOAK_S > 0) {
  log(`soak: ${RATE} msgs/s for ${SOAK_S} s${TTL === '' ? '' : `, TTL ${TTL} s`}`)
  await attempt('soak', soak)
}
for (const r of rows) {
  const f = rows.find(x => x.system === 'fedmesh' && x.measure === r.measure)
  // Smaller is better for every footprint figure: ratio = system / fedmesh (> 1: fedmesh better).
  if (f != null && r.system !== 'fedmesh' && f.value > 0) r.ratio = Math.round(r.value / f.value * 1000) / 1000
}
if (values.json) {
  process.stdout.write(JSON.stringify({ ratio: 'system / fedmesh (smaller is better for every measure; > 1 means fedmesh is better)', build: BUILD, options: { soakS: SOAK_S, rate: RATE, idleMs: IDLE_MS, ttlS: TTL === '' ? 'default' : Number(TTL) }, rows }, null, 2) + '\n')
} else {
  process.stdout.write(`fedmesh from ${BUILD}\n\n| system | measure | value | unit | ratio (system ÷ fedmesh) |\n|---|---|---|---|---|\n`)
  for (const r of rows) process.stdout.write(`| ${r.system} | ${r.measure} | ${r.value} | ${r.unit} | ${r.ratio ?? ''} |\n`)
}
killAll()
process.exit(0)

