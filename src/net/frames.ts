/**
 * Node-to-node frames on `/fedmesh/<network>/msg/1.0.0`. Each direction carries
 * varint-length-prefixed DAG-CBOR maps. Writes are batched: frames queued in the same
 * tick (up to `maxBatchBytes`) go out in one `stream.send`, which is what lifts a libp2p
 * stream from ~21k writes/s to hundreds of thousands of frames/s (DESIGN.md). The queue
 * is ordered by priority, so under load higher-priority frames leave first.
 */
import * as dagCbor from '@ipld/dag-cbor'
import type { Stream } from '@libp2p/interface'
import { LIMITS } from '../core/envelope.ts'
import { MAX_BATCH } from '../core/batch.ts'
import { decodeCanonical } from '../core/cbor-fast.ts'
import { ClosedError } from '../core/errors.ts'
import type { Uint8ArrayList } from 'uint8arraylist'
import { belowHighWater } from './flow.ts'

export const FRAME_MESSAGE = 1
export const FRAME_CONFIRM = 2
/** Dissemination frames (docs/DISSEMINATION.md, "Wire mapping"); decoded in dissemination/wire.ts. */
export const FRAME_INTEREST = 3
export const FRAME_LOST = 4
export const FRAME_REQUEST = 5
export const FRAME_DATA = 6
/** Topic and broadcast envelopes of one signed batch (PROTOCOL.md section 8.2.1); checked in core/ingress.ts checkBatch. */
export const FRAME_BATCH = 7

/** A message frame: `h` is the current hop count, `e` the envelope's wire bytes. */
export interface MessageFrame { t: typeof FRAME_MESSAGE, h: number, e: Uint8Array }
/** A delivery confirmation from the recipient's node. */
export interface ConfirmFrame { t: typeof FRAME_CONFIRM, id: string, ok: boolean, code?: string, msg?: string }
/** A topic or broadcast message: `h` hops so far, `e` envelope bytes, `x` the receiver's labels (absent: flooded). */
export interface DataFrame { t: typeof FRAME_DATA, h: number, e: Uint8Array, x?: number[] }
/**
 * Envelopes of one batch an agent signed once (section 4.1): `s` the batch signature, `l`
 * every leaf of the batch in order — an envelope's unsigned bytes when this frame carries
 * it, else its 32-byte leaf hash — `h` and `x` as in a data frame, for every carried one.
 */
export interface BatchFrame { t: typeof FRAME_BATCH, h: number, s: Uint8Array, l: Uint8Array[], x?: number[] }
/**
 * A dissemination control frame (`interest`, `lost`, `request`): its body is checked and
 * mapped by dissemination/wire.ts, which knows the bounds.
 */
export interface ControlFrame { t: typeof FRAME_INTEREST | typeof FRAME_LOST | typeof FRAME_REQUEST, r?: unknown, l?: unknown, q?: unknown }
export type Frame = MessageFrame | ConfirmFrame | DataFrame | BatchFrame | ControlFrame

export const MAX_FRAME_BYTES = LIMITS.maxEnvelopeBytes + 4096

export function msgProtocol (network: string): string { return `/fedmesh/${network}/msg/1.0.0` }
export function streamProtocol (network: string): string { return `/fedmesh/${network}/stream/1.0.0` }
export function directoryProtocol (network: string): string { return `/fedmesh/${network}/directory/1.0.0` }

export function encodeFrame (frame: Frame): Uint8Array {
  if (frame.t === FRAME_DATA) return encodeDataFrame(frame.h, frame.e, frame.x)
  if (frame.t === FRAME_BATCH) return encodeBatchFrame(frame.h, frame.s, frame.l, frame.x)
  if (frame.t === FRAME_MESSAGE) return encodeMessageFrame(frame.h, frame.e)
  const clean: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(frame)) if (v !== undefined) clean[k] = v
  return dagCbor.encode(clean)
}

