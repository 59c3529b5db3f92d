/**
 * One benchmark client in its own OS process: subscriber, publisher, responder or requester
 * of one system. Started by lib/measure.ts with a JSON `WorkerInit` as argv[2]; takes
 * commands and reports over IPC (lib/types.ts: ToWorker / FromWorker). Exits when told to
 * stop or when the orchestrator goes away. Every loop is bounded in count and time.
 */
import { setTimeout as sleep } from 'node:timers/promises'
import { loadSystem } from '../systems/index.ts'
import { emulatedRpc } from '../lib/rpc.ts'
import { KIND_DATA, KIND_PROBE, KIND_REPLY, kindOf, makePayload, replyTo, seqOf } from '../lib/payload.ts'
import type {
  Endpoint, FanoutReport, FromWorker, PublisherReport, RequesterReport, SubscriberReport, System, ToWorker, WorkerInit
} from '../lib/types.ts'

/** How long a publisher probes (or a requester retries) before giving up on its peer. */
const CONNECT_TIMEOUT_MS = 30_000
const PROBE_INTERVAL_MS = 20
/**
 * Round trips made before measuring, the same for every system: enough for V8 to have
 * compiled the hot paths of the JavaScript clients (and fedmesh's nodes), so the measured
 * window shows a running system, not its first seconds. After 500 or 1,000, V8 was still
 * compiling hot functions on its worker threads through the window (a quarter of a core per
 * process; PERFORMANCE.md, "Request–reply tail, session 8"). Bounded in time as well.
 */
const WARMUP_REQUESTS = 8000
const WARMUP_MAX_MS = 5000
/** The publisher yields to the event loop every this many messages, so I/O keeps flowing. */
const YIELD_EVERY = 256

const init = JSON.parse(process.argv[2] ?? '{}') as WorkerInit
let endpoint: Endpoint | undefined

function report (msg: FromWorker): void { process.send?.(msg) }

// ---- commands from the orchestrator ---------------------------------------------------------

const commands: ToWorker[] = []
let wake: (() => void) | undefined

process.on('message', (m: ToWorker) => {
  if (m.type === 'stop') void shutdown(0)
  else { commands.push(m); wake?.() }
})
// The orchestrator died or closed the channel: nobody is measuring any more.
process.on('disconnect', () => { void shutdown(1) })

/** Removes and returns a queued command of `type`, or undefined. */
function take<T extends ToWorker['type']> (type: T): Extract<ToWorker, { type: T }> | undefined {
  const i = commands.findIndex(c => c.type === type)
  return i >= 0 ? commands.splice(i, 1)[0] as Extract<ToWorker, { type: T }> : undefined
}

async function command<T extends ToWorker['type']> (type: T): Promise<Extract<ToWorker, { type: T }>> {
  for (;;) {
    const c = take(type)
    if (c != null) return c
    await new Promise<void>(resolve => { wake = resolve })
  }
}

let stopping = false
async function shutdown (code: number): Promise<void> {
  if (stopping) return
  stopping = true
  const closing = Promise.all([endpoint, ...extra].map(async e => await e?.close().catch(() => {})))
  await Promise.race([closing, sleep(3000)])
  process.exit(code)
}

// ---- roles ----------------------------------------------------------------------------------

/** Absolute time in ms, comparable between the worker processes of one measurement. */
const now = (): number => performance.timeOrigin + performance.now()

/**
 * One subscriber's tally: every data message counted, distinct sequence numbers tracked in
 * a bitset (so a loss or a duplicate is seen, not guessed from totals).
 */
class Tally {
  received = 0
  distinct = 0
  duplicates = 0
  badSize = 0
  firstAt = 0
  lastAt = 0
  probeSeen = false
  private seen = new Uint8Array(1 << 16)

  /** The handler to subscribe with; `onFirstProbe` runs once, on the first probe. */
  handler (onFirstProbe: () => void): (payload: Uint8Array) => void {
    return (payload) => {
      const kind = kindOf(payload)
      if (kind === KIND_DATA) {
        const t = now()
        if (this.received === 0) this.firstAt = t
        this.lastAt = t
        this.received++
        if (payload.length !== init.size) this.badSize++
        this.mark(seqOf(payload))
      } else if (kind === KIND_PROBE && !this.probeSeen) {
        this.probeSeen = true
        onFirstProbe()
      }
    }
  }

  private mark (seq: number): void {
    const byte = seq >>> 3
    if (byte >= this.seen.length) {
      const grown = new Uint8Array(Math.max(byte + 1, this.seen.length * 2))
      grown.set(this.seen)
      this.seen = grown
    }
    const bit = 1 << (seq & 7)
    if ((this.seen[byte] & bit) !== 0) this.duplicates++
    else { this.seen[byte] |= bit; this.distinct++ }
  }

  report (): SubscriberReport {
    const { received, distinct, duplicates, firstAt, lastAt, badSize } = this
    return { received, distinct, duplicates, firstAt, lastAt, badSize }
  }
}

/** Waits for the stragglers: until every tally has all `sent`, the streams have been quiet, or time is up. */
async function drain (tallies: Tally[]): Promise<void> {
  const { sent, quietMs, maxMs } = await command('drain')
  const start = now()
  for (;;) {
    const t = now()
    const lastAt = Math.max(start, ...tallies.map(x => x.lastAt))
    if (tallies.every(x => x.distinct >= sent) || t - lastAt > quietMs || t - start > maxMs) break
    await sleep(20)
  }
}

async function subscriber (ep: Endpoint): Promise<SubscriberReport> {
  const tally = new Tally()
  await ep.subscribe('data', tally.handler(() => { report({ type: 'probe-seen' }) }))
  report({ type: 'ready', contact: ep.contact })
  await drain([tally])
  return tally.report()
}

