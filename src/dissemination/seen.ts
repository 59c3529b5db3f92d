/**
 * Message ids seen recently: duplicate suppression for eager push. Every id is kept for the
 * same window, so the Map's insertion order is also expiry order and both the sweep and
 * eviction when full are O(1) per id. Replays older than the window are the ingress
 * check's business (envelope freshness and its own dedup until expiry).
 */
export class SeenCache {
  private readonly until = new Map<string, number>()
  private readonly windowMs: number
  private readonly maxEntries: number

  constructor (windowMs: number, maxEntries: number) {
    this.windowMs = windowMs
    this.maxEntries = maxEntries
  }

  get size (): number { return this.until.size }

  /** Records `id`; false when it was seen within the window. */
  add (id: string, now: number): boolean {
    const t = this.until.get(id)
    if (t !== undefined) {
      if (t > now) return false
      this.until.delete(id)
    } else if (this.until.size >= this.maxEntries) {
      // Full: forget the oldest id (the first in insertion order).
      const oldest = this.until.keys().next()
      if (oldest.done !== true) this.until.delete(oldest.value)
    }
    this.until.set(id, now + this.windowMs)
    return true
  }

  has (id: string, now: number): boolean {
    const t = this.until.get(id)
    return t !== undefined && t > now
  }

  /** Drops ids whose window has passed. */
  sweep (now: number): void {
    for (const [id, t] of this.until) {
      if (t > now) break
      this.until.delete(id)
    }
  }
}