/** Parses a frame; returns undefined for anything that is not a well-formed frame. */
export function decodeFrame (bytes: Uint8Array): Frame | undefined {
  // Frames we write are canonical and take the one-pass reader; others the general decoder.
  let v: unknown = decodeCanonical(bytes)
  if (v === undefined) try { v = dagCbor.decode(bytes) } catch { return undefined }
  if (v == null || typeof v !== 'object' || Array.isArray(v)) return undefined
  const f = v as Record<string, unknown>
  if (f.t === FRAME_MESSAGE && Number.isInteger(f.h) && (f.h as number) >= 0 && f.e instanceof Uint8Array) return f as unknown as MessageFrame
  if (f.t === FRAME_DATA && Number.isInteger(f.h) && (f.h as number) >= 0 && f.e instanceof Uint8Array &&
      (f.x === undefined || (Array.isArray(f.x) && f.x.length <= MAX_LABELS && f.x.every(isLabel)))) return f as unknown as DataFrame
  if (f.t === FRAME_BATCH && Number.isInteger(f.h) && (f.h as number) >= 0 && f.s instanceof Uint8Array && f.s.length === 64 &&
      Array.isArray(f.l) && f.l.length >= 2 && f.l.length <= MAX_BATCH && f.l.every(e => e instanceof Uint8Array) &&
      (f.x === undefined || (Array.isArray(f.x) && f.x.length <= MAX_LABELS && f.x.every(isLabel)))) return f as unknown as BatchFrame
  if ((f.t === FRAME_INTEREST && f.r !== undefined) || (f.t === FRAME_LOST && f.l !== undefined) || (f.t === FRAME_REQUEST && f.q !== undefined)) return f as unknown as ControlFrame
  if (f.t === FRAME_CONFIRM && typeof f.id === 'string' && typeof f.ok === 'boolean' &&
      (f.code === undefined || typeof f.code === 'string') && (f.msg === undefined || typeof f.msg === 'string')) return f as unknown as ConfirmFrame
  return undefined
}

/** Most labels one data copy carries (bounded by the origins a node may know, plus one). */
export const MAX_LABELS = 100_001
const isLabel = (v: unknown): boolean => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0

/**
 * The data frame `{t: 6, h, e, x?}` written directly: it is the hot path, and its canonical
 * DAG-CBOR layout is fixed (keys `e`, `h`, `t`, `x` in that order), so no generic encoder
 * needs to walk it. Byte-identical to `dagCbor.encode` of the same map (tested).
 */
export function encodeDataFrame (hops: number, envelope: Uint8Array, labels?: readonly number[]): Uint8Array {
  return encodeEnvelopeFrame(FRAME_DATA, hops, envelope, labels)
}

/**
 * The message frame `{t: 1, h, e}` written directly, like the data frame: every direct
 * message, request and reply is one. Byte-identical to `dagCbor.encode`.
 */
export function encodeMessageFrame (hops: number, envelope: Uint8Array): Uint8Array {
  return encodeEnvelopeFrame(FRAME_MESSAGE, hops, envelope)
}

/** `{t, h, e, x?}`: one envelope with its hop count (and labels), in canonical key order `e`, `h`, `t`, `x`. */
function encodeEnvelopeFrame (t: number, hops: number, envelope: Uint8Array, labels?: readonly number[]): Uint8Array {
  const out = new Uint8Array(1 + 2 + cborHeadSize(envelope.length) + envelope.length + 2 + cborHeadSize(hops) + 3 + labelsSize(labels))
  let o = 0
  out[o++] = 0xa0 | (labels !== undefined ? 4 : 3)
  out[o++] = 0x61; out[o++] = 0x65 // "e"
  o = writeHead(out, o, 0x40, envelope.length)
  out.set(envelope, o); o += envelope.length
  out[o++] = 0x61; out[o++] = 0x68 // "h"
  o = writeHead(out, o, 0x00, hops)
  out[o++] = 0x61; out[o++] = 0x74 // "t"
  out[o++] = t
  writeLabels(out, o, labels)
  return out
}

