/** Exponential backoff with full jitter: attempt 1 → up to 200 ms, doubling, capped at 10 s. */
export function retryDelay (attempt: number, baseMs: number = 200, capMs: number = 10_000, random: () => number = Math.random): number {
  const ceiling = Math.min(capMs, baseMs * 2 ** Math.max(0, attempt - 1))
  return Math.round(ceiling / 2 + random() * ceiling / 2)
}
