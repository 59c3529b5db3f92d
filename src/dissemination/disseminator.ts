/**
 * The dissemination state machine of one node. It consumes events (neighbours coming and
 * going, local (un)subscriptions, frames from neighbours, local publications, clock ticks)
 * and returns actions as values: frames to send, messages to deliver locally, drops with
 * their reason. It never does I/O and never reads a clock, so the same code runs inside
 * the router and inside the simulator, and a run is reproducible from its inputs.
 *
 * Topic messages follow interest: each node announces its subscription patterns in one
 * record flooded through the overlay; per origin, next hops towards it form a shortest-path
 * tree, and a message climbs from its publisher up the tree of every origin whose patterns
 * match its topic (interest.ts). Broadcasts are flooded. Both are pushed eagerly and
 * deduplicated by id (seen.ts). Spec: docs/DISSEMINATION.md.
 *
 * @example
 * ```ts
 * const a = createDisseminator<string>({ self: 'A' as NodeId, params: { interestBatchMs: 0 } })
 * const b = createDisseminator<string>({ self: 'B' as NodeId, params: { interestBatchMs: 0 } })
 * a.neighbourUp('B' as NodeId, 0); b.neighbourUp('A' as NodeId, 0)
 * const sub = b.localSubscribe('weather/#', 0)           // B's record, to A
 * for (const s of sub.send) a.receive('B' as NodeId, s.frame, 100)
 * const pub = a.publish({ id: 'm1' as MessageId, topic: 'weather/paris' as Topic, maxHops: 8, expiresAt: 60_000, payload: 'sunny' }, 200)
 * const got = b.receive('A' as NodeId, pub.send[0].frame, 300)
 * got.deliver[0].payload // 'sunny'
 * ```
 */
import { InvalidArgumentError } from '../core/errors.ts'
import { isTopic, MAX_TOPIC_LENGTH, parsePattern, type TopicPattern } from '../core/topics.ts'
import { classifyRecord, InterestTable, matchesAny, requestDue, SELF_SLOT, type OriginEntry, type Targets } from './interest.ts'
import { createDisseminationParams, type DisseminationParams } from './params.ts'
import { SeenCache, type SeenIds } from './seen.ts'
import {
  DROP_REASONS, type Actions, type DataMessage, type DisseminatorCounters, type DisseminatorSizes, type Drop,
  type DropReason, type Frame, type InterestRecord, type NodeId, type Publication, type RouteRef, type Send
} from './types.ts'

export interface DisseminatorInit {
  /** This node's id. */
  self: NodeId
  params?: Partial<DisseminationParams>
  /**
   * Signs this node's own interest records (origin, seq, patterns); the signature travels
   * with the record unchanged. Receivers verify it before handing the frame to `receive`.
   */
  signRecord?: (record: Pick<InterestRecord, 'origin' | 'seq' | 'patterns'>) => Uint8Array
  /**
   * The table of message ids taken (duplicate suppression), when the host keeps one that
   * holds each id at least until its message expires; by default the core keeps its own,
   * for `dedupWindowMs` (and then `dedupWindowMs` and `maxSeen` do not apply).
   */
  seen?: SeenIds
}

export interface Disseminator<P> {
  readonly self: NodeId
  readonly params: Readonly<DisseminationParams>
  /** A link to `peer` is up: it becomes a neighbour and receives our interest table. */
  neighbourUp: (peer: NodeId, now: number) => Actions<P>
  /** The link to `peer` is gone: routes through it are dropped, lost ones announced. */
  neighbourDown: (peer: NodeId, now: number) => Actions<P>
  /** A local agent subscribes; patterns are reference-counted. Throws InvalidTopicError. */
  localSubscribe: (pattern: string, now: number) => Actions<P>
  localUnsubscribe: (pattern: string, now: number) => Actions<P>
  /** A local publication. Throws InvalidArgumentError when malformed (a local bug). */
  publish: (message: Publication<P>, now: number) => Actions<P>
  /** A frame from neighbour `from`. Bad input is dropped with a reason, never thrown. */
  receive: (from: NodeId, frame: Frame<P>, now: number) => Actions<P>
  /**
   * Data messages that came together (a batch frame) from neighbour `from`, with the same
   * labels: the same as a `receive` of a data frame for each, in order, with one set of
   * actions for all.
   */
  receiveData: (from: NodeId, messages: ReadonlyArray<DataMessage<P>>, targets: readonly number[] | undefined, now: number) => Actions<P>
  /** Timers: batched interest, pending and periodic announcements, expiry sweeps. */
  tick: (now: number) => Actions<P>
  /** When `tick` next has work (Infinity: none). */
  nextTickAt: () => number
  /** Next hops of a message on `topic` published here, with the labels each copy carries. */
  routesFor: (topic: string) => Targets
  /** The origins a message on `topic` published here would be sent to (routed, patterns match). */
  interestedIn: (topic: string) => NodeId[]
  /** A copy of what this node holds about `origin`. */
  originEntry: (origin: NodeId) => Readonly<OriginEntry> | undefined
  neighbours: () => readonly NodeId[]
  localPatterns: () => readonly TopicPattern[]
  sizes: () => DisseminatorSizes
  readonly counters: Readonly<DisseminatorCounters>
}

