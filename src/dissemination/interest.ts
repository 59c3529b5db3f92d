/**
 * The interest table: which origins (nodes with subscriptions) this node knows and how it
 * reaches each of them. Routing decisions are pure functions (`classifyRecord`,
 * `isFeasible`, `groupTargets`); `InterestTable` only holds state.
 *
 * Each origin's announcement is flooded. A node keeps as next hops ("vias") towards the
 * origin the neighbours it heard the current announcement from whose advertised distance is
 * below its own feasibility distance (one more than the smallest distance it accepted for
 * this announcement). Next hops therefore always lead strictly closer to the origin and
 * never loop, even while routes are being repaired (the feasibility condition of Babel and
 * EIGRP). The first one heard from is the primary: with eager flooding it ends the fastest
 * path, so messages travel the reverse of the fastest path.
 *
 * Every node numbers the origins it knows with labels of its own (`slot`, never reused) and
 * sends them in its records, so each node knows the label its primary uses for each origin.
 * A message carries, per copy, the labels of the origins it is for, in the receiver's
 * numbering: the publisher picks the origins whose patterns match the topic, and each relay
 * maps every label to its primary and that primary's label. Relays match no patterns, and a
 * copy goes only where some origin it is for lies (explicit replication, as in BIER).
 */
import type { TopicPattern } from '../core/topics.ts'
import { topicMatches } from '../core/topics.ts'
import type { InterestRecord, NodeId, RouteRef } from './types.ts'

/** The label a node uses for itself: a copy labelled SELF_SLOT is for its receiver. */
export const SELF_SLOT = 0

/** What this node holds about one remote origin. */
export interface OriginEntry {
  /** The announcement these routes belong to. */
  seq: number
  patterns: readonly TopicPattern[]
  /** Feasibility distance: smallest distance accepted for `seq`, plus one; never grows within a seq. */
  fd: number
  /**
   * Next hops towards the origin, primary first; empty: no route (starved). Every one of
   * them advertised distance fd − 1: a via must advertise less than fd, and a smaller
   * distance lowers fd and replaces them all.
   */
  vias: readonly NodeId[]
  /** The label each via uses for this origin (parallel to `vias`). */
  viaSlots: readonly number[]
  /** Our own label for this origin, sent in our records; kept across announcements. */
  slot: number
  /** Forgotten at this time unless a newer announcement arrives. */
  expiresAt: number
  /** When we last sent or forwarded a `request` for a new announcement of this origin. */
  requestedAt: number
  /** Requests sent while starved, for the retry backoff; reset with a route. */
  requestTries: number
  sig: Uint8Array | undefined
}

/** A neighbour advertising `adv` is an acceptable next hop iff it is strictly closer than we ever were. */
export function isFeasible (adv: number, fd: number): boolean {
  return adv < fd
}

/**
 * What to do with a received interest record, given what we hold about its origin:
 * - `hop-limit`: it travelled too far; ignore it.
 * - `new`: first or newer announcement: replace the entry, route via the sender, flood it on.
 * - `stale`: older than the one we hold.
 * - `alternate`: same announcement, feasible, new sender: keep the sender as another next hop.
 * - `restore`: same announcement, we had no route, feasible: route via the sender and offer
 *   the route to our neighbours (those that lost theirs through us take it back).
 * - `request`: same announcement, no route, infeasible: ask the origin (through the sender)
 *   for a new announcement, which every node may accept afresh (when `requestDue`).
 * - `ignore`: nothing to learn.
 */
export type RecordDecision = 'hop-limit' | 'new' | 'stale' | 'alternate' | 'restore' | 'request' | 'ignore'

export function classifyRecord (
  entry: Readonly<OriginEntry> | undefined,
  record: Pick<InterestRecord, 'seq' | 'hops'>,
  from: NodeId,
  maxInterestHops: number
): RecordDecision {
  if (record.hops + 1 > maxInterestHops) return 'hop-limit'
  if (entry === undefined || record.seq > entry.seq) return 'new'
  if (record.seq < entry.seq) return 'stale'
  // A withdrawal (no patterns) needs no routes: the first copy was all that mattered.
  if (entry.patterns.length === 0 || entry.vias.includes(from)) return 'ignore'
  const starved = entry.vias.length === 0
  if (isFeasible(record.hops, entry.fd)) return starved ? 'restore' : 'alternate'
  return starved ? 'request' : 'ignore'
}

/**
 * May we send or forward a `request` for `e` now? Once per `retryMs` per node, so the
 * copies of one request meeting at a node go no further; a starved node's own retries back
 * off exponentially (`tries`), so an origin that is gone for good costs a few floods.
 */
export function requestDue (e: Readonly<Pick<OriginEntry, 'requestedAt' | 'requestTries'>>, now: number, retryMs: number): boolean {
  return now >= e.requestedAt + retryMs * 2 ** Math.min(e.requestTries, 8)
}

/** Does any of `patterns` match `topic`? */
export function matchesAny (patterns: Iterable<string>, topic: string): boolean {
  for (const p of patterns) if (topicMatches(p, topic)) return true
  return false
}

/** Next hop and the labels a copy to it carries. */
export type Targets = ReadonlyArray<readonly [NodeId, readonly number[]]>

/**
 * Groups origins by the primary next hop towards each, with the primary's label for it.
 * Origins without a route are left out.
 */
export function groupTargets (entries: Iterable<Readonly<OriginEntry>>): Array<[NodeId, number[]]> {
  const by = new Map<NodeId, number[]>()
  for (const e of entries) {
    if (e.vias.length === 0) continue
    const list = by.get(e.vias[0])
    if (list === undefined) by.set(e.vias[0], [e.viaSlots[0]])
    else list.push(e.viaSlots[0])
  }
  return [...by]
}

