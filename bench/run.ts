/**
 * Side-by-side benchmark: fedmesh vs nats-server + nats.js vs mosquitto + mqtt.js, each with
 * publisher and subscriber in separate processes on loopback, in one run. Prints one table;
 * `--json` prints { rows: [{ system, measure, value, unit, ratio }] } where ratio is
 * fedmesh ÷ system for throughput and system ÷ fedmesh for latency (> 1 means fedmesh is better).
 *   npm run bench -- [--json] [--seconds 5] [--size 256] [--only fedmesh,nats,mosquitto]
 */
import { fork, spawn, type ChildProcess } from 'node:child_process'
import { createServer } from 'node:net'
import { mkdtempSync, writeFileSync, existsSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'

const { values } = parseArgs({ options: { json: { type: 'boolean' }, seconds: { type: 'string', default: '5' }, size: { type: 'string', default: '256' }, only: { type: 'string' } } })
const SECONDS = Number(values.seconds)
const SIZE = Number(values.size)
const WORKER = new URL('./worker.ts', import.meta.url).pathname
const children: ChildProcess[] = []
const cleanup = (): void => { for (const c of children) if (c.exitCode == null) c.kill('SIGKILL') }
process.on('exit', cleanup)
process.on('SIGINT', () => { cleanup(); process.exit(130) })

function freePort (): Promise<number> {
  return new Promise((resolve) => { const s = createServer(); s.listen(0, '127.0.0.1', () => { const a = s.address() as { port: number }; s.close(() => resolve(a.port)) }) })
}

async function waitPort (port: number, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms
  while (Date.now() < deadline) {
    const ok = await new Promise<boolean>((resolve) => { const s = createServer(); s.once('error', () => resolve(true)); s.listen(port, '127.0.0.1', () => s.close(() => resolve(false))) })
    if (ok) return
    await new Promise(resolve => setTimeout(resolve, 50))
  }
  throw new Error(`port ${port} never opened`)
}

class Worker {
  readonly child: ChildProcess
  info: any
  private rid = 0
  private readonly pending = new Map<number, (m: any) => void>()
  readonly ready: Promise<void>
  constructor (system: string, role: string, arg: string) {
    this.child = fork(WORKER, [system, role, arg], { execPath: process.execPath, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
    children.push(this.child)
    this.ready = new Promise((resolve, reject) => {
      this.child.on('message', (m: any) => {
        if (m.event === 'ready') { this.info = m.info; resolve() } else this.pending.get(m.rid)?.(m)
      })
      this.child.on('exit', (code) => reject(new Error(`${system} ${role} worker exited ${code}`)))
    })
  }

  call (op: string, args: Record<string, unknown> = {}, timeoutMs = 120_000): Promise<any> {
    const rid = ++this.rid
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`${op} timed out`)), timeoutMs)
      this.pending.set(rid, (m) => { clearTimeout(t); this.pending.delete(rid); if (m.ok) resolve(m.result); else reject(new Error(m.error)) })
      this.child.send({ rid, op, ...args })
    })
  }
}

interface Row { system: string, measure: string, value: number, unit: string, ratio?: number }

