/**
 * fedmesh dissemination at scale: runs the dissemination core (src/dissemination) on every
 * node of a simulated network (src/sim) and reports delivery, propagation latency and
 * overhead. Each run is a child process, so its wall time and peak memory are its own.
 * Writes the latency CDF as an SVG and the figures as JSON into bench/sim/.
 *
 *   node bench/sim.ts                      # the default runs: 1,000 and 10,000 nodes
 *   node bench/sim.ts --nodes 1000 --subscribers 0.1 --loss 0.01 --json
 */
import { spawn } from 'node:child_process'
import { mkdirSync, writeFileSync } from 'node:fs'
import { dirname, join, relative } from 'node:path'
import { parseArgs } from 'node:util'
import { formatTable } from './lib/table.ts'
import { createSimConfig, renderCdfSvg, runSimulation, type SimConfig, type SimResult } from '../src/sim/index.ts'

const HERE = dirname(import.meta.filename)
const RUN_TIMEOUT_MS = 15 * 60_000

const USAGE = `usage: node bench/sim.ts [options]
  --nodes N[,N...]       network sizes (default: the standard runs, see below)
  --degree D             neighbours per node (default 6)
  --latency MS           one-way link latency (default 100)
  --jitter MS            extra uniform[0, MS) per frame (default 0)
  --loss P               probability a frame is lost, 0..0.99 (default 0)
  --mode topic|broadcast (default topic)
  --subscribers all|F    subscribing nodes: all, or a fraction such as 0.01 or 1% (default all)
  --messages N           messages published, each by a random node (default 100)
  --interval MS          between publications (default 20)
  --seed N               (default 1)
  --churn RATE           nodes leaving per second during publishing, each back after --downtime
  --downtime MS          (default 2000)
  --partition A:H:F      cut a random fraction F of the nodes off at A ms, heal at H ms
  --max-interest N       refuse runs above N interest entries, nodes × subscribing nodes (default 4000000)
  --out DIR              where the SVG and JSON go (default bench/sim)
  --json                 print the JSON document instead of the table
  --help

Without --nodes, --mode or --subscribers: 1,000 nodes with every node subscribed (the issue's
target), 10,000 nodes with 1% subscribed, and 10,000 nodes broadcasting (every node a receiver).`

interface Run { name: string, config: Partial<SimConfig> }

interface RunOutcome {
  name: string
  config: Partial<SimConfig>
  result?: SimResult
  wallMs?: number
  peakRssMb?: number
  error?: string
}

