/**
 * Delivery receipts: end-to-end proof that a recipient agent processed durable messages.
 * A receipt is an ordinary envelope, so it is signed by the recipient's own key and any
 * sender verifies it with `decodeEnvelope` alone (docs/PROTOCOL.md §8.4.4):
 *
 *   mode direct, type `receipt`, from = the recipient, to = [the original sender],
 *   corr = the first acknowledged id, ct application/json, body {"ids": [<message id>…]}
 *
 * One receipt covers up to `MAX_RECEIPT_IDS` messages from one sender, so a busy recipient
 * signs one envelope per batch, not one per message.
 */
import * as dagCbor from '@ipld/dag-cbor'
import type { AgentId, MessageId, NetworkId } from '../core/ids.ts'
import { decodeEnvelope, type Envelope } from '../core/envelope.ts'
import { InvalidEnvelopeError } from '../core/errors.ts'

export const RECEIPT_TYPE = 'receipt'
export const MAX_RECEIPT_IDS = 256

export interface Receipt {
  /** The recipient agent that signed the receipt. */
  by: AgentId
  /** The sender the receipt is addressed to. */
  to: AgentId
  ids: MessageId[]
  /** When the recipient signed it (envelope ts). */
  ts: number
  /** The receipt envelope itself (its `bytes` are the portable proof). */
  envelope: Envelope
}

const ID_RE = /^b[a-z2-7]{55}$/

export function receiptPayload (ids: readonly MessageId[]): { ids: MessageId[] } {
  return { ids: [...ids] }
}

/** True when the envelope claims to be a receipt (type and mode). */
export function isReceipt (env: Pick<Envelope, 'type' | 'mode'>): boolean {
  return env.type === RECEIPT_TYPE && env.mode === 'direct'
}

/** Reads a verified receipt envelope; throws InvalidEnvelopeError when it is not a well-formed receipt. */
export function parseReceipt (env: Envelope): Receipt {
  if (!isReceipt(env)) throw new InvalidEnvelopeError('not a receipt (type receipt, mode direct)')
  let body: unknown
  try { body = JSON.parse(Buffer.from(env.body).toString('utf8')) } catch { throw new InvalidEnvelopeError('receipt body is not JSON') }
  const ids = (body as { ids?: unknown } | null)?.ids
  if (!Array.isArray(ids) || ids.length === 0 || ids.length > MAX_RECEIPT_IDS || !ids.every(i => typeof i === 'string' && ID_RE.test(i))) {
    throw new InvalidEnvelopeError(`receipt body must be {"ids": [1–${MAX_RECEIPT_IDS} message ids]}`)
  }
  return { by: env.from, to: (env.to as AgentId[])[0], ids: ids as MessageId[], ts: env.ts, envelope: env }
}

/**
 * Verifies receipt wire bytes as the sender would: signature, shape, and (optionally) that
 * the expected recipient signed it and that it covers `id`.
 */
export function verifyReceipt (bytes: Uint8Array, expect: { by?: AgentId, id?: MessageId } = {}): Receipt {
  const res = decodeEnvelope(bytes)
  if (!res.ok) throw new InvalidEnvelopeError(`receipt does not verify: ${res.reason}: ${res.detail}`)
  const r = parseReceipt(res.envelope)
  if (expect.by != null && r.by !== expect.by) throw new InvalidEnvelopeError(`receipt is signed by ${r.by}, expected ${expect.by}`)
  if (expect.id != null && !r.ids.includes(expect.id)) throw new InvalidEnvelopeError(`receipt does not cover ${expect.id}`)
  return r
}

/**
 * The receipts a home node has not been able to forward to their senders yet, kept in its
 * data dir across restarts (docs/PROTOCOL.md §8.4.4): a DAG-CBOR list of receipt wire bytes,
 * oldest first.
 */
export const PENDING_RECEIPTS_FILE = 'pending-receipts.cbor'

export function encodeReceiptList (receipts: readonly Uint8Array[]): Uint8Array {
  return dagCbor.encode(receipts)
}

export interface ReceiptList {
  /** The receipts that verified and are still within their ttl, oldest first, no id twice. */
  receipts: Receipt[]
  /** Entries left out because their ttl ran out. */
  expired: number
  /** Entries left out because they are not a receipt of this network that verifies. */
  invalid: number
}

/**
 * Reads a receipt list back, trusting nothing in it: each entry is verified again
 * (signature, receipt shape, network) and kept only while `now` is within its ttl; of more
 * than `max`, the newest `max` are kept. Throws InvalidEnvelopeError when `bytes` is not a
 * DAG-CBOR list.
 */
export function decodeReceiptList (bytes: Uint8Array, o: { network: NetworkId, now: number, max: number }): ReceiptList {
  let list: unknown
  try { list = dagCbor.decode(bytes) } catch (err) { throw new InvalidEnvelopeError(`receipt list is not DAG-CBOR: ${(err as Error).message}`) }
  if (!Array.isArray(list)) throw new InvalidEnvelopeError('receipt list is not a list')
  const out: ReceiptList = { receipts: [], expired: 0, invalid: 0 }
  const seen = new Set<string>()
  for (const item of list.slice(Math.max(0, list.length - o.max))) {
    let r: Receipt
    try {
      if (!(item instanceof Uint8Array)) throw new InvalidEnvelopeError('not bytes')
      r = verifyReceipt(item)
      if (r.envelope.net !== o.network) throw new InvalidEnvelopeError('another network')
    } catch {
      out.invalid++
      continue
    }
    if (r.ts + r.envelope.ttl * 1000 <= o.now) out.expired++
    else if (!seen.has(r.envelope.id)) {
      seen.add(r.envelope.id)
      out.receipts.push(r)
    }
  }
  return out
}