const NONE: readonly never[] = Object.freeze([])
const NO_ACTIONS: Actions<never> = Object.freeze({ send: NONE, deliver: NONE, dropped: NONE })
/** An Out's array not used yet (frozen: never pushed to). */
const UNUSED = NONE as never[]

/**
 * Collects the actions of one input, and is them (Actions): an array is created only when
 * used, as a literal of its first element (`[x]` has room for one; `[]` then push made room
 * for 17 — ≈ 100 bytes more per publication, whose actions are one send). Not copied into
 * another object at the end.
 */
class Out<P> implements Actions<P> {
  send: Send<P>[] = UNUSED
  deliver: DataMessage<P>[] = UNUSED
  dropped: Drop[] = UNUSED

  to (to: NodeId, frame: Frame<P>): void {
    const s = { to, frame }
    if (this.send === UNUSED) this.send = [s]
    else this.send.push(s)
  }

  drop (d: Drop): void {
    if (this.dropped === UNUSED) this.dropped = [d]
    else this.dropped.push(d)
  }

  deliverLocal (m: DataMessage<P>): void {
    if (this.deliver === UNUSED) this.deliver = [m]
    else this.deliver.push(m)
  }

  done (): Actions<P> {
    if (this.send === UNUSED && this.deliver === UNUSED && this.dropped === UNUSED) return NO_ACTIONS
    return this
  }
}

function newCounters (): DisseminatorCounters {
  return {
    published: 0,
    delivered: 0,
    dataSent: 0,
    recordsSent: 0,
    lostSent: 0,
    requestsSent: 0,
    announcements: 0,
    dropped: Object.fromEntries(DROP_REASONS.map(r => [r, 0])) as Record<DropReason, number>
  }
}

const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0

class DisseminatorImpl<P> implements Disseminator<P> {
  readonly self: NodeId
  readonly params: Readonly<DisseminationParams>
  readonly counters = newCounters()
  private readonly signRecord?: DisseminatorInit['signRecord']
  private readonly links = new Set<NodeId>()
  private readonly local = new Map<string, number>()
  private readonly localMatch = new Map<string, boolean>()
  private readonly table: InterestTable
  private readonly seen: SeenIds
  /** Patterns already validated (a record's patterns arrive once per neighbour). */
  private readonly validPatterns = new Set<string>()
  private ownSeq = 0
  private ownRecord: InterestRecord | undefined
  /** Our last announcement had patterns: keep refreshing it. */
  private interested = false
  private lastAnnounceAt = Number.NEGATIVE_INFINITY
  private announceDueAt = Number.POSITIVE_INFINITY
  private nextSweepAt = Number.POSITIVE_INFINITY
  /** Until then, topic messages are flooded: an origin was refused for lack of room. */
  private saturatedUntil = Number.NEGATIVE_INFINITY
  /** Origins (possibly this node) whose current record is due to each neighbour. */
  private readonly pending = new Map<NodeId, Set<NodeId>>()
  /** Neighbours owed a table sync: they get an interest frame even when it is empty. */
  private readonly syncing = new Set<NodeId>()
  /**
   * Set by the first interest frame (a neighbour's table sync). Until then this node knows
   * no subscriber, so it floods its own topic messages rather than lose them.
   */
  private warm = false
  /** Exact time of the next request retry as of the last scan (see `retryAt`). */
  private nextRetryAt = Number.POSITIVE_INFINITY
  private flushAt = Number.POSITIVE_INFINITY

