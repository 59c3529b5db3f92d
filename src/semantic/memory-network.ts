/**
 * An in-memory RegistryNetwork: several registries in one process, for tests and for
 * single-process meshes. Announcements are delivered asynchronously to every live member
 * but the sender; `put` stores on the `replication` live members closest to the key
 * (rendezvous hashing, as a DHT places records on the nodes closest to the key), keeping
 * the record `selectRegistryRecord` prefers; `get` asks live members, closest first.
 * A member taken `down` loses what it stored and hears nothing more.
 */
import { createHash } from 'node:crypto'
import { abortReason, ClosedError, InvalidArgumentError } from '../core/errors.ts'
import { selectRegistryRecord, validateRegistryRecord, type IngestResult, type RegistryNetwork } from './registry.ts'

export interface MemoryRegistryHubInit {
  /** Members that store each key (default 3). */
  replication?: number
  validate?: (key: string, bytes: Uint8Array) => string | undefined
  select?: (key: string, records: readonly Uint8Array[]) => number
}

export interface MemoryRegistryNode extends RegistryNetwork {
  readonly id: string
}

export interface MemoryRegistryHub {
  /** A new member; every member stores records (a storage-only node is a member without a registry). */
  join: (id: string) => MemoryRegistryNode
  /** Takes a member down: its records are gone and it hears no announcements. */
  down: (id: string) => void
  /** Resolves when every announcement queued so far has been delivered. */
  flush: () => Promise<void>
  /** The live members holding `key`. */
  holders: (key: string) => string[]
  readonly members: string[]
}

interface Member { id: string, up: boolean, store: Map<string, Uint8Array>, handlers: Set<(bytes: Uint8Array) => IngestResult | undefined> }

export function createMemoryRegistryHub (init: MemoryRegistryHubInit = {}): MemoryRegistryHub {
  const replication = init.replication ?? 3
  if (!Number.isSafeInteger(replication) || replication < 1) throw new InvalidArgumentError('replication must be a positive integer')
  const validate = init.validate ?? ((k, b) => validateRegistryRecord(k, b))
  const select = init.select ?? selectRegistryRecord
  const members = new Map<string, Member>()
  const queue: Array<{ to: Member, bytes: Uint8Array }> = []
  let draining: Promise<void> | undefined

  const live = (): Member[] => [...members.values()].filter((m) => m.up)
  const score = (key: string, id: string): string => createHash('sha256').update(key).update('\n').update(id).digest('hex')
  const closest = (key: string): Member[] => live().sort((a, b) => score(key, a.id) < score(key, b.id) ? -1 : 1)

  const drain = async (): Promise<void> => {
    // Delivers in rounds; a handler that announces again adds to the queue for a later round.
    for (let round = 0; round < 10_000 && queue.length > 0; round++) {
      await new Promise<void>((resolve) => setImmediate(resolve))
      const batch = queue.splice(0, queue.length)
      for (const { to, bytes } of batch) {
        if (!to.up) continue
        for (const h of to.handlers) {
          try { h(bytes.slice()) } catch { /* a member's failure is its own */ }
        }
      }
    }
    draining = undefined
  }

  return {
    join (id: string): MemoryRegistryNode {
      if (members.get(id)?.up === true) throw new InvalidArgumentError(`member ${id} is already up`)
      const m: Member = { id, up: true, store: new Map(), handlers: new Set() }
      members.set(id, m)
      const check = (signal?: AbortSignal): void => {
        if (!m.up) throw new ClosedError(`member ${id} is down`)
        if (signal?.aborted === true) throw abortReason(signal, 'registry network')
      }
      return {
        id,
        async announce (bytes, options = {}) {
          check(options.signal)
          for (const other of live()) if (other !== m) queue.push({ to: other, bytes: bytes.slice() })
          draining ??= drain()
        },
        onAnnounce (handler) {
          m.handlers.add(handler)
          return () => { m.handlers.delete(handler) }
        },
        async put (key, bytes, options = {}) {
          check(options.signal)
          const problem = validate(key, bytes)
          if (problem != null) throw new InvalidArgumentError(`record refused: ${problem}`)
          for (const target of closest(key).slice(0, replication)) {
            const existing = target.store.get(key)
            const records = existing != null ? [existing, bytes] : [bytes]
            target.store.set(key, records[select(key, records)].slice())
          }
        },
        async get (key, options = {}) {
          check(options.signal)
          await Promise.resolve()
          if (options.signal?.aborted === true) throw abortReason(options.signal, 'registry network')
          for (const target of closest(key)) {
            const v = target.store.get(key)
            if (v != null && validate(key, v) == null) return v.slice()
          }
          return undefined
        }
      }
    },
    down (id: string): void {
      const m = members.get(id)
      if (m == null) return
      m.up = false
      m.store.clear()
      m.handlers.clear()
    },
    async flush (): Promise<void> {
      for (let i = 0; i < 100 && (draining != null || queue.length > 0); i++) {
        draining ??= drain()
        await draining
      }
    },
    holders: (key) => live().filter((m) => m.store.has(key)).map((m) => m.id),
    get members () { return live().map((m) => m.id) }
  }
}
