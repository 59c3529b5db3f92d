/**
 * Message ids seen recently: duplicate suppression for eager push, every id kept for the
 * same window (inclusive: a copy at exactly `window` ms after the first is still a
 * duplicate). Replays older than the window are the ingress check's business (envelope
 * freshness and its own dedup until expiry).
 *
 * Held in the typed-array DedupCache (64-bit keyed hashes, insertion-ordered ring, oldest
 * forgotten first when full): at tens of thousands of messages a second the window holds
 * up to a million ids, which as a Map of id strings cost ~100 MB and a large share of the
 * garbage collector's time.
 */
import { DedupCache } from '../core/ingress.ts'

export class SeenCache {
  private readonly ids: DedupCache
  private readonly windowMs: number

  constructor (windowMs: number, maxEntries: number) {
    this.windowMs = windowMs
    this.ids = new DedupCache(maxEntries)
  }

  get size (): number { return this.ids.size }

  /** Records `id`; false when it was seen within the window. */
  add (id: string, now: number): boolean {
    return this.ids.add(id, now + this.windowMs, now)
  }

  has (id: string, now: number): boolean {
    return this.ids.has(id, now)
  }

  /** Drops ids whose window has passed. */
  sweep (now: number): void {
    this.ids.sweep(now)
  }
}
