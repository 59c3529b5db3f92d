/**
 * One fedmesh node for the soak run (bench/footprint.ts): `sub` subscribes and counts;
 * `pub` publishes at a fixed rate. Every second each prints one JSON line with its RSS,
 * the worst event-loop delay of that second and the messages handled so far.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createNode } from '../../src/index.ts'

const [role, arg, rateText, secondsText] = process.argv.slice(2)
const node = await createNode({ dir: mkdtempSync(join(tmpdir(), 'fm-soak-')), listen: ['/ip4/127.0.0.1/tcp/0'], api: false, bootstrap: role === 'pub' ? [arg] : [] })
const agent = await node.agent(role)
let count = 0
const out = (m: unknown): void => { process.stdout.write(JSON.stringify(m) + '\n') }

if (role === 'sub') {
  void (async () => { for await (const _m of agent.subscribe('soak/#')) count++ })()
  out({ event: 'ready', addr: node.multiaddrs()[0] })
} else {
  out({ event: 'ready' })
}

const delay = monitorEventLoopDelay({ resolution: 10 })
delay.enable()
const seconds = Number(secondsText)
const started = Date.now()
const sampler = setInterval(() => {
  out({ event: 'sample', t: Math.round((Date.now() - started) / 1000), rssMB: Math.round(process.memoryUsage().rss / 1048576 * 10) / 10, maxLoopDelayMs: Math.round(delay.max / 1e5) / 10, count })
  delay.reset()
}, 1000)

if (role === 'pub') {
  // Pub/sub is at-most-once: messages sent before the subscriber's node is known to this one
  // reach no one. Wait for it (bounded) so the soak measures the steady state.
  const pubsub = node.net.services.pubsub
  for (let i = 0; i < 200 && pubsub.getSubscribers('/fedmesh/fedmesh/mesh/1').length === 0; i++) await new Promise(resolve => setTimeout(resolve, 50))
  const rate = Number(rateText)
  const payload = new Uint8Array(256)
  // Paced in 10 ms slices, bounded by the run length.
  const end = started + seconds * 1000
  while (Date.now() < end) {
    const slice = Date.now()
    const n = Math.max(1, Math.round(rate / 100))
    await Promise.all(Array.from({ length: n }, () => agent.publish('soak/x', payload).then(() => { count++ }, () => {})))
    const wait = 10 - (Date.now() - slice)
    if (wait > 0) await new Promise(resolve => setTimeout(resolve, wait))
  }
} else {
  // Until the run is over and nothing has arrived for 2 s (bounded), so late messages count.
  const hardEnd = started + (seconds + 20) * 1000
  let last = -1
  while (Date.now() < hardEnd && (Date.now() < started + seconds * 1000 || count !== last)) {
    last = count
    await new Promise(resolve => setTimeout(resolve, 2000))
  }
}
clearInterval(sampler)
// A last sample after the load ends, so the counts compare like with like.
out({ event: 'sample', t: Math.round((Date.now() - started) / 1000), rssMB: Math.round(process.memoryUsage().rss / 1048576 * 10) / 10, maxLoopDelayMs: Math.round(delay.max / 1e5) / 10, count })
await node.stop()
process.exit(0)
