/**
 * fedmesh benchmark harness: pub/sub throughput (1→1), fan-out (1→10 over 3 processes) and
 * request–reply latency of fedmesh and of the systems people compare it with, each client
 * in its own OS process, everything on 127.0.0.1, all in one table (or one JSON document).
 * See bench/README.md.
 *
 *   node bench/run.ts [--json] [--only nats,fedmesh] [--duration 5] [--size 256]
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { HEADER_BYTES } from './lib/payload.ts'
import { installCleanup } from './lib/proc.ts'
import {
  DEFAULT_FANOUT, measureFanout, measureRequestReply, measureThroughput, type FanoutLayout, type MeasureOptions, type Target
} from './lib/measure.ts'
import { formatReport, RATIO_NOTE, toJsonRows, type Outcome, type Row, type SystemRun } from './lib/report.ts'
import { REFERENCE, SYSTEMS, type SystemEntry } from './systems/index.ts'
import type { Broker } from './lib/types.ts'

const USAGE = `usage: node bench/run.ts [options]
  --json               print one JSON document { rows: [{ system, measure, value, unit, ratio }] }
  --json-out FILE      print the table and also write the JSON document to FILE (same run, same figures)
  --only a,b           run only these systems (${SYSTEMS.map(s => s.name).join(', ')})
  --duration SECONDS   measured window of each measurement (default 5)
  --size BYTES         payload size (default 256, at least ${HEADER_BYTES + 3})
  --requests N         most round trips measured (default 2000)
  --subscribers N      fan-out: subscribers (default ${DEFAULT_FANOUT.subscribers}; 0 skips the fan-out measure)
  --processes N        fan-out: processes (nodes) they are spread over (default ${DEFAULT_FANOUT.processes})
  --help

bench/durable.ts, when present, adds its rows (NATS JetStream vs fedmesh durable) to the same
table; --only durable runs only those, --only without it skips them.`

/** The optional durable-messaging harness (bench/durable.ts) and what run.ts expects of it. */
const DURABLE = new URL('./durable.ts', import.meta.url)
const DURABLE_NAME = 'durable'
export interface DurableOptions { durationMs: number, size: number, dir: string, log: (line: string) => void }
interface DurableModule { benchRows: (opts: DurableOptions) => Promise<Row[]> }

interface CliOptions { json: boolean, jsonOut?: string, systems: SystemEntry[], durable: boolean, measure: MeasureOptions, fanout: FanoutLayout }

function parseCli (argv: string[]): CliOptions {
  const { values } = parseArgs({
    args: argv,
    options: {
      json: { type: 'boolean', default: false },
      'json-out': { type: 'string' },
      only: { type: 'string' },
      duration: { type: 'string', default: '5' },
      size: { type: 'string', default: '256' },
      requests: { type: 'string', default: '2000' },
      subscribers: { type: 'string', default: String(DEFAULT_FANOUT.subscribers) },
      processes: { type: 'string', default: String(DEFAULT_FANOUT.processes) },
      help: { type: 'boolean', default: false }
    }
  })
  if (values.help) { console.log(USAGE); process.exit(0) }
  const number = (name: string, text: string, min: number, max: number): number => {
    const n = Number(text)
    if (!Number.isFinite(n) || n < min || n > max) throw new Error(`--${name} must be a number in [${min}, ${max}], got ${JSON.stringify(text)}`)
    return n
  }
  let systems = SYSTEMS
  let durable = existsSync(DURABLE)
  if (values.only != null) {
    const names = values.only.split(',').map(s => s.trim()).filter(s => s !== '')
    const known = [...SYSTEMS.map(s => s.name), DURABLE_NAME]
    const unknown = names.filter(n => !known.includes(n))
    if (unknown.length > 0) throw new Error(`unknown system(s): ${unknown.join(', ')}; known: ${known.join(', ')}`)
    systems = SYSTEMS.filter(s => names.includes(s.name))
    durable = names.includes(DURABLE_NAME)
  }
  const processes = Math.floor(number('processes', values.processes, 1, 16))
  return {
    json: values.json,
    jsonOut: values['json-out'],
    systems,
    durable,
    fanout: { subscribers: Math.floor(number('subscribers', values.subscribers, 0, 1000)), processes },
    measure: {
      durationMs: number('duration', values.duration, 0.5, 600) * 1000,
      size: Math.floor(number('size', values.size, HEADER_BYTES + 3, 1 << 20)),
      maxMessages: 20_000_000,
      maxRequests: Math.floor(number('requests', values.requests, 1, 1_000_000)),
      requestTimeoutMs: 2000
    }
  }
}

const log = (line: string): void => { process.stderr.write(`[bench] ${line}\n`) }
const errorText = (err: unknown): string => err instanceof Error ? err.message : String(err)

async function attempt<T> (what: string, fn: () => Promise<T>): Promise<Outcome<T>> {
  try {
    return { ok: true, value: await fn() }
  } catch (err) {
    log(`${what} failed: ${errorText(err).split('\n')[0]}`)
    return { ok: false, error: errorText(err) }
  }
}

