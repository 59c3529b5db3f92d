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
 *
 * And a read of whole messages with nothing buffered before it (`wholeMessages`) is split
 * into views of the read, without the decoder's lists (PERFORMANCE.md, "Request–reply,
 * session 9"). A message the library's path yields as a list (spread over reads) is joined
 * into one buffer here (`joined`), once: Noise's decrypt joined such a list twice — the
 * ciphertext for the AEAD, and again the space it decrypts into (PERFORMANCE.md, "Topic
 * path, session 13").
 */
import { LengthPrefixedDecoder } from '@libp2p/utils'
import type { Uint8ArrayList } from 'uint8arraylist'

type LengthDecoder = (data: Uint8ArrayList | Uint8Array) => number
interface DecoderState {
  buffer: Uint8ArrayList
  lengthDecoder: LengthDecoder
  encodingLength: (length: number) => number
  maxBufferSize: number
  maxDataLength: number
  [QUIET]?: true
}

const QUIET = Symbol('fedmesh.quietLength')
let installed = false

/** Installs the empty-buffer answer on LengthPrefixedDecoder (once per process; idempotent). */
export function quietLengthPrefixReads (): void {
  if (installed) return
  installed = true
  const proto = LengthPrefixedDecoder.prototype as unknown as { decode: (this: DecoderState, buf: Uint8Array | Uint8ArrayList) => Iterable<Uint8ArrayList | Uint8Array> }
  const original = proto.decode
  const libraryPath = (d: DecoderState, buf: Uint8Array): Iterable<Uint8ArrayList | Uint8Array> => joined(original.call(d, buf))
  proto.decode = function (this: DecoderState, buf: Uint8Array | Uint8ArrayList): Iterable<Uint8ArrayList | Uint8Array> {
    if (this[QUIET] !== true) {
      this[QUIET] = true
      this.lengthDecoder = emptyIsShort(this.lengthDecoder)
    }
    if (this.buffer.byteLength === 0 && buf instanceof Uint8Array) {
      const whole = wholeMessages(this, buf, libraryPath)
      if (whole !== undefined) return whole
    }
    return joined(original.call(this, buf))
  }
}

/**
 * The library's messages, each as one Uint8Array: a list (a message spread over reads) is
 * joined into a new buffer, a list of one part is that part. Noise's decrypt takes a
 * Uint8Array as views of itself — the ciphertext and the space it is decrypted into, in
 * place — where a list was joined into a buffer of its own for each of the two.
 */
export function * joined (messages: Iterable<Uint8ArrayList | Uint8Array>): Generator<Uint8Array> {
  for (const m of messages) yield m instanceof Uint8Array ? m : m.subarray()
}

/**
 * A read with nothing buffered before it — nearly every read of a request–reply link, which
 * holds one whole message: its whole messages as views of the read itself, in an array,
 * without the library's buffer list, a sublist per message and the generator (Noise's
 * decrypt takes a Uint8Array as it takes a list, and decrypts in place either way: the same
 * bytes). An incomplete message at the end stays in the decoder's buffer, as the library
 * leaves it. Undefined when the read is over the buffer limit, and a bad length (or another
 * error of the length decoder) goes to the library's path for what is left, so it throws
 * there after the messages before it, as before.
 */
export function wholeMessages (d: DecoderState, buf: Uint8Array, rest: (d: DecoderState, buf: Uint8Array) => Iterable<Uint8ArrayList | Uint8Array>): Iterable<Uint8ArrayList | Uint8Array> | undefined {
  if (buf.byteLength > d.maxBufferSize) return undefined
  const out: Uint8Array[] = []
  let o = 0
  while (o < buf.byteLength) {
    const at = o === 0 ? buf : buf.subarray(o)
    let length: number
    try {
      length = d.lengthDecoder(at)
    } catch (err) {
      if (!(err instanceof RangeError)) return thenRest(out, d, at, rest)
      // Not even the length prefix yet: it waits for the next read.
      d.buffer.append(at)
      return out
    }
    if (length < 0 || length > d.maxDataLength) return thenRest(out, d, at, rest)
    const start = o + d.encodingLength(length)
    const end = start + length
    if (end > buf.byteLength) {
      d.buffer.append(at)
      return out
    }
    // A zero-length message is not passed on (the library's rule).
    if (length > 0) out.push(buf.subarray(start, end))
    o = end
  }
  return out
}

/** The messages found, then the library's path for the rest of the read (where it throws). */
function * thenRest (out: Uint8Array[], d: DecoderState, at: Uint8Array, rest: (d: DecoderState, buf: Uint8Array) => Iterable<Uint8ArrayList | Uint8Array>): Generator<Uint8ArrayList | Uint8Array> {
  yield * out
  yield * rest(d, at)
}

/** `decode`, except that an empty buffer reads as length 0 (too short for any frame) instead of throwing. */
export function emptyIsShort (decode: LengthDecoder): LengthDecoder {
  return (data) => data.byteLength === 0 ? 0 : decode(data)
}
