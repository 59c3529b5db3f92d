/**
 * Node-to-node frames on `/fedmesh/<network>/msg/1.0.0`. Each direction carries
 * varint-length-prefixed DAG-CBOR maps. Writes are batched: frames queued in the same
 * tick (up to `maxBatchBytes`) go out in one `stream.send`, which is what lifts a libp2p
 * stream from ~21k writes/s to hundreds of thousands of frames/s (DESIGN.md). The queue
 * is ordered by priority, so under load higher-priority frames leave first.
 */
import * as dagCbor from '@ipld/dag-cbor'
import * as lp from 'it-length-prefixed'
import type { Stream } from '@libp2p/interface'
import { LIMITS } from '../core/envelope.ts'
import { ClosedError } from '../core/errors.ts'
import { boundedSource, sendWithBackpressure } from './flow.ts'

export const FRAME_MESSAGE = 1
export const FRAME_CONFIRM = 2

/** A message frame: `h` is the current hop count, `e` the envelope's wire bytes. */
export interface MessageFrame { t: typeof FRAME_MESSAGE, h: number, e: Uint8Array }
/** A delivery confirmation from the recipient's node. */
export interface ConfirmFrame { t: typeof FRAME_CONFIRM, id: string, ok: boolean, code?: string, msg?: string }
export type Frame = MessageFrame | ConfirmFrame

export const MAX_FRAME_BYTES = LIMITS.maxEnvelopeBytes + 4096

export function msgProtocol (network: string): string { return `/fedmesh/${network}/msg/1.0.0` }
export function streamProtocol (network: string): string { return `/fedmesh/${network}/stream/1.0.0` }
export function directoryProtocol (network: string): string { return `/fedmesh/${network}/directory/1.0.0` }

export function encodeFrame (frame: Frame): Uint8Array {
  const clean: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(frame)) if (v !== undefined) clean[k] = v
  return dagCbor.encode(clean)
}

/** Parses a frame; returns undefined for anything that is not a well-formed frame. */
export function decodeFrame (bytes: Uint8Array): Frame | undefined {
  let v: unknown
  try { v = dagCbor.decode(bytes) } catch { return undefined }
  if (v == null || typeof v !== 'object' || Array.isArray(v)) return undefined
  const f = v as Record<string, unknown>
  if (f.t === FRAME_MESSAGE && Number.isInteger(f.h) && (f.h as number) >= 0 && f.e instanceof Uint8Array) return f as unknown as MessageFrame
  if (f.t === FRAME_CONFIRM && typeof f.id === 'string' && typeof f.ok === 'boolean' &&
      (f.code === undefined || typeof f.code === 'string') && (f.msg === undefined || typeof f.msg === 'string')) return f as unknown as ConfirmFrame
  return undefined
}

export interface FrameLinkOptions {
  maxBatchBytes?: number
  /** Called for every well-formed frame read from the stream. */
  onFrame: (frame: Frame, raw: Uint8Array) => void
  /** Called for bytes that are not a frame (counted as `malformed` by the caller). */
  onGarbage?: (detail: string) => void
  onClose?: (err?: Error) => void
}

interface Pending { bytes: Uint8Array, resolve: () => void, reject: (err: Error) => void }

/**
 * A framed, batched, prioritised duplex over one libp2p stream. Used for both the
 * outbound link a node opens to a peer and the inbound one a peer opens to it.
 */
export class FrameLink {
  readonly stream: Stream
  private readonly queues: Pending[][] = [[], [], [], []]
  private queued = 0
  private flushing = false
  private closed = false
  private readonly maxBatchBytes: number
  private readonly opts: FrameLinkOptions
  readonly done: Promise<void>

  constructor (stream: Stream, opts: FrameLinkOptions) {
    this.stream = stream
    this.opts = opts
    this.maxBatchBytes = opts.maxBatchBytes ?? 256 * 1024
    this.done = this.readLoop()
  }

  get isClosed (): boolean { return this.closed }

  /** Queues a frame; resolves once it has been handed to the stream. */
  send (frame: Frame, priority: number = 1): Promise<void> {
    return this.sendEncoded(encodeFrame(frame), priority)
  }

  sendEncoded (bytes: Uint8Array, priority: number = 1): Promise<void> {
    if (this.closed) return Promise.reject(new ClosedError('link closed'))
    const { promise, resolve, reject } = Promise.withResolvers<void>()
    this.queues[3 - Math.max(0, Math.min(3, priority))].push({ bytes, resolve, reject })
    this.queued++
    if (!this.flushing) {
      this.flushing = true
      queueMicrotask(() => { void this.flush() })
    }
    return promise
  }

  private nextBatch (): Pending[] {
    const batch: Pending[] = []
    let size = 0
    for (const q of this.queues) {
      while (q.length > 0 && (batch.length === 0 || size + q[0].bytes.length <= this.maxBatchBytes)) {
        const p = q.shift() as Pending
        batch.push(p)
        size += p.bytes.length + 5
      }
      if (q.length > 0) break
    }
    this.queued -= batch.length
    return batch
  }

  private async flush (): Promise<void> {
    try {
      while (this.queued > 0 && !this.closed) {
        const batch = this.nextBatch()
        const chunks = batch.map(p => lp.encode.single(p.bytes).subarray())
        const total = chunks.reduce((n, c) => n + c.length, 0)
        const buf = new Uint8Array(total)
        let off = 0
        for (const c of chunks) { buf.set(c, off); off += c.length }
        try {
          await sendWithBackpressure(this.stream, buf)
          for (const p of batch) p.resolve()
        } catch (err) {
          for (const p of batch) p.reject(err as Error)
          this.fail(err as Error)
        }
      }
    } finally {
      this.flushing = false
    }
  }

  private async readLoop (): Promise<void> {
    let error: Error | undefined
    try {
      for await (const chunk of lp.decode(boundedSource(this.stream), { maxDataLength: MAX_FRAME_BYTES })) {
        const raw = chunk.subarray()
        const frame = decodeFrame(raw)
        if (frame == null) this.opts.onGarbage?.('frame is not a well-formed fedmesh frame')
        else this.opts.onFrame(frame, raw)
      }
    } catch (err) {
      error = err as Error
      this.opts.onGarbage?.(`stream error: ${error.message}`)
    }
    this.fail(error)
  }

  private fail (err?: Error): void {
    if (this.closed) return
    this.closed = true
    const reason = new ClosedError('link closed', { cause: err })
    for (const q of this.queues) for (const p of q.splice(0)) p.reject(reason)
    this.queued = 0
    if (err != null) this.stream.abort(err)
    else void this.stream.close().catch(() => {})
    this.opts.onClose?.(err)
  }

  async close (): Promise<void> {
    if (this.closed) return
    this.closed = true
    for (const q of this.queues) for (const p of q.splice(0)) p.reject(new ClosedError('link closed'))
    await this.stream.close().catch(() => this.stream.abort(new ClosedError('link closed')))
    this.opts.onClose?.()
  }
}
