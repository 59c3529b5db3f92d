/**
 * Values the dissemination core consumes and produces. The core never does I/O: a host
 * (the router over FrameLinks, or the simulator) feeds it events and carries out the
 * actions it returns. See docs/DISSEMINATION.md.
 */
import type { MessageId, PeerIdString, Topic } from '../core/ids.ts'
import type { TopicPattern } from '../core/topics.ts'

/** A node of the overlay: a libp2p peer id in production, a synthetic id in the simulator. */
export type NodeId = PeerIdString

/**
 * A message as it travels. The payload is opaque to the core (envelope bytes in
 * production). Exactly one of `topic` and `broadcast` is set.
 */
export interface DataMessage<P> {
  readonly id: MessageId
  readonly topic?: Topic
  readonly broadcast?: true
  /** Links traversed so far, counting the one it arrived on (0 only at the publisher). */
  readonly hops: number
  /** Most links the message may traverse. */
  readonly maxHops: number
  /** After this time (same clock as `now`) the message is neither delivered nor forwarded. */
  readonly expiresAt: number
  readonly payload: P
}

/** What a local publisher hands to the core; `hops` starts at 0. */
export type Publication<P> = Omit<DataMessage<P>, 'hops'>

/**
 * A node's interest: every pattern its local agents subscribe to, aggregated into one
 * record. Flooded through the overlay and deduplicated by (`origin`, `seq`); `seq` grows
 * with every change and refresh.
 */
export interface InterestRecord {
  readonly origin: NodeId
  readonly seq: number
  /** Sorted and distinct; empty means the origin withdrew all its interest. */
  readonly patterns: readonly TopicPattern[]
  /** Distance in links from the origin to the node that sent this copy (0 from the origin). */
  readonly hops: number
  /**
   * The sender's label for the origin (0 when the sender is the origin): data copies sent to
   * the sender for this origin carry it.
   */
  readonly slot: number
  /** Opaque signature by the origin over (origin, seq, patterns); carried unchanged. */
  readonly sig?: Uint8Array
}

/** Names one announcement of an origin: used by `lost` and `request` frames. */
export interface RouteRef {
  readonly origin: NodeId
  readonly seq: number
  /**
   * In `lost`: the sender's feasibility distance, so a neighbour knows whether its own
   * route would be acceptable to the sender (see `isFeasible`).
   */
  readonly fd?: number
}

/**
 * What one node sends to a neighbour:
 * - `data`: a message (eager push). A topic message carries `targets`: the receiver's labels
 *   of the origins this copy is for (0: the receiver itself). Without `targets` the message
 *   is flooded: a broadcast, or a topic message from a node whose table overflowed;
 * - `interest`: interest records (flooded announcements, and the table sync on a new link);
 * - `lost`: the sender no longer has a route to these origins;
 * - `request`: asks the origin for a new announcement (forwarded hop by hop towards it).
 */
export type Frame<P> =
  | { readonly kind: 'data', readonly message: DataMessage<P>, readonly targets?: readonly number[] }
  | { readonly kind: 'interest', readonly records: readonly InterestRecord[] }
  | { readonly kind: 'lost', readonly routes: readonly RouteRef[] }
  | { readonly kind: 'request', readonly routes: readonly RouteRef[] }

export interface Send<P> { readonly to: NodeId, readonly frame: Frame<P> }

/**
 * Why an input was not acted upon. Most are normal flow (`duplicate` is every redundant
 * copy of a flood, `no-route` a copy for an origin this node just lost or forgot);
 * `malformed`, `not-neighbour` and `hop-limit` may point at a faulty peer.
 */
export const DROP_REASONS = [
  'duplicate', 'expired', 'hop-limit', 'not-neighbour', 'malformed', 'stale-record', 'no-route',
  'table-full', 'too-many-neighbours', 'too-many-patterns'
] as const
export type DropReason = typeof DROP_REASONS[number]

export interface Drop {
  readonly reason: DropReason
  readonly from?: NodeId
  /** Message id or record origin concerned, when there is one. */
  readonly ref?: string
}

/**
 * The outcome of one input: frames to send, messages to hand to local subscribers, drops.
 * `duplicate` drops are normal flow in a flood and only counted (`counters.dropped`).
 */
export interface Actions<P> {
  readonly send: readonly Send<P>[]
  readonly deliver: readonly DataMessage<P>[]
  readonly dropped: readonly Drop[]
}

export interface DisseminatorCounters {
  published: number
  delivered: number
  /** Data frames sent (each copy to each neighbour counts). */
  dataSent: number
  /** Interest records sent (a frame may carry several). */
  recordsSent: number
  lostSent: number
  requestsSent: number
  /** Own announcements (subscription changes, refreshes, answers to requests). */
  announcements: number
  dropped: Record<DropReason, number>
}

/** Sizes of the bounded state, for metrics and tests. */
export interface DisseminatorSizes {
  neighbours: number
  localPatterns: number
  origins: number
  /** Origins with at least one feasible next hop. */
  routedOrigins: number
  seen: number
  routeCache: number
}