  constructor (init: DisseminatorInit) {
    if (typeof init.self !== 'string' || init.self.length === 0) throw new InvalidArgumentError('self must be a non-empty node id')
    this.self = init.self
    this.params = Object.freeze(createDisseminationParams(init.params))
    this.signRecord = init.signRecord
    this.table = new InterestTable(this.params.maxRouteCache)
    this.seen = init.seen ?? new SeenCache(this.params.dedupWindowMs, this.params.maxSeen)
  }

  // ---- events ---------------------------------------------------------------------------

  neighbourUp (peer: NodeId, now: number): Actions<P> {
    if (this.links.has(peer)) return NO_ACTIONS
    const out = new Out<P>()
    if (peer === this.self || typeof peer !== 'string' || peer.length === 0) {
      this.dropped(out, 'malformed', peer)
      return out.done()
    }
    if (this.links.size >= this.params.maxNeighbours) {
      this.dropped(out, 'too-many-neighbours', peer)
      return out.done()
    }
    this.links.add(peer)
    // Table sync: the new neighbour learns every origin we can route to (and withdrawals),
    // which is what reconnects the two sides of a healed partition.
    this.syncing.add(peer)
    if (!this.pending.has(peer)) this.pending.set(peer, new Set())
    if (this.ownRecord !== undefined) this.queueTo(out, peer, this.self)
    for (const origin of this.table.origins.keys()) this.queueTo(out, peer, origin)
    return this.finish(out, now)
  }

  neighbourDown (peer: NodeId, now: number): Actions<P> {
    if (!this.links.delete(peer)) return NO_ACTIONS
    this.pending.delete(peer)
    this.syncing.delete(peer)
    const out = new Out<P>()
    const starved = this.table.removeNeighbour(peer, now)
    this.sendLost(out, starved, undefined)
    return this.finish(out, now)
  }

  localSubscribe (pattern: string, now: number): Actions<P> {
    const p = parsePattern(pattern)
    const c = this.local.get(p)
    if (c !== undefined) {
      this.local.set(p, c + 1)
      return NO_ACTIONS
    }
    if (this.local.size >= this.params.maxLocalPatterns) {
      const out = new Out<P>()
      this.dropped(out, 'too-many-patterns', this.self, p)
      return out.done()
    }
    this.local.set(p, 1)
    this.localMatch.clear()
    return this.interestChanged(now)
  }

  localUnsubscribe (pattern: string, now: number): Actions<P> {
    const c = this.local.get(pattern)
    if (c === undefined) return NO_ACTIONS
    if (c > 1) {
      this.local.set(pattern, c - 1)
      return NO_ACTIONS
    }
    this.local.delete(pattern)
    this.localMatch.clear()
    return this.interestChanged(now)
  }

  publish (message: Publication<P>, now: number): Actions<P> {
    const m = message as DataMessage<P>
    if (!this.wellFormed(m, true)) throw new InvalidArgumentError('a publication needs an id, exactly one of a valid topic or broadcast, maxHops and expiresAt')
    const out = new Out<P>()
    if (m.expiresAt < now) {
      this.dropped(out, 'expired', this.self, m.id)
      return out.done()
    }
    if (!this.seen.add(m.id, m.expiresAt, now)) {
      this.dropped(out, 'duplicate', this.self, m.id)
      return out.done()
    }
    this.armSweep(now)
    this.counters.published++
    // A publication given with hops 0 (the router's) is used as it is: one copy fewer.
    const own: DataMessage<P> = m.hops === 0 ? m : { ...m, hops: 0 }
    this.deliverLocally(out, own)
    if (own.maxHops < 1) return out.done()
    const next: DataMessage<P> = { ...own, hops: 1 }
    if (m.broadcast === true || this.saturatedUntil > now || !this.warm) this.flood(out, next, undefined)
    else for (const [to, targets] of this.table.publishTargets(m.topic as string)) this.sendData(out, to, next, targets)
    return out.done()
  }

  receive (from: NodeId, frame: Frame<P>, now: number): Actions<P> {
    const out = new Out<P>()
    if (!this.links.has(from)) {
      this.dropped(out, 'not-neighbour', from)
      return out.done()
    }
    switch (frame?.kind) {
      case 'data': this.onData(out, from, frame.message, frame.targets, now); break
      case 'interest': this.onRecords(out, from, frame.records, now); break
      case 'lost': this.onLost(out, from, frame.routes, now); break
      case 'request': this.onRequest(out, from, frame.routes, now); break
      default: this.dropped(out, 'malformed', from)
    }
    return this.finish(out, now)
  }

