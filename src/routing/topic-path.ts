/**
 * Topic and broadcast traffic over FrameLinks: hosts the dissemination core
 * (docs/DISSEMINATION.md) for the router. The core decides; this class feeds it events
 * (links up and down, local (un)subscriptions, publications, frames, timers) and carries
 * out its actions (frames to neighbours, local deliveries, drops).
 *
 * Every data frame's envelope passes the router's ingress (`admit`) before the core sees
 * it, and every envelope of a batch frame passes `checkBatch` (one signature per batch) and
 * then the router's `admitChecked`: a copy that fails is counted there and neither
 * delivered nor forwarded. The core records message ids in the router's dedup (`seen`),
 * which keeps each until its envelope expires: what the core delivers is a first copy, and
 * each copy costs one lookup. Copies of batch-signed envelopes leave in
 * batch frames, one per batch and next hop (PROTOCOL.md section 8.2.1).
 */
import { batchOf, leafIndexOf, type Envelope } from '../core/envelope.ts'
import { checkBatch, type IngressOptions, type RejectionReason } from '../core/ingress.ts'
import type { SignedBatch } from '../core/batch.ts'
import {
  createDisseminator, type Actions, type DataMessage, type DisseminationParams, type Disseminator, type DropReason, type Frame, type NodeId, type SeenIds
} from '../dissemination/index.ts'
import {
  RecordSignatureCache, decodeControlFrame, encodeControlFrame, interestSigningInput
} from '../dissemination/wire.ts'
import { FRAME_BATCH, encodeBatchFrame, encodeDataFrame, labelsEntry, labelsSize, type BatchFrame, type ControlFrame, type DataFrame, type FrameLink } from '../net/frames.ts'
import type { Logger } from '../node/types.ts'

/** Control frames (small, they repair routes) leave before data. */
const CONTROL_PRIORITY = 3
/**
 * A link whose queue holds this much is not keeping up: further data copies to it are
 * dropped (and counted) rather than queued without bound. Topic delivery is at most once;
 * a local publisher is held back well before this (publishBuffered / drain, submit).
 */
export const MAX_LINK_QUEUE_BYTES = 16 * 1024 * 1024
/** Longest a publisher waits for the links to drain before it may go on. */
export const MAX_DRAIN_WAIT_MS = 5000
/**
 * Envelope bytes one batch frame carries at most; the batch's other leaves go as hashes in
 * further frames. A larger envelope travels alone, in a data frame with its proof.
 */
export const MAX_BATCH_FRAME_CARRIED = 512 * 1024
export const MAX_GROUPED_ENVELOPE = 64 * 1024

/** Envelopes of one batch bound for one neighbour with the same hops, labels and priority: one batch frame. */
interface Group {
  readonly key: string
  readonly to: string
  readonly link: FrameLink
  readonly batch: SignedBatch
  readonly hops: number
  readonly labels: readonly number[] | undefined
  readonly prio: number
  readonly leaves: number[]
  bytes: number
  /** Still in `groups` (false once written out). */
  open: boolean
}

/**
 * How many recently joined groups a copy is compared with before its key is built: a
 * publication fans out to one group per neighbour, so the copies of consecutive messages
 * alternate between that many groups.
 */
const RECENT_GROUPS = 8

