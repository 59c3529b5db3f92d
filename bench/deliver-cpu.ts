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
import { join } from 'node:path'
import { BATCH, WARM_ROUNDS, batchSigner, inertTransport, intOption, medianMin, timedRounds, tree } from './lib/in-process.ts'

const agents = intOption('--agents', 4, 1, 100)
const rounds = intOption('--rounds', 12, WARM_ROUNDS + 1, 1000)
const batches = intOption('--batches', 40, 1, 1000)

const { createAgent } = await import(join(tree, 'src/sdk/agent.ts')) as typeof import('../src/sdk/agent.ts')
const { agentKeyFromSeed } = await import(join(tree, 'src/core/keys.ts')) as typeof import('../src/core/keys.ts')
type Envelope = import('../src/core/envelope.ts').Envelope

const transport = inertTransport('deliver-cpu')
let delivered = 0
const endpoints = await Promise.all(Array.from({ length: agents }, async (_, i) => {
  const a = await createAgent(agentKeyFromSeed(new Uint8Array(32).fill(i + 1)), transport as never, { network: 'bench' })
  a.subscribe('bench/#', { onMessage: (m) => { if (m.payload.length === 256) delivered++ } })
  return a.endpoint
}))

const batch = await batchSigner(agentKeyFromSeed(new Uint8Array(32).fill(99))) as () => Envelope[]

// One batch frame's deliveries per turn, as a node makes them; ns per delivery.
const perDelivery = (await timedRounds(rounds, batches, batch, async (envs) => {
  for (const env of envs) for (const ep of endpoints) ep.deliver(env)
  await new Promise<void>(resolve => { setImmediate(resolve) })
}, batches * BATCH * agents)).map(us => us * 1000)
if (delivered !== rounds * batches * BATCH * agents) throw new Error(`${delivered} deliveries, ${rounds * batches * BATCH * agents} made`)
const { median, min } = medianMin(perDelivery)
console.log(JSON.stringify({ tree, agents, medianNs: Math.round(median), minNs: Math.round(min) }))
process.exit(0)