/** Holds origin entries, their labels, and the targets of our own publications per topic. */
export class InterestTable {
  readonly origins = new Map<NodeId, OriginEntry>()
  /** Origins with interest and no route: their requests are retried (`tick`). */
  readonly starved = new Set<NodeId>()
  /** Earliest `requestedAt` among origins starved since the last retry scan. */
  retryFloor = Number.POSITIVE_INFINITY
  private readonly bySlot = new Map<number, NodeId>()
  private nextSlot = SELF_SLOT + 1
  /** Topic → targets of a message published here; cleared whenever a route or pattern changes. */
  private readonly publishCache = new Map<string, Targets>()
  private readonly maxRouteCache: number

  constructor (maxRouteCache: number) {
    this.maxRouteCache = maxRouteCache
  }

  get routeCacheSize (): number { return this.publishCache.size }

  /** The origin that `slot` stands for here. */
  originOf (slot: number): NodeId | undefined { return this.bySlot.get(slot) }

  /** Targets of a message on `topic` published here: every matching origin with a route. */
  publishTargets (topic: string): Targets {
    let r = this.publishCache.get(topic)
    if (r === undefined) {
      const matching: OriginEntry[] = []
      for (const e of this.origins.values()) if (e.patterns.length > 0 && matchesAny(e.patterns, topic)) matching.push(e)
      r = groupTargets(matching)
      if (this.publishCache.size >= this.maxRouteCache) this.publishCache.clear()
      this.publishCache.set(topic, r)
    }
    return r
  }

  private changed (): void {
    if (this.publishCache.size > 0) this.publishCache.clear()
  }

  /** Keeps `starved` in step after the vias of `origin` changed. */
  private track (origin: NodeId, e: OriginEntry, now: number): void {
    if (e.vias.length === 0 && e.patterns.length > 0) {
      if (!this.starved.has(origin)) {
        this.starved.add(origin)
        // Neighbours ask on our behalf at once (`lost`); our own retries start later.
        e.requestedAt = Math.max(e.requestedAt, now)
        this.retryFloor = Math.min(this.retryFloor, e.requestedAt)
      }
    } else if (this.starved.delete(origin)) e.requestTries = 0
  }

  /** Installs a new announcement of `origin`, heard from `from`; our label carries over. */
  replace (origin: NodeId, record: InterestRecord, from: NodeId, expiresAt: number): OriginEntry {
    const old = this.origins.get(origin)
    let slot = old?.slot
    if (slot === undefined) {
      slot = this.nextSlot++
      this.bySlot.set(slot, origin)
    }
    const e: OriginEntry = {
      seq: record.seq,
      patterns: record.patterns,
      fd: record.hops + 1,
      vias: [from],
      viaSlots: [record.slot],
      slot,
      expiresAt,
      requestedAt: Number.NEGATIVE_INFINITY,
      requestTries: 0,
      sig: record.sig
    }
    this.origins.set(origin, e)
    this.starved.delete(origin)
    this.changed()
    return e
  }

  /** Adds a feasible next hop (adv < fd) advertising `adv` and using `slot`; a closer one lowers fd and replaces the others. */
  addVia (origin: NodeId, e: OriginEntry, via: NodeId, adv: number, slot: number, now: number): void {
    // Arrays are replaced, not grown: a grown array reserves room for 16 more elements, and
    // there is one entry per origin on every node.
    if (adv + 1 < e.fd) {
      e.fd = adv + 1
      e.vias = [via]
      e.viaSlots = [slot]
    } else {
      e.vias = [...e.vias, via]
      e.viaSlots = [...e.viaSlots, slot]
    }
    this.track(origin, e, now)
    this.changed()
  }

  /** Removes `via` as a next hop of `e`; true when it was one. */
  removeVia (origin: NodeId, e: OriginEntry, via: NodeId, now: number): boolean {
    const i = e.vias.indexOf(via)
    if (i < 0) return false
    e.vias = e.vias.filter((_, k) => k !== i)
    e.viaSlots = e.viaSlots.filter((_, k) => k !== i)
    this.track(origin, e, now)
    this.changed()
    return true
  }

  /**
   * A neighbour went away: it stops being a next hop everywhere. Returns the origins (with
   * interest) left without any route, for a `lost` frame.
   */
  removeNeighbour (neighbour: NodeId, now: number): RouteRef[] {
    const starved: RouteRef[] = []
    for (const [origin, e] of this.origins) {
      if (this.removeVia(origin, e, neighbour, now) && e.vias.length === 0 && e.patterns.length > 0) {
        starved.push({ origin, seq: e.seq, fd: e.fd })
      }
    }
    return starved
  }

  /** Forgets origins not re-announced in time (their labels are not reused); returns how many. */
  expire (now: number): number {
    let n = 0
    for (const [origin, e] of this.origins) {
      if (e.expiresAt <= now) {
        this.origins.delete(origin)
        this.starved.delete(origin)
        this.bySlot.delete(e.slot)
        n++
      }
    }
    if (n > 0) this.changed()
    return n
  }

  /** The record this node passes on for `origin`: its own distance as `hops`, its own label. */
  static recordOf (origin: NodeId, e: OriginEntry): InterestRecord {
    return e.sig === undefined
      ? { origin, seq: e.seq, patterns: e.patterns, hops: e.fd, slot: e.slot }
      : { origin, seq: e.seq, patterns: e.patterns, hops: e.fd, slot: e.slot, sig: e.sig }
  }
}