async function measure (system: string, subArg: string, pubArgOf: (sub: Worker) => string): Promise<Row[]> {
  const sub = new Worker(system, 'sub', subArg)
  await sub.ready
  await sub.call('subscribe')
  const pub = new Worker(system, 'pub', pubArgOf(sub))
  await pub.ready
  // Warm up until the subscriber sees traffic (gossip meshes take a heartbeat to form).
  for (let i = 0; i < 100; i++) {
    await pub.call('publish', { count: 10, size: SIZE, seconds: 1 })
    await new Promise(resolve => setTimeout(resolve, 100))
    if ((await sub.call('count')).received > 0) break
  }
  await sub.call('reset')
  const { sent } = await pub.call('publish', { count: 5_000_000, size: SIZE, seconds: SECONDS })
  let prev = -1
  for (let i = 0; i < 100; i++) { // wait for delivery to settle (bounded)
    await new Promise(resolve => setTimeout(resolve, 200))
    const c = await sub.call('count')
    if (c.received === prev || c.received >= sent) break
    prev = c.received
  }
  const { received, seconds } = await sub.call('count')
  const { rtts } = await pub.call('latency', { count: 2000, size: SIZE, seconds: SECONDS })
  rtts.sort((a: number, b: number) => a - b)
  const pct = (p: number): number => rtts[Math.min(rtts.length - 1, Math.floor(p * rtts.length))]
  await Promise.allSettled([pub.call('close', {}, 10_000), sub.call('close', {}, 10_000)])
  return [
    { system, measure: 'pub/sub throughput', value: Math.round(received / Math.max(seconds, 1e-3)), unit: 'msgs/s' },
    { system, measure: 'pub/sub delivered', value: received, unit: `of ${sent}` },
    { system, measure: 'request-reply p50', value: Number(pct(0.5).toFixed(3)), unit: 'ms' },
    { system, measure: 'request-reply p99', value: Number(pct(0.99).toFixed(3)), unit: 'ms' }
  ]
}

const systems: Record<string, () => Promise<Row[]>> = {
  fedmesh: async () => await measure('fedmesh', JSON.stringify({}), (sub) => JSON.stringify({ bootstrap: [sub.info.addr], target: sub.info.agent })),
  'nats-server': async () => {
    const port = await freePort()
    const srv = spawn('/usr/sbin/nats-server', ['-a', '127.0.0.1', '-p', String(port)], { stdio: 'ignore' })
    children.push(srv)
    await waitPort(port)
    try { return await measure('nats', `nats://127.0.0.1:${port}`, () => `nats://127.0.0.1:${port}`) } finally { srv.kill() }
  },
  mosquitto: async () => {
    const port = await freePort()
    const conf = join(mkdtempSync(join(tmpdir(), 'mosq-')), 'm.conf')
    writeFileSync(conf, `listener ${port} 127.0.0.1\nallow_anonymous true\npersistence false\n`)
    const srv = spawn('/usr/sbin/mosquitto', ['-c', conf], { stdio: 'ignore' })
    children.push(srv)
    await waitPort(port)
    try { return await measure('mqtt', `mqtt://127.0.0.1:${port}`, () => `mqtt://127.0.0.1:${port}`) } finally { srv.kill() }
  }
}

const only = values.only?.split(',')
const rows: Row[] = []
for (const [name, run] of Object.entries(systems)) {
  if (only != null && !only.includes(name)) continue
  if (name !== 'fedmesh' && !existsSync(name === 'nats-server' ? '/usr/sbin/nats-server' : '/usr/sbin/mosquitto')) { process.stderr.write(`skipping ${name}: not installed\n`); continue }
  try {
    const r = await run()
    for (const row of r) row.system = name
    rows.push(...r)
  } catch (err) {
    process.stderr.write(`${name} failed: ${(err as Error).message}\n`)
  }
}
const fm = new Map(rows.filter(r => r.system === 'fedmesh').map(r => [r.measure, r.value]))
for (const r of rows) {
  const f = fm.get(r.measure)
  if (f == null || r.value === 0 || r.measure === 'pub/sub delivered') continue
  r.ratio = Number((r.unit === 'ms' ? r.value / f : f / r.value).toFixed(3))
}
if (values.json === true) {
  process.stdout.write(JSON.stringify({ size: SIZE, seconds: SECONDS, rows }, null, 2) + '\n')
} else {
  process.stdout.write(`payload ${SIZE} B, ${SECONDS} s per measure; ratio = fedmesh advantage (>1 better, <1 worse)\n\n`)
  process.stdout.write('| system | measure | value | unit | ratio |\n|---|---|---|---|---|\n')
  for (const r of rows) process.stdout.write(`| ${r.system} | ${r.measure} | ${r.value} | ${r.unit} | ${r.ratio ?? ''} |\n`)
}
cleanup()
process.exit(0)
