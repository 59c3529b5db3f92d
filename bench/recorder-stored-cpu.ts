/**
 * CPU per `stored` record of the message log's writer alone (src/log/recorder.ts), in one
 * process: a home node's `putb` of 256 envelopes for one recipient told to the recorder as
 * the durable service tells it (one observation per stored envelope), the appends handed to
 * a store whose `log()` keeps nothing. What it measures is the observation objects, the run
 * checks and the records — not the store's validation or the writer thread. Prints the
 * median and the lowest of the measured rounds' process CPU per record, in µs.
 *
 *   node bench/recorder-stored-cpu.ts [--rounds N] [--count N]
 *
 * Session 13 used it to weigh a batch observation (one for a `putb`'s envelopes): the whole
 * cost is ≈ 0.1 µs per record either way (PERFORMANCE.md, "Durable home main thread,
 * session 13").
 */
import { setImmediate as yieldToLoop } from 'node:timers/promises'
import { LogRecorder } from '../src/log/recorder.ts'
import type { Envelope } from '../src/core/envelope.ts'
import type { LogRecordInit, MessageStore } from '../src/store/types.ts'

const args = process.argv.slice(2)
const opt = (name: string): string | undefined => { const i = args.indexOf(name); return i >= 0 ? args[i + 1] : undefined }
const rounds = Number(opt('--rounds') ?? 8)
const count = Number(opt('--count') ?? 200_000)
const BATCH = 256
/** Rounds not counted (the JIT warming up). */
const WARM_ROUNDS = 2
if (!Number.isInteger(rounds) || rounds <= WARM_ROUNDS || rounds > 1000) throw new RangeError(`--rounds takes ${WARM_ROUNDS + 1}–1000`)
if (!Number.isInteger(count) || count < BATCH || count > 10_000_000) throw new RangeError(`--count takes ${BATCH}–10,000,000`)

let logged = 0
const store = { log: async (records: LogRecordInit[]) => { for (const r of records) logged += 1 + (r.next?.ids.length ?? 0) } } as unknown as MessageStore
const quiet = { trace () {}, debug () {}, info () {}, warn () {}, error () {}, child () { return quiet } } as never
const recorder = new LogRecorder({ store, logger: quiet, retention: { maxAgeMs: 0, maxBytes: 0 } })

// One sender's envelopes to one recipient, as the envelope reader hands them out (one string per distinct value).
const from = 'did:key:z6MkSender'
const to = ['did:key:z6MkRecipient']
const bytes = new Uint8Array(420)
const envs: Envelope[] = Array.from({ length: count }, (_, i) =>
  ({ id: `bafy${i.toString(36).padStart(12, '0')}`, from, to, type: 'inform', ts: 1_700_000_000_000 + i, bytes }) as unknown as Envelope)

const perRecord: number[] = []
for (let r = 0; r < rounds; r++) {
  const t0 = process.cpuUsage()
  for (let i = 0; i < count; i += BATCH) {
    const batch = envs.slice(i, i + BATCH)
    for (const env of batch) recorder.observe({ event: 'stored', env, status: 'pending', peer: 'peer1' })
    // A putb per turn, as the home node serves them: the recorder's appends run in between.
    await yieldToLoop()
  }
  await recorder.flush()
  const t = process.cpuUsage(t0)
  if (r >= WARM_ROUNDS) perRecord.push((t.user + t.system) / count)
}
await recorder.stop()
if (logged !== count * rounds) throw new Error(`logged ${logged} of ${count * rounds}`)
perRecord.sort((a, b) => a - b)
console.log(`stored: median ${perRecord[perRecord.length >> 1].toFixed(3)} µs/record, lowest ${perRecord[0].toFixed(3)}`)
