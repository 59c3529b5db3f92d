/**
 * Footprint and stability, side by side: start-to-ready time and idle RSS of a fedmesh node
 * and of nats-server and mosquitto (each started fresh on its own port), then a soak of two
 * fedmesh node processes under steady pub/sub load: RSS trend and worst event-loop stall.
 *
 *   node bench/footprint.ts [--json] [--soak SECONDS (default 30; the run is 600)] [--rate MSGS_PER_S (default 2000)]
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, readFileSync, writeFileSync, existsSync } from 'node:fs'
import { createConnection, createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { createInterface } from 'node:readline'

const { values } = parseArgs({ options: { json: { type: 'boolean', default: false }, soak: { type: 'string', default: '30' }, rate: { type: 'string', default: '2000' } } })
const SOAK_S = Math.max(5, Math.min(3600, Number(values.soak)))
const RATE = Math.max(1, Math.min(100_000, Number(values.rate)))
const ROOT = new URL('..', import.meta.url).pathname
const children = new Set<ChildProcess>()
const killAll = (): void => { for (const c of children) if (c.exitCode == null) c.kill('SIGKILL') }
process.on('exit', killAll)
process.on('SIGINT', () => { killAll(); process.exit(130) })
const log = (s: string): void => { process.stderr.write(`[footprint] ${s}\n`) }

interface Row { system: string, measure: string, value: number, unit: string, ratio?: number }

function rssMB (pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  return m != null ? Math.round(Number(m[1]) / 1024 * 10) / 10 : NaN
}

function freePort (): Promise<number> {
  return new Promise((resolve) => { const s = createServer(); s.listen(0, '127.0.0.1', () => { const p = (s.address() as { port: number }).port; s.close(() => resolve(p)) }) })
}

async function untilAccepting (port: number, deadline: number): Promise<void> {
  while (Date.now() < deadline) {
    const ok = await new Promise<boolean>((resolve) => {
      const c = createConnection({ host: '127.0.0.1', port }, () => { c.destroy(); resolve(true) })
      c.on('error', () => resolve(false))
    })
    if (ok) return
    await new Promise(resolve => setTimeout(resolve, 5))
  }
  throw new Error(`port ${port} never accepted`)
}

function start (cmd: string, args: string[]): ChildProcess {
  const c = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'ignore'] })
  children.add(c)
  return c
}

async function stop (c: ChildProcess): Promise<void> {
  if (c.exitCode != null) return
  const exited = new Promise(resolve => c.once('exit', resolve))
  c.kill('SIGTERM')
  const t = setTimeout(() => c.kill('SIGKILL'), 5000)
  await exited
  clearTimeout(t)
}

/** Start-to-ready and RSS after `idleMs` of idling, for one system. */
async function footprint (system: string, launch: () => Promise<{ child: ChildProcess, readyMs: number }>, idleMs = 3000): Promise<Row[]> {
  const { child, readyMs } = await launch()
  await new Promise(resolve => setTimeout(resolve, idleMs))
  const rss = rssMB(child.pid as number)
  await stop(child)
  return [
    { system, measure: 'start to ready', value: Math.round(readyMs), unit: 'ms' },
    { system, measure: 'idle RSS', value: rss, unit: 'MB' }
  ]
}

const launchFedmesh = async (): Promise<{ child: ChildProcess, readyMs: number }> => {
  const dir = mkdtempSync(join(tmpdir(), 'fm-fp-'))
  const t0 = performance.now()
  const child = start(process.execPath, [join(ROOT, 'bin/fedmesh.js'), 'node', 'start', '--dir', dir, '--listen', '/ip4/127.0.0.1/tcp/0', '--api', '127.0.0.1:0', '--log-level', 'warn'])
  await new Promise<void>((resolve, reject) => {
    const rl = createInterface({ input: child.stdout as NodeJS.ReadableStream })
    rl.on('line', (l) => { if (l.includes('"ready"')) resolve() })
    child.once('exit', (code) => reject(new Error(`fedmesh exited ${code}`)))
  })
  return { child, readyMs: performance.now() - t0 }
}

