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
import type { Endpoint, FromWorker, PublisherReport, RequesterReport, SubscriberReport, ToWorker, WorkerInit } from '../lib/types.ts'

/** How long a publisher probes (or a requester retries) before giving up on its peer. */
const CONNECT_TIMEOUT_MS = 30_000
const PROBE_INTERVAL_MS = 20
const WARMUP_REQUESTS = 20
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
  const closing = endpoint?.close().catch(() => {})
  await Promise.race([closing, sleep(3000)])
  process.exit(code)
}

// ---- roles ----------------------------------------------------------------------------------

async function subscriber (ep: Endpoint): Promise<SubscriberReport> {
  let received = 0
  let badSize = 0
  let firstAt = 0
  let lastAt = 0
  let probeSeen = false
  await ep.subscribe('data', (payload) => {
    const kind = kindOf(payload)
    if (kind === KIND_DATA) {
      const now = performance.now()
      if (received === 0) firstAt = now
      lastAt = now
      received++
      if (payload.length !== init.size) badSize++
    } else if (kind === KIND_PROBE && !probeSeen) {
      probeSeen = true
      report({ type: 'probe-seen' })
    }
  })
  report({ type: 'ready', contact: ep.contact })

  // Wait for the stragglers: until all arrived, the stream has been quiet, or time is up.
  const { sent, quietMs, maxMs } = await command('drain')
  const start = performance.now()
  for (;;) {
    const now = performance.now()
    if (received >= sent || now - Math.max(lastAt, start) > quietMs || now - start > maxMs) break
    await sleep(20)
  }
  return { received, firstAt, lastAt, badSize }
}

async function publisher (ep: Endpoint): Promise<PublisherReport> {
  report({ type: 'ready', contact: ep.contact })
  // Probe until the subscriber has seen one (the orchestrator then says go): this covers
  // subscription propagation and, for gossipsub, the peer's subscription reaching us.
  let probes = 0
  const deadline = Date.now() + CONNECT_TIMEOUT_MS
  let go = take('go')
  while (go == null) {
    if (Date.now() > deadline) throw new Error(`subscriber saw none of ${probes} probes in ${CONNECT_TIMEOUT_MS} ms`)
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
  for (let i = 0; i < WARMUP_REQUESTS; i++) {
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
