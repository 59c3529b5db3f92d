/**
 * CPU per publication of a publisher node's topic path alone, in one process: a TopicPath
 * (the router's host of the dissemination core, with the node's DedupCache as its table of
 * ids) with `--neighbours N` neighbours that subscribed to the topic, publishing batches of
 * 1 020 batch-signed 256-byte envelopes (signed before the clock starts) as the router's
 * `publishNow` does after delivering locally; the links take the encoded batch frames and
 * keep nothing. What it measures: the core's publish (the dedup insert, the targets, the
 * actions), grouping each copy into the batch frame open for its neighbour and encoding
 * those frames. Prints one line: the tree, then the median and the lowest of the measured
 * rounds' process CPU (every thread) per publication, in µs.
 *
 *   node bench/topic-path-cpu.ts [--tree DIR] [--neighbours N] [--rounds N] [--batches N]
 *
 * Compare trees in alternating processes (see publish-cpu.ts for why not in one process).
 */
import { join } from 'node:path'
import { BATCH, WARM_ROUNDS, batchSigner, intOption, medianMin, timedRounds, tree } from './lib/in-process.ts'

const neighbours = intOption('--neighbours', 2, 1, 64)
const rounds = intOption('--rounds', 10, WARM_ROUNDS + 1, 1000)
const batches = intOption('--batches', 40, 1, 1000)

const { TopicPath } = await import(join(tree, 'src/routing/topic-path.ts')) as typeof import('../src/routing/topic-path.ts')
const { agentKeyFromSeed } = await import(join(tree, 'src/core/keys.ts')) as typeof import('../src/core/keys.ts')
const { DedupCache } = await import(join(tree, 'src/core/ingress.ts')) as typeof import('../src/core/ingress.ts')
const { nodeIdFromBytes } = await import(join(tree, 'src/dissemination/wire.ts')) as typeof import('../src/dissemination/wire.ts')
const { decodeFrame, FRAME_DATA, FRAME_BATCH } = await import(join(tree, 'src/net/frames.ts')) as typeof import('../src/net/frames.ts')
type Envelope = import('../src/core/envelope.ts').Envelope
type FrameLink = import('../src/net/frames.ts').FrameLink
type TopicPathT = import('../src/routing/topic-path.ts').TopicPath

const silent = { debug () {}, info () {}, warn () {}, error () {} } as never
const TTL = 300
const SKEW = 30_000

function path (n: number, links: Map<string, () => void>): { path: TopicPathT, id: string, dedup: InstanceType<typeof DedupCache> } {
  const key = agentKeyFromSeed(new Uint8Array(32).fill(n))
  const id = nodeIdFromBytes(new Uint8Array([0x00, 0x24, 0x08, 0x01, 0x12, 0x20, ...key.publicKey]))
  const dedup = new DedupCache()
  const p = new TopicPath({
    self: id,
    sign: (input) => key.sign(input),
    admit: () => undefined,
    ingress: { network: 'bench' as never, maxBytes: 1024 * 1024, clockSkewMs: SKEW },
    admitChecked: (env) => env,
    deliver: () => {},
    reject: () => {},
    clockSkewMs: SKEW,
    seen: { add: (id, exp, now) => dedup.add(id, exp, now), sweep: (now) => { dedup.sweep(now) }, get size () { return dedup.size } },
    logger: silent
  })
  void links
  return { path: p, id, dedup }
}

// The publisher and its neighbours; a neighbour's interest reaches the publisher over a link
// that decodes control frames; the publisher's links to them only count bytes.
const pub = path(1, new Map())
let frames = 0
let bytesOut = 0
const sinkLink = (): FrameLink => ({
  isClosed: false,
  queuedBytes: 0,
  push (bytes: Uint8Array, _prio?: number, _onFail?: unknown, tail?: Uint8Array): boolean { frames++; bytesOut += bytes.length + (tail?.length ?? 0); return true },
  async drained () {}
}) as unknown as FrameLink
for (let k = 0; k < neighbours; k++) {
  const nb = path(10 + k, new Map())
  const toNb = sinkLink()
  const toPub = {
    isClosed: false,
    queuedBytes: 0,
    push (bytes: Uint8Array): boolean {
      const f = decodeFrame(bytes)
      if (f != null && f.t !== FRAME_DATA && f.t !== FRAME_BATCH) queueMicrotask(() => { pub.path.onControl(nb.id, f as never) })
      return true
    },
    async drained () {}
  } as unknown as FrameLink
  pub.path.addLink(nb.id, toNb)
  nb.path.addLink(pub.id, toPub)
  nb.path.subscribe('bench/#')
}
for (let i = 0; i < 200 && pub.path.core.interestedIn('bench/data').length < neighbours; i++) await new Promise(resolve => setTimeout(resolve, 10))
if (pub.path.core.interestedIn('bench/data').length < neighbours) throw new Error('the neighbours\' interest did not reach the publisher')

const batch = await batchSigner(agentKeyFromSeed(new Uint8Array(32).fill(99))) as () => Envelope[]

// The frames are written in the microtask after each batch (as the router's are).
const perMessage = await timedRounds(rounds, batches, batch, async (envs) => {
  for (const e of envs) pub.path.publish(e)
  await Promise.resolve()
}, batches * BATCH)
const { median, min } = medianMin(perMessage)
console.log(JSON.stringify({ tree, neighbours, median: +median.toFixed(3), min: +min.toFixed(3), frames, bytesPerMessage: Math.round(bytesOut / (rounds * batches * BATCH)) }))
process.exit(0)
