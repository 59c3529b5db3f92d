/**
 * A discrete-event network simulator running the unchanged dissemination core
 * (src/dissemination) on every node of a random overlay: per-link latency and jitter,
 * frame loss, partitions that split and heal, churn (nodes leaving and coming back with
 * fresh state). One seeded generator per concern (overlay, links, workload, partitions,
 * churn), so a run is a pure function of its config. Everything is bounded: events
 * (`maxEvents`), interest state (`maxInterestEntries`), delivery bookkeeping.
 *
 * @example
 * ```ts
 * const r = runSimulation({ nodes: 200, messages: 20, seed: 7 })
 * r.deliveryRatio // 1
 * r.latency.p95   // ms
 * ```
 */
import { InvalidArgumentError } from '../core/errors.ts'
import type { MessageId, Topic } from '../core/ids.ts'
import { createDisseminator, type Disseminator } from '../dissemination/disseminator.ts'
import { DROP_REASONS, type Actions, type DropReason, type Frame, type NodeId } from '../dissemination/types.ts'
import { createSimConfig, endOfRun, subscriberCount, type SimConfig } from './config.ts'
import { EventQueue } from './heap.ts'
import { hopDistances, randomOverlay, type Overlay } from './overlay.ts'
import { createPrng, shuffle } from './prng.ts'
import { cdfPoints, summarizeSorted, type LatencySummary } from './stats.ts'

export interface SimResult {
  seed: number
  nodes: number
  degree: number
  mode: SimConfig['mode']
  /** Subscribing nodes (topic mode); every node is a receiver in broadcast mode. */
  subscribers: number
  latencyMs: number
  jitterMs: number
  loss: number
  overlay: { edges: number, meanDegree: number, minDegree: number, maxDegree: number, diameterFromNode0: number }
  messages: number
  /** (message, receiver) pairs that should have been delivered. */
  intended: number
  /** Of those, delivered within drainMs of publication. */
  delivered: number
  deliveryRatio: number
  /** The lowest delivery ratio of a single message. */
  worstMessageRatio: number
  /** Per message: publication time, intended receivers, deliveries within drainMs. */
  perMessage: Array<{ at: number, intended: number, delivered: number }>
  /** Deliveries of a message a node had already delivered (must be 0). */
  duplicates: number
  /** Deliveries to nodes without a matching subscription (must be 0). */
  unwanted: number
  /** Time from publication to delivery, over delivered pairs (ms). */
  latency: LatencySummary
  /**
   * Path stretch: delivery latency over the latency of a shortest path (hops × latencyMs) at
   * publication time; 1 means every copy took a shortest path. Null without link latency.
   */
  stretch: { mean: number, max: number } | null
  /** Latency CDF as [ms, fraction of delivered pairs], thinned. */
  cdf: Array<[number, number]>
  /** Data frames sent for the measured messages. */
  dataFrames: number
  /** dataFrames / delivered. */
  overhead: number
  control: { interestFrames: number, records: number, lostFrames: number, requestFrames: number }
  /** Frames dropped by the loss model. */
  framesLost: number
  /** Frames on a link that was down when sent or went down in flight. */
  framesOnDeadLinks: number
  drops: Record<DropReason, number>
  churn: { leaves: number, joins: number }
  /** Origins held per node at the end (interest state). */
  originsPerNode: { mean: number, max: number }
  events: number
  endedAt: number
  /** True when maxEvents stopped the run early. */
  truncated: boolean
}

export interface SimHooks {
  /** Called every `progressEvery` events with the simulated time. */
  onProgress?: (simTimeMs: number, events: number) => void
  progressEvery?: number
  /** Called once at the end with every node's state machine (undefined: down), for inspection. */
  onEnd?: (nodes: ReadonlyArray<Disseminator<number> | undefined>) => void
}

