import type { Stream } from '@libp2p/interface'
import { Uint8ArrayList } from 'uint8arraylist'

/**
 * The parts of a libp2p Stream that FrameLink uses, with nothing behind them: `send` takes
 * everything (collected in `writes`; nothing stays buffered, so there is no backpressure),
 * `feed` delivers a chunk as the muxer does (a `message` event; several parts arrive as one
 * Uint8ArrayList), `end` closes the remote's writable end.
 */
export function messageStream () {
  const target = new EventTarget()
  const writes: Uint8Array[] = []
  const stream = Object.assign(target, {
    readStatus: 'readable',
    writeStatus: 'writable',
    readBufferLength: 0,
    writeBufferLength: 0,
    pause () {},
    resume () {},
    send (buf: Uint8Array) { writes.push(buf); return true },
    close: async () => {},
    abort () {}
  })
  return {
    stream: stream as unknown as Stream,
    writes,
    feed: (...parts: Uint8Array[]) => {
      const data = parts.length === 1 ? parts[0] : new Uint8ArrayList(...parts)
      target.dispatchEvent(Object.assign(new Event('message'), { data }))
    },
    end: () => { stream.readStatus = 'closed'; target.dispatchEvent(new Event('remoteCloseWrite')) }
  }
}
