/**
 * The JSON form of a message-log record, shared by `GET /v1/log` and `fedmesh log --json`
 * (which reads the store directly): the same record looks the same from either source.
 */
import { decodeEnvelope, envelopeToJson } from '../core/envelope.ts'
import type { LogRecord } from '../store/types.ts'
import { toBase64 } from '../util/base64.ts'

/** A log record as JSON: the wire bytes, when present, become the message's JSON form. */
export function logRecordJson (r: LogRecord): Record<string, unknown> {
  const { bytes, ...rest } = r
  const out: Record<string, unknown> = { ...rest }
  if (bytes != null) {
    const decoded = decodeEnvelope(bytes)
    if (decoded.ok) {
      try { out.message = envelopeToJson(decoded.envelope) } catch { out.messageBase64 = toBase64(bytes) }
    }
  }
  return out
}