const K_FRAME = 0
const K_TICK = 1
const K_PUBLISH = 2
const K_SUBSCRIBE = 3
const K_JOIN = 4
const K_CUT = 5
const K_HEAL = 6
const K_CHURN = 7

class Ev {
  t: number
  s = 0
  kind: number
  /** Receiving node (frames, ticks, subscribe, join), message index (publish), partition index. */
  node: number
  from: number
  edge: number
  /** Link epoch (frames) or node incarnation (ticks, subscribe, join). */
  epoch: number
  frame: Frame<number> | undefined

  constructor (t: number, kind: number, node: number, from: number = -1, edge: number = -1, epoch: number = 0, frame?: Frame<number>) {
    this.t = t; this.kind = kind; this.node = node; this.from = from; this.edge = edge; this.epoch = epoch; this.frame = frame
  }
}

interface MessageTrack {
  publishAt: number
  publisher: number
  receivers: Int32Array
  /** Hop distance from the publisher to each receiver at publication time. */
  hops: Int32Array
  /** Delivery latency per node (NaN: not delivered). */
  at: Float64Array
  sent: number
}

/** Subscription patterns matching `topic`: the topic itself and wildcards over it. */
function patternsFor (topic: string): string[] {
  const levels = topic.split('/')
  if (levels.length < 2) return [topic, '#']
  return [topic, [...levels.slice(0, -1), '*'].join('/'), `${levels[0]}/#`]
}

/** Runs one simulation to its end and returns its figures. Deterministic for a given config. */
export function runSimulation (config: Partial<SimConfig>, hooks: SimHooks = {}): SimResult {
  const cfg = createSimConfig(config)
  if (cfg.messages * cfg.nodes > 50_000_000) {
    throw new InvalidArgumentError('simulation messages × nodes above 50,000,000 (delivery bookkeeping bound)', { details: { field: 'messages' } })
  }
  return new Simulation(cfg, hooks).run()
}

class Simulation {
  private readonly cfg: SimConfig
  private readonly hooks: SimHooks
  private readonly n: number
  private readonly end: number
  private readonly ov: Overlay
  private readonly ids: NodeId[]
  private readonly index = new Map<string, number>()
  private readonly nodes: Array<Disseminator<number> | undefined>
  private readonly incarnation: Int32Array
  private readonly upSince: Float64Array
  private readonly subscribedAt: Float64Array
  private readonly pattern: Array<string | undefined>
  private readonly leaveTimes: number[][]
  private readonly cut: Int32Array
  private readonly edgeEpoch: Int32Array
  private readonly scheduledTick: Float64Array
  private readonly q = new EventQueue<Ev>()
  private readonly linkRng
  private readonly workRng
  private readonly partRng
  private readonly churnRng
  private readonly msgs: MessageTrack[] = []
  private readonly cutEdges: number[][] = []
  private readonly drops = Object.fromEntries(DROP_REASONS.map(r => [r, 0])) as Record<DropReason, number>
  private readonly control = { interestFrames: 0, records: 0, lostFrames: 0, requestFrames: 0 }
  private framesLost = 0
  private framesOnDeadLinks = 0
  private duplicates = 0
  private unwanted = 0
  private leaves = 0
  private joins = 0
  private events = 0

  constructor (cfg: SimConfig, hooks: SimHooks) {
    this.cfg = cfg
    this.hooks = hooks
    this.n = cfg.nodes
    this.end = endOfRun(cfg)
    const root = createPrng(cfg.seed)
    this.ov = randomOverlay(cfg.nodes, cfg.degree, root.fork('overlay'))
    this.linkRng = root.fork('links')
    this.workRng = root.fork('workload')
    this.partRng = root.fork('partitions')
    this.churnRng = root.fork('churn')
    const n = this.n
    this.ids = Array.from({ length: n }, (_, i) => `n${i}` as NodeId)
    this.ids.forEach((id, i) => this.index.set(id, i))
    this.nodes = new Array(n).fill(undefined)
    this.incarnation = new Int32Array(n)
    this.upSince = new Float64Array(n)
    this.subscribedAt = new Float64Array(n).fill(Number.POSITIVE_INFINITY)
    this.pattern = new Array(n).fill(undefined)
    this.leaveTimes = Array.from({ length: n }, () => [])
    this.cut = new Int32Array(this.ov.edges.length)
    this.edgeEpoch = new Int32Array(this.ov.edges.length)
    this.scheduledTick = new Float64Array(n).fill(Number.POSITIVE_INFINITY)
  }

