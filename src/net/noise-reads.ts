/**
 * Noise transport messages read without an exception per socket read.
 *
 * js-libp2p-noise splits what a connection reads into Noise messages with @libp2p/utils'
 * LengthPrefixedDecoder, whose loop reads lengths until the length decoder throws a
 * RangeError for want of bytes. Noise's decoder (`uint16BEDecode`) throws one whenever
 * fewer than two bytes are left — so on every read that ends on a message boundary, which
 * is nearly every read of request–reply traffic: an Error built, its stack trace captured
 * and caught, ~6 % of a responder's busy time in the round-trip profile. Here a decoder
 * whose buffer is empty is answered "length 0" instead: a message of length 0 still needs
 * its length prefix (1 byte or more), which an empty buffer does not hold, so the loop
 * stops exactly where the RangeError stopped it. Any other input takes the length
 * decoder as before (a partial prefix still throws and is still caught).
 */
import { LengthPrefixedDecoder } from '@libp2p/utils'
import type { Uint8ArrayList } from 'uint8arraylist'

type LengthDecoder = (data: Uint8ArrayList | Uint8Array) => number
interface DecoderState { lengthDecoder: LengthDecoder, [QUIET]?: true }

const QUIET = Symbol('fedmesh.quietLength')
let installed = false

/** Installs the empty-buffer answer on LengthPrefixedDecoder (once per process; idempotent). */
export function quietLengthPrefixReads (): void {
  if (installed) return
  installed = true
  const proto = LengthPrefixedDecoder.prototype as unknown as { decode: (this: DecoderState, buf: Uint8Array | Uint8ArrayList) => Generator<Uint8ArrayList> }
  const original = proto.decode
  proto.decode = function (this: DecoderState, buf: Uint8Array | Uint8ArrayList): Generator<Uint8ArrayList> {
    if (this[QUIET] !== true) {
      this[QUIET] = true
      this.lengthDecoder = emptyIsShort(this.lengthDecoder)
    }
    return original.call(this, buf)
  }
}

/** `decode`, except that an empty buffer reads as length 0 (too short for any frame) instead of throwing. */
export function emptyIsShort (decode: LengthDecoder): LengthDecoder {
  return (data) => data.byteLength === 0 ? 0 : decode(data)
}
