/**
 * Results → rows with ratios against the reference system (fedmesh) → JSON or a table.
 *
 * Ratios are oriented so that above 1 always means fedmesh is better:
 *   rates (throughput, fan-out): fedmesh msgs/s ÷ system msgs/s
 *   latency:                     system ms ÷ fedmesh ms
 * A ratio is null (n/a) when either side has no result.
 */
import { formatTable } from './table.ts'
import type { FanoutResult, LatencyResult, ThroughputResult } from './types.ts'

export type Outcome<T> = { ok: true, value: T } | { ok: false, error: string }

export interface SystemRun {
  system: string
  description: string
  throughput: Outcome<ThroughputResult>
  /** Absent when the run skipped the fan-out measure. */
  fanout?: Outcome<FanoutResult>
  requestReply: Outcome<LatencyResult>
}

export type Measure = 'throughput' | 'fanout' | 'rtt_p50' | 'rtt_p99'
export const MEASURES: readonly Measure[] = ['throughput', 'fanout', 'rtt_p50', 'rtt_p99']

export interface Row {
  system: string
  /** A Measure for the harness's own rows; other sources (bench/durable.ts) add their own. */
  measure: string
  value: number | null
  unit: string
  ratio: number | null
  error?: string
  detail?: unknown
}

export const RATIO_NOTE = 'rates (msgs/s): fedmesh / system; latencies (ms): system / fedmesh; above 1 means fedmesh is better'

/** Higher is better for rates, lower for latencies: the ratio's orientation. */
const higherIsBetter = (measure: Measure): boolean => measure === 'throughput' || measure === 'fanout'

function outcomeOf (run: SystemRun, measure: Measure): Outcome<ThroughputResult | FanoutResult | LatencyResult> | undefined {
  if (measure === 'throughput') return run.throughput
  if (measure === 'fanout') return run.fanout
  return run.requestReply
}

function valueOf (run: SystemRun, measure: Measure): number | null {
  if (measure === 'throughput') return run.throughput.ok ? run.throughput.value.msgsPerSec : null
  if (measure === 'fanout') return run.fanout?.ok === true ? run.fanout.value.msgsPerSec : null
  if (!run.requestReply.ok) return null
  return measure === 'rtt_p50' ? run.requestReply.value.p50Ms : run.requestReply.value.p99Ms
}

/**
 * fedmesh relative to a system, oriented so that above 1 means fedmesh is better:
 * rates: fedmesh ÷ system; latencies: system ÷ fedmesh. Null when either side has no
 * positive value.
 */
export function ratio (measure: Measure, value: number | null, reference: number | null): number | null {
  if (value == null || reference == null || value <= 0 || reference <= 0) return null
  return higherIsBetter(measure) ? reference / value : value / reference
}

export function toRows (runs: SystemRun[], referenceSystem: string): Row[] {
  const reference = runs.find(r => r.system === referenceSystem)
  const rows: Row[] = []
  for (const run of runs) {
    for (const measure of MEASURES) {
      const outcome = outcomeOf(run, measure)
      if (outcome == null) continue
      const value = valueOf(run, measure)
      rows.push({
        system: run.system,
        measure,
        value,
        unit: higherIsBetter(measure) ? 'msgs/s' : 'ms',
        ratio: ratio(measure, value, reference != null ? valueOf(reference, measure) : null),
        ...(outcome.ok ? { detail: outcome.value } : { error: outcome.error })
      })
    }
  }
  return rows
}

const round = (n: number | null, decimals: number): number | null => n == null ? null : Number(n.toFixed(decimals))

/** The rows of the --json document: msgs/s to 0.1, ms to 0.1 µs, ratios to 4 decimals. */
export function toJsonRows (runs: SystemRun[], referenceSystem: string, extra: Row[] = []): Row[] {
  return [...toRows(runs, referenceSystem), ...extra].map(r => ({
    ...r,
    value: round(r.value, r.unit === 'ms' ? 4 : 1),
    ratio: round(r.ratio, 4)
  }))
}

// ---- text -----------------------------------------------------------------------------------

const int = (n: number): string => Math.round(n).toLocaleString('en-US')
const ms = (n: number): string => n >= 100 ? n.toFixed(0) : n >= 10 ? n.toFixed(1) : n.toFixed(3)
const pct = (n: number): string => `${(n * 100).toFixed(n > 0 && n < 0.001 ? 3 : 1)}%`
const times = (r: number | null): string => r == null ? 'n/a' : `${r >= 10 ? r.toFixed(0) : r >= 0.1 ? r.toFixed(2) : r.toPrecision(2)}x`
const firstLine = (s: string, max = 70): string => {
  const line = s.split('\n')[0]
  return line.length > max ? `${line.slice(0, max - 1)}…` : line
}

/** What the delivery check found: all delivered exactly once, or what was lost / duplicated. */
function deliveryNote (complete: boolean, loss: number, duplicates: number): string {
  if (complete) return 'none lost'
  const parts = []
  if (loss > 0) parts.push(`LOST ${pct(loss)}`)
  if (duplicates > 0) parts.push(`${int(duplicates)} duplicates`)
  return parts.join(', ')
}

