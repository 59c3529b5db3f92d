/**
 * Agent streams over the node API's WebSocket, shared by the server (api/ws.ts) and the
 * remote SDK (sdk/remote.ts). One `WsByteStream` per stream id on each side.
 *
 *   {op:'stream-data', sid, data}    a chunk (base64), at most MAX_WS_CHUNK bytes
 *   {op:'stream-credit', sid, n}     the reader consumed n chunks: the writer may send n more
 *   {op:'stream-end', sid, error?}   the sender's side is finished (or failed)
 *
 * Flow control is by credit: each side may have at most STREAM_WINDOW unacknowledged
 * chunks in flight, which is also the receiver's buffer, so a slow reader slows the
 * writer down end to end (across the WebSocket and the libp2p stream behind it) instead
 * of filling memory. A peer that sends past its credit violates the protocol and the
 * stream is aborted.
 */
import { Channel } from '../util/channel.ts'
import { ClosedError, FedmeshError, InvalidArgumentError, abortReason } from '../core/errors.ts'
import type { ByteStream } from '../routing/types.ts'
import type { AbortOptions } from '../node/types.ts'
import type { ErrorJson } from './protocol.ts'
import { errorFromJson } from './errors.ts'
import { toBase64 } from '../util/base64.ts'

export const STREAM_WINDOW = 8
export const MAX_WS_CHUNK = 256 * 1024
export const MAX_STREAMS_PER_CONNECTION = 64

export type StreamWireMessage =
  | { op: 'stream-data', sid: string, data: string }
  | { op: 'stream-credit', sid: string, n: number }
  | { op: 'stream-end', sid: string, error?: ErrorJson }

function toErrorJson (err: Error): ErrorJson {
  const e = err as Partial<FedmeshError>
  return { code: typeof e.code === 'string' ? e.code : 'StreamError', message: err.message }
}

export class WsByteStream implements ByteStream {
  readonly sid: string
  private readonly sendWire: (m: StreamWireMessage) => void
  private readonly inbound = new Channel<Uint8Array>(STREAM_WINDOW)
  private credit = STREAM_WINDOW
  private readonly waiters: Array<() => void> = []
  private writeEnded = false
  private readEnded = false
  private failure?: Error
  private readonly onDone: () => void

  /** `send` must deliver messages in order; `onDone` runs once both directions are over. */
  constructor (sid: string, send: (m: StreamWireMessage) => void, onDone: () => void) {
    this.sid = sid
    this.sendWire = send
    this.onDone = onDone
  }

  /** A stream-* message from the other side for this sid. */
  receive (m: Record<string, unknown>): void {
    if (m.op === 'stream-credit') {
      const n = m.n
      if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > STREAM_WINDOW) { this.abort(new InvalidArgumentError('bad stream credit')); return }
      this.credit = Math.min(this.credit + n, STREAM_WINDOW)
      for (const wake of this.waiters.splice(0)) wake()
      return
    }
    if (m.op === 'stream-data') {
      if (this.readEnded) return
      const data = m.data
      if (typeof data !== 'string' || data.length > Math.ceil(MAX_WS_CHUNK / 3) * 4 + 4) { this.abort(new InvalidArgumentError('bad stream chunk')); return }
      // Past its credit the peer ignored flow control: refuse rather than buffer.
      if (!this.inbound.push(new Uint8Array(Buffer.from(data, 'base64')))) this.abort(new InvalidArgumentError('stream chunk sent without credit'))
      return
    }
    if (m.op === 'stream-end') {
      if (m.error != null) this.fail(errorFromJson(m.error as ErrorJson, 'stream failed'), false)
      else { this.readEnded = true; this.inbound.end(); this.maybeDone() }
    }
  }

  async write (chunk: Uint8Array, options: AbortOptions = {}): Promise<void> {
    for (let off = 0; off < chunk.length || (chunk.length === 0 && off === 0); off += MAX_WS_CHUNK) {
      const piece = chunk.subarray(off, off + MAX_WS_CHUNK)
      while (this.credit === 0 && this.failure == null && !this.writeEnded) {
        if (options.signal?.aborted === true) throw abortReason(options.signal, 'stream write')
        await new Promise<void>((resolve) => {
          const onAbort = (): void => { resolve() }
          options.signal?.addEventListener('abort', onAbort, { once: true })
          this.waiters.push(() => { options.signal?.removeEventListener('abort', onAbort); resolve() })
        })
      }
      if (this.failure != null) throw this.failure
      if (this.writeEnded) throw new ClosedError('stream closed for writing')
      if (options.signal?.aborted === true) throw abortReason(options.signal, 'stream write')
      this.credit--
      this.sendWire({ op: 'stream-data', sid: this.sid, data: toBase64(piece) })
      if (chunk.length === 0) break
    }
  }

  async close (): Promise<void> {
    if (this.writeEnded || this.failure != null) return
    this.writeEnded = true
    for (const wake of this.waiters.splice(0)) wake()
    this.sendWire({ op: 'stream-end', sid: this.sid })
    this.maybeDone()
  }

  abort (err: Error): void {
    this.fail(err, true)
  }

  /** Ends both directions; `tell` sends the failure to the other side. */
  fail (err: Error, tell: boolean): void {
    if (this.failure != null) return
    this.failure = err
    if (tell && !(this.writeEnded && this.readEnded)) {
      try { this.sendWire({ op: 'stream-end', sid: this.sid, error: toErrorJson(err) }) } catch {}
    }
    this.writeEnded = true
    this.readEnded = true
    this.inbound.end(err)
    for (const wake of this.waiters.splice(0)) wake()
    this.onDone()
  }

  private maybeDone (): void {
    if (this.writeEnded && this.readEnded && this.failure == null) this.onDone()
  }

  [Symbol.asyncIterator] (): AsyncIterator<Uint8Array> {
    const it = this.inbound[Symbol.asyncIterator]()
    return {
      next: async () => {
        const r = await it.next()
        // Each consumed chunk frees a slot in our buffer: give the writer one more credit.
        if (r.done !== true && this.failure == null && !this.readEnded) {
          try { this.sendWire({ op: 'stream-credit', sid: this.sid, n: 1 }) } catch {}
        }
        return r
      },
      return: async () => {
        if (!this.readEnded) this.abort(new ClosedError('reader stopped'))
        return { done: true, value: undefined }
      }
    }
  }
}

/** Copies one side into the other until it ends; a failure aborts the destination. */
export async function pipeStream (from: AsyncIterable<Uint8Array>, to: ByteStream): Promise<void> {
  try {
    for await (const chunk of from) await to.write(chunk)
    await to.close()
  } catch (err) {
    to.abort(err as Error)
  }
}
