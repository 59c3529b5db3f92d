/**
 * The node's store (durable inboxes, processed marks, message log): which backend, where,
 * and the durable-delivery and log-retention settings (`store` in config.json).
 *
 * SQLite is the default, in `<dir>/store.db`; a PostgreSQL connection string (`url`, or the
 * CLI's `--store` / `FEDMESH_STORE_URL`) selects PostgreSQL. The store modules are loaded
 * only when a store is opened, so commands that never touch it do not pay for them.
 */
import { join } from 'node:path'
import { InvalidArgumentError } from '../core/errors.ts'
import type { InboxQuota, MessageStore } from '../store/types.ts'

const DAY = 24 * 3600 * 1000

export interface NodeStoreConfig {
  /** PostgreSQL connection string (`postgres://user@host:5432/db`). Absent: SQLite in the data dir. */
  url?: string
  /** PostgreSQL schema for this node's tables. Default `fedmesh`. */
  schema?: string
  /** SQLite: `full` (default, fsync per commit) or `normal` (survives a killed process, not power loss). */
  synchronous?: 'full' | 'normal'
  /** Replicas (storage-role nodes besides the home node) of each durable message. Default 2, at most 8. */
  replicas?: number
  /** Just after start, how long a home node waits for storage nodes' records while it knows fewer than `replicas`, ms. Default 2 000, at most 60 000; 0 does not wait. */
  replicaWaitMs?: number
  /** Inbox quotas (per inbox, per sender, per sender overall; count and bytes). Defaults: docs/STORE.md. */
  quota?: Partial<InboxQuota>
  /** Keep an acknowledged inbox entry's payload this long after delivery, ms. Default 0 (dropped at acknowledgement). */
  keepDeliveredMs?: number
  /** Message log: delete records older than this, ms. Default 30 days; 0 keeps them. */
  logMaxAgeMs?: number
  /** Message log: keep it under this many accounted bytes. Default 1 GiB; 0 = no limit. */
  logMaxBytes?: number
  /** Which wire bytes the log keeps for replay. Default `conversation` (messages with a conversation id). */
  logPayloads?: 'conversation' | 'all' | 'none'
}

export const STORE_DEFAULTS = {
  synchronous: 'full' as const,
  replicas: 2,
  replicaWaitMs: 2_000,
  logMaxAgeMs: 30 * DAY,
  logMaxBytes: 1024 * 1024 * 1024,
  logPayloads: 'conversation' as const
}

const KEYS = new Set(['url', 'schema', 'synchronous', 'replicas', 'replicaWaitMs', 'quota', 'keepDeliveredMs', 'logMaxAgeMs', 'logMaxBytes', 'logPayloads'])
const QUOTA_KEYS = new Set(['inboxCount', 'inboxBytes', 'senderCount', 'senderBytes', 'senderTotalCount', 'senderTotalBytes'])

function nonNegInt (v: unknown, name: string, max: number = Number.MAX_SAFE_INTEGER): void {
  if (v !== undefined && (!Number.isSafeInteger(v) || (v as number) < 0 || (v as number) > max)) throw new InvalidArgumentError(`store.${name} must be an integer 0–${max}`)
}

/** Checks the `store` section of the node config; throws InvalidArgumentError naming the field. */
export function validateStoreConfig (v: unknown): NodeStoreConfig {
  if (v === undefined) return {}
  if (v == null || typeof v !== 'object' || Array.isArray(v)) throw new InvalidArgumentError('store must be an object')
  const c = v as Record<string, unknown>
  for (const k of Object.keys(c)) if (!KEYS.has(k)) throw new InvalidArgumentError(`unknown store setting ${JSON.stringify(k)}; known store settings: ${[...KEYS].join(', ')}`)
  if (c.url !== undefined && (typeof c.url !== 'string' || !/^postgres(ql)?:\/\//.test(c.url))) throw new InvalidArgumentError('store.url must be a postgres:// connection string')
  if (c.schema !== undefined && (typeof c.schema !== 'string' || !/^[a-z_][a-z0-9_]{0,62}$/.test(c.schema))) throw new InvalidArgumentError('store.schema must match [a-z_][a-z0-9_]{0,62}')
  if (c.synchronous !== undefined && c.synchronous !== 'full' && c.synchronous !== 'normal') throw new InvalidArgumentError('store.synchronous must be full or normal')
  nonNegInt(c.replicas, 'replicas', 8)
  nonNegInt(c.replicaWaitMs, 'replicaWaitMs', 60_000)
  nonNegInt(c.keepDeliveredMs, 'keepDeliveredMs')
  nonNegInt(c.logMaxAgeMs, 'logMaxAgeMs')
  nonNegInt(c.logMaxBytes, 'logMaxBytes')
  if (c.logPayloads !== undefined && !['conversation', 'all', 'none'].includes(c.logPayloads as string)) throw new InvalidArgumentError('store.logPayloads must be conversation, all or none')
  if (c.quota !== undefined) {
    if (c.quota == null || typeof c.quota !== 'object' || Array.isArray(c.quota)) throw new InvalidArgumentError('store.quota must be an object')
    for (const [k, q] of Object.entries(c.quota)) {
      if (!QUOTA_KEYS.has(k)) throw new InvalidArgumentError(`unknown quota ${JSON.stringify(k)}; known quotas: ${[...QUOTA_KEYS].join(', ')}`)
      nonNegInt(q, `quota.${k}`)
    }
  }
  return c as NodeStoreConfig
}

/**
 * Loads the store modules. `node:sqlite` announces itself with an ExperimentalWarning on
 * load; that one warning is filtered out here (and only while loading), every other
 * warning still goes through.
 */
async function loadStoreModule (): Promise<typeof import('../store/index.ts')> {
  const emit = process.emitWarning
  process.emitWarning = function (warning: string | Error, ...rest: unknown[]): void {
    const type = typeof rest[0] === 'string' ? rest[0] : (rest[0] as { type?: string } | undefined)?.type
    const text = typeof warning === 'string' ? warning : warning.message
    if (type === 'ExperimentalWarning' && text.includes('SQLite')) return
    return (emit as (...a: unknown[]) => void).call(process, warning, ...rest)
  } as typeof process.emitWarning
  try {
    return await import('../store/index.ts')
  } finally {
    process.emitWarning = emit
  }
}

/** Where the node's SQLite store lives. */
export function sqlitePath (dir: string): string {
  return join(dir, 'store.db')
}

/**
 * Opens the node's store. Refuses a damaged store (StoreCorruptError) and a store of a
 * newer version (StoreVersionError) rather than serve from it.
 */
export async function openNodeStore (dir: string, cfg: NodeStoreConfig, opts: { readOnly?: boolean, signal?: AbortSignal } = {}): Promise<MessageStore> {
  const { openStore } = await loadStoreModule()
  // The message log is an audit trail: its own batches do not wait for an fsync (they still
  // survive a killed process); inbox, ack and processed-mark writes always do.
  const common = { quota: cfg.quota, keepDeliveredMs: cfg.keepDeliveredMs, logSync: 'deferred' as const }
  if (cfg.url != null) return await openStore({ kind: 'postgres', url: cfg.url, schema: cfg.schema, ...common }, { signal: opts.signal })
  return await openStore({ kind: 'sqlite', path: sqlitePath(dir), synchronous: cfg.synchronous ?? STORE_DEFAULTS.synchronous, readOnly: opts.readOnly, ...common }, { signal: opts.signal })
}