function parseCli (argv: string[]): { runs: Run[], json: boolean, out: string } {
  const { values } = parseArgs({
    args: argv,
    options: {
      nodes: { type: 'string' },
      degree: { type: 'string', default: '6' },
      latency: { type: 'string', default: '100' },
      jitter: { type: 'string', default: '0' },
      loss: { type: 'string', default: '0' },
      mode: { type: 'string' },
      subscribers: { type: 'string' },
      messages: { type: 'string', default: '100' },
      interval: { type: 'string', default: '20' },
      seed: { type: 'string', default: '1' },
      churn: { type: 'string' },
      downtime: { type: 'string', default: '2000' },
      partition: { type: 'string', multiple: true },
      'max-interest': { type: 'string' },
      out: { type: 'string', default: join(HERE, 'sim') },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', default: false }
    }
  })
  if (values.help) { console.log(USAGE); process.exit(0) }
  const num = (name: string, text: string): number => {
    const n = Number(text)
    if (text.trim() === '' || !Number.isFinite(n)) throw new Error(`--${name} must be a number, got ${JSON.stringify(text)}`)
    return n
  }
  const base: Partial<SimConfig> = {
    degree: num('degree', values.degree),
    latencyMs: num('latency', values.latency),
    jitterMs: num('jitter', values.jitter),
    loss: num('loss', values.loss),
    messages: num('messages', values.messages),
    intervalMs: num('interval', values.interval),
    seed: num('seed', values.seed)
  }
  if (values['max-interest'] !== undefined) base.maxInterestEntries = num('max-interest', values['max-interest'])
  if (values.mode !== undefined) {
    if (values.mode !== 'topic' && values.mode !== 'broadcast') throw new Error('--mode must be topic or broadcast')
    base.mode = values.mode
  }
  if (values.subscribers !== undefined) {
    const s = values.subscribers.trim()
    base.subscribers = s === 'all' ? 'all' : s.endsWith('%') ? num('subscribers', s.slice(0, -1)) / 100 : num('subscribers', s)
  }
  const firstPublish = 3000
  const lastPublish = firstPublish + ((base.messages ?? 100) - 1) * (base.intervalMs ?? 20)
  if (values.churn !== undefined) {
    base.churn = { ratePerSec: num('churn', values.churn), downtimeMs: num('downtime', values.downtime), from: firstPublish, until: lastPublish }
  }
  if (values.partition !== undefined) {
    base.partitions = values.partition.map(p => {
      const [at, healAt, fraction] = p.split(':').map(x => num('partition', x))
      if (fraction === undefined) throw new Error('--partition is AT:HEAL:FRACTION, e.g. 3500:4500:0.5')
      return { at, healAt, fraction }
    })
  }
  let runs: Run[]
  if (values.nodes === undefined && values.mode === undefined && values.subscribers === undefined) {
    runs = [
      { name: '1,000 nodes, topic, all subscribed', config: { ...base, nodes: 1000, mode: 'topic', subscribers: 'all' } },
      { name: '10,000 nodes, topic, 1% subscribed', config: { ...base, nodes: 10_000, mode: 'topic', subscribers: 0.01 } },
      { name: '10,000 nodes, broadcast', config: { ...base, nodes: 10_000, mode: 'broadcast' } }
    ]
  } else {
    const sizes = (values.nodes ?? '1000').split(',').map(s => num('nodes', s.replace(/_/g, '')))
    runs = sizes.map(n => {
      const config = { ...base, nodes: n }
      const who = config.mode === 'broadcast' ? 'broadcast' : `topic, ${config.subscribers === undefined || config.subscribers === 'all' ? 'all' : `${+(config.subscribers * 100).toFixed(3)}%`} subscribed`
      return { name: `${n.toLocaleString('en-US')} nodes, ${who}`, config }
    })
  }
  // Fail before spawning anything on a config the simulator would refuse.
  for (const r of runs) createSimConfig(r.config)
  return { runs, json: values.json, out: values.out }
}

/** Worker side: one run, result as one JSON line on stdout, progress on stderr. */
function worker (configJson: string): void {
  const config = JSON.parse(configJson) as Partial<SimConfig>
  const t0 = performance.now()
  const result = runSimulation(config, {
    progressEvery: 2_000_000,
    onProgress: (t, events) => { process.stderr.write(`[sim]   ${(events / 1e6).toFixed(0)}M events, simulated ${(t / 1000).toFixed(2)} s\n`) }
  })
  const wallMs = Math.round(performance.now() - t0)
  const peakRssMb = Math.round(process.resourceUsage().maxRSS / 1024)
  process.stdout.write(JSON.stringify({ result, wallMs, peakRssMb }) + '\n')
}

