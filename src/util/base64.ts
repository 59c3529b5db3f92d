/** Base64 for the JSON protocols (HTTP API, WebSocket), one implementation for both ends. */
import { InvalidArgumentError } from '../core/errors.ts'

export function toBase64 (bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64')
}

/** Decodes standard base64; anything else is an InvalidArgumentError naming `what`. */
export function fromBase64 (s: unknown, what: string = 'value'): Uint8Array {
  if (typeof s !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(s)) throw new InvalidArgumentError(`${what} must be base64`)
  return new Uint8Array(Buffer.from(s, 'base64'))
}
