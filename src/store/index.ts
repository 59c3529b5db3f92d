/**
 * fedmesh storage: durable inboxes, processed-message marks and the message log, on
 * SQLite (default) or PostgreSQL. See docs/STORE.md.
 *
 * @example
 * ```ts
 * import { createStore } from './store/index.ts'
 * const store = createStore({ kind: 'sqlite', path: `${dataDir}/store.db` })
 * await store.open()
 * const page = await store.query({ agent, topic: 'sensors/#' }, { limit: 50 })
 * await store.close()
 * ```
 */
import { InvalidArgumentError } from '../core/errors.ts'
import { createStoreSettings } from './config.ts'
import { createPostgresBackend } from './postgres.ts'
import { createSqliteBackend } from './sqlite.ts'
import { createMessageStore } from './store.ts'
import type { Abortable, MessageStore, StoreConfig } from './types.ts'

export type * from './types.ts'
export { LOG_EVENTS, LOG_STATUSES } from './types.ts'
export * from './errors.ts'
export { defaultQuota, defaultGroupCommit, PAGE_LIMITS, FIELD_LIMITS, LOG_RECORD_OVERHEAD } from './config.ts'
export { parseLogFilter, patternToRegex } from './query.ts'
export { SCHEMA_VERSION } from './schema.ts'

/** Creates a store (not yet open) for the configured backend. */
export function createStore (config: StoreConfig): MessageStore {
  if (config == null || typeof config !== 'object') throw new InvalidArgumentError('store config must be an object')
  const settings = createStoreSettings(config)
  if (config.kind === 'postgres') {
    if (typeof config.url !== 'string' || config.url.length === 0) throw new InvalidArgumentError('postgres store needs a url')
    return createMessageStore(createPostgresBackend(config), settings)
  }
  if (config.kind !== undefined && config.kind !== 'sqlite') throw new InvalidArgumentError(`unknown store kind ${JSON.stringify((config as { kind: unknown }).kind)}`)
  if (typeof config.path !== 'string' || config.path.length === 0) throw new InvalidArgumentError('sqlite store needs a path')
  return createMessageStore(createSqliteBackend(config), settings)
}

/** Creates and opens a store. */
export async function openStore (config: StoreConfig, options: Abortable = {}): Promise<MessageStore> {
  const store = createStore(config)
  await store.open(options)
  return store
}