/** Probes until the orchestrator says go (every subscriber has seen a probe), then sends for the window. */
async function publish (ep: Endpoint): Promise<PublisherReport> {
  // Probing covers subscription propagation and, for gossipsub, the peer's subscription
  // reaching us.
  let probes = 0
  const deadline = Date.now() + CONNECT_TIMEOUT_MS
  let go = take('go')
  while (go == null) {
    if (Date.now() > deadline) throw new Error(`subscribers saw none of ${probes} probes in ${CONNECT_TIMEOUT_MS} ms`)
    try { await ep.publish('data', makePayload(init.size, KIND_PROBE, probes)) } catch { /* not connected yet */ }
    probes++
    await sleep(PROBE_INTERVAL_MS)
    go = take('go')
  }

  const start = performance.now()
  const end = start + go.durationMs
  let sent = 0
  while (sent < go.maxCount) {
    if (sent % YIELD_EVERY === 0) {
      if (performance.now() >= end) break
      await new Promise(resolve => setImmediate(resolve))
    }
    const wait = ep.publish('data', makePayload(init.size, KIND_DATA, sent))
    if (wait !== undefined) await wait
    sent++
  }
  const elapsedMs = performance.now() - start
  await ep.flush()
  return { sent, elapsedMs, probes }
}

async function publisher (ep: Endpoint): Promise<PublisherReport> {
  report({ type: 'ready', contact: ep.contact })
  return await publish(ep)
}

/** Extra clients of a fan-out worker (one connection per subscriber); closed with the worker. */
const extra: Endpoint[] = []

/**
 * Fan-out: this process hosts `init.subscribers` subscribers — further agents or handlers on
 * its one client when the system has `addSubscriber`, else one client (connection) each — and
 * the publisher when `init.publisher`.
 */
async function fanout (system: System, ep: Endpoint): Promise<FanoutReport> {
  const tallies = Array.from({ length: init.subscribers ?? 0 }, () => new Tally())
  let seen = 0
  const onFirstProbe = (): void => { if (++seen === tallies.length) report({ type: 'probe-seen' }) }
  for (const tally of tallies) {
    if (ep.addSubscriber != null) {
      await ep.addSubscriber('data', tally.handler(onFirstProbe))
    } else {
      const own = await system.connect({ broker: init.broker, role: 'sub', peer: init.peer, dir: init.dir })
      extra.push(own)
      await own.subscribe('data', tally.handler(onFirstProbe))
    }
  }
  if (tallies.length === 0) report({ type: 'probe-seen' })
  report({ type: 'ready', contact: ep.contact })
  let pub: PublisherReport | undefined
  if (init.publisher === true) {
    pub = await publish(ep)
    report({ type: 'published', result: pub })
  }
  await drain(tallies)
  return { subscribers: tallies.map(t => t.report()), publisher: pub }
}

async function responder (ep: Endpoint): Promise<void> {
  await (ep.rpc ?? emulatedRpc(ep)).serve(replyTo)
  report({ type: 'ready', contact: ep.contact })
}

async function requester (ep: Endpoint): Promise<RequesterReport> {
  const rpc = ep.rpc ?? emulatedRpc(ep)
  report({ type: 'ready', contact: ep.contact })
  const { durationMs, maxCount, timeoutMs } = await command('go')

  // First round trip: retried until the path exists (subscriptions, mesh, agent lookup).
  let seq = 0
  const deadline = Date.now() + CONNECT_TIMEOUT_MS
  for (;;) {
    try {
      await rpc.request(makePayload(init.size, KIND_PROBE, seq++), Math.min(1000, timeoutMs))
      break
    } catch (err) {
      if (Date.now() > deadline) throw new Error(`no reply to any of ${seq} probe requests in ${CONNECT_TIMEOUT_MS} ms: ${(err as Error).message}`)
      await sleep(PROBE_INTERVAL_MS)
    }
  }
  const warmEnd = performance.now() + WARMUP_MAX_MS
  for (let i = 0; i < WARMUP_REQUESTS && performance.now() < warmEnd; i++) {
    await rpc.request(makePayload(init.size, KIND_PROBE, seq++), timeoutMs).catch(() => {})
  }

  const latenciesMs: number[] = []
  let timeouts = 0
  let mismatches = 0
  const end = performance.now() + durationMs
  for (let i = 0; i < maxCount && performance.now() < end; i++) {
    const request = makePayload(init.size, KIND_DATA, seq++)
    const t0 = performance.now()
    try {
      const reply = await rpc.request(request, timeoutMs)
      latenciesMs.push(performance.now() - t0)
      if (kindOf(reply) !== KIND_REPLY || seqOf(reply) !== seqOf(request) || reply.length !== request.length) mismatches++
    } catch {
      timeouts++
    }
  }
  return { latenciesMs, timeouts, mismatches }
}

// ---- main -----------------------------------------------------------------------------------

try {
  const system = await loadSystem(init.system)
  endpoint = await system.connect({ broker: init.broker, role: init.role, peer: init.peer, dir: init.dir })
  switch (init.role) {
    case 'fanout': report({ type: 'result', result: await fanout(system, endpoint) }); break
    case 'sub': report({ type: 'result', result: await subscriber(endpoint) }); break
    case 'pub': report({ type: 'result', result: await publisher(endpoint) }); break
    case 'responder': await responder(endpoint); break
    case 'requester': report({ type: 'result', result: await requester(endpoint) }); break
  }
  // Stay up (the responder serves) until the orchestrator says stop.
} catch (err) {
  const e = err as Error
  report({ type: 'error', message: e.stack ?? e.message })
  setTimeout(() => { void shutdown(1) }, 100)
}