export interface TopicPathInit {
  self: string
  params?: Partial<DisseminationParams>
  /** Signs an interest record's signing input with the node key. */
  sign: (input: Uint8Array) => Uint8Array
  /** Ingress for the envelope of one data frame copy; undefined when rejected (and counted). */
  admit: (bytes: Uint8Array, hops: number, peer: string) => Envelope | undefined | Promise<Envelope | undefined>
  /** The ingress options batch frames are checked with (checkBatch): network, limits, verified roots. */
  ingress: IngressOptions
  /**
   * What `admit` does after the envelope checks, for an envelope of a batch frame that
   * passed them (mode, the semantic check, counting); undefined when rejected (and counted).
   */
  admitChecked: (env: Envelope, peer: string) => Envelope | undefined | Promise<Envelope | undefined>
  /** A remote message the core delivers here (local patterns matched or a broadcast). */
  deliver: (env: Envelope, peer: string) => void
  /** A remote message this node forwards to neighbour `peer` (the message log's `relayed`). */
  relayed?: (env: Envelope, peer: string) => void
  reject: (reason: RejectionReason, detail: string, peer?: string, id?: string) => void
  /** Added to `ts + ttl` for the core's expiry, as ingress tolerates. */
  clockSkewMs: number
  /**
   * The node's dedup (ids kept until `ts + ttl + clockSkewMs`), used as the core's table of
   * ids taken: a copy is then recorded once, and whatever the core delivers is a first copy.
   */
  seen?: SeenIds
  logger: Logger
}

/** One link's state in TopicPath.stats(). */
export interface TopicLinkStats {
  peer: string
  /** Bytes queued on the link, not yet handed to the stream. */
  queuedBytes: number
  closed: boolean
  /** Bytes the stream holds that the muxer has not sent (its window to the peer is spent). */
  writeBufferBytes: number
  writeStatus: string
  readStatus: string
  /** Chunks read from the peer so far. */
  reads: number
}

/** What the topic path dropped so far, and what waits on its links (NodeStatus.topics). */
export interface TopicPathCounts {
  /** Bytes queued on all links (the publisher's backpressure signal). */
  queuedBytes: number
  /** Data copies dropped because their link held more than MAX_LINK_QUEUE_BYTES. */
  linkDrops: number
  /**
   * Frames (of any kind; topic copies travel many to a batch frame) and bytes the links to
   * the neighbours threw away when they closed — a connection aborted because its peer did
   * not answer libp2p's ping in time, say. Topic copies among them are lost; direct
   * messages are sent again by their senders' confirmation path.
   */
  closedFrames: number
  closedBytes: number
  /** The dissemination core's drops by reason, only the reasons counted at least once. */
  dropped: Partial<Record<DropReason, number>>
}

export interface TopicPathStats extends TopicPathCounts {
  /** The last link closed with frames not sent: `peer: reason`. */
  lastClose?: string
  links: TopicLinkStats[]
}

export class TopicPath {
  readonly core: Disseminator<Envelope>
  private readonly init: TopicPathInit
  private readonly links = new Map<string, FrameLink[]>()
  private readonly signatures = new RecordSignatureCache()
  /** Data copies dropped because the link to their next hop was over MAX_LINK_QUEUE_BYTES. */
  overflowDrops = 0
  /** Frames and bytes the links threw away when they closed (FrameLink.discardedFrames/Bytes), and the last such close. */
  private closedFrames = 0
  private closedBytes = 0
  private lastClose: string | undefined
  /** Links already counted into closedFrames (removeLink can be called more than once for one). */
  private readonly closedLinks = new WeakSet<FrameLink>()
  /** Open batch frames, by neighbour, hops, labels and priority; written out at the end of the turn. */
  private readonly groups = new Map<string, Group>()
  private groupsScheduled = false
  /** The groups copies joined lately, most recent last (see group()); all open when the list was last cleared. */
  private recent: Group[] = []
  /** The batch frame written last and what it carried (see writeGroup); dropped once all groups are out. */
  private lastFrame: { batch: SignedBatch, hops: number, leaves: readonly number[], labels: readonly number[] | undefined, bytes: Uint8Array, common: Uint8Array | undefined } | undefined
  private timer?: NodeJS.Timeout
  private timerAt = Number.POSITIVE_INFINITY
  private stopped = false

  constructor (init: TopicPathInit) {
    this.init = init
    this.core = createDisseminator<Envelope>({
      self: init.self as NodeId,
      params: init.params,
      signRecord: (r) => init.sign(interestSigningInput(r)),
      seen: init.seen
    })
  }

