/** Summary statistics over latency samples. Pure functions. */

/** Nearest-rank percentile of an ascending array (`p` in 0..100); NaN when empty. */
export function percentile (sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return Number.NaN
  const rank = Math.ceil((p / 100) * sorted.length)
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1]
}

export interface LatencySummary { count: number, mean: number, p50: number, p95: number, p99: number, max: number }

export function summarizeSorted (sorted: ArrayLike<number>): LatencySummary {
  let sum = 0
  for (let i = 0; i < sorted.length; i++) sum += sorted[i]
  return {
    count: sorted.length,
    mean: sorted.length > 0 ? sum / sorted.length : Number.NaN,
    p50: percentile(sorted, 50),
    p95: percentile(sorted, 95),
    p99: percentile(sorted, 99),
    max: sorted.length > 0 ? sorted[sorted.length - 1] : Number.NaN
  }
}

/**
 * The empirical CDF of ascending samples as step points [value, fraction ≤ value], one per
 * distinct value, thinned to at most `maxPoints` (keeping the first and last).
 */
export function cdfPoints (sorted: ArrayLike<number>, maxPoints: number = 400): Array<[number, number]> {
  const pts: Array<[number, number]> = []
  const n = sorted.length
  for (let i = 0; i < n; i++) {
    if (i + 1 < n && sorted[i + 1] === sorted[i]) continue
    pts.push([sorted[i], (i + 1) / n])
  }
  if (pts.length <= maxPoints) return pts
  const out: Array<[number, number]> = []
  const step = (pts.length - 1) / (maxPoints - 1)
  for (let k = 0; k < maxPoints; k++) out.push(pts[Math.round(k * step)])
  return out
}