  receiveData (from: NodeId, messages: ReadonlyArray<DataMessage<P>>, targets: readonly number[] | undefined, now: number): Actions<P> {
    const out = new Out<P>()
    if (!this.links.has(from)) {
      this.dropped(out, 'not-neighbour', from)
      return out.done()
    }
    for (let k = 0; k < messages.length; k++) this.onData(out, from, messages[k], targets, now)
    return this.finish(out, now)
  }

  tick (now: number): Actions<P> {
    const out = new Out<P>()
    if (this.announceDueAt <= now || (this.interested && now >= this.lastAnnounceAt + this.params.refreshMs)) this.announce(out, now)
    if (this.flushAt <= now) this.flush(out)
    if (this.retryAt() <= now) this.retryRequests(out, now)
    if (now >= this.nextSweepAt) {
      this.table.expire(now)
      this.seen.sweep(now)
      this.nextSweepAt = this.table.origins.size > 0 || this.seen.size > 0 ? now + this.params.sweepIntervalMs : Number.POSITIVE_INFINITY
    }
    return this.finish(out, now)
  }

  nextTickAt (): number {
    const refresh = this.interested ? this.lastAnnounceAt + this.params.refreshMs : Number.POSITIVE_INFINITY
    return Math.min(this.announceDueAt, refresh, this.nextSweepAt, this.flushAt, this.retryAt())
  }

  /** When the next starved origin is due for another request (a lower bound; cheap). */
  private retryAt (): number {
    if (this.table.starved.size === 0) return Number.POSITIVE_INFINITY
    return Math.min(this.nextRetryAt, this.table.retryFloor + this.params.requestRetryMs)
  }

  /**
   * Origins we still have no route to: ask again, to every neighbour, since a request sent
   * when the route was lost may have died with it (in a partition, or on a node that left).
   */
  private retryRequests (out: Out<P>, now: number): void {
    let routes: RouteRef[] | undefined
    let next = Number.POSITIVE_INFINITY
    for (const origin of this.table.starved) {
      const e = this.table.origins.get(origin) as OriginEntry
      if (requestDue(e, now, this.params.requestRetryMs)) {
        e.requestedAt = now
        e.requestTries++
        ;(routes ??= []).push({ origin, seq: e.seq })
      }
      next = Math.min(next, e.requestedAt + this.params.requestRetryMs * 2 ** Math.min(e.requestTries, 8))
    }
    this.nextRetryAt = next
    this.table.retryFloor = Number.POSITIVE_INFINITY
    if (routes !== undefined) for (const n of this.links) this.sendRequests(out, n, routes)
  }

  // ---- introspection -----------------------------------------------------------------------

  routesFor (topic: string): Targets { return this.table.publishTargets(topic) }

  interestedIn (topic: string): NodeId[] {
    const out: NodeId[] = []
    for (const [origin, e] of this.table.origins) if (e.vias.length > 0 && e.patterns.length > 0 && matchesAny(e.patterns, topic)) out.push(origin)
    return out
  }

  originEntry (origin: NodeId): Readonly<OriginEntry> | undefined {
    const e = this.table.origins.get(origin)
    return e === undefined ? undefined : { ...e }
  }

  neighbours (): readonly NodeId[] { return [...this.links] }
  localPatterns (): readonly TopicPattern[] { return [...this.local.keys()].sort() as TopicPattern[] }

  sizes (): DisseminatorSizes {
    let routed = 0
    for (const e of this.table.origins.values()) if (e.vias.length > 0) routed++
    return {
      neighbours: this.links.size,
      localPatterns: this.local.size,
      origins: this.table.origins.size,
      routedOrigins: routed,
      seen: this.seen.size,
      routeCache: this.table.routeCacheSize
    }
  }

  // ---- data ----------------------------------------------------------------------------------