  stop (): void {
    this.stopped = true
    clearTimeout(this.timer)
  }

  // ---- links ----------------------------------------------------------------------------

  /** A FrameLink with `peer` opened (either direction); the first makes it a neighbour. */
  addLink (peer: string, link: FrameLink): void {
    const list = this.links.get(peer)
    if (list !== undefined) {
      if (!list.includes(link)) list.push(link)
      return
    }
    this.links.set(peer, [link])
    this.apply(this.core.neighbourUp(peer as NodeId, Date.now()))
  }

  /** A link closed; the last one to `peer` makes it no longer a neighbour. */
  removeLink (peer: string, link: FrameLink): void {
    if (!this.closedLinks.has(link)) {
      this.closedLinks.add(link)
      this.closedFrames += link.discardedFrames
      this.closedBytes += link.discardedBytes
      if (link.discardedFrames > 0 || link.discardedBytes > 0) {
        this.lastClose = `${peer}: ${link.closeReason ?? 'closed'}`
        this.init.logger.warn({ peer, frames: link.discardedFrames, bytes: link.discardedBytes, reason: link.closeReason }, 'link closed with frames not sent: topic copies lost')
      }
    }
    const list = this.links.get(peer)
    if (list === undefined) return
    const i = list.indexOf(link)
    if (i >= 0) list.splice(i, 1)
    if (list.some(l => !l.isClosed)) return
    this.links.delete(peer)
    this.apply(this.core.neighbourDown(peer as NodeId, Date.now()))
  }

  private linkOf (peer: string): FrameLink | undefined {
    const list = this.links.get(peer)
    if (list === undefined) return undefined
    for (const l of list) if (!l.isClosed) return l
    return undefined
  }

  /** Bytes waiting on the links to the neighbours (the publisher's backpressure signal). */
  queuedBytes (): number {
    let n = 0
    for (const list of this.links.values()) for (const l of list) n += l.queuedBytes
    return n
  }

  /**
   * Resolves once every link's queue is below `bytes`, or after MAX_DRAIN_WAIT_MS: a stalled
   * neighbour must not hold a publisher forever (its link drops copies beyond its bound).
   */
  async drained (bytes: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined
    const waits = [...this.links.values()].flat().map(async l => { await l.drained(bytes) })
    await Promise.race([
      Promise.all(waits),
      new Promise<void>(resolve => { timer = setTimeout(resolve, MAX_DRAIN_WAIT_MS); timer.unref() })
    ])
    clearTimeout(timer)
  }

  /**
   * counts(), the last link closed with frames unsent, and per link its queue here and its
   * stream's write buffer and state (a link whose muxer never takes more shows a write buffer
   * above the high-water mark and a queue that does not go down).
   */
  stats (): TopicPathStats {
    const links: TopicLinkStats[] = []
    for (const [peer, list] of this.links) {
      for (const l of list) {
        links.push({ peer, queuedBytes: l.queuedBytes, closed: l.isClosed, writeBufferBytes: l.stream.writeBufferLength, writeStatus: l.stream.writeStatus, readStatus: l.stream.readStatus, reads: l.reads })
      }
    }
    return { ...this.counts(), ...(this.lastClose === undefined ? {} : { lastClose: this.lastClose }), links }
  }

  /**
   * What the topic path dropped so far — copies dropped at a full link (`linkDrops`), frames
   * thrown away by links that closed (`closedFrames`), the core's drops by reason (duplicates
   * included) — and what waits on the links: the node's status and metrics.
   */
  counts (): TopicPathCounts {
    const dropped: Partial<Record<DropReason, number>> = {}
    for (const [r, n] of Object.entries(this.core.counters.dropped) as Array<[DropReason, number]>) if (n > 0) dropped[r] = n
    return {
      queuedBytes: this.queuedBytes(),
      linkDrops: this.overflowDrops,
      closedFrames: this.closedFrames,
      closedBytes: this.closedBytes,
      dropped
    }
  }