function runChild (run: Run): Promise<RunOutcome> {
  return new Promise(resolve => {
    const child = spawn(process.execPath, [...process.execArgv, import.meta.filename, '--worker', JSON.stringify(run.config)], { stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (c: Buffer) => { stdout += c.toString() })
    child.stderr.on('data', (c: Buffer) => { const s = c.toString(); stderr = (stderr + s).slice(-4000); process.stderr.write(s) })
    const timer = setTimeout(() => { child.kill('SIGKILL') }, RUN_TIMEOUT_MS)
    const stop = (): void => { child.kill('SIGKILL') }
    process.once('SIGINT', stop)
    child.once('exit', (code, signal) => {
      clearTimeout(timer)
      process.removeListener('SIGINT', stop)
      try {
        if (code !== 0) throw new Error(`worker exited with ${signal ?? code}: ${stderr.trim().split('\n').slice(-3).join(' | ')}`)
        const parsed = JSON.parse(stdout) as { result: SimResult, wallMs: number, peakRssMb: number }
        resolve({ name: run.name, config: run.config, ...parsed })
      } catch (err) {
        resolve({ name: run.name, config: run.config, error: (err as Error).message })
      }
    })
  })
}

const pct = (x: number): string => `${(100 * x).toFixed(2)}%`
const ms = (x: number): string => Number.isFinite(x) ? String(Math.round(x)) : '-'

function table (outcomes: RunOutcome[]): string {
  const rows = outcomes.map(o => {
    const r = o.result
    if (r === undefined) return [o.name, `error: ${o.error ?? '?'}`]
    const perMsg = r.messages > 0 ? Math.round(r.intended / r.messages) : 0
    return [
      o.name, pct(r.deliveryRatio), String(perMsg), ms(r.latency.p50), ms(r.latency.p95), ms(r.latency.p99), ms(r.latency.max),
      r.overhead.toFixed(2), r.stretch === null ? '-' : r.stretch.mean.toFixed(2),
      (r.control.records / r.nodes).toFixed(0), `${((o.wallMs ?? 0) / 1000).toFixed(1)} s`, `${o.peakRssMb ?? '?'} MB`
    ]
  })
  return formatTable([
    { header: 'run' }, { header: 'delivery', align: 'right' }, { header: 'rcv/msg', align: 'right' },
    { header: 'p50 ms', align: 'right' }, { header: 'p95 ms', align: 'right' }, { header: 'p99 ms', align: 'right' }, { header: 'max ms', align: 'right' },
    { header: 'frames/dlv', align: 'right' }, { header: 'stretch', align: 'right' }, { header: 'records/node', align: 'right' },
    { header: 'wall', align: 'right' }, { header: 'peak RSS', align: 'right' }
  ], rows)
}

async function main (): Promise<void> {
  const argv = process.argv.slice(2)
  if (argv[0] === '--worker') { worker(argv[1]); return }
  const { runs, json, out } = parseCli(argv)
  const outcomes: RunOutcome[] = []
  for (const run of runs) {
    process.stderr.write(`[sim] ${run.name} ...\n`)
    const o = await runChild(run)
    if (o.result !== undefined) process.stderr.write(`[sim] ${run.name}: delivery ${pct(o.result.deliveryRatio)}, p95 ${ms(o.result.latency.p95)} ms, ${((o.wallMs ?? 0) / 1000).toFixed(1)} s\n`)
    outcomes.push(o)
  }
  const ok = outcomes.filter(o => o.result !== undefined)
  const first = ok[0]?.result
  const doc = {
    generator: 'node bench/sim.ts',
    node: process.version,
    note: 'frames/dlv: data frames sent per delivery; stretch: latency over shortest-path latency at publication; records/node: interest records received per node over the run',
    runs: outcomes.map(o => ({ name: o.name, config: o.config, wallMs: o.wallMs, peakRssMb: o.peakRssMb, error: o.error, result: o.result }))
  }
  mkdirSync(out, { recursive: true })
  const svgPath = join(out, 'latency-cdf.svg')
  const jsonPath = join(out, 'results.json')
  writeFileSync(jsonPath, JSON.stringify(doc, null, 2) + '\n')
  if (ok.length > 0) {
    const title = `fedmesh dissemination, simulated: latency CDF (degree ${first?.degree}, ${first?.latencyMs} ms links${(first?.jitterMs ?? 0) > 0 ? ` + ${first?.jitterMs} ms jitter` : ''}, seed ${first?.seed})`
    writeFileSync(svgPath, renderCdfSvg(ok.map(o => {
      const r = o.result as SimResult
      return { label: `${o.name}: p95 ${ms(r.latency.p95)} ms, ${pct(r.deliveryRatio)} delivered`, points: r.cdf }
    }), { title, markers: [{ x: 500, label: 'target p95 (1,000 nodes)' }], levels: [0.95] }))
  }
  if (json) console.log(JSON.stringify(doc, null, 2))
  else {
    console.log(table(outcomes))
    console.log(`\n${doc.note}`)
    console.log(`wrote ${relative(process.cwd(), svgPath)} and ${relative(process.cwd(), jsonPath)}`)
  }
  if (outcomes.some(o => o.error !== undefined)) process.exitCode = 1
}

main().catch((err: Error) => {
  console.error(`bench/sim: ${err.message}`)
  process.exitCode = 2
})
