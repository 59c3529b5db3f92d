/** The soak's figures from per-second samples of a node process. Pure functions. */

export interface Sample {
  /** Seconds since the process started its sampler. */
  t: number
  rssMB: number
  heapMB: number
  /** The heap right after the latest full GC before this sample (NaN before the first): the live heap. */
  heapAfterGcMB?: number
  /** Full GCs so far: a new heapAfterGcMB when it changes. */
  fullGcs?: number
  /** Worst event-loop delay during the second before this sample, ms. */
  maxLoopDelayMs: number
  count: number
}

/** Least-squares slope of ys over xs; 0 with fewer than two distinct xs. */
export function slope (xs: readonly number[], ys: readonly number[]): number {
  const n = xs.length
  if (n < 2) return 0
  const mx = xs.reduce((a, b) => a + b, 0) / n
  const my = ys.reduce((a, b) => a + b, 0) / n
  let num = 0
  let den = 0
  for (let i = 0; i < n; i++) { num += (xs[i] - mx) * (ys[i] - my); den += (xs[i] - mx) ** 2 }
  return den === 0 ? 0 : num / den
}

export interface SoakSummary {
  seconds: number
  /** RSS growth over the second half of the run, MB per minute (least squares). */
  rssSlopeMBPerMin: number
  /** The same over the first half (start-up, caches filling): for comparison. */
  rssSlopeFirstHalfMBPerMin: number
  /** Heap in use (live objects and garbage not yet collected), second half. */
  heapSlopeMBPerMin: number
  /**
   * The heap after each full GC (live objects only), first and second half: the trend that
   * shows a leak of JavaScript objects. Null without full GCs in that half.
   */
  heapAfterGcSlopeFirstHalfMBPerMin: number | null
  heapAfterGcSlopeMBPerMin: number | null
  /** RSS at the first sample of the second half, and at the end. */
  rssHalfMB: number
  rssEndMB: number
  rssMaxMB: number
  maxLoopDelayMs: number
  /** Samples (seconds) whose worst event-loop delay exceeded `stallMs`. */
  stallSeconds: number
  /**
   * Of those, the ones in the load's first `warmupS` seconds (from the first sample with a
   * message counted): the process still compiling its hot paths, and the first seconds of load
   * on V8's lean settings (bin/runtime.js) — told apart from the steady state's.
   */
  warmupStallSeconds: number
}

const round2 = (n: number): number => Math.round(n * 100) / 100

/**
 * The trend is taken over the second half of the run only: the first half holds start-up,
 * JIT warm-up and caches filling to their bounds (the dedup window is TTL + skew long), so
 * a steady state shows as a flat second half. Null with fewer than 4 samples.
 */
export function summarizeSoak (samples: readonly Sample[], stallMs: number, warmupS = 10): SoakSummary | null {
  if (samples.length < 4) return null
  const loadAt = samples.find(s => s.count > 0)?.t ?? Infinity
  const end = samples[samples.length - 1].t
  const second = samples.filter(s => s.t >= end / 2)
  const first = samples.filter(s => s.t < end / 2)
  const trend = (part: readonly Sample[], y: (s: Sample) => number): number => round2(slope(part.map(s => s.t / 60), part.map(y)))
  // One point per full GC (a sample repeats the latest until the next one).
  const afterGc = (part: readonly Sample[]): number | null => {
    const points = part.filter((s, i) => Number.isFinite(s.heapAfterGcMB) && (i === 0 || s.fullGcs == null || s.fullGcs !== part[i - 1].fullGcs))
    return points.length < 2 ? null : trend(points, s => s.heapAfterGcMB as number)
  }
  return {
    seconds: samples.length,
    rssSlopeMBPerMin: trend(second, s => s.rssMB),
    rssSlopeFirstHalfMBPerMin: trend(first, s => s.rssMB),
    heapSlopeMBPerMin: trend(second, s => s.heapMB),
    heapAfterGcSlopeFirstHalfMBPerMin: afterGc(first),
    heapAfterGcSlopeMBPerMin: afterGc(second),
    rssHalfMB: second[0].rssMB,
    rssEndMB: second[second.length - 1].rssMB,
    rssMaxMB: Math.max(...samples.map(s => s.rssMB)),
    maxLoopDelayMs: Math.max(...samples.map(s => s.maxLoopDelayMs)),
    stallSeconds: samples.filter(s => s.maxLoopDelayMs > stallMs).length,
    warmupStallSeconds: samples.filter(s => s.maxLoopDelayMs > stallMs && s.t >= loadAt && s.t < loadAt + warmupS).length
  }
}