/**
 * The batch frame `{t: 7, h, s, l, x?}` written directly (canonical key order `h`, `l`,
 * `s`, `t`, `x`); byte-identical to `dagCbor.encode` of the same map (tested).
 */
export function encodeBatchFrame (hops: number, sig: Uint8Array, leaves: readonly Uint8Array[], labels?: readonly number[]): Uint8Array {
  let size = 1 + 2 + cborHeadSize(hops) + 2 + cborHeadSize(leaves.length) + 2 + cborHeadSize(sig.length) + sig.length + 3 + labelsSize(labels)
  for (const l of leaves) size += cborHeadSize(l.length) + l.length
  const out = new Uint8Array(size)
  let o = 0
  out[o++] = 0xa0 | (labels !== undefined ? 5 : 4)
  out[o++] = 0x61; out[o++] = 0x68 // "h"
  o = writeHead(out, o, 0x00, hops)
  out[o++] = 0x61; out[o++] = 0x6c // "l"
  o = writeHead(out, o, 0x80, leaves.length)
  for (const l of leaves) {
    o = writeHead(out, o, 0x40, l.length)
    out.set(l, o); o += l.length
  }
  out[o++] = 0x61; out[o++] = 0x73 // "s"
  o = writeHead(out, o, 0x40, sig.length)
  out.set(sig, o); o += sig.length
  out[o++] = 0x61; out[o++] = 0x74 // "t"
  out[o++] = FRAME_BATCH
  writeLabels(out, o, labels)
  return out
}

/**
 * The `x` entry of a frame with `labels` (key and label array), as the frame encoders end a
 * labelled frame: a batch frame encoded for one neighbour is the same bytes for another up
 * to this entry (`FrameLink.push` takes the rest of a frame as `tail`).
 */
export function labelsEntry (labels: readonly number[]): Uint8Array {
  const out = new Uint8Array(labelsSize(labels))
  writeLabels(out, 0, labels)
  return out
}

/** Bytes of the `x` entry (key and label array); 0 without labels. */
export function labelsSize (labels: readonly number[] | undefined): number {
  if (labels === undefined) return 0
  let size = 2 + cborHeadSize(labels.length)
  for (const l of labels) size += cborHeadSize(l)
  return size
}

/** Writes the `x` entry at `o` (the last key of a frame), if there are labels. */
function writeLabels (out: Uint8Array, o: number, labels: readonly number[] | undefined): number {
  if (labels === undefined) return o
  out[o++] = 0x61; out[o++] = 0x78 // "x"
  o = writeHead(out, o, 0x80, labels.length)
  for (const l of labels) o = writeHead(out, o, 0x00, l)
  return o
}

function cborHeadSize (n: number): number {
  return n < 24 ? 1 : n < 0x100 ? 2 : n < 0x10000 ? 3 : n < 0x100000000 ? 5 : 9
}

function writeHead (out: Uint8Array, o: number, major: number, n: number): number {
  if (n < 24) { out[o] = major | n; return o + 1 }
  if (n < 0x100) { out[o] = major | 24; out[o + 1] = n; return o + 2 }
  if (n < 0x10000) { out[o] = major | 25; out[o + 1] = n >>> 8; out[o + 2] = n & 0xff; return o + 3 }
  if (n < 0x100000000) { out[o] = major | 26; new DataView(out.buffer, out.byteOffset + o + 1, 4).setUint32(0, n); return o + 5 }
  out[o] = major | 27
  new DataView(out.buffer, out.byteOffset + o + 1, 8).setBigUint64(0, BigInt(n))
  return o + 9
}

export interface FrameLinkOptions {
  maxBatchBytes?: number
  /** Called for every well-formed frame read from the stream. */
  onFrame: (frame: Frame, raw: Uint8Array) => void
  /** Called for bytes that are not a frame (counted as `malformed` by the caller). */
  onGarbage?: (detail: string) => void
  onClose?: (err?: Error) => void
}

interface Pending { bytes: Uint8Array, tail?: Uint8Array, size: number, resolve?: () => void, reject?: (err: Error) => void }