  private onData (out: Out<P>, from: NodeId, m: DataMessage<P>, targets: readonly number[] | undefined, now: number): void {
    if (!this.wellFormed(m, false) || (targets !== undefined && !this.validTargets(targets))) return this.dropped(out, 'malformed', from)
    if (m.expiresAt < now) return this.dropped(out, 'expired', from, m.id)
    if (m.hops > m.maxHops || m.hops < 1) return this.dropped(out, 'hop-limit', from, m.id)
    const first = this.seen.add(m.id, m.expiresAt, now)
    if (first) {
      this.armSweep(now)
      this.deliverLocally(out, m)
    } else this.dropped(out, 'duplicate', from, m.id)
    if (m.hops >= m.maxHops) return
    if (targets === undefined) {
      if (first) this.flood(out, m, from, 1)
      return
    }
    // A labelled copy is forwarded even when the message was seen: each copy is for its
    // own origins, and along feasible next hops a copy for one origin never comes back.
    let by: Map<NodeId, number[]> | undefined
    for (const label of targets) {
      if (label === SELF_SLOT) continue
      const origin = this.table.originOf(label)
      const e = origin === undefined ? undefined : this.table.origins.get(origin)
      if (e === undefined || e.vias.length === 0 || e.vias[0] === from) {
        this.dropped(out, 'no-route', from, origin ?? m.id)
        continue
      }
      by ??= new Map()
      const list = by.get(e.vias[0])
      if (list === undefined) by.set(e.vias[0], [e.viaSlots[0]])
      else list.push(e.viaSlots[0])
    }
    if (by === undefined) return
    const next: DataMessage<P> = { ...m, hops: m.hops + 1 }
    for (const [to, labels] of by) this.sendData(out, to, next, labels)
  }

  /**
   * A broadcast, or a topic message from a cold or overflowing publisher: to every neighbour
   * but its sender, with `advance` more hops (the copy made only when there is a neighbour).
   */
  private flood (out: Out<P>, m: DataMessage<P>, from: NodeId | undefined, advance: number = 0): void {
    let frame: Frame<P> | undefined
    for (const to of this.links) {
      if (to === from) continue
      frame ??= { kind: 'data', message: advance === 0 ? m : { ...m, hops: m.hops + advance } }
      out.to(to, frame)
      this.counters.dataSent++
    }
  }

  private sendData (out: Out<P>, to: NodeId, m: DataMessage<P>, targets: readonly number[]): void {
    out.to(to, { kind: 'data', message: m, targets })
    this.counters.dataSent++
  }

  private deliverLocally (out: Out<P>, m: DataMessage<P>): void {
    if (m.broadcast !== true && !this.matchesLocal(m.topic as string)) return
    out.deliverLocal(m)
    this.counters.delivered++
  }

  private matchesLocal (topic: string): boolean {
    if (this.local.size === 0) return false
    let r = this.localMatch.get(topic)
    if (r === undefined) {
      r = matchesAny(this.local.keys(), topic)
      if (this.localMatch.size >= this.params.maxRouteCache) this.localMatch.clear()
      this.localMatch.set(topic, r)
    }
    return r
  }

  private wellFormed (m: DataMessage<P>, local: boolean): boolean {
    if (m == null || typeof m !== 'object' || typeof m.id !== 'string' || m.id.length === 0) return false
    if (!isCount(m.maxHops) || typeof m.expiresAt !== 'number' || Number.isNaN(m.expiresAt)) return false
    if (!local && !isCount(m.hops)) return false
    if (m.broadcast === true) return m.topic === undefined
    if (m.broadcast !== undefined || typeof m.topic !== 'string') return false
    // Remote topics were checked by ingress; a local one is checked here.
    if (!local) return m.topic.length > 0 && m.topic.length <= MAX_TOPIC_LENGTH
    if (m.topic === this.lastLocalTopic) return true
    if (!isTopic(m.topic)) return false
    this.lastLocalTopic = m.topic
    return true
  }

  /** The last topic a local publication was checked with (publishers repeat theirs). */
  private lastLocalTopic: string | undefined

  // ---- interest ------------------------------------------------------------------------------

  private interestChanged (now: number): Actions<P> {
    this.announceDueAt = Math.min(this.announceDueAt, now + this.params.announceDelayMs)
    if (this.announceDueAt > now) return NO_ACTIONS
    const out = new Out<P>()
    this.announce(out, now)
    return this.finish(out, now)
  }