const launchBroker = (cmd: string, argsFor: (port: number, dir: string) => string[]) => async (): Promise<{ child: ChildProcess, readyMs: number }> => {
  const port = await freePort()
  const dir = mkdtempSync(join(tmpdir(), 'fp-broker-'))
  const t0 = performance.now()
  const child = start(cmd, argsFor(port, dir))
  await untilAccepting(port, Date.now() + 10_000)
  return { child, readyMs: performance.now() - t0 }
}

interface Sample { t: number, rssMB: number, maxLoopDelayMs: number, count: number }

/** Least-squares slope of y over x. */
function slope (xs: number[], ys: number[]): number {
  const n = xs.length
  const mx = xs.reduce((a, b) => a + b, 0) / n
  const my = ys.reduce((a, b) => a + b, 0) / n
  let num = 0
  let den = 0
  for (let i = 0; i < n; i++) { num += (xs[i] - mx) * (ys[i] - my); den += (xs[i] - mx) ** 2 }
  return den === 0 ? 0 : num / den
}

async function soak (): Promise<Row[]> {
  const worker = join(ROOT, 'bench/workers/soak-node.ts')
  const samples: Record<string, Sample[]> = { sub: [], pub: [] }
  const run = (role: string, arg: string): Promise<{ child: ChildProcess, ready: Record<string, unknown> }> => {
    const child = start(process.execPath, [worker, role, arg, String(RATE), String(SOAK_S)])
    return new Promise((resolve, reject) => {
      createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (l) => {
        const m = JSON.parse(l)
        if (m.event === 'ready') resolve({ child, ready: m })
        else if (m.event === 'sample') samples[role].push(m)
      })
      child.once('exit', (code) => { if (code !== 0) reject(new Error(`${role} exited ${code}`)) })
    })
  }
  const sub = await run('sub', '')
  const pub = await run('pub', String(sub.ready.addr))
  await new Promise<void>(resolve => pub.child.once('exit', () => resolve()))
  await new Promise<void>(resolve => sub.child.once('exit', () => resolve()))
  const rows: Row[] = []
  for (const role of ['pub', 'sub']) {
    // The first fifth is warm-up (JIT, buffers); the trend is measured over the rest.
    const s = samples[role].filter(x => x.t >= Math.max(3, SOAK_S / 5))
    if (s.length < 3) continue
    const perMin = slope(s.map(x => x.t), s.map(x => x.rssMB)) * 60
    rows.push(
      { system: 'fedmesh', measure: `soak ${role} RSS trend`, value: Math.round(perMin * 100) / 100, unit: 'MB/min' },
      { system: 'fedmesh', measure: `soak ${role} RSS at end`, value: s[s.length - 1].rssMB, unit: 'MB' },
      { system: 'fedmesh', measure: `soak ${role} worst event-loop stall`, value: Math.max(...samples[role].map(x => x.maxLoopDelayMs)), unit: 'ms' }
    )
  }
  const delivered = samples.sub.at(-1)?.count ?? 0
  const published = samples.pub.at(-1)?.count ?? 0
  rows.push({ system: 'fedmesh', measure: `soak delivered (${RATE}/s for ${SOAK_S} s)`, value: delivered, unit: `of ${published}` })
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
log(`soak: ${RATE} msgs/s for ${SOAK_S} s`)
await attempt('soak', soak)
for (const r of rows) {
  const f = rows.find(x => x.system === 'fedmesh' && x.measure === r.measure)
  // Smaller is better for every footprint figure: ratio = system / fedmesh (> 1: fedmesh better).
  if (f != null && r.system !== 'fedmesh' && f.value > 0) r.ratio = Math.round(r.value / f.value * 1000) / 1000
}
if (values.json) {
  process.stdout.write(JSON.stringify({ ratio: 'system / fedmesh (smaller is better for every measure; > 1 means fedmesh is better)', rows }, null, 2) + '\n')
} else {
  process.stdout.write('| system | measure | value | unit | ratio (system ÷ fedmesh) |\n|---|---|---|---|---|\n')
  for (const r of rows) process.stdout.write(`| ${r.system} | ${r.measure} | ${r.value} | ${r.unit} | ${r.ratio ?? ''} |\n`)
}
killAll()
process.exit(0)