/**
 * A framed, batched, prioritised duplex over one libp2p stream. Used for both the
 * outbound link a node opens to a peer and the inbound one a peer opens to it.
 */
export class FrameLink {
  readonly stream: Stream
  private readonly queues: Pending[][] = [[], [], [], []]
  private queued = 0
  private bytesQueued = 0
  private flushing = false
  private closed = false
  private readonly maxBatchBytes: number
  private readonly opts: FrameLinkOptions
  private drainWaiters: Array<() => void> = []
  private chunksRead = 0
  /**
   * What this link threw away when it closed: frames still queued here (each counted once,
   * whatever it carried) and bytes, those queued plus what the stream still held unsent
   * when it was aborted. Topic copies among them are lost (at most once, PROTOCOL.md 8.2).
   */
  discardedFrames = 0
  discardedBytes = 0
  /** Why the link closed (the error's message), once it has. */
  closeReason: string | undefined
  readonly done: Promise<void>

  constructor (stream: Stream, opts: FrameLinkOptions) {
    this.stream = stream
    this.opts = opts
    this.maxBatchBytes = opts.maxBatchBytes ?? 256 * 1024
    this.done = this.listen()
  }

  get isClosed (): boolean { return this.closed }

  /** Chunks read from the stream so far: whether anything came back since a given moment. */
  get reads (): number { return this.chunksRead }

  /** Bytes queued here and not yet handed to the stream. */
  get queuedBytes (): number { return this.bytesQueued }

  /** Queues a frame; resolves once it has been handed to the stream. */
  send (frame: Frame, priority: number = 1): Promise<void> {
    return this.sendEncoded(encodeFrame(frame), priority)
  }

  sendEncoded (bytes: Uint8Array, priority: number = 1): Promise<void> {
    if (this.closed) return Promise.reject(new ClosedError('link closed'))
    const { promise, resolve, reject } = Promise.withResolvers<void>()
    this.enqueue({ bytes, size: bytes.length, resolve, reject }, priority)
    return promise
  }

  /**
   * Queues an encoded frame without a promise (the hot path: one per message would cost
   * more than the write). False when the link is closed. Callers bound what they queue
   * with `queuedBytes` and `drained()`. `onFail` is called if the frame is not handed to
   * the stream (the link fails first, or the write throws). A frame may come in two pieces,
   * `bytes` then `tail` (a batch frame shared between links, its labels of this link's own):
   * they are written one after the other, as one frame.
   */
  push (bytes: Uint8Array, priority: number = 1, onFail?: (err: Error) => void, tail?: Uint8Array): boolean {
    if (this.closed) return false
    this.enqueue({ bytes, tail, size: tail === undefined ? bytes.length : bytes.length + tail.length, reject: onFail }, priority)
    return true
  }

  /** Resolves once the queue is below `bytes` (or the link closed). */
  drained (bytes: number = 0): Promise<void> {
    if (this.closed || this.bytesQueued <= bytes) return Promise.resolve()
    return new Promise(resolve => { this.drainWaiters.push(resolve) })
  }

  private enqueue (p: Pending, priority: number): void {
    this.queues[3 - Math.max(0, Math.min(3, priority))].push(p)
    this.queued++
    this.bytesQueued += p.size
    if (!this.flushing) {
      this.flushing = true
      queueMicrotask(() => { this.flush() })
    }
  }

  private nextBatch (): Pending[] {
    const batch: Pending[] = []
    let size = 0
    for (const q of this.queues) {
      let n = 0
      while (n < q.length && (batch.length === 0 || size + q[n].size <= this.maxBatchBytes)) {
        const p = q[n++]
        batch.push(p)
        size += p.size + 5
      }
      // One splice per queue instead of a shift per frame (shift is O(n) on long queues).
      if (n > 0) q.splice(0, n)
      if (q.length > 0) break
    }
    this.queued -= batch.length
    return batch
  }