  /** Floods a new announcement of our own patterns (a withdrawal when there are none). */
  private announce (out: Out<P>, now: number, withdraw: boolean = false): void {
    this.announceDueAt = Number.POSITIVE_INFINITY
    const patterns = [...this.local.keys()].sort() as TopicPattern[]
    if (patterns.length === 0 && this.ownRecord === undefined && !withdraw) return
    // Seq from the clock survives restarts: a restarted node's first seq is above its last one.
    this.ownSeq = Math.max(this.ownSeq + 1, Math.floor(now))
    const unsigned = { origin: this.self, seq: this.ownSeq, patterns }
    const sig = this.signRecord?.(unsigned)
    this.ownRecord = sig === undefined ? { ...unsigned, hops: 0, slot: SELF_SLOT } : { ...unsigned, hops: 0, slot: SELF_SLOT, sig }
    this.interested = patterns.length > 0
    this.lastAnnounceAt = now
    this.counters.announcements++
    this.queueFlood(out, this.self, undefined)
  }

  private onRecords (out: Out<P>, from: NodeId, records: readonly InterestRecord[], now: number): void {
    if (!Array.isArray(records)) return this.dropped(out, 'malformed', from)
    this.warm = true
    let request: RouteRef[] | undefined
    for (const r of records) {
      if (!this.validRecord(r)) { this.dropped(out, 'malformed', from); continue }
      if (r.patterns.length > this.params.maxPatternsPerRecord) { this.dropped(out, 'too-many-patterns', from, r.origin); continue }
      if (r.origin === this.self) {
        // Our own announcement coming back, or one from before a restart with a higher seq.
        if (r.seq > this.ownSeq || (r.seq === this.ownSeq && this.ownRecord === undefined)) {
          // Supersede it: with our current patterns, or a withdrawal when we have none.
          this.ownSeq = r.seq
          if (this.local.size > 0 || this.ownRecord !== undefined || r.patterns.length > 0) this.announce(out, now, true)
        } else this.dropped(out, 'duplicate', from, r.origin)
        continue
      }
      const e = this.table.origins.get(r.origin)
      switch (classifyRecord(e, r, from, this.params.maxInterestHops)) {
        case 'hop-limit': this.dropped(out, 'hop-limit', from, r.origin); break
        case 'stale': this.dropped(out, 'stale-record', from, r.origin); break
        case 'ignore': this.dropped(out, 'duplicate', from, r.origin); break
        case 'new':
          if (e === undefined && this.table.origins.size >= this.params.maxOrigins) {
            // No room: this node cannot route towards the origin, so it floods topic
            // messages until the table has had room for a whole hold time.
            this.saturatedUntil = now + this.params.holdMs
            this.dropped(out, 'table-full', from, r.origin)
            break
          }
          this.table.replace(r.origin, r, from, now + this.params.holdMs)
          this.armSweep(now)
          this.queueFlood(out, r.origin, from)
          break
        case 'alternate':
          this.table.addVia(r.origin, e as OriginEntry, from, r.hops, r.slot, now)
          break
        case 'restore':
          this.table.addVia(r.origin, e as OriginEntry, from, r.hops, r.slot, now)
          // Neighbours that lost their route through us can take it back.
          this.queueFlood(out, r.origin, from)
          break
        case 'request': {
          const entry = e as OriginEntry
          if (!requestDue(entry, now, this.params.requestRetryMs)) break
          entry.requestedAt = now;
          (request ??= []).push({ origin: r.origin, seq: entry.seq })
          break
        }
      }
    }
    if (request !== undefined) this.sendRequests(out, from, request)
  }

  /** A neighbour has no route any more to these origins. */
  private onLost (out: Out<P>, from: NodeId, routes: readonly RouteRef[], now: number): void {
    if (!Array.isArray(routes)) return this.dropped(out, 'malformed', from)
    let starved: RouteRef[] | undefined
    let forward: Map<NodeId, RouteRef[]> | undefined
    for (const ref of routes) {
      if (!this.validRef(ref)) { this.dropped(out, 'malformed', from); continue }
      if (ref.origin === this.self) {
        // We are the origin: distance 0 is feasible for anyone.
        if (this.ownRecord !== undefined) this.queueTo(out, from, this.self)
        continue
      }
      const e = this.table.origins.get(ref.origin)
      if (e === undefined) continue
      if (e.seq > ref.seq) {
        // The neighbour is behind: our newer announcement replaces its dead route.
        this.queueTo(out, from, ref.origin)
        continue
      }
      if (this.table.removeVia(ref.origin, e, from, now) && e.vias.length === 0 && e.patterns.length > 0) {
        (starved ??= []).push({ origin: ref.origin, seq: e.seq, fd: e.fd })
      }
      if (e.seq < ref.seq || e.vias.length === 0 || e.patterns.length === 0) continue
      if (ref.fd !== undefined && e.fd < ref.fd) {
        // Our route is feasible for the neighbour: it takes it without a new announcement.
        this.queueTo(out, from, ref.origin)
      } else if (now >= e.requestedAt + this.params.requestRetryMs) {
        // Only a new announcement can give the neighbour a route: ask the origin for one.
        e.requestedAt = now
        forward = this.addRef(forward, e.vias[0], { origin: ref.origin, seq: e.seq })
      }
    }
    if (starved !== undefined) this.sendLost(out, starved, from)
    if (forward !== undefined) for (const [via, list] of forward) this.sendRequests(out, via, list)
  }

