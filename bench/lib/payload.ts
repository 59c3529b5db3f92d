/**
 * Benchmark payloads: `[kind u8][seq u32 BE]` then filler up to the requested size. Every
 * payload is distinct — gossipsub's unsigned message id is the hash of the data, so equal
 * payloads would be dropped as duplicates — and replies differ from requests in `kind`.
 */

export const KIND_PROBE = 0
export const KIND_DATA = 1
export const KIND_REPLY = 2

export const HEADER_BYTES = 5

export function makePayload (size: number, kind: number, seq: number): Uint8Array {
  const buf = new Uint8Array(size)
  buf.fill(0x61, HEADER_BYTES)
  buf[0] = kind
  new DataView(buf.buffer).setUint32(1, seq >>> 0)
  return buf
}

export function kindOf (payload: Uint8Array): number { return payload[0] ?? -1 }

export function seqOf (payload: Uint8Array): number {
  return new DataView(payload.buffer, payload.byteOffset, payload.byteLength).getUint32(1)
}

/** The reply to a request: same bytes, kind REPLY (a fresh copy; the request may be reused). */
export function replyTo (request: Uint8Array): Uint8Array {
  const reply = new Uint8Array(request)
  reply[0] = KIND_REPLY
  return reply
}
