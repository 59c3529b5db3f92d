/**
 * Simulation settings: `defaultSimConfig`, `createSimConfig(partial)` fills and validates,
 * `validateSimConfig` throws InvalidArgumentError naming the first bad field. All times are
 * simulated milliseconds from the start of the run.
 */
import { InvalidArgumentError } from '../core/errors.ts'
import { isTopic } from '../core/topics.ts'
import { createDisseminationParams, type DisseminationParams } from '../dissemination/params.ts'

/** Links between a random `fraction` of the nodes and the rest are cut at `at` and restored at `healAt`. */
export interface PartitionSpec { at: number, healAt: number, fraction: number }

/** Nodes leave at random (a Poisson process of `ratePerSec`) within [from, until) and come back after `downtimeMs`. */
export interface ChurnSpec { ratePerSec: number, downtimeMs: number, from: number, until: number }

export interface SimConfig {
  seed: number
  nodes: number
  /** Neighbours per node (the graph is close to degree-regular, then made connected). */
  degree: number
  /** One-way link latency. */
  latencyMs: number
  /** Each frame takes latencyMs + uniform[0, jitterMs). */
  jitterMs: number
  /** Probability that a frame (any kind) is lost. */
  loss: number
  /** `topic`: messages go to subscribers; `broadcast`: to every node. */
  mode: 'topic' | 'broadcast'
  /** Which nodes subscribe (topic mode): all of them, or this fraction, chosen at random. */
  subscribers: 'all' | number
  /** Topic of every message; subscribers subscribe to it or to a wildcard pattern matching it. */
  topic: string
  messages: number
  /** Between two publications (each by a random node that is up). */
  intervalMs: number
  /** Subscriptions start at random times in [0, subscribeSpreadMs). */
  subscribeSpreadMs: number
  /** First publication. */
  warmupMs: number
  /** Deliveries count up to this long after their publication; the run ends this long after the last one. */
  drainMs: number
  /** A node is an intended receiver only if it has been up (and subscribed) this long. */
  settleMs: number
  maxHops: number
  ttlMs: number
  partitions: PartitionSpec[]
  churn?: ChurnSpec
  /** Dissemination parameters of every node (time-based ones in simulated ms). */
  params: Partial<DisseminationParams>
  /** Bounds: the run stops after this many events. */
  maxEvents: number
  /**
   * Bound on interest state: nodes × subscribing nodes (each node holds one entry per
   * subscribing node). Larger runs are refused before they start.
   */
  maxInterestEntries: number
}

export const defaultSimConfig: Readonly<SimConfig> = Object.freeze({
  seed: 1,
  nodes: 1000,
  degree: 6,
  latencyMs: 100,
  jitterMs: 0,
  loss: 0,
  mode: 'topic',
  subscribers: 'all',
  topic: 'sim/data',
  messages: 100,
  intervalMs: 20,
  subscribeSpreadMs: 1000,
  warmupMs: 3000,
  drainMs: 5000,
  settleMs: 1000,
  maxHops: 32,
  ttlMs: 60_000,
  partitions: [],
  params: {},
  maxEvents: 200_000_000,
  maxInterestEntries: 4_000_000
}) as Readonly<SimConfig>

function fail (field: string, what: string): never {
  throw new InvalidArgumentError(`simulation ${field} ${what}`, { details: { field } })
}

function checkNumber (field: string, v: unknown, min: number, max: number, integer: boolean): void {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v > max || (integer && !Number.isInteger(v))) {
    fail(field, `must be ${integer ? 'an integer' : 'a number'} in [${min}, ${max}], got ${String(v)}`)
  }
}

/** The number of subscribing nodes `c` implies. */
export function subscriberCount (c: Pick<SimConfig, 'nodes' | 'mode' | 'subscribers'>): number {
  if (c.mode === 'broadcast') return 0
  return c.subscribers === 'all' ? c.nodes : Math.max(1, Math.round(c.subscribers * c.nodes))
}

