/**
 * Agent-to-agent byte streams. Across nodes: one libp2p stream on
 * `/fedmesh/<net>/stream/1.0.0`, chunks as length-prefixed frames after the signed open
 * handshake; backpressure is libp2p's (`send` returns false → wait for drain).
 * Within a node: a pair of bounded channels.
 */
import * as lp from 'it-length-prefixed'
import type { Stream } from '@libp2p/interface'
import type { Uint8ArrayList } from 'uint8arraylist'
import { Channel } from '../util/channel.ts'
import type { ByteStream } from './types.ts'
import type { AbortOptions } from '../node/types.ts'
import { ClosedError } from '../core/errors.ts'
import { sendWithBackpressure } from '../net/flow.ts'

export const MAX_CHUNK_BYTES = 1024 * 1024

export function libp2pByteStream (stream: Stream, frames: AsyncIterator<Uint8ArrayList>): ByteStream {
  return {
    async write (chunk: Uint8Array, options: AbortOptions = {}): Promise<void> {
      if (chunk.length > MAX_CHUNK_BYTES) throw new RangeError(`stream chunk over ${MAX_CHUNK_BYTES} bytes`)
      if (stream.writeStatus !== 'writable') throw new ClosedError('stream closed for writing')
      await sendWithBackpressure(stream, lp.encode.single(chunk), { signal: options.signal })
    },
    async close (): Promise<void> { await stream.close().catch(() => {}) },
    abort (err: Error): void { stream.abort(err) },
    [Symbol.asyncIterator] (): AsyncIterator<Uint8Array> {
      return {
        next: async () => {
          const r = await frames.next()
          return r.done === true ? { done: true, value: undefined } : { done: false, value: r.value.subarray() }
        },
        return: async () => { stream.abort(new ClosedError('reader stopped')); return { done: true, value: undefined } }
      }
    }
  }
}

/** Two connected in-memory ends, each with a bounded receive buffer (backpressure). */
export function memoryStreamPair (capacity: number = 64): [ByteStream, ByteStream] {
  const aToB = new Channel<Uint8Array>(capacity)
  const bToA = new Channel<Uint8Array>(capacity)
  const end = (tx: Channel<Uint8Array>, rx: Channel<Uint8Array>): ByteStream => ({
    write: async (chunk, options = {}) => { await tx.write(chunk, options.signal) },
    close: async () => { tx.end() },
    abort: (err) => { tx.end(err); rx.end(err) },
    [Symbol.asyncIterator]: () => rx[Symbol.asyncIterator]()
  })
  return [end(aToB, bToA), end(bToA, aToB)]
}
