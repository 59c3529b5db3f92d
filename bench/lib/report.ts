/**
 * Results → rows with ratios against the reference system (fedmesh) → JSON or a table.
 *
 * Ratios are oriented so that above 1 always means fedmesh is better:
 *   throughput: fedmesh msgs/s ÷ system msgs/s
 *   latency:    system ms ÷ fedmesh ms
 * A ratio is null (n/a) when either side has no result.
 */
import { formatTable } from './table.ts'
import type { LatencyResult, ThroughputResult } from './types.ts'

export type Outcome<T> = { ok: true, value: T } | { ok: false, error: string }

export interface SystemRun {
  system: string
  description: string
  throughput: Outcome<ThroughputResult>
  requestReply: Outcome<LatencyResult>
}

export type Measure = 'throughput' | 'rtt_p50' | 'rtt_p99'

export interface Row {
  system: string
  measure: Measure
  value: number | null
  unit: 'msgs/s' | 'ms'
  ratio: number | null
  error?: string
  detail?: ThroughputResult | LatencyResult
}

export const RATIO_NOTE = 'throughput: fedmesh / system; latency: system / fedmesh; above 1 means fedmesh is better'

function valueOf (run: SystemRun, measure: Measure): number | null {
  if (measure === 'throughput') return run.throughput.ok ? run.throughput.value.msgsPerSec : null
  if (!run.requestReply.ok) return null
  return measure === 'rtt_p50' ? run.requestReply.value.p50Ms : run.requestReply.value.p99Ms
}

function ratio (measure: Measure, value: number | null, reference: number | null): number | null {
  if (value == null || reference == null || value <= 0 || reference <= 0) return null
  return measure === 'throughput' ? reference / value : value / reference
}

export function toRows (runs: SystemRun[], referenceSystem: string): Row[] {
  const reference = runs.find(r => r.system === referenceSystem)
  const rows: Row[] = []
  for (const run of runs) {
    for (const measure of ['throughput', 'rtt_p50', 'rtt_p99'] as const) {
      const outcome = measure === 'throughput' ? run.throughput : run.requestReply
      const value = valueOf(run, measure)
      rows.push({
        system: run.system,
        measure,
        value,
        unit: measure === 'throughput' ? 'msgs/s' : 'ms',
        ratio: ratio(measure, value, reference != null ? valueOf(reference, measure) : null),
        ...(outcome.ok ? { detail: outcome.value } : { error: outcome.error })
      })
    }
  }
  return rows
}

const round = (n: number | null, decimals: number): number | null => n == null ? null : Number(n.toFixed(decimals))

/** The rows of the --json document: msgs/s to 0.1, ms to 0.1 µs, ratios to 4 decimals. */
export function toJsonRows (runs: SystemRun[], referenceSystem: string): Row[] {
  return toRows(runs, referenceSystem).map(r => ({
    ...r,
    value: round(r.value, r.unit === 'ms' ? 4 : 1),
    ratio: round(r.ratio, 4)
  }))
}

// ---- text -----------------------------------------------------------------------------------

const int = (n: number): string => Math.round(n).toLocaleString('en-US')
const ms = (n: number): string => n >= 100 ? n.toFixed(0) : n >= 10 ? n.toFixed(1) : n.toFixed(3)
const pct = (n: number): string => `${(n * 100).toFixed(n > 0 && n < 0.001 ? 3 : 1)}%`
const times = (r: number | null): string => r == null ? 'n/a' : `${r >= 10 ? r.toFixed(0) : r.toFixed(2)}x`
const firstLine = (s: string, max = 70): string => {
  const line = s.split('\n')[0]
  return line.length > max ? `${line.slice(0, max - 1)}…` : line
}

export function formatReport (runs: SystemRun[], referenceSystem: string): string {
  const rows = toRows(runs, referenceSystem)
  const find = (system: string, measure: Measure): Row | undefined => rows.find(r => r.system === system && r.measure === measure)
  const cells: string[][] = []
  for (const run of runs) {
    const t = run.throughput
    cells.push(t.ok
      ? [run.system, 'pub/sub throughput', `${int(t.value.msgsPerSec)} msgs/s`, '', '', times(find(run.system, 'throughput')?.ratio ?? null),
          `${int(t.value.received)} of ${int(t.value.sent)} received (loss ${pct(t.value.loss)}), sent at ${int(t.value.sendRate)}/s`]
      : [run.system, 'pub/sub throughput', 'FAILED', '', '', 'n/a', firstLine(t.error)])
    const q = run.requestReply
    cells.push(q.ok
      ? [run.system, 'request-reply', `${ms(q.value.meanMs)} ms mean`, ms(q.value.p50Ms), ms(q.value.p99Ms),
          `${times(find(run.system, 'rtt_p50')?.ratio ?? null)} / ${times(find(run.system, 'rtt_p99')?.ratio ?? null)}`,
          `${int(q.value.count)} round trips, ${q.value.timeouts} timeouts, max ${ms(q.value.maxMs)} ms`]
      : [run.system, 'request-reply', 'FAILED', '', '', 'n/a', firstLine(q.error)])
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
    '',
    'systems:',
    ...runs.map(r => `  ${r.system.padEnd(20)} ${r.description}`)
  ]
  const failures = runs.flatMap(r => {
    const errors = [['throughput', r.throughput], ['request-reply', r.requestReply]] as const
    const failed = errors.filter(([, o]) => !o.ok) as Array<readonly [string, { ok: false, error: string }]>
    // One report when both measurements failed for the same reason (module or broker failure).
    if (failed.length === 2 && failed[0][1].error === failed[1][1].error) return [`${r.system}: ${failed[0][1].error}`]
    return failed.map(([m, o]) => `${r.system} ${m}: ${o.error}`)
  })
  if (failures.length > 0) notes.push('', 'failures:', ...failures.map(f => `  ${f.replace(/\n/g, '\n    ')}`))
  return [table, ...notes].join('\n')
}