  /**
   * Writes what is queued, one batch per `stream.send`, synchronously while the stream
   * takes it: a lone frame reaches the muxer (and the corked socket, net/coalesce.ts) in the
   * microtask after it was queued, with no promise in between. Only when the stream holds
   * more than its high-water mark does the flush wait (for `idle`) before the next batch;
   * the batch just written is resolved once the stream is down again, as before.
   */
  private flush (): void {
    while (this.queued > 0 && !this.closed) {
      const batch = this.nextBatch()
      let total = 0
      let payload = 0
      for (const p of batch) { total += varintSize(p.size) + p.size; payload += p.size }
      const buf = new Uint8Array(total)
      let off = 0
      for (const p of batch) {
        off = writeVarint(buf, off, p.size)
        buf.set(p.bytes, off)
        off += p.bytes.length
        if (p.tail !== undefined) { buf.set(p.tail, off); off += p.tail.length }
      }
      this.bytesQueued -= payload
      let wait: Promise<void> | undefined
      try {
        this.stream.send(buf)
        wait = belowHighWater(this.stream)
      } catch (err) {
        this.failBatch(batch, err as Error)
        break
      }
      if (wait !== undefined) {
        wait.then(() => { this.sent(batch); this.flush() }, (err: Error) => { this.failBatch(batch, err); this.flush() })
        return
      }
      this.sent(batch)
    }
    this.flushing = false
    this.wakeDrained()
  }

  private sent (batch: Pending[]): void {
    for (const p of batch) p.resolve?.()
    this.wakeDrained()
  }

  private failBatch (batch: Pending[], err: Error): void {
    for (const p of batch) p.reject?.(err)
    this.fail(err)
  }

  private wakeDrained (): void {
    if (this.drainWaiters.length === 0) return
    const waiters = this.drainWaiters
    this.drainWaiters = []
    for (const w of waiters) w()
  }

  /**
   * Reads the stream from its `message` events: each chunk the muxer delivers (which holds
   * many small frames) is split into frames and handed on synchronously, in the event's own
   * callback — no async iterator, queue or promise between the socket read and `onFrame`.
   * The stream needs no pausing: nothing is queued here, so a busy reader holds the event
   * loop and TCP pushes back. A frame within one chunk is handed on as a view, without a
   * copy; a frame spread over chunks is assembled once, when all of it has arrived.
   */
  private listen (): Promise<void> {
    const { promise, resolve } = Promise.withResolvers<void>()
    const stream = this.stream
    let ended = false
    /** `garbage`: the error is in what the peer sent (a bad frame), not in the stream itself. */
    const end = (err?: Error, garbage = false): void => {
      if (ended) return
      ended = true
      stream.removeEventListener('message', onMessage)
      stream.removeEventListener('close', onClose)
      stream.removeEventListener('remoteCloseWrite', onRemoteCloseWrite)
      if (err === undefined && this.partsLen > 0) {
        err = new Error(`stream ended inside a frame (${this.partsLen} bytes)`)
        garbage = true
      }
      // Only what the peer sent counts against it: a stream reset or aborted under the link
      // (a connection closed by this node's own liveness check, say) is not its garbage, nor
      // is a stream this side closed (a failed write, a link found dead).
      if (garbage && !this.closed) this.opts.onGarbage?.(`stream error: ${(err as Error).message}`)
      this.fail(err)
      resolve()
    }
    const onMessage = (evt: Event): void => {
      if (ended) return
      this.chunksRead++
      const data = (evt as Event & { data: Uint8Array | Uint8ArrayList }).data
      try {
        if (data instanceof Uint8Array) this.onChunk(data)
        else {
          // A list (yamux's data of one frame, several decrypted Noise messages) is taken
          // part by part: a frame within one part stays a view, and only a frame spread over
          // parts is copied (once, in onChunk) — not the whole list joined first.
          for (const part of data) {
            if (this.closed) break
            if (part.byteLength > 0) this.onChunk(part)
          }
        }
      } catch (err) {
        end(err as Error, true)
      }
    }
    const onClose = (evt: Event): void => { end((evt as Event & { error?: Error }).error) }
    const onRemoteCloseWrite = (): void => { end() }
    if (stream.readStatus !== 'readable' && stream.readStatus !== 'paused') {
      queueMicrotask(() => { end() })
      return promise
    }
    // Data the stream buffered before this listener existed is dispatched to it in a microtask.
    stream.addEventListener('message', onMessage)
    stream.addEventListener('close', onClose)
    stream.addEventListener('remoteCloseWrite', onRemoteCloseWrite)
    return promise
  }