  // ---- local events ---------------------------------------------------------------------

  subscribe (pattern: string): void { this.apply(this.core.localSubscribe(pattern, Date.now())) }
  unsubscribe (pattern: string): void { this.apply(this.core.localUnsubscribe(pattern, Date.now())) }

  /** A local agent's topic or broadcast envelope (already delivered locally by the router). */
  publish (env: Envelope): void {
    const actions = this.core.publish(this.messageOf(env, 0), Date.now())
    this.apply(actions, undefined, false)
  }

  private messageOf (env: Envelope, hops: number): DataMessage<Envelope> {
    const expiresAt = env.ts + env.ttl * 1000 + this.init.clockSkewMs
    return env.mode === 'broadcast'
      ? { id: env.id, broadcast: true, hops, maxHops: env.hops, expiresAt, payload: env }
      : { id: env.id, topic: env.topic, hops, maxHops: env.hops, expiresAt, payload: env }
  }

  // ---- frames in ------------------------------------------------------------------------

  onData (peer: string, frame: DataFrame): void {
    this.admitted(peer, this.init.admit(frame.e, frame.h, peer), frame.h, frame.x)
  }

  /**
   * A batch frame (PROTOCOL.md section 8.2.1): one signature check for all the envelopes it
   * carries (none when the root was verified before), then each envelope goes on as if it
   * had come in a data frame of its own. Copies forwarded from here travel in batch frames
   * again, grouped by next hop.
   */
  onBatch (peer: string, frame: BatchFrame): void {
    const res = checkBatch(frame.s, frame.l, frame.h, this.init.ingress)
    if (!res.ok) {
      this.init.reject(res.reason, res.detail, peer)
      return
    }
    // The envelopes admitted at once go to the core together: one set of actions per frame.
    const now: Array<DataMessage<Envelope>> = []
    for (const r of res.results) {
      if (!r.ok) { this.init.reject(r.reason, r.detail, peer, r.id); continue }
      const env = this.init.admitChecked(r.envelope, peer)
      if (env === undefined) continue
      if (env instanceof Promise) this.admitted(peer, env, frame.h, frame.x)
      else now.push(this.messageOf(env, frame.h))
    }
    if (now.length > 0) this.apply(this.core.receiveData(peer as NodeId, now, frame.x, Date.now()), peer)
    this.flushGroups()
  }

  private admitted (peer: string, env: Envelope | undefined | Promise<Envelope | undefined>, hops: number, labels: number[] | undefined): void {
    if (env === undefined) return
    if (env instanceof Promise) {
      // Only envelopes naming a schema wait (validation, maybe a registry fetch).
      void env.then((e) => { if (e !== undefined && !this.stopped) this.receiveData(peer, hops, labels, e) })
      return
    }
    this.receiveData(peer, hops, labels, env)
  }

  private receiveData (peer: string, hops: number, labels: number[] | undefined, env: Envelope): void {
    this.apply(this.core.receive(peer as NodeId, { kind: 'data', message: this.messageOf(env, hops), targets: labels }, Date.now()), peer)
  }

  onControl (peer: string, frame: ControlFrame | BatchFrame): void {
    if (frame.t === FRAME_BATCH) { this.onBatch(peer, frame); return }
    const p = this.core.params
    const decoded = decodeControlFrame(frame, { maxRecordsPerFrame: p.maxRecordsPerFrame, maxPatternsPerRecord: p.maxPatternsPerRecord })
    if (decoded === undefined) {
      this.init.reject('malformed', `dissemination frame t=${frame.t} is not well formed`, peer)
      return
    }
    let core: Frame<Envelope> = decoded
    if (decoded.kind === 'interest') {
      // A forged record would attract traffic: only records their origin signed go on.
      const records = decoded.records.filter(r => {
        if (this.signatures.verify(r)) return true
        this.init.reject('bad-signature', `interest record of ${r.origin} seq ${r.seq} is not signed by its origin`, peer)
        return false
      })
      if (records.length === 0 && decoded.records.length > 0) return
      core = { kind: 'interest', records }
    }
    this.apply(this.core.receive(peer as NodeId, core, Date.now()), peer)
  }

