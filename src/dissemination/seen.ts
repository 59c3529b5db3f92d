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

/**
 * Where the core remembers the ids of the data messages it has taken (DisseminatorInit.seen).
 * A host whose own dedup keeps every id until its message expires (the router's, which
 * gates delivery) hands that table to the core instead of a second one: then each message
 * is looked up and recorded once per node, not once in a window here and again there.
 */
export interface SeenIds {
  /** Records `id` of a message that expires at `expiresAt`; false when it is held already. */
  add: (id: string, expiresAt: number, now: number) => boolean
  /** Forgets ids that are due (bounded work). */
  sweep: (now: number) => void
  readonly size: number
}

/** The core's own SeenIds: every id kept for the same window (`expiresAt` is not used). */
export class SeenCache implements SeenIds {
  private readonly ids: DedupCache
  private readonly windowMs: number

  constructor (windowMs: number, maxEntries: number) {
    this.windowMs = windowMs
    this.ids = new DedupCache(maxEntries)
  }

  get size (): number { return this.ids.size }

  /** Records `id`; false when it was seen within the window. */
  add (id: string, _expiresAt: number, now: number): boolean {
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
