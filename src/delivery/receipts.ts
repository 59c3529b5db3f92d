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
import type { AgentId, MessageId } from '../core/ids.ts'
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