  run (): SimResult {
    const cfg = this.cfg
    // Everyone is up at time 0 with its links.
    for (let i = 0; i < this.n; i++) this.nodes[i] = this.newNode(i)
    for (const [a, b] of this.ov.edges) {
      this.apply(a, this.nodes[a]!.neighbourUp(this.ids[b], 0), 0)
      this.apply(b, this.nodes[b]!.neighbourUp(this.ids[a], 0), 0)
    }
    // Subscribers, each with one of the patterns matching the topic, at random times.
    if (cfg.mode === 'topic') {
      const order = shuffle(Array.from({ length: this.n }, (_, i) => i), this.workRng)
      const patterns = patternsFor(cfg.topic)
      for (const i of order.slice(0, subscriberCount(cfg))) {
        this.pattern[i] = patterns[this.workRng.int(patterns.length)]
        this.q.push(new Ev(this.workRng.next() * cfg.subscribeSpreadMs, K_SUBSCRIBE, i, -1, -1, 0))
      }
    }
    for (let k = 0; k < cfg.messages; k++) this.q.push(new Ev(cfg.warmupMs + k * cfg.intervalMs, K_PUBLISH, k))
    cfg.partitions.forEach((p, k) => {
      this.q.push(new Ev(p.at, K_CUT, k))
      this.q.push(new Ev(p.healAt, K_HEAL, k))
    })
    if (cfg.churn !== undefined && cfg.churn.ratePerSec > 0) this.q.push(new Ev(cfg.churn.from + this.churnGap(), K_CHURN, -1))

    let truncated = false
    let endedAt = 0
    const every = this.hooks.progressEvery ?? 1_000_000
    for (let ev = this.q.pop(); ev !== undefined; ev = this.q.pop()) {
      if (ev.t > this.end) break
      if (++this.events > cfg.maxEvents) { truncated = true; break }
      endedAt = ev.t
      if (this.hooks.onProgress !== undefined && this.events % every === 0) this.hooks.onProgress(ev.t, this.events)
      this.handle(ev)
    }
    this.hooks.onEnd?.(this.nodes)
    return this.result(truncated, endedAt)
  }

  private newNode (i: number): Disseminator<number> {
    return createDisseminator<number>({ self: this.ids[i], params: this.cfg.params })
  }

  private churnGap (): number {
    const rate = (this.cfg.churn as NonNullable<SimConfig['churn']>).ratePerSec
    return -Math.log(1 - this.churnRng.next()) / rate * 1000
  }

  private active (edge: number): boolean {
    const [a, b] = this.ov.edges[edge]
    return this.cut[edge] === 0 && this.nodes[a] !== undefined && this.nodes[b] !== undefined
  }

  private edgeBetween (a: number, b: number): number {
    const ns = this.ov.neighbours[a]
    for (let k = 0; k < ns.length; k++) if (ns[k] === b) return this.ov.edgeIds[a][k]
    return -1
  }

