/**
 * CPU per publication of the SDK's buffered publish path alone, in one process: an agent of
 * the source tree given publishes 256-byte messages with `publishBuffered` to a transport
 * whose `publishNow` takes the signed envelopes and keeps nothing (no router, no links, no
 * log). What it measures is the publisher's own share: building the fields, checking and
 * encoding them, the id and leaf hash, the batch root and signature, the envelope objects —
 * and the harness's payload array per message. Prints one line: the tree, then the median
 * and the lowest of the measured rounds' process CPU (every thread) per message, in µs.
 *
 *   node bench/publish-cpu.ts [--tree DIR] [--rounds N] [--count N]
 *
 * Compare trees in alternating processes (two trees loaded into one process run at
 * different speeds, whichever is loaded second slower): see PERFORMANCE.md
 * "Topic publisher, session 7".
 */
import { join, resolve, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { setImmediate as yieldToLoop } from 'node:timers/promises'
import { inertTransport } from './lib/in-process.ts'

const args = process.argv.slice(2)
const opt = (name: string): string | undefined => { const i = args.indexOf(name); return i >= 0 ? args[i + 1] : undefined }
const tree = resolve(opt('--tree') ?? join(dirname(fileURLToPath(import.meta.url)), '..'))
const rounds = Number(opt('--rounds') ?? 8)
const count = Number(opt('--count') ?? 100_000)
/** Rounds not counted (the JIT warming up). */
const WARM_ROUNDS = 2
const YIELD_EVERY = 256
if (!Number.isInteger(rounds) || rounds <= WARM_ROUNDS || rounds > 1000) throw new RangeError(`--rounds takes ${WARM_ROUNDS + 1}–1000`)
if (!Number.isInteger(count) || count < 1 || count > 10_000_000) throw new RangeError('--count takes 1–10,000,000')

const { AgentImpl } = await import(join(tree, 'src/sdk/agent.ts')) as typeof import('../src/sdk/agent.ts')
const { agentKeyFromSeed } = await import(join(tree, 'src/core/keys.ts')) as typeof import('../src/core/keys.ts')

let taken = 0
const transport = {
  ...inertTransport('publish-cpu'),
  publishNow: () => { taken++ },
  queuedBytes: () => 0,
  drained: async () => {}
}
const agent = new AgentImpl(agentKeyFromSeed(new Uint8Array(32).fill(7)), transport as never, { network: 'bench', name: 'publisher' })

async function round (): Promise<number> {
  const before = process.cpuUsage()
  for (let i = 0; i < count; i++) {
    const p = new Uint8Array(256)
    p[0] = i & 255
    agent.publishBuffered('bench/data', p)
    if (i % YIELD_EVERY === YIELD_EVERY - 1) await yieldToLoop()
  }
  await agent.drain()
  const used = process.cpuUsage(before)
  return (used.user + used.system) / count
}

const measured: number[] = []
for (let r = 0; r < rounds; r++) {
  const us = await round()
  if (r >= WARM_ROUNDS) measured.push(us)
}
if (taken !== rounds * count) throw new Error(`${taken} envelopes reached the transport, ${rounds * count} were published`)
measured.sort((a, b) => a - b)
console.log(JSON.stringify({ tree, count, rounds: measured.length, medianUs: +measured[Math.floor(measured.length / 2)].toFixed(3), minUs: +measured[0].toFixed(3) }))