/** One line on whether the reference system delivered every message exactly once. */
export function deliveryCheck (run: SystemRun | undefined): string[] {
  if (run == null) return []
  const checks: string[] = []
  if (run.throughput.ok) checks.push(run.throughput.value.complete ? '1→1 complete' : `1→1 ${deliveryNote(false, run.throughput.value.loss, run.throughput.value.duplicates)}`)
  if (run.fanout?.ok === true) checks.push(run.fanout.value.complete ? 'fan-out complete' : `fan-out ${deliveryNote(false, run.fanout.value.loss, run.fanout.value.duplicates)}`)
  if (checks.length === 0) return []
  const ok = checks.every(c => c.endsWith('complete'))
  return [`${run.system} delivery check: ${ok ? 'PASS' : 'FAIL'} (${checks.join('; ')}; every message counted by sequence number at every subscriber)`]
}

/**
 * One table: every system, every measure, each with its ratio to the reference; `extra`
 * rows (from other harnesses, e.g. bench/durable.ts) follow in the same columns.
 */
export function formatReport (runs: SystemRun[], referenceSystem: string, extra: Row[] = []): string {
  const rows = toRows(runs, referenceSystem)
  const find = (system: string, measure: Measure): Row | undefined => rows.find(r => r.system === system && r.measure === measure)
  const cells: string[][] = []
  for (const run of runs) {
    const t = run.throughput
    cells.push(t.ok
      ? [run.system, 'pub/sub 1→1', `${int(t.value.msgsPerSec)} msgs/s`, '', '', times(find(run.system, 'throughput')?.ratio ?? null),
          `${int(t.value.received)} of ${int(t.value.sent)} received, ${deliveryNote(t.value.complete, t.value.loss, t.value.duplicates)}; sent at ${int(t.value.sendRate)}/s`]
      : [run.system, 'pub/sub 1→1', 'FAILED', '', '', 'n/a', firstLine(t.error)])
    const f = run.fanout
    if (f != null) {
      cells.push(f.ok
        ? [run.system, `fan-out 1→${f.value.subscribers}`, `${int(f.value.msgsPerSec)} msgs/s`, '', '', times(find(run.system, 'fanout')?.ratio ?? null),
            `${int(f.value.delivered)} of ${int(f.value.sent)}×${f.value.subscribers} delivered over ${f.value.processes} processes, ` +
            `${deliveryNote(f.value.complete, f.value.loss, f.value.duplicates)}; sent at ${int(f.value.sendRate)}/s`]
        : [run.system, 'fan-out', 'FAILED', '', '', 'n/a', firstLine(f.error)])
    }
    const q = run.requestReply
    cells.push(q.ok
      ? [run.system, 'request-reply', `${ms(q.value.meanMs)} ms mean`, ms(q.value.p50Ms), ms(q.value.p99Ms),
          `${times(find(run.system, 'rtt_p50')?.ratio ?? null)} / ${times(find(run.system, 'rtt_p99')?.ratio ?? null)}`,
          `${int(q.value.count)} round trips, ${q.value.timeouts} timeouts, max ${ms(q.value.maxMs)} ms`]
      : [run.system, 'request-reply', 'FAILED', '', '', 'n/a', firstLine(q.error)])
  }
  for (const r of extra) {
    const value = r.value == null ? 'FAILED' : `${r.unit === 'ms' ? ms(r.value) : int(r.value)} ${r.unit}`
    cells.push([r.system, r.measure, value, '', '', times(r.ratio), r.error != null ? firstLine(r.error) : ''])
  }
  const table = formatTable([
    { header: 'system' },
    { header: 'measure' },
    { header: 'value', align: 'right' },
    { header: 'p50 ms', align: 'right' },
    { header: 'p99 ms', align: 'right' },
    { header: `vs ${referenceSystem}`, align: 'right' },
    { header: 'detail' }
  ], cells)

  const notes = [
    '',
    `vs ${referenceSystem}: ${RATIO_NOTE}. For request-reply: p50 ratio / p99 ratio.`,
    ...deliveryCheck(runs.find(r => r.system === referenceSystem)),
    '',
    'systems:',
    ...runs.map(r => `  ${r.system.padEnd(20)} ${r.description}`)
  ]
  const failures = runs.flatMap(r => {
    const all = [['throughput', r.throughput], ['fan-out', r.fanout], ['request-reply', r.requestReply]] as const
    const failed = all.filter(([, o]) => o != null && !o.ok) as Array<readonly [string, { ok: false, error: string }]>
    // One report when every measurement failed for the same reason (module or broker failure).
    if (failed.length > 1 && failed.every(([, o]) => o.error === failed[0][1].error)) return [`${r.system}: ${failed[0][1].error}`]
    return failed.map(([m, o]) => `${r.system} ${m}: ${o.error}`)
  })
  const extraFailures = extra.filter(r => r.error != null).map(r => `${r.system} ${r.measure}: ${r.error}`)
  if (failures.length + extraFailures.length > 0) notes.push('', 'failures:', ...[...failures, ...extraFailures].map(f => `  ${f.replace(/\n/g, '\n    ')}`))
  return [table, ...notes].join('\n')
}