  /** The unfinished frame carried over from earlier chunks. */
  private parts: Uint8Array[] = []
  private partsLen = 0
  /** Bytes the frame at the start of `parts` needs in all (0: its length is not known yet). */
  private need = 0

  /** Splits a chunk (after what earlier chunks left over) into frames; throws on a bad length prefix. */
  private onChunk (chunk: Uint8Array): void {
    let data: Uint8Array
    if (this.partsLen > 0) {
      this.parts.push(chunk)
      this.partsLen += chunk.length
      if (this.need > 0 && this.partsLen < this.need) return
      data = concatParts(this.parts, this.partsLen)
      this.parts = []
      this.partsLen = 0
    } else data = chunk
    this.need = 0
    let o = 0
    while (o < data.length && !this.closed) {
      let len = 0
      let shift = 0
      let p = o
      let complete = false
      while (p < data.length) {
        const b = data[p++]
        len += (b & 0x7f) * 2 ** shift
        shift += 7
        if ((b & 0x80) === 0) { complete = true; break }
        if (shift >= 35) throw new Error('frame length prefix too long')
      }
      if (!complete) break
      if (len > MAX_FRAME_BYTES) throw new Error(`frame of ${len} bytes exceeds the ${MAX_FRAME_BYTES}-byte limit`)
      const end = p + len
      if (end > data.length) { this.need = end - o; break }
      const raw = data.subarray(p, end)
      o = end
      const frame = decodeFrame(raw)
      if (frame == null) this.opts.onGarbage?.('frame is not a well-formed fedmesh frame')
      else this.opts.onFrame(frame, raw)
    }
    if (o < data.length && !this.closed) {
      this.parts = [data.subarray(o)]
      this.partsLen = data.length - o
    }
  }

  private fail (err?: Error): void {
    if (this.closed) return
    this.closed = true
    this.closeReason = err?.message ?? 'closed'
    if (err != null) this.discardedBytes += this.stream.writeBufferLength
    this.discard(new ClosedError('link closed', { cause: err }))
    if (err != null) this.stream.abort(err)
    else void this.stream.close().catch(() => {})
    this.opts.onClose?.(err)
  }

  /** Rejects and counts every frame still queued (the link closed), and wakes drain waiters. */
  private discard (reason: Error): void {
    this.discardedFrames += this.queued
    this.discardedBytes += this.bytesQueued
    for (const q of this.queues) for (const p of q.splice(0)) p.reject?.(reason)
    this.queued = 0
    this.bytesQueued = 0
    this.wakeDrained()
  }

  /** Closes the link at once (the stream is aborted with `err`): for a link found dead. */
  abort (err: Error): void {
    this.fail(err)
  }

  async close (): Promise<void> {
    if (this.closed) return
    this.closed = true
    this.closeReason = 'closed'
    this.discard(new ClosedError('link closed'))
    await this.stream.close().catch(() => this.stream.abort(new ClosedError('link closed')))
    this.opts.onClose?.()
  }
}

function varintSize (n: number): number {
  let size = 1
  while (n >= 0x80) { n = Math.floor(n / 128); size++ }
  return size
}

function writeVarint (buf: Uint8Array, off: number, n: number): number {
  while (n >= 0x80) { buf[off++] = (n & 0x7f) | 0x80; n = Math.floor(n / 128) }
  buf[off++] = n
  return off
}

function concatParts (parts: Uint8Array[], total: number): Uint8Array {
  const out = new Uint8Array(total)
  let o = 0
  for (const p of parts) { out.set(p, o); o += p.length }
  return out
}
