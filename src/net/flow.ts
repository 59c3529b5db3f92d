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
      // The remote finished writing, or the stream closed. Data can still be waiting in the
      // stream's own read buffer (it holds what arrives while paused, and hands it out only
      // on resume), so this is the end only once that buffer is empty too.
      let finished = false
      let error: Error | undefined
      let wake: (() => void) | undefined
      const notify = (): void => { const w = wake; wake = undefined; w?.() }
      // pause/resume throw on a stream whose readable end has closed; by then there is
      // nothing left to flow-control.
      const setPaused = (on: boolean): void => {
        if (paused === on) return
        paused = on
        try { if (on) stream.pause(); else stream.resume() } catch { paused = false }
      }
      const onMessage = (evt: Event): void => {
        const data = (evt as Event & { data: Uint8Array | Uint8ArrayList }).data
        queue.push(data)
        queued += data.byteLength
        // Deferred: this can run inside stream.resume(), which dispatches the buffered data
        // before it tells the muxer to resume; pausing synchronously here would be undone
        // by that, leaving the stream marked paused while the muxer keeps granting window.
        if (queued > highWater && !finished) queueMicrotask(() => { if (queued > highWater && !finished) setPaused(true) })
        notify()
      }
      const onEnd = (evt: Event): void => {
        finished = true
        error ??= (evt as Event & { error?: Error }).error
        // Let the rest of the read buffer out now that the sender is done.
        setPaused(false)
        notify()
      }
      const cleanup = (): void => {
        stream.removeEventListener('message', onMessage)
        stream.removeEventListener('close', onEnd)
        stream.removeEventListener('remoteCloseWrite', onEnd)
      }
      if (stream.readStatus !== 'readable' && stream.readStatus !== 'paused') finished = true
      else {
        stream.addEventListener('message', onMessage)
        stream.addEventListener('close', onEnd)
        stream.addEventListener('remoteCloseWrite', onEnd)
      }
      const drained = (): boolean => finished && queue.length === 0 && stream.readBufferLength === 0
      return {
        async next (): Promise<IteratorResult<Uint8Array | Uint8ArrayList>> {
          while (queue.length === 0) {
            if (drained()) {
              cleanup()
              if (error != null) throw error
              return { done: true, value: undefined }
            }
            await new Promise<void>((resolve) => {
              wake = resolve
              // Buffered data is dispatched by the stream on a timer: poll once in case the
              // last of it arrives without another event to wake us.
              if (finished) setTimeout(() => { notify() }, 10)
            })
          }
          const value = queue.shift() as Uint8Array | Uint8ArrayList
          queued -= value.byteLength
          if (paused && queued <= highWater / 2) setPaused(false)
          return { done: false, value }
        },
        async return (): Promise<IteratorResult<Uint8Array | Uint8ArrayList>> {
          cleanup()
          queue.length = 0
          setPaused(false)
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
  await belowHighWater(stream, options)
}

/**
 * Undefined when the stream's write buffer is at most `highWater` (or the stream no longer
 * writable): nothing to wait for, and no promise made. Else a promise that resolves once it
 * is (see sendWithBackpressure).
 */
export function belowHighWater (stream: Stream, options: { signal?: AbortSignal, highWater?: number } = {}): Promise<void> | undefined {
  const highWater = options.highWater ?? DEFAULT_WRITE_HIGH_WATER_BYTES
  if (stream.writeBufferLength <= highWater || stream.writeStatus !== 'writable') return undefined
  return waitBelow(stream, highWater, options.signal)
}

async function waitBelow (stream: Stream, highWater: number, signal?: AbortSignal): Promise<void> {
  while (stream.writeBufferLength > highWater) {
    if (stream.writeStatus !== 'writable') return
    if (signal === undefined) {
      await new Promise<void>((resolve) => { waitersOf(stream).push(resolve) })
      continue
    }
    // An abort rejects the wait (it used to resolve it first: with the buffer still above
    // the mark, the loop then waited on the aborted signal again, at once, without end).
    if (signal.aborted) throw abortReason(signal, 'stream write')
    await new Promise<void>((resolve, reject) => {
      const off = (): void => {
        stream.removeEventListener('idle', done)
        stream.removeEventListener('close', done)
        signal.removeEventListener('abort', onAbort)
      }
      const done = (): void => { off(); resolve() }
      const onAbort = (): void => { off(); reject(abortReason(signal, 'stream write')) }
      stream.addEventListener('idle', done)
      stream.addEventListener('close', done)
      signal.addEventListener('abort', onAbort, { once: true })
    })
  }
}

/**
 * The writers of a stream waiting (without a signal) for its next `idle` or `close`. A
 * stream gets its two listeners once, the first time a writer waits on it, and keeps them:
 * a FrameLink waits after most batch writes while a publisher outruns the link, and
 * libp2p's event target removes a listener by filtering its whole list and re-flattening
 * the options of each match (≈ 3.7 % of a fan-out publisher's main thread, session 14).
 */
const streamWaiters = new WeakMap<Stream, Array<() => void>>()

function waitersOf (stream: Stream): Array<() => void> {
  let list = streamWaiters.get(stream)
  if (list === undefined) {
    const waiting: Array<() => void> = []
    const wake = (): void => {
      if (waiting.length === 0) return
      const due = waiting.splice(0, waiting.length)
      for (const resolve of due) resolve()
    }
    stream.addEventListener('idle', wake)
    stream.addEventListener('close', wake)
    streamWaiters.set(stream, waiting)
    list = waiting
  }
  return list
}
