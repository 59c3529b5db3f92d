/**
 * Which nodes hold replicas of a recipient's durable messages: the `k` nodes with the
 * `storage` role closest to the recipient by XOR distance (Kademlia's metric) between
 * sha2-256(agent id) and sha2-256(peer id). Pure and deterministic, so the sender's node,
 * the home node and the replicas themselves compute the same set from the same node
 * records — that is how an acknowledgement finds every copy.
 */
import { createHash } from 'node:crypto'

export const DEFAULT_REPLICAS = 2
export const MAX_REPLICAS = 8

/** Keys of ids seen lately: the same recipients and peers come up message after message. */
const keys = new Map<string, Buffer>()
const KEY_CACHE = 4_096

function key (s: string): Buffer {
  let k = keys.get(s)
  if (k == null) {
    k = createHash('sha256').update(s).digest()
    if (keys.size >= KEY_CACHE) keys.delete(keys.keys().next().value as string)
    keys.set(s, k)
  }
  return k
}

/** XOR distance of two 32-byte keys, compared bytewise (big-endian). */
export function compareDistance (target: Buffer, a: Buffer, b: Buffer): number {
  for (let i = 0; i < target.length; i++) {
    const da = target[i] ^ a[i]
    const db = target[i] ^ b[i]
    if (da !== db) return da - db
  }
  return 0
}

export interface StorageCandidate { peer: string, roles: readonly string[] }

/**
 * The `k` storage nodes closest to `recipient`, nearest first, skipping `exclude` (the
 * recipient's home nodes: they hold the primary copy). Ties (impossible for distinct peer
 * ids) fall back to the peer id order.
 */
export function chooseReplicas (recipient: string, candidates: readonly StorageCandidate[], k: number, exclude: ReadonlySet<string> = new Set()): string[] {
  if (k <= 0) return []
  const peers = [...new Set(candidates.filter(c => c.roles.includes('storage') && !exclude.has(c.peer)).map(c => c.peer))]
  if (peers.length === 0) return []
  const target = key(recipient)
  const keyed = peers.map(peer => ({ peer, k: key(peer) }))
  keyed.sort((a, b) => compareDistance(target, a.k, b.k) || (a.peer < b.peer ? -1 : 1))
  return keyed.slice(0, k).map(x => x.peer)
}