  private handle (ev: Ev): void {
    const now = ev.t
    switch (ev.kind) {
      case K_FRAME: {
        const d = this.nodes[ev.node]
        if (d === undefined || !this.active(ev.edge) || this.edgeEpoch[ev.edge] !== ev.epoch) { this.framesOnDeadLinks++; return }
        this.apply(ev.node, d.receive(this.ids[ev.from], ev.frame as Frame<number>, now), now)
        return
      }
      case K_TICK: {
        const d = this.nodes[ev.node]
        if (d === undefined || ev.epoch !== this.incarnation[ev.node] || this.scheduledTick[ev.node] !== ev.t) return
        this.scheduledTick[ev.node] = Number.POSITIVE_INFINITY
        this.apply(ev.node, d.tick(now), now)
        return
      }
      case K_SUBSCRIBE: {
        const d = this.nodes[ev.node]
        if (d === undefined || ev.epoch !== this.incarnation[ev.node]) return
        this.subscribedAt[ev.node] = now
        this.apply(ev.node, d.localSubscribe(this.pattern[ev.node] as string, now), now)
        return
      }
      case K_PUBLISH: return this.publish(ev.node, now)
      case K_JOIN: return this.join(ev.node, now)
      case K_CUT: return this.partition(ev.node, now)
      case K_HEAL: return this.heal(ev.node, now)
      case K_CHURN: {
        this.leaveRandom(now)
        const next = now + this.churnGap()
        if (next < (this.cfg.churn as NonNullable<SimConfig['churn']>).until) this.q.push(new Ev(next, K_CHURN, -1))
      }
    }
  }

  /** Carries out one node's actions: frames onto links, deliveries into the bookkeeping. */
  private apply (i: number, actions: Actions<number>, now: number): void {
    for (const s of actions.send) {
      const j = this.index.get(s.to)
      const edge = j === undefined ? -1 : this.edgeBetween(i, j)
      const frame = s.frame
      switch (frame.kind) {
        case 'data': this.msgs[frame.message.payload].sent++; break
        case 'interest': this.control.interestFrames++; this.control.records += frame.records.length; break
        case 'lost': this.control.lostFrames++; break
        case 'request': this.control.requestFrames++; break
      }
      if (edge < 0 || !this.active(edge)) { this.framesOnDeadLinks++; continue }
      if (this.cfg.loss > 0 && this.linkRng.next() < this.cfg.loss) { this.framesLost++; continue }
      const delay = this.cfg.latencyMs + (this.cfg.jitterMs > 0 ? this.cfg.jitterMs * this.linkRng.next() : 0)
      this.q.push(new Ev(now + delay, K_FRAME, j as number, i, edge, this.edgeEpoch[edge], frame))
    }
    for (const m of actions.deliver) {
      const track = this.msgs[m.payload]
      const prev = track.at[i]
      if (!Number.isNaN(prev)) {
        // A node that left and came back has fresh state: not a duplicate of the protocol.
        if (track.publishAt + prev >= this.upSince[i]) this.duplicates++
        continue
      }
      track.at[i] = now - track.publishAt
      if (this.cfg.mode === 'topic' && this.subscribedAt[i] > now) this.unwanted++
    }
    for (const d of actions.dropped) this.drops[d.reason]++
    this.scheduleTick(i, now)
  }

  private scheduleTick (i: number, now: number): void {
    const d = this.nodes[i]
    if (d === undefined) return
    const at = Math.max(now, d.nextTickAt())
    if (at < this.scheduledTick[i] && at <= this.end) {
      this.scheduledTick[i] = at
      this.q.push(new Ev(at, K_TICK, i, -1, -1, this.incarnation[i]))
    }
  }

