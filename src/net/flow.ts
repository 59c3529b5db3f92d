/**
 * Flow control on libp2p 3 streams, both ways.
 *
 * Reading: the stream's own async iterator The stream's own async iterator queues
 * every incoming message without bound, so a slow reader never slows the sender: it just
 * fills memory. This reader keeps its own queue and pauses the stream above `highWater`
 * bytes (yamux then stops granting window to the sender, whose `send` returns false and
 * waits for drain), and resumes it once the queue is down to half.
 */
import type { Stream } from '@libp2p/interface'
import type { Uint8ArrayList } from 'uint8arraylist'
import { abortReason } from '../core/errors.ts'

export const DEFAULT_HIGH_WATER_BYTES = 1024 * 1024

export function boundedSource (stream: Stream, highWater: number = DEFAULT_HIGH_WATER_BYTES): AsyncIterable<Uint8Array | Uint8ArrayList> {
  return {
    [Symbol.asyncIterator] () {
      const queue: Array<Uint8Array | Uint8ArrayList> = []
      let queued = 0
      let paused = false
      let ended = false
      let error: Error | undefined
      let wake: (() => void) | undefined
      const notify = (): void => { const w = wake; wake = undefined; w?.() }
      const onMessage = (evt: Event): void => {
        const data = (evt as Event & { data: Uint8Array | Uint8ArrayList }).data
        queue.push(data)
        queued += data.byteLength
        if (!paused && queued > highWater) { paused = true; stream.pause() }
        notify()
      }
      const onClose = (evt: Event): void => { ended = true; error = (evt as Event & { error?: Error }).error; notify() }
      const onRemoteCloseWrite = (): void => { ended = true; notify() }
      const cleanup = (): void => {
        stream.removeEventListener('message', onMessage)
        stream.removeEventListener('close', onClose)
        stream.removeEventListener('remoteCloseWrite', onRemoteCloseWrite)
      }
      if (stream.readStatus !== 'readable' && stream.readStatus !== 'paused') ended = true
      else {
        stream.addEventListener('message', onMessage)
        stream.addEventListener('close', onClose)
        stream.addEventListener('remoteCloseWrite', onRemoteCloseWrite)
      }
      return {
        async next (): Promise<IteratorResult<Uint8Array | Uint8ArrayList>> {
          while (queue.length === 0) {
            if (ended) {
              cleanup()
              if (error != null) throw error
              return { done: true, value: undefined }
            }
            await new Promise<void>(resolve => { wake = resolve })
          }
          const value = queue.shift() as Uint8Array | Uint8ArrayList
          queued -= value.byteLength
          if (paused && queued <= highWater / 2) { paused = false; stream.resume() }
          return { done: false, value }
        },
        async return (): Promise<IteratorResult<Uint8Array | Uint8ArrayList>> {
          cleanup()
          queue.length = 0
          if (paused) stream.resume()
          return { done: true, value: undefined }
        }
      }
    }
  }
}

export const DEFAULT_WRITE_HIGH_WATER_BYTES = 256 * 1024

/**
 * Writing: `send` returns false once the muxer's window is exhausted, but the stream's
 * `drain` event can fire while this stream still has no window (it follows the shared
 * connection), so `onDrain()` alone lets the write buffer grow without bound. We wait
 * instead until this stream's own write buffer is below `highWater`, woken by its
 * `idle` event (write buffer empty) or a close.
 */
export async function sendWithBackpressure (stream: Stream, data: Uint8Array | Uint8ArrayList, options: { signal?: AbortSignal, highWater?: number } = {}): Promise<void> {
  stream.send(data)
  const highWater = options.highWater ?? DEFAULT_WRITE_HIGH_WATER_BYTES
  while (stream.writeBufferLength > highWater) {
    if (stream.writeStatus !== 'writable') return
    const signal = options.signal
    await new Promise<void>((resolve, reject) => {
      const done = (): void => {
        stream.removeEventListener('idle', done)
        stream.removeEventListener('close', done)
        signal?.removeEventListener('abort', onAbort)
        resolve()
      }
      const onAbort = (): void => { done(); reject(abortReason(signal as AbortSignal, 'stream write')) }
      if (signal?.aborted === true) { onAbort(); return }
      stream.addEventListener('idle', done)
      stream.addEventListener('close', done)
      signal?.addEventListener('abort', onAbort, { once: true })
    })
  }
}
