/**
 * The two measurements, orchestrator side. Each runs its two clients as separate worker
 * processes (workers/client.ts), moves them through their phases over IPC, and stops them
 * whatever happens. Every wait has a deadline.
 */
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { forkScript, type WorkerProc } from './proc.ts'
import { summarize } from './stats.ts'
import { SYSTEMS } from '../systems/index.ts'
import type {
  BrokerInfo, Contact, FanoutReport, FanoutResult, LatencyResult, PublisherReport, RequesterReport, Role, SubscriberReport,
  ThroughputResult, WorkerInit
} from './types.ts'

const WORKER_SCRIPT = new URL('../workers/client.ts', import.meta.url)

/** Starting a client: process start, module load, connect (a fedmesh node, a libp2p node). */
const READY_TIMEOUT_MS = 30_000
/** Finding the peer: the worker's own probing gives up after 30 s; this is the backstop. */
const CONNECT_TIMEOUT_MS = 40_000
/** Extra time for a publisher to flush, or a requester to warm up, beyond the measured window. */
const SLACK_MS = 30_000
/** A requester's warm-up, at most (workers/client.ts WARMUP_MAX_MS). */
const WARMUP_MAX_MS = 5000
/** The subscriber calls the stream over after this long without a message. */
const QUIET_MS = 1000

export interface MeasureOptions {
  /** Measured window per measurement. */
  durationMs: number
  /** Payload size, bytes. */
  size: number
  /** Upper bound on messages published in the throughput window. */
  maxMessages: number
  /** Upper bound on measured round trips. */
  maxRequests: number
  /** Per-request timeout. */
  requestTimeoutMs: number
}

export interface Target {
  system: string
  broker: BrokerInfo | null
  /** Scratch directory of this system's run. */
  dir: string
}

function startWorker (target: Target, role: Role, size: number, peer?: Contact, extra: Partial<WorkerInit> = {}, label: string = role): WorkerProc {
  const dir = join(target.dir, label)
  mkdirSync(dir, { recursive: true })
  const init: WorkerInit = { system: target.system, role, broker: target.broker, peer, dir, size, ...extra }
  return forkScript(`${target.system} ${label}`, WORKER_SCRIPT, [JSON.stringify(init)], SYSTEMS.find(s => s.name === target.system))
}

/** One publisher → one subscriber; rate = messages received / subscriber's receive window. */
export async function measureThroughput (target: Target, opts: MeasureOptions): Promise<ThroughputResult> {
  const sub = startWorker(target, 'sub', opts.size)
  let pub: WorkerProc | undefined
  try {
    const { contact } = await sub.next('ready', READY_TIMEOUT_MS)
    pub = startWorker(target, 'pub', opts.size, contact)
    await pub.next('ready', READY_TIMEOUT_MS)
    await sub.next('probe-seen', CONNECT_TIMEOUT_MS)

    pub.send({ type: 'go', durationMs: opts.durationMs, maxCount: opts.maxMessages, timeoutMs: opts.requestTimeoutMs })
    const p = (await pub.next('result', opts.durationMs + SLACK_MS)).result as PublisherReport
    const drainMs = Math.max(10_000, 2 * opts.durationMs)
    sub.send({ type: 'drain', sent: p.sent, quietMs: QUIET_MS, maxMs: drainMs })
    const s = (await sub.next('result', drainMs + SLACK_MS)).result as SubscriberReport
    if (s.badSize > 0) throw new Error(`${s.badSize} messages arrived with a size other than ${opts.size} bytes`)

    const windowMs = s.lastAt - s.firstAt
    return {
      msgsPerSec: s.received > 1 && windowMs > 0 ? (s.received - 1) / windowMs * 1000 : 0,
      sent: p.sent,
      received: s.received,
      loss: p.sent > 0 ? Math.max(0, p.sent - s.distinct) / p.sent : 0,
      duplicates: s.duplicates,
      complete: s.distinct === p.sent && s.duplicates === 0,
      windowMs,
      sendRate: p.elapsedMs > 0 ? p.sent / p.elapsedMs * 1000 : 0
    }
  } finally {
    await Promise.all([pub?.stop(), sub.stop()])
  }
}

/** The fan-out layout: subscribers spread round-robin over processes; process 0 also publishes. */
export interface FanoutLayout { subscribers: number, processes: number }
export const DEFAULT_FANOUT: FanoutLayout = { subscribers: 10, processes: 3 }

/** Subscribers hosted by process `i` when `n` subscribers are dealt round-robin over `processes`. */
export function subscribersOf (i: number, layout: FanoutLayout): number {
  return Math.floor(layout.subscribers / layout.processes) + (i < layout.subscribers % layout.processes ? 1 : 0)
}

/**
 * One publisher → `layout.subscribers` subscribers over `layout.processes` processes
 * (fedmesh and libp2p: one node per process, the others bootstrap from process 0).
 * Rate = all deliveries ÷ the delivery window (first delivery anywhere → last anywhere).
 */