  private publish (k: number, now: number): void {
    const cfg = this.cfg
    let p = -1
    for (let tries = 0; tries < 1000 && p < 0; tries++) {
      const c = this.workRng.int(this.n)
      if (this.nodes[c] !== undefined) p = c
    }
    const track: MessageTrack = { publishAt: now, publisher: p, receivers: new Int32Array(0), hops: new Int32Array(0), at: new Float64Array(this.n).fill(Number.NaN), sent: 0 }
    this.msgs[k] = track
    if (p < 0) return
    // Intended receivers: up and settled, subscribed (topic mode), reachable from the publisher now.
    const dist = hopDistances(this.ov, p, (e) => this.active(e))
    const receivers: number[] = []
    for (let j = 0; j < this.n; j++) {
      if (j === p || dist[j] < 0 || this.upSince[j] > now - cfg.settleMs) continue
      if (cfg.mode === 'topic' && this.subscribedAt[j] > now - cfg.settleMs) continue
      receivers.push(j)
    }
    track.receivers = Int32Array.from(receivers)
    track.hops = Int32Array.from(receivers, j => dist[j])
    const id = `m${k}` as MessageId
    const base = { id, maxHops: cfg.maxHops, expiresAt: now + cfg.ttlMs, payload: k }
    const msg = cfg.mode === 'broadcast' ? { ...base, broadcast: true as const } : { ...base, topic: cfg.topic as Topic }
    this.apply(p, (this.nodes[p] as Disseminator<number>).publish(msg, now), now)
  }

  private leaveRandom (now: number): void {
    let i = -1
    for (let tries = 0; tries < 1000 && i < 0; tries++) {
      const c = this.churnRng.int(this.n)
      if (this.nodes[c] !== undefined) i = c
    }
    if (i < 0) return
    this.leaves++
    this.leaveTimes[i].push(now)
    this.nodes[i] = undefined
    this.subscribedAt[i] = Number.POSITIVE_INFINITY
    this.scheduledTick[i] = Number.POSITIVE_INFINITY
    const ns = this.ov.neighbours[i]
    for (let k = 0; k < ns.length; k++) {
      const j = ns[k]
      const e = this.ov.edgeIds[i][k]
      const d = this.nodes[j]
      if (d === undefined || this.cut[e] !== 0) continue
      this.linkEvent(e, i, j, false, now)
    }
    const churn = this.cfg.churn as NonNullable<SimConfig['churn']>
    this.q.push(new Ev(now + churn.downtimeMs, K_JOIN, i, -1, -1, this.incarnation[i] + 1))
  }

  /** A node comes back with fresh state, links to its overlay neighbours that are up, and resubscribes. */
  private join (i: number, now: number): void {
    if (this.nodes[i] !== undefined) return
    this.joins++
    this.incarnation[i]++
    this.upSince[i] = now
    const d = this.newNode(i)
    this.nodes[i] = d
    const ns = this.ov.neighbours[i]
    for (let k = 0; k < ns.length; k++) {
      const j = ns[k]
      const e = this.ov.edgeIds[i][k]
      const dj = this.nodes[j]
      if (dj === undefined || this.cut[e] !== 0) continue
      this.linkEvent(e, i, j, true, now)
    }
    if (this.pattern[i] !== undefined) {
      this.subscribedAt[i] = now
      this.apply(i, d.localSubscribe(this.pattern[i] as string, now), now)
    }
  }

  /**
   * Edge `e` between `a` and `b` goes up or down: a new epoch (frames in flight on the old
   * link are dropped) and the news for each end that is currently a live node, `a` first.
   */
  private linkEvent (e: number, a: number, b: number, up: boolean, now: number): void {
    this.edgeEpoch[e]++
    for (const [x, y] of [[a, b], [b, a]]) {
      const d = this.nodes[x]
      if (d !== undefined) this.apply(x, up ? d.neighbourUp(this.ids[y], now) : d.neighbourDown(this.ids[y], now), now)
    }
  }

  private partition (k: number, now: number): void {
    const spec = this.cfg.partitions[k]
    const side = new Uint8Array(this.n)
    const order = shuffle(Array.from({ length: this.n }, (_, i) => i), this.partRng)
    for (const i of order.slice(0, Math.round(spec.fraction * this.n))) side[i] = 1
    const cut: number[] = []
    this.ov.edges.forEach(([a, b], e) => {
      if (side[a] === side[b]) return
      const wasActive = this.active(e)
      this.cut[e]++
      cut.push(e)
      if (!wasActive) return
      this.linkEvent(e, a, b, false, now)
    })
    this.cutEdges[k] = cut
  }