/** Loads, starts and measures one system; failures end up in the result, never thrown. */
async function benchSystem (entry: SystemEntry, opts: MeasureOptions, layout: FanoutLayout, root: string): Promise<SystemRun> {
  const withFanout = layout.subscribers > 0
  const failed = (description: string, error: string): SystemRun => ({
    system: entry.name,
    description,
    throughput: { ok: false, error },
    ...(withFanout ? { fanout: { ok: false, error } } : {}),
    requestReply: { ok: false, error }
  })

  const loaded = await attempt(`${entry.name}: loading`, entry.load)
  if (!loaded.ok) return failed('(did not load)', `loading failed: ${loaded.error}`)
  const system = loaded.value
  const dir = join(root, system.name)
  mkdirSync(dir, { recursive: true })

  let broker: Broker = { info: null, stop: async () => {} }
  if (system.start != null) {
    log(`${system.name}: starting broker`)
    const started = await attempt(`${system.name}: broker`, async () => await system.start!({ dir }))
    if (!started.ok) return failed(system.description, `broker did not start: ${started.error}`)
    broker = started.value
  }
  try {
    const target: Target = { system: system.name, broker: broker.info, dir }
    log(`${system.name}: pub/sub throughput (${opts.durationMs / 1000} s)`)
    const throughput = await attempt(`${system.name}: throughput`, async () => await measureThroughput(target, opts))
    if (throughput.ok) log(`${system.name}: ${Math.round(throughput.value.msgsPerSec)} msgs/s, loss ${(throughput.value.loss * 100).toFixed(1)}%`)
    let fanout: Outcome<Awaited<ReturnType<typeof measureFanout>>> | undefined
    if (withFanout) {
      log(`${system.name}: fan-out 1 → ${layout.subscribers} subscribers over ${layout.processes} processes (${opts.durationMs / 1000} s)`)
      fanout = await attempt(`${system.name}: fan-out`, async () => await measureFanout(target, opts, layout))
      if (fanout.ok) log(`${system.name}: fan-out ${Math.round(fanout.value.msgsPerSec)} deliveries/s, loss ${(fanout.value.loss * 100).toFixed(1)}%`)
    }
    log(`${system.name}: request-reply (≤ ${opts.maxRequests} round trips, ≤ ${opts.durationMs / 1000} s)`)
    const requestReply = await attempt(`${system.name}: request-reply`, async () => await measureRequestReply(target, opts))
    if (requestReply.ok) log(`${system.name}: p50 ${requestReply.value.p50Ms.toFixed(3)} ms, p99 ${requestReply.value.p99Ms.toFixed(3)} ms`)
    return { system: system.name, description: system.description, throughput, ...(fanout != null ? { fanout } : {}), requestReply }
  } finally {
    await broker.stop().catch((err: unknown) => { log(`${system.name}: stopping broker: ${errorText(err)}`) })
  }
}

/** bench/durable.ts's rows; a failure becomes one failed row, like any other measurement. */
async function durableRows (opts: MeasureOptions, root: string): Promise<Row[]> {
  const dir = join(root, DURABLE_NAME)
  mkdirSync(dir, { recursive: true })
  const got = await attempt(DURABLE_NAME, async () => {
    const mod = await import(DURABLE.href) as Partial<DurableModule>
    if (typeof mod.benchRows !== 'function') throw new Error('bench/durable.ts does not export benchRows(options): Promise<Row[]>')
    return await mod.benchRows({ durationMs: opts.durationMs, size: opts.size, dir, log })
  })
  return got.ok ? got.value : [{ system: DURABLE_NAME, measure: 'durable', value: null, unit: 'msgs/s', ratio: null, error: got.error }]
}

async function main (): Promise<void> {
  const cli = parseCli(process.argv.slice(2))
  const root = mkdtempSync(join(tmpdir(), 'fedmesh-bench-'))
  const removeRoot = (): void => { rmSync(root, { recursive: true, force: true }) }
  installCleanup(removeRoot)
  try {
    const runs: SystemRun[] = []
    for (const entry of cli.systems) runs.push(await benchSystem(entry, cli.measure, cli.fanout, root))
    const extra = cli.durable ? await durableRows(cli.measure, root) : []
    const { durationMs, size, maxRequests, requestTimeoutMs } = cli.measure
    const options = { durationMs, size, maxRequests, requestTimeoutMs, fanout: cli.fanout }
    const json = JSON.stringify({ reference: REFERENCE, ratio: RATIO_NOTE, options, rows: toJsonRows(runs, REFERENCE, extra) }, null, 2)
    if (cli.jsonOut != null) writeFileSync(cli.jsonOut, json + '\n')
    if (cli.json) {
      console.log(json)
    } else {
      const { subscribers, processes } = cli.fanout
      console.log(`\npayload ${cli.measure.size} B, window ${cli.measure.durationMs / 1000} s per measurement; 1→1: publisher and subscriber in separate processes` +
        (subscribers > 0 ? `; fan-out: 1 publisher → ${subscribers} subscribers over ${processes} processes` : '') + '\n')
      console.log(formatReport(runs, REFERENCE, extra))
    }
  } finally {
    removeRoot()
  }
}

main().catch((err: unknown) => {
  console.error(`bench: ${errorText(err)}`)
  process.exitCode = 1
})