export function validateSimConfig (c: SimConfig): void {
  checkNumber('seed', c.seed, 0, 2 ** 32 - 1, true)
  checkNumber('nodes', c.nodes, 2, 1_000_000, true)
  checkNumber('degree', c.degree, 1, 1000, true)
  checkNumber('latencyMs', c.latencyMs, 0, 3_600_000, false)
  checkNumber('jitterMs', c.jitterMs, 0, 3_600_000, false)
  checkNumber('loss', c.loss, 0, 0.99, false)
  if (c.mode !== 'topic' && c.mode !== 'broadcast') fail('mode', 'must be "topic" or "broadcast"')
  if (c.subscribers !== 'all') checkNumber('subscribers', c.subscribers, Number.MIN_VALUE, 1, false)
  if (!isTopic(c.topic)) fail('topic', `must be a valid topic, got ${JSON.stringify(c.topic)}`)
  checkNumber('messages', c.messages, 1, 10_000_000, true)
  checkNumber('intervalMs', c.intervalMs, 0, 3_600_000, false)
  checkNumber('subscribeSpreadMs', c.subscribeSpreadMs, 0, 3_600_000, false)
  checkNumber('warmupMs', c.warmupMs, 0, 3_600_000, false)
  checkNumber('drainMs', c.drainMs, 1, 3_600_000, false)
  checkNumber('settleMs', c.settleMs, 0, 3_600_000, false)
  checkNumber('maxHops', c.maxHops, 1, 255, true)
  checkNumber('ttlMs', c.ttlMs, 1, 24 * 3_600_000, false)
  if (!Array.isArray(c.partitions)) fail('partitions', 'must be an array')
  c.partitions.forEach((p, i) => {
    checkNumber(`partitions[${i}].at`, p.at, 0, Number.MAX_SAFE_INTEGER, false)
    checkNumber(`partitions[${i}].healAt`, p.healAt, p.at, Number.MAX_SAFE_INTEGER, false)
    checkNumber(`partitions[${i}].fraction`, p.fraction, 0, 1, false)
  })
  if (c.churn !== undefined) {
    checkNumber('churn.ratePerSec', c.churn.ratePerSec, 0, 1_000_000, false)
    checkNumber('churn.downtimeMs', c.churn.downtimeMs, 0, 3_600_000, false)
    checkNumber('churn.from', c.churn.from, 0, Number.MAX_SAFE_INTEGER, false)
    checkNumber('churn.until', c.churn.until, c.churn.from, Number.MAX_SAFE_INTEGER, false)
  }
  createDisseminationParams(c.params)
  checkNumber('maxEvents', c.maxEvents, 1, Number.MAX_SAFE_INTEGER, true)
  checkNumber('maxInterestEntries', c.maxInterestEntries, 0, Number.MAX_SAFE_INTEGER, true)
  const entries = c.nodes * subscriberCount(c)
  if (entries > c.maxInterestEntries) {
    fail('subscribers', `would give ${entries} interest entries (nodes × subscribing nodes), above maxInterestEntries ${c.maxInterestEntries}: ` +
      'use fewer subscribers, broadcast mode (every node a receiver, no interest state), or raise the bound')
  }
}

/** Defaults overlaid with `partial`, validated. */
export function createSimConfig (partial: Partial<SimConfig> = {}): SimConfig {
  const c: SimConfig = { ...defaultSimConfig, partitions: [], params: {} }
  for (const [k, v] of Object.entries(partial)) {
    if (!(k in defaultSimConfig) && k !== 'churn') throw new InvalidArgumentError(`unknown simulation setting ${k}`, { details: { field: k } })
    if (v !== undefined) (c as unknown as Record<string, unknown>)[k] = v
  }
  validateSimConfig(c)
  return c
}

/** Time of the last publication. */
export function lastPublishAt (c: SimConfig): number {
  return c.warmupMs + (c.messages - 1) * c.intervalMs
}

/** When the run ends. */
export function endOfRun (c: SimConfig): number {
  return lastPublishAt(c) + c.drainMs
}
