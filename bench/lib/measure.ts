/**
 * The two measurements, orchestrator side. Each runs its two clients as separate worker
 * processes (workers/client.ts), moves them through their phases over IPC, and stops them
 * whatever happens. Every wait has a deadline.
 */
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { forkScript, type WorkerProc } from './proc.ts'
import { summarize } from './stats.ts'
import type {
  BrokerInfo, Contact, LatencyResult, PublisherReport, RequesterReport, Role, SubscriberReport, ThroughputResult, WorkerInit
} from './types.ts'

const WORKER_SCRIPT = new URL('../workers/client.ts', import.meta.url)

/** Starting a client: process start, module load, connect (a fedmesh node, a libp2p node). */
const READY_TIMEOUT_MS = 30_000
/** Finding the peer: the worker's own probing gives up after 30 s; this is the backstop. */
const CONNECT_TIMEOUT_MS = 40_000
/** Extra time for a publisher to flush, or a requester to warm up, beyond the measured window. */
const SLACK_MS = 30_000
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

function startWorker (target: Target, role: Role, size: number, peer?: Contact): WorkerProc {
  const dir = join(target.dir, role)
  mkdirSync(dir, { recursive: true })
  const init: WorkerInit = { system: target.system, role, broker: target.broker, peer, dir, size }
  return forkScript(`${target.system} ${role}`, WORKER_SCRIPT, [JSON.stringify(init)])
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
      loss: p.sent > 0 ? Math.max(0, p.sent - s.received) / p.sent : 0,
      windowMs,
      sendRate: p.elapsedMs > 0 ? p.sent / p.elapsedMs * 1000 : 0
    }
  } finally {
    await Promise.all([pub?.stop(), sub.stop()])
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
    // Warm-up (≤ 30 s of probing + 20 requests), the window, and one last timeout.
    const budget = CONNECT_TIMEOUT_MS + 21 * opts.requestTimeoutMs + opts.durationMs + SLACK_MS
    const r = (await requester.next('result', budget)).result as RequesterReport
    if (r.mismatches > 0) throw new Error(`${r.mismatches} replies did not match their request`)
    if (r.latenciesMs.length === 0) throw new Error(`no round trip completed (${r.timeouts} timed out)`)
    const s = summarize(r.latenciesMs)
    return { count: s.count, timeouts: r.timeouts, meanMs: s.mean, p50Ms: s.p50, p99Ms: s.p99, maxMs: s.max }
  } finally {
    await Promise.all([requester?.stop(), responder.stop()])
  }
}