export async function measureFanout (target: Target, opts: MeasureOptions, layout: FanoutLayout = DEFAULT_FANOUT): Promise<FanoutResult> {
  const workers: WorkerProc[] = []
  const start = (i: number, peer?: Contact): WorkerProc => {
    const w = startWorker(target, 'fanout', opts.size, peer, { subscribers: subscribersOf(i, layout), publisher: i === 0 }, `fanout-${i}`)
    workers.push(w)
    return w
  }
  try {
    const first = start(0)
    const { contact } = await first.next('ready', READY_TIMEOUT_MS)
    for (let i = 1; i < layout.processes; i++) start(i, contact)
    await Promise.all(workers.slice(1).map(async w => await w.next('ready', READY_TIMEOUT_MS)))
    await Promise.all(workers.map(async w => await w.next('probe-seen', CONNECT_TIMEOUT_MS)))

    first.send({ type: 'go', durationMs: opts.durationMs, maxCount: opts.maxMessages, timeoutMs: opts.requestTimeoutMs })
    const p = (await first.next('published', opts.durationMs + SLACK_MS)).result
    const drainMs = Math.max(10_000, 2 * opts.durationMs)
    for (const w of workers) w.send({ type: 'drain', sent: p.sent, quietMs: QUIET_MS, maxMs: drainMs })
    const reports = await Promise.all(workers.map(async w => (await w.next('result', drainMs + SLACK_MS)).result as FanoutReport))
    const subs = reports.flatMap(r => r.subscribers)
    const badSize = subs.reduce((n, s) => n + s.badSize, 0)
    if (badSize > 0) throw new Error(`${badSize} messages arrived with a size other than ${opts.size} bytes`)
    return fanoutResult(subs, p, layout)
  } finally {
    await Promise.all(workers.map(async w => { await w.stop() }))
  }
}

/** Pure: the fan-out figures from the subscribers' tallies and the publisher's report. */
export function fanoutResult (subs: SubscriberReport[], p: PublisherReport, layout: FanoutLayout): FanoutResult {
  const delivered = subs.reduce((n, s) => n + s.received, 0)
  const distinct = subs.reduce((n, s) => n + s.distinct, 0)
  const duplicates = subs.reduce((n, s) => n + s.duplicates, 0)
  const active = subs.filter(s => s.received > 0)
  const firstAt = Math.min(...active.map(s => s.firstAt))
  const lastAt = Math.max(...active.map(s => s.lastAt))
  const windowMs = active.length > 0 ? lastAt - firstAt : 0
  const expected = p.sent * subs.length
  return {
    msgsPerSec: delivered > 1 && windowMs > 0 ? (delivered - 1) / windowMs * 1000 : 0,
    subscribers: subs.length,
    processes: layout.processes,
    sent: p.sent,
    delivered,
    loss: expected > 0 ? Math.max(0, expected - distinct) / expected : 0,
    duplicates,
    complete: subs.length === layout.subscribers && subs.every(s => s.distinct === p.sent && s.duplicates === 0),
    minPerSubscriber: subs.length > 0 ? Math.min(...subs.map(s => s.distinct)) : 0,
    windowMs,
    sendRate: p.elapsedMs > 0 ? p.sent / p.elapsedMs * 1000 : 0
  }
}

/** Sequential round trips, one in flight, from a requester to a responder process. */
export async function measureRequestReply (target: Target, opts: MeasureOptions): Promise<LatencyResult> {
  const responder = startWorker(target, 'responder', opts.size)
  let requester: WorkerProc | undefined
  try {
    const { contact } = await responder.next('ready', READY_TIMEOUT_MS)
    requester = startWorker(target, 'requester', opts.size, contact)
    await requester.next('ready', READY_TIMEOUT_MS)
    requester.send({ type: 'go', durationMs: opts.durationMs, maxCount: opts.maxRequests, timeoutMs: opts.requestTimeoutMs })
    // Warm-up (≤ 30 s of probing, then ≤ 5 s of round trips and one timeout), the window, and one last timeout.
    const budget = CONNECT_TIMEOUT_MS + WARMUP_MAX_MS + 2 * opts.requestTimeoutMs + opts.durationMs + SLACK_MS
    const r = (await requester.next('result', budget)).result as RequesterReport
    if (r.mismatches > 0) throw new Error(`${r.mismatches} replies did not match their request`)
    if (r.latenciesMs.length === 0) throw new Error(`no round trip completed (${r.timeouts} timed out)`)
    const s = summarize(r.latenciesMs)
    return { count: s.count, timeouts: r.timeouts, meanMs: s.mean, p50Ms: s.p50, p99Ms: s.p99, maxMs: s.max }
  } finally {
    await Promise.all([requester?.stop(), responder.stop()])
  }
}