  // ---- actions --------------------------------------------------------------------------

  private apply (a: Actions<Envelope>, from?: string, deliver: boolean = true): void {
    if (this.stopped) return
    if (a.send.length > 0) {
      let last: Frame<Envelope> | undefined
      let bytes: Uint8Array | undefined
      for (const s of a.send) {
        const link = this.linkOf(s.to)
        if (link === undefined) continue
        const f = s.frame
        if (f.kind === 'data' && link.queuedBytes > MAX_LINK_QUEUE_BYTES) {
          if (this.overflowDrops++ % 10_000 === 0) this.init.logger.warn({ peer: s.to, dropped: this.overflowDrops }, 'link queue full: dropping topic copies')
          continue
        }
        if (f.kind === 'data' && from !== undefined) this.init.relayed?.(f.message.payload, s.to)
        if (f.kind === 'data' && this.group(s.to, link, f.message, f.targets)) continue
        // Frames on a link keep their order: the batch frames opened before this one go first.
        if (this.groups.size > 0) this.flushGroups(s.to)
        // A flood shares one frame object between neighbours: encode it once.
        if (f !== last) { bytes = encode(f); last = f }
        link.push(bytes as Uint8Array, f.kind === 'data' ? f.message.payload.prio : CONTROL_PRIORITY)
      }
    }
    if (deliver) for (const m of a.deliver) this.init.deliver(m.payload, from ?? '')
    for (const d of a.dropped) this.onDrop(d.reason, d.from, d.ref)
    this.schedule()
  }

  // ---- batch frames out --------------------------------------------------------------------

  /**
   * Adds a copy of a batch-signed envelope to the batch frame open for its neighbour, hops,
   * labels and priority (opening one, and writing out one of another batch under the same
   * key). False when it must travel alone: not part of a batch this node holds, or large.
   */
  private group (to: string, link: FrameLink, m: DataMessage<Envelope>, labels: readonly number[] | undefined): boolean {
    const env = m.payload
    const batch = batchOf(env)
    if (batch === undefined) return false
    const i = leafIndexOf(env)
    const size = batch.unsigned[i]?.length ?? Number.POSITIVE_INFINITY
    if (size > MAX_GROUPED_ENVELOPE) return false
    // A copy usually goes where a recent one went (same neighbour, hops, labels array,
    // priority and batch) — with several neighbours, the copies of one message go to one
    // group each, and the next message's copies to the same groups: append to that frame
    // without building its key.
    const recent = this.recent
    for (let r = recent.length - 1; r >= 0; r--) {
      const g = recent[r]
      if (g.open && g.batch === batch && g.to === to && g.link === link && g.hops === m.hops && g.prio === env.prio &&
          g.labels === labels && g.bytes + size <= MAX_BATCH_FRAME_CARRIED) {
        g.leaves.push(i)
        g.bytes += size
        return true
      }
    }
    const key = `${to}\u0000${m.hops}\u0000${env.prio}\u0000${labels === undefined ? '*' : labels.join(',')}`
    let g = this.groups.get(key)
    if (g !== undefined && (g.batch !== batch || g.bytes + size > MAX_BATCH_FRAME_CARRIED || g.link !== link)) {
      this.groups.delete(key)
      this.writeGroup(g)
      g = undefined
    }
    if (g === undefined) {
      g = { key, to, link, batch, hops: m.hops, labels, prio: env.prio, leaves: [], bytes: 0, open: true }
      this.groups.set(key, g)
      if (!this.groupsScheduled) {
        this.groupsScheduled = true
        queueMicrotask(() => { this.flushGroups() })
      }
    }
    g.leaves.push(i)
    g.bytes += size
    if (!recent.includes(g)) {
      if (recent.length >= RECENT_GROUPS) recent.shift()
      recent.push(g)
    }
    return true
  }