  private heal (k: number, now: number): void {
    for (const e of this.cutEdges[k] ?? []) {
      this.cut[e]--
      if (!this.active(e)) continue
      const [a, b] = this.ov.edges[e]
      this.linkEvent(e, a, b, true, now)
    }
    this.cutEdges[k] = []
  }

  private leftDuring (j: number, from: number, to: number): boolean {
    for (const t of this.leaveTimes[j]) if (t >= from && t <= to) return true
    return false
  }

  private result (truncated: boolean, endedAt: number): SimResult {
    const cfg = this.cfg
    let intended = 0
    let delivered = 0
    let worst = 1
    let dataFrames = 0
    const lat: number[] = []
    const perMessage: SimResult['perMessage'] = []
    let stretchSum = 0
    let stretchMax = 0
    for (const m of this.msgs) {
      if (m === undefined) continue
      dataFrames += m.sent
      let mi = 0
      let md = 0
      m.receivers.forEach((j, k) => {
        if (this.leftDuring(j, m.publishAt, m.publishAt + cfg.drainMs)) return
        mi++
        const l = m.at[j]
        if (Number.isNaN(l) || l > cfg.drainMs) return
        md++
        lat.push(l)
        if (cfg.latencyMs > 0) {
          const st = l / (m.hops[k] * cfg.latencyMs)
          stretchSum += st
          if (st > stretchMax) stretchMax = st
        }
      })
      intended += mi
      delivered += md
      if (mi > 0) worst = Math.min(worst, md / mi)
      perMessage.push({ at: m.publishAt, intended: mi, delivered: md })
    }
    const sorted = Float64Array.from(lat).sort()
    let originsSum = 0
    let originsMax = 0
    let up = 0
    for (const d of this.nodes) {
      if (d === undefined) continue
      const o = d.sizes().origins
      originsSum += o
      originsMax = Math.max(originsMax, o)
      up++
    }
    const degrees = this.ov.neighbours.map(ns => ns.length)
    const dist0 = hopDistances(this.ov, 0)
    const round = (x: number): number => Math.round(x * 1000) / 1000
    return {
      seed: cfg.seed,
      nodes: cfg.nodes,
      degree: cfg.degree,
      mode: cfg.mode,
      subscribers: cfg.mode === 'topic' ? subscriberCount(cfg) : cfg.nodes,
      latencyMs: cfg.latencyMs,
      jitterMs: cfg.jitterMs,
      loss: cfg.loss,
      overlay: {
        edges: this.ov.edges.length,
        meanDegree: round(degrees.reduce((s, x) => s + x, 0) / this.n),
        minDegree: Math.min(...degrees),
        maxDegree: Math.max(...degrees),
        diameterFromNode0: Math.max(...dist0)
      },
      messages: this.msgs.filter(m => m !== undefined && m.publisher >= 0).length,
      intended,
      delivered,
      deliveryRatio: intended > 0 ? delivered / intended : 1,
      worstMessageRatio: worst,
      perMessage,
      duplicates: this.duplicates,
      unwanted: this.unwanted,
      latency: summarizeSorted(sorted),
      stretch: cfg.latencyMs > 0 && delivered > 0 ? { mean: round(stretchSum / delivered), max: round(stretchMax) } : null,
      cdf: cdfPoints(sorted),
      dataFrames,
      overhead: delivered > 0 ? round(dataFrames / delivered) : 0,
      control: { ...this.control },
      framesLost: this.framesLost,
      framesOnDeadLinks: this.framesOnDeadLinks,
      drops: { ...this.drops },
      churn: { leaves: this.leaves, joins: this.joins },
      originsPerNode: { mean: up > 0 ? round(originsSum / up) : 0, max: originsMax },
      events: this.events,
      endedAt,
      truncated
    }
  }
}