  /** Someone downstream needs a new announcement of these origins. */
  private onRequest (out: Out<P>, from: NodeId, routes: readonly RouteRef[], now: number): void {
    if (!Array.isArray(routes)) return this.dropped(out, 'malformed', from)
    let forward: Map<NodeId, RouteRef[]> | undefined
    let announceNow = false
    for (const ref of routes) {
      if (!this.validRef(ref)) { this.dropped(out, 'malformed', from); continue }
      if (ref.origin === this.self) {
        if (this.ownRecord === undefined) continue
        if (ref.seq < this.ownSeq) this.queueTo(out, from, this.self)
        else if (this.interested) {
          // Rate-limited: many requests for one seq make one new announcement.
          this.announceDueAt = Math.min(this.announceDueAt, Math.max(now, this.lastAnnounceAt + this.params.minAnnounceIntervalMs))
          if (this.announceDueAt <= now) announceNow = true
        }
        continue
      }
      const e = this.table.origins.get(ref.origin)
      if (e === undefined) continue
      if (e.seq > ref.seq) {
        this.queueTo(out, from, ref.origin)
      } else if (e.seq === ref.seq && e.patterns.length > 0 && now >= e.requestedAt + this.params.requestRetryMs) {
        // Once per interval and node: towards the origin along our route, or, when we lost
        // ours too (a partition cuts many routes at once), to every other neighbour.
        e.requestedAt = now
        const ref1 = { origin: ref.origin, seq: e.seq }
        if (e.vias.length > 0) forward = this.addRef(forward, e.vias[0], ref1)
        else for (const n of this.links) if (n !== from) forward = this.addRef(forward, n, ref1)
      }
    }
    if (forward !== undefined) for (const [via, list] of forward) this.sendRequests(out, via, list)
    if (announceNow) this.announce(out, now)
  }

  private addRef (map: Map<NodeId, RouteRef[]> | undefined, to: NodeId, ref: RouteRef): Map<NodeId, RouteRef[]> {
    map ??= new Map()
    const list = map.get(to)
    if (list === undefined) map.set(to, [ref])
    else list.push(ref)
    return map
  }

  // ---- frames ---------------------------------------------------------------------------------

  /** The current record of `origin` is due to every neighbour but `except`. */
  private queueFlood (out: Out<P>, origin: NodeId, except: NodeId | undefined): void {
    for (const to of this.links) if (to !== except) this.queueTo(out, to, origin)
  }

  /** The current record of `origin` (this node or a remote one) is due to `to`. */
  private queueTo (out: Out<P>, to: NodeId, origin: NodeId): void {
    let set = this.pending.get(to)
    if (set === undefined) this.pending.set(to, set = new Set())
    set.add(origin)
    if (set.size >= this.params.maxRecordsPerFrame) this.flushTo(out, to, set, new Map())
  }

  /** Ends an input: sends waiting records and joins now, or arms the batch timer. */
  private finish (out: Out<P>, now: number): Actions<P> {
    if (this.pending.size > 0) {
      if (this.params.interestBatchMs === 0) this.flush(out)
      else if (this.flushAt === Number.POSITIVE_INFINITY) this.flushAt = now + this.params.interestBatchMs
    }
    return out.done()
  }

  /** Sends every waiting record, each with the latest state of its origin. */
  private flush (out: Out<P>): void {
    const made = new Map<NodeId, InterestRecord | null>()
    for (const [to, set] of this.pending) this.flushTo(out, to, set, made)
    this.flushAt = Number.POSITIVE_INFINITY
  }

