/**
 * Batch-signed inbox entries (schema 8, docs/STORE.md "Batches"): an entry of a batch keeps
 * its unsigned leaf bytes, its leaf index and a reference to one `inbox_batches` row holding
 * the batch signature and every leaf digest, instead of its full wire bytes (≈ 350 bytes of
 * signature and proof per row). Reads rebuild the wire bytes — byte-identical to the signer's
 * — from the three. Main thread only: it needs the envelope encoder, which the writer thread
 * never loads (reads.ts imports this module when it first meets such a row).
 */
import { crc32 } from 'node:zlib'
import { idOfDigest, leafWireSize, spliceLeafWire } from '../core/envelope.ts'
import { MAX_BATCH, merkleTree } from '../core/batch.ts'
import { StoreCorruptError } from './errors.ts'
import { InvalidArgumentError } from '../core/errors.ts'
import type { InboxBatch } from './types.ts'
import type { NormalizedBatch, NormalizedEntry } from './validate.ts'
import { plainBytes } from './validate.ts'

/** Checksum of a batch row: CRC-32 over the signature, then the leaves. */
export function batchChecksum (sig: Uint8Array, leaves: Uint8Array): number {
  return crc32(leaves, crc32(sig))
}

/**
 * Each batch object given is normalized once (its checksum, its copies when not owned): the
 * entries of one batch then share one NormalizedBatch, which the writer makes one row of.
 */
const normalized = new WeakMap<InboxBatch, NormalizedBatch>()

function normalizeBatch (b: InboxBatch, owned: boolean): NormalizedBatch {
  let nb = normalized.get(b)
  if (nb !== undefined) return nb
  if (b == null || typeof b !== 'object') throw new InvalidArgumentError('entry.batch must be an object')
  const { sig, leaves } = b
  if (!(sig instanceof Uint8Array) || sig.length !== 64) throw new InvalidArgumentError('entry.batch.sig must be 64 bytes')
  if (!(leaves instanceof Uint8Array) || leaves.length % 32 !== 0 || leaves.length < 64 || leaves.length > 32 * MAX_BATCH) throw new InvalidArgumentError(`entry.batch.leaves must be 2 … ${MAX_BATCH} leaves of 32 bytes`)
  const s = owned && sig.constructor === Uint8Array ? sig : plainBytes(sig)
  const l = owned && leaves.constructor === Uint8Array ? leaves : plainBytes(leaves)
  nb = { sig: s, leaves: l, crc: batchChecksum(s, l) }
  normalized.set(b, nb)
  return nb
}

/**
 * Makes `e` (its bytes the unsigned leaf bytes) an entry of `batch` at `leaf`: its id must be
 * that leaf's, and its size is the wire size (quotas count what is delivered).
 */
export function attachBatch (e: NormalizedEntry, batch: InboxBatch | undefined, leaf: number | undefined, owned: boolean): void {
  if (batch === undefined || leaf === undefined) throw new InvalidArgumentError('entry.batch and entry.leaf go together')
  const nb = normalizeBatch(batch, owned)
  const n = nb.leaves.length >>> 5
  if (!Number.isInteger(leaf) || leaf < 0 || leaf >= n) throw new InvalidArgumentError(`entry.leaf must be 0 … ${n - 1}`)
  if (idOfDigest(nb.leaves, 32 * leaf, 32) !== e.id) throw new InvalidArgumentError(`entry.id is not the id of leaf ${leaf} of entry.batch`)
  e.batch = nb
  e.leaf = leaf
  e.size = leafWireSize(e.bytes, n, leaf)
}

/** A batch row as read: checked against its checksum, its proofs built when first needed. */
export class StoredBatch {
  readonly sig: Uint8Array
  readonly leaves: Uint8Array
  readonly n: number
  private paths: Uint8Array[][] | undefined

  constructor (bid: number, sig: unknown, leaves: unknown, crc: unknown) {
    if (!(sig instanceof Uint8Array) || !(leaves instanceof Uint8Array)) throw new StoreCorruptError(`inbox batch ${bid} is missing its signature or leaves`, { details: { table: 'inbox_batches', bid } })
    const expected = Number(crc)
    const actual = batchChecksum(sig, leaves)
    if (actual !== expected || leaves.length % 32 !== 0 || leaves.length < 64) throw new StoreCorruptError(`inbox batch ${bid} fails its checksum`, { details: { table: 'inbox_batches', bid, expected, actual } })
    this.sig = sig
    this.leaves = leaves
    this.n = leaves.length >>> 5
  }

  /**
   * The wire bytes of the entry `id` stored as leaf `leaf` with unsigned bytes `u` (their own
   * checksum verified): the leaf must be that id's, so a row pointing at the wrong batch or
   * leaf fails as a corrupt payload does.
   */
  wire (where: Record<string, unknown>, id: string, u: Uint8Array, leaf: number): Uint8Array {
    this.checkLeaf(where, id, leaf)
    if (this.paths === undefined) {
      const leaves: Uint8Array[] = new Array(this.n)
      for (let i = 0; i < this.n; i++) leaves[i] = this.leaves.subarray(32 * i, 32 * i + 32)
      this.paths = merkleTree(leaves).paths
    }
    return spliceLeafWire(u, this.sig, { n: this.n, i: leaf, path: this.paths[leaf] })
  }

  /** Throws unless leaf `leaf` of this batch is the id's (the row's batch and leaf are what was stored). */
  checkLeaf (where: Record<string, unknown>, id: string, leaf: number): void {
    if (!Number.isInteger(leaf) || leaf < 0 || leaf >= this.n || idOfDigest(this.leaves, 32 * leaf, 32) !== id) {
      throw new StoreCorruptError(`stored payload of ${id} does not match its batch leaf`, { details: { ...where, leaf } })
    }
  }
}
