/**
 * One node process of bench/topic-cpu.ts: a fedmesh node (of the source tree given as
 * argv[2]) with a publisher agent (and `localSubs` subscriber agents beside it) or `agents`
 * subscriber agents on `bench/data`. It reports
 * its own CPU (process.cpuUsage: every thread, the log's writer included) per measured
 * message. Driven over IPC by topic-cpu.ts; every wait is bounded by the orchestrator's
 * deadline (it kills this process), every loop in count.
 */
import { setImmediate as yieldToLoop, setTimeout as sleep } from 'node:timers/promises'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

const [tree, role, countArg, agentsArg, localArg] = process.argv.slice(2)
const count = Number(countArg)
const agents = Number(agentsArg ?? '1')
const localSubs = Number(localArg ?? '0')
const TOPIC = 'bench/data'
/** Warm-up publications (payload byte 0 = 1) per round, and the most rounds. */
const WARM_BATCH = 2000
const WARM_ROUNDS = 200
const YIELD_EVERY = 256

const { createNode } = await import(join(tree, 'src/index.ts')) as typeof import('../../src/index.ts')
const inbox: unknown[] = []
let wake: (() => void) | undefined
process.on('message', (m) => { inbox.push(m); wake?.() })
process.on('disconnect', () => { process.exit(1) })
async function next (): Promise<{ bootstrap?: string[] }> {
  while (inbox.length === 0) await new Promise<void>(resolve => { wake = resolve })
  return inbox.shift() as { bootstrap?: string[] }
}
const send = (m: object): void => { process.send?.(m) }

const init = await next()
const dir = mkdtempSync(join(tmpdir(), 'topic-cpu-'))
const node = await createNode({ dir, listen: ['/ip4/127.0.0.1/tcp/0'], bootstrap: init.bootstrap ?? [], api: false })

/**
 * `n` subscriber agents; `onWarm` once all have had a warm-up round, `onDone(first)` once all
 * have every measured message (`first`: the CPU reading at the first one).
 */
async function subscribers (n: number, onWarm: () => void, onDone: (first: NodeJS.CpuUsage | undefined) => void): Promise<void> {
  let got = 0
  let warm = 0
  let first: NodeJS.CpuUsage | undefined
  for (let i = 0; i < n; i++) {
    const agent = await node.agent(`sub-${i}`)
    agent.subscribe(TOPIC, {
      onMessage: (msg) => {
        if (msg.payload[0] === 1) {
          if (++warm === WARM_BATCH * n) onWarm()
          return
        }
        if (got === 0) first = process.cpuUsage()
        if (++got === count * n) onDone(first)
      }
    })
  }
}

if (role === 'sub') {
  await subscribers(agents, () => { send({ type: 'warm' }) }, (first) => {
    const u = process.cpuUsage(first)
    send({ type: 'done', cpu: (u.user + u.system) / count })
  })
  send({ type: 'ready', addrs: node.multiaddrs() })
} else {
  let localDone: () => void = () => {}
  const localAll = localSubs === 0 ? Promise.resolve() : new Promise<void>(resolve => { localDone = resolve })
  await subscribers(localSubs, () => {}, () => { localDone() })
  const agent = await node.agent('pub')
  send({ type: 'ready', addrs: node.multiaddrs() })
  const publish = async (n: number, kind: number): Promise<void> => {
    for (let i = 0; i < n; i++) {
      const p = new Uint8Array(256)
      p[0] = kind
      if (!agent.publishBuffered(TOPIC, p)) await agent.drain()
      if (i % YIELD_EVERY === YIELD_EVERY - 1) await yieldToLoop()
    }
    await agent.drain()
  }
  await next() // warm up: until every subscriber process saw a whole warm-up round
  let warmed = false
  const warming = (async () => {
    for (let r = 0; r < WARM_ROUNDS && !warmed; r++) { await publish(WARM_BATCH, 1); await sleep(300) }
  })()
  await next() // go
  warmed = true
  await warming
  await sleep(500)
  const start = process.cpuUsage()
  await publish(count, 0)
  await next() // the subscribers have all
  await localAll
  const u = process.cpuUsage(start)
  send({ type: 'done', cpu: (u.user + u.system) / count })
}
await next() // stop
await node.stop()
rmSync(dir, { recursive: true, force: true })
process.exit(0)
