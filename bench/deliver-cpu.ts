/**
 * CPU per local delivery of the SDK's topic path alone, in one process: `--agents N` agents
 * of the source tree given, each with a callback subscription, get every envelope of
 * batches of 1 020 batch-signed 256-byte envelopes (signed before the clock starts) through
 * their endpoints, as the router's fan-out hands a node's envelope to each matching agent in
 * turn, one batch per turn (a batch frame's deliveries are one synchronous run). What it
 * measures: the endpoint, the agent's checks, the message object, the subscription's match
 * and expiry check and the callback. Prints one line: the tree, then the median and the
 * lowest of the measured rounds' process CPU per delivery, in ns.
 *
 *   node bench/deliver-cpu.ts [--tree DIR] [--agents N] [--rounds N] [--batches N]
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
const agents = Number(opt('--agents') ?? 4)
const rounds = Number(opt('--rounds') ?? 12)
const batches = Number(opt('--batches') ?? 40)
const WARM_ROUNDS = 2
const BATCH = 1020
if (!Number.isInteger(agents) || agents < 1 || agents > 100) throw new RangeError('--agents takes 1–100')
if (!Number.isInteger(rounds) || rounds <= WARM_ROUNDS || rounds > 1000) throw new RangeError(`--rounds takes ${WARM_ROUNDS + 1}–1000`)
if (!Number.isInteger(batches) || batches < 1 || batches > 1000) throw new RangeError('--batches takes 1–1000')

const { createAgent } = await import(join(tree, 'src/sdk/agent.ts')) as typeof import('../src/sdk/agent.ts')
const { agentKeyFromSeed } = await import(join(tree, 'src/core/keys.ts')) as typeof import('../src/core/keys.ts')
const { signEnvelopes } = await import(join(tree, 'src/core/envelope.ts')) as typeof import('../src/core/envelope.ts')
type Envelope = import('../src/core/envelope.ts').Envelope
type EnvelopeFields = import('../src/core/envelope.ts').EnvelopeFields

const transport = {
  submit: async () => { throw new Error('deliver-cpu sends nothing') },
  subscribe: async () => {},
  unsubscribe: async () => {},
  openStream: async () => { throw new Error('deliver-cpu opens no streams') },
  attach: async () => {},
  detach: async () => {}
}
let delivered = 0
const endpoints = await Promise.all(Array.from({ length: agents }, async (_, i) => {
  const a = await createAgent(agentKeyFromSeed(new Uint8Array(32).fill(i + 1)), transport as never, { network: 'bench' })
  a.subscribe('bench/#', { onMessage: (m) => { if (m.payload.length === 256) delivered++ } })
  return a.endpoint
}))

const publisher = agentKeyFromSeed(new Uint8Array(32).fill(99))
let nonce = 0
function batch (): Envelope[] {
  const ts = Date.now()
  const fields: EnvelopeFields[] = []
  for (let i = 0; i < BATCH; i++) {
    fields.push({ v: 1, net: 'bench', mode: 'topic', type: 'inform', from: publisher.id, topic: 'bench/data', ts, nonce: ++nonce, ttl: 300, hops: 16, prio: 1, ct: 'application/octet-stream', body: new Uint8Array(256) } as never)
  }
  return signEnvelopes(fields, publisher)
}

// A full collection before each timed round: the garbage of signing stays out of the window.
setFlagsFromString('--expose-gc')
const gc = runInNewContext('gc') as () => void
const perDelivery: number[] = []
for (let r = 0; r < rounds; r++) {
  const signed = Array.from({ length: batches }, batch)
  gc()
  const t = process.cpuUsage()
  for (const envs of signed) {
    for (const env of envs) for (const ep of endpoints) ep.deliver(env)
    // One batch frame's deliveries per turn, as a node makes them.
    await new Promise<void>(resolve => { setImmediate(resolve) })
  }
  const u = process.cpuUsage(t)
  if (r >= WARM_ROUNDS) perDelivery.push((u.user + u.system) * 1000 / (batches * BATCH * agents))
}
if (delivered !== rounds * batches * BATCH * agents) throw new Error(`${delivered} deliveries, ${rounds * batches * BATCH * agents} made`)
perDelivery.sort((a, b) => a - b)
console.log(JSON.stringify({ tree, agents, medianNs: Math.round(perDelivery[Math.floor(perDelivery.length / 2)]), minNs: Math.round(perDelivery[0]) }))
process.exit(0)