  /** Writes out the open batch frames (those to `to` only, when given). */
  private flushGroups (to?: string): void {
    if (to === undefined) { this.groupsScheduled = false; this.recent = [] }
    for (const [key, g] of this.groups) {
      if (to !== undefined && g.to !== to) continue
      this.groups.delete(key)
      this.writeGroup(g)
    }
    if (this.groups.size === 0) this.lastFrame = undefined
  }

  /**
   * Writes a group's batch frame. A publisher's copies of one batch go to each neighbour
   * with the same leaves and hops, and their frames differ only in the labels at the end: a
   * frame that carries what the frame written last carried is that frame's bytes — up to the
   * labels, with this neighbour's after them (two pieces the link writes as one frame) —
   * instead of every leaf encoded again for each neighbour.
   */
  private writeGroup (g: Group): void {
    g.open = false
    if (this.stopped || g.link.isClosed) return
    const last = this.lastFrame
    if (last !== undefined && last.batch === g.batch && last.hops === g.hops && sameNumbers(last.leaves, g.leaves)) {
      if (sameLabels(last.labels, g.labels)) { g.link.push(last.bytes, g.prio); return }
      if (last.labels !== undefined && g.labels !== undefined) {
        last.common ??= last.bytes.subarray(0, last.bytes.length - labelsSize(last.labels))
        g.link.push(last.common, g.prio, undefined, labelsEntry(g.labels))
        return
      }
    }
    const b = g.batch
    const elements = b.leaves.slice()
    for (const i of g.leaves) elements[i] = b.unsigned[i] as Uint8Array
    const bytes = encodeBatchFrame(g.hops, b.sig, elements, g.labels)
    this.lastFrame = { batch: b, hops: g.hops, leaves: g.leaves, labels: g.labels, bytes, common: undefined }
    g.link.push(bytes, g.prio)
  }

  private onDrop (reason: DropReason, from?: string, ref?: string): void {
    switch (reason) {
      case 'expired': case 'hop-limit': case 'malformed':
        this.init.reject(reason, `dissemination: ${reason}`, from, ref)
        break
      case 'not-neighbour':
        this.init.reject('malformed', 'dissemination frame from a peer that is not a neighbour', from, ref)
        break
      default:
        // Routing state, not a bad envelope: counted by the core (counters.dropped).
        this.init.logger.debug({ reason, from, ref }, 'dissemination drop')
    }
  }

  private schedule (): void {
    const at = this.core.nextTickAt()
    if (at >= this.timerAt || at === Number.POSITIVE_INFINITY || this.stopped) return
    clearTimeout(this.timer)
    this.timerAt = at
    this.timer = setTimeout(() => {
      this.timerAt = Number.POSITIVE_INFINITY
      this.timer = undefined
      this.apply(this.core.tick(Date.now()))
    }, Math.max(0, at - Date.now()))
    this.timer.unref()
  }
}

/** Whether two lists of numbers (a group's leaves, its labels) are the same, in order. */
function sameNumbers (a: readonly number[], b: readonly number[]): boolean {
  if (a === b) return true
  if (a.length !== b.length) return false
  for (let k = 0; k < a.length; k++) if (a[k] !== b[k]) return false
  return true
}

function sameLabels (a: readonly number[] | undefined, b: readonly number[] | undefined): boolean {
  return a === undefined || b === undefined ? a === b : sameNumbers(a, b)
}

function encode (f: Frame<Envelope>): Uint8Array {
  if (f.kind === 'data') return encodeDataFrame(f.message.hops, f.message.payload.bytes, f.targets)
  return encodeControlFrame(f)
}