  private flushTo (out: Out<P>, to: NodeId, origins: Set<NodeId>, made: Map<NodeId, InterestRecord | null>): void {
    this.pending.delete(to)
    let records: InterestRecord[] = []
    for (const origin of origins) {
      const e = this.table.origins.get(origin)
      if (origin === to) {
        // A neighbour needs its own record only when we cannot reach it through itself: it
        // has just come back, maybe restarted, and must announce above what we remember.
        if (e !== undefined && e.vias.length === 0) records.push(InterestTable.recordOf(origin, e))
        continue
      }
      // Nor does it need ours when it is our next hop towards the origin: it is strictly
      // closer, so our route is never feasible for it.
      if (e?.vias.includes(to) === true) continue
      let r = made.get(origin)
      if (r === undefined) made.set(origin, r = this.currentRecord(origin))
      if (r === null) continue
      records.push(r)
      if (records.length === this.params.maxRecordsPerFrame) {
        this.sendRecords(out, to, records)
        records = []
      }
    }
    if (records.length > 0 || this.syncing.has(to)) this.sendRecords(out, to, records)
    this.syncing.delete(to)
  }

  /** What we tell neighbours about `origin` now; null when we have nothing useful to say. */
  private currentRecord (origin: NodeId): InterestRecord | null {
    if (origin === this.self) return this.ownRecord ?? null
    const e = this.table.origins.get(origin)
    // Without a route we would attract traffic we cannot carry; a withdrawal needs none.
    if (e === undefined || (e.vias.length === 0 && e.patterns.length > 0) || e.fd >= this.params.maxInterestHops) return null
    return InterestTable.recordOf(origin, e)
  }

  private sendRecords (out: Out<P>, to: NodeId, records: InterestRecord[]): void {
    this.syncing.delete(to)
    out.to(to, { kind: 'interest', records })
    this.counters.recordsSent += records.length
  }

  private sendLost (out: Out<P>, routes: RouteRef[], except: NodeId | undefined): void {
    if (routes.length === 0) return
    const frame: Frame<P> = { kind: 'lost', routes }
    for (const to of this.links) {
      if (to === except) continue
      out.to(to, frame)
      this.counters.lostSent += routes.length
    }
  }

  private sendRequests (out: Out<P>, to: NodeId, routes: RouteRef[]): void {
    out.to(to, { kind: 'request', routes })
    this.counters.requestsSent += routes.length
  }

  // ---- helpers ---------------------------------------------------------------------------------

  private armSweep (now: number): void {
    if (this.nextSweepAt === Number.POSITIVE_INFINITY) this.nextSweepAt = now + this.params.sweepIntervalMs
  }

  /**
   * Counts a drop and returns it as a value, except `duplicate`: every redundant copy of a
   * flood is one, so it is only counted.
   */
  private dropped (out: Out<P>, reason: DropReason, from?: NodeId, ref?: string): void {
    this.counters.dropped[reason]++
    if (reason === 'duplicate') return
    out.drop(ref === undefined ? { reason, from } : { reason, from, ref })
  }

  private validRecord (r: InterestRecord): boolean {
    if (r == null || typeof r !== 'object' || typeof r.origin !== 'string' || r.origin.length === 0) return false
    if (!isCount(r.seq) || !isCount(r.hops) || !isCount(r.slot) || !Array.isArray(r.patterns)) return false
    if (r.sig !== undefined && !(r.sig instanceof Uint8Array)) return false
    let prev = ''
    for (const p of r.patterns) {
      // Sorted and distinct, so one origin cannot count a pattern twice.
      if (typeof p !== 'string' || p <= prev) return false
      prev = p
      if (this.validPatterns.has(p)) continue
      try { parsePattern(p) } catch { return false }
      if (this.validPatterns.size >= 4096) this.validPatterns.clear()
      this.validPatterns.add(p)
    }
    return true
  }

  private validTargets (targets: readonly number[]): boolean {
    if (!Array.isArray(targets) || targets.length > this.params.maxOrigins + 1) return false
    for (const t of targets) if (!isCount(t)) return false
    return true
  }

  private validRef (ref: RouteRef): boolean {
    return ref != null && typeof ref === 'object' && typeof ref.origin === 'string' && ref.origin.length > 0 &&
      isCount(ref.seq) && (ref.fd === undefined || isCount(ref.fd))
  }
}

/** Creates the dissemination state machine of one node. */
export function createDisseminator<P> (init: DisseminatorInit): Disseminator<P> {
  return new DisseminatorImpl<P>(init)
}
