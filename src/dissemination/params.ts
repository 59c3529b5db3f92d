/**
 * Dissemination parameters: `defaultDisseminationParams`, `createDisseminationParams(partial)`
 * fills and validates, `validateDisseminationParams` throws InvalidArgumentError naming the
 * first bad field. Every bound on per-node state is here (docs/DISSEMINATION.md, "State").
 */
import { InvalidArgumentError } from '../core/errors.ts'

export interface DisseminationParams {
  /** Neighbours tracked at once; `neighbourUp` beyond this is refused (`too-many-neighbours`). */
  maxNeighbours: number
  /** Distinct local subscription patterns; they all travel in this node's one record. */
  maxLocalPatterns: number
  /** Patterns accepted in one received record (`too-many-patterns` beyond). */
  maxPatternsPerRecord: number
  /** Remote origins remembered; a new origin beyond this is refused (`table-full`). */
  maxOrigins: number
  /**
   * Interest records travel at most this many links. Must exceed the overlay's diameter,
   * or subscribers further away than this from a publisher are not reached.
   */
  maxInterestHops: number
  /** This node re-announces its interest (new seq) this often while it has any. */
  refreshMs: number
  /** A remote origin not re-announced within this time is forgotten. At least 2 × refreshMs. */
  holdMs: number
  /** An origin answers `request`s with a new announcement at most this often. */
  minAnnounceIntervalMs: number
  /**
   * A node forwards a `request` for an origin at most once per this interval; a node without
   * a route repeats its own after it, then after 2×, 4×, … (up to 256×) as long as it lacks one.
   */
  requestRetryMs: number
  /** Local subscription changes within this delay go out in one announcement (0: at once). */
  announceDelayMs: number
  /**
   * Interest records due to a neighbour wait this long and go out together, one record per
   * origin with the latest state (0: at the end of each event). Bursts (many subscriptions,
   * a healed partition) then cost a few frames per link instead of one per record.
   */
  interestBatchMs: number
  /** Records per `interest` frame; a neighbour with this many waiting is sent them at once. */
  maxRecordsPerFrame: number
  /** Message ids are remembered this long for duplicate suppression. */
  dedupWindowMs: number
  /** Most message ids remembered; the oldest are forgotten first when full. */
  maxSeen: number
  /** Topics whose targets (for our own publications) are cached. */
  maxRouteCache: number
  /** Expired origins and message ids are swept at least this often (on `tick`). */
  sweepIntervalMs: number
}

export const defaultDisseminationParams: Readonly<DisseminationParams> = Object.freeze({
  maxNeighbours: 256,
  maxLocalPatterns: 4096,
  maxPatternsPerRecord: 4096,
  maxOrigins: 100_000,
  maxInterestHops: 32,
  refreshMs: 5 * 60_000,
  holdMs: 15 * 60_000,
  minAnnounceIntervalMs: 500,
  requestRetryMs: 2000,
  announceDelayMs: 0,
  interestBatchMs: 25,
  maxRecordsPerFrame: 512,
  dedupWindowMs: 2 * 60_000,
  maxSeen: 1_000_000,
  maxRouteCache: 4096,
  sweepIntervalMs: 10_000
})

const INTEGER_RANGES: Record<keyof DisseminationParams, [number, number]> = {
  maxNeighbours: [1, 100_000],
  maxLocalPatterns: [1, 1_000_000],
  maxPatternsPerRecord: [1, 1_000_000],
  maxOrigins: [1, 100_000_000],
  maxInterestHops: [1, 255],
  refreshMs: [1, 7 * 24 * 3600_000],
  holdMs: [1, 30 * 24 * 3600_000],
  minAnnounceIntervalMs: [0, 3600_000],
  requestRetryMs: [1, 3600_000],
  announceDelayMs: [0, 3600_000],
  interestBatchMs: [0, 60_000],
  maxRecordsPerFrame: [1, 1_000_000],
  dedupWindowMs: [1, 24 * 3600_000],
  maxSeen: [1, 100_000_000],
  maxRouteCache: [1, 10_000_000],
  sweepIntervalMs: [1, 24 * 3600_000]
}

/** Throws InvalidArgumentError for the first field out of range or inconsistent. */
export function validateDisseminationParams (p: DisseminationParams): void {
  for (const [name, [min, max]] of Object.entries(INTEGER_RANGES) as Array<[keyof DisseminationParams, [number, number]]>) {
    const v = p[name]
    if (!Number.isInteger(v) || v < min || v > max) {
      throw new InvalidArgumentError(`dissemination parameter ${name} must be an integer in [${min}, ${max}], got ${String(v)}`, { details: { field: name } })
    }
  }
  if (p.holdMs < 2 * p.refreshMs) {
    throw new InvalidArgumentError('dissemination parameter holdMs must be at least 2 × refreshMs, so one lost refresh does not drop an origin', { details: { field: 'holdMs' } })
  }
  if (p.maxLocalPatterns > p.maxPatternsPerRecord) {
    throw new InvalidArgumentError('dissemination parameter maxLocalPatterns must not exceed maxPatternsPerRecord, or neighbours refuse this node\'s own record', { details: { field: 'maxLocalPatterns' } })
  }
}

/** Defaults overlaid with `partial`, validated. */
export function createDisseminationParams (partial: Partial<DisseminationParams> = {}): DisseminationParams {
  const p: DisseminationParams = { ...defaultDisseminationParams }
  for (const [k, v] of Object.entries(partial)) {
    if (!(k in INTEGER_RANGES)) throw new InvalidArgumentError(`unknown dissemination parameter ${k}`, { details: { field: k } })
    if (v !== undefined) (p as unknown as Record<string, unknown>)[k] = v
  }
  validateDisseminationParams(p)
  return p
}
