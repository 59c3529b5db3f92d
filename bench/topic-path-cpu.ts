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
import { join, resolve, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'

const args = process.argv.slice(2)
const opt = (name: string): string | undefined => { const i = args.indexOf(name); return i >= 0 ? args[i + 1] : undefined }
const tree = resolve(opt('--tree') ?? join(dirname(fileURLToPath(import.meta.url)), '..'))
const neighbours = Number(opt('--neighbours') ?? 2)
const rounds = Number(opt('--rounds') ?? 10)
const batches = Number(opt('--batches') ?? 40)
const WARM_ROUNDS = 2
const BATCH = 1020
if (!Number.isInteger(neighbours) || neighbours < 1 || neighbours > 64) throw new RangeError('--neighbours takes 1–64')
if (!Number.isInteger(rounds) || rounds <= WARM_ROUNDS || rounds > 1000) throw new RangeError(`--rounds takes ${WARM_ROUNDS + 1}–1000`)
if (!Number.isInteger(batches) || batches < 1 || batches > 1000) throw new RangeError('--batches takes 1–1000')

const { TopicPath } = await import(join(tree, 'src/routing/topic-path.ts')) as typeof import('../src/routing/topic-path.ts')
const { agentKeyFromSeed } = await import(join(tree, 'src/core/keys.ts')) as typeof import('../src/core/keys.ts')
const { signEnvelopes } = await import(join(tree, 'src/core/envelope.ts')) as typeof import('../src/core/envelope.ts')
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

const agent = agentKeyFromSeed(new Uint8Array(32).fill(99))
let nonce = 0
function batch (): Envelope[] {
  const ts = Date.now()
  const fields: Array<import('../src/core/envelope.ts').EnvelopeFields> = []
  for (let i = 0; i < BATCH; i++) {
    fields.push({ v: 1, net: 'bench', mode: 'topic', type: 'inform', from: agent.id, topic: 'bench/data', ts, nonce: ++nonce, ttl: TTL, hops: 16, prio: 1, ct: 'application/octet-stream', body: new Uint8Array(256) } as never)
  }
  return signEnvelopes(fields, agent)
}

// A full collection before each timed round: the garbage of signing stays out of the window.
setFlagsFromString('--expose-gc')
const gc = runInNewContext('gc') as () => void
const perMessage: number[] = []
for (let r = 0; r < rounds; r++) {
  const signed = Array.from({ length: batches }, batch)
  gc()
  const t = process.cpuUsage()
  for (const envs of signed) {
    for (const e of envs) pub.path.publish(e)
    // The frames are written in the microtask after the batch (as the router's are).
    await Promise.resolve()
  }
  const u = process.cpuUsage(t)
  if (r >= WARM_ROUNDS) perMessage.push((u.user + u.system) / (batches * BATCH))
}
perMessage.sort((a, b) => a - b)
const median = perMessage[Math.floor(perMessage.length / 2)]
console.log(JSON.stringify({ tree, neighbours, median: +median.toFixed(3), min: +perMessage[0].toFixed(3), frames, bytesPerMessage: Math.round(bytesOut / (rounds * batches * BATCH)) }))
process.exit(0)
