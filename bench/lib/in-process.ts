/**
 * What the in-process CPU benches of one source tree share (publish-cpu, topic-path-cpu,
 * deliver-cpu): their options, a transport that takes nothing, batches of signed envelopes
 * made before the clock starts, and a full collection before each timed round.
 */
import { join, resolve, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'

const args = process.argv.slice(2)

/** The tree to measure: `--tree DIR`, else the checkout the bench runs from. */
export const tree = resolve(opt('--tree') ?? join(dirname(fileURLToPath(import.meta.url)), '../..'))

function opt (name: string): string | undefined {
  const i = args.indexOf(name)
  return i >= 0 ? args[i + 1] : undefined
}

/** The integer option `name` (default `def`), refused unless within [min, max]. */
export function intOption (name: string, def: number, min: number, max: number): number {
  const v = Number(opt(name) ?? def)
  if (!Number.isInteger(v) || v < min || v > max) throw new RangeError(`${name} takes ${min}–${max}`)
  return v
}

/** An agent transport that sends nothing (`what`: the bench, for its errors). */
export function inertTransport (what: string): Record<string, (...a: unknown[]) => unknown> {
  return {
    submit: async () => { throw new Error(`${what} submits nothing`) },
    subscribe: async () => {},
    unsubscribe: async () => {},
    openStream: async () => { throw new Error(`${what} opens no streams`) },
    attach: async () => {},
    detach: async () => {}
  }
}

/** The batch size the SDK signs at most (MAX_BATCH). */
export const BATCH = 1020

/** `signEnvelopes` of the tree over BATCH 256-byte topic publications of `key`, nonces counted on. */
export async function batchSigner (key: { id: string }): Promise<() => unknown[]> {
  const { signEnvelopes } = await import(join(tree, 'src/core/envelope.ts')) as typeof import('../../src/core/envelope.ts')
  let nonce = 0
  return () => {
    const ts = Date.now()
    const fields = []
    for (let i = 0; i < BATCH; i++) {
      fields.push({ v: 1, net: 'bench', mode: 'topic', type: 'inform', from: key.id, topic: 'bench/data', ts, nonce: ++nonce, ttl: 300, hops: 16, prio: 1, ct: 'application/octet-stream', body: new Uint8Array(256) })
    }
    return signEnvelopes(fields as never, key as never)
  }
}

/** A full collection: the garbage made before a timed round stays out of it. */
export const collect = ((): (() => void) => {
  setFlagsFromString('--expose-gc')
  return runInNewContext('gc') as () => void
})()

/** The median and the lowest of `values`. */
export function medianMin (values: number[]): { median: number, min: number } {
  const s = [...values].sort((a, b) => a - b)
  return { median: s[Math.floor(s.length / 2)], min: s[0] }
}

/** Rounds not counted (the JIT warming up). */
export const WARM_ROUNDS = 2

/**
 * `rounds` rounds, each of `batches` batches made by `make` first (then a full collection),
 * handed in turn to `each` while the clock runs: the process CPU of every round but the first
 * WARM_ROUNDS, in µs per `units` (what a round did: publications, deliveries).
 */
export async function timedRounds<T> (rounds: number, batches: number, make: () => T, each: (batch: T) => Promise<void>, units: number): Promise<number[]> {
  const out: number[] = []
  for (let r = 0; r < rounds; r++) {
    const made = Array.from({ length: batches }, make)
    collect()
    const t = process.cpuUsage()
    for (const b of made) await each(b)
    const u = process.cpuUsage(t)
    if (r >= WARM_ROUNDS) out.push((u.user + u.system) / units)
  }
  return out
}
