/**
 * The durable-delivery protocol between nodes, `/fedmesh/<network>/durable/1.0.0`
 * (docs/PROTOCOL.md §8.4). The opener of a stream sends requests, the acceptor answers each
 * with one response carrying the same `r`; both directions are varint-length-prefixed
 * DAG-CBOR maps. Many requests may be in flight on one stream, and frames written in the
 * same tick go out in one write (the same batching as net/frames.ts), which is what lets a
 * sender pipeline thousands of durable sends through one stream.
 *
 *   put   {r, op: 'put', e: <envelope wire bytes>, home?: <peer id>}
 *         store the envelope for its recipient: as the recipient's home node (no `home`), or as a
 *         replica held for the home node `home`. Answered after the write is durable. `ho: true`
 *         marks a replica handing its copy over (the home then first checks whether the
 *         recipient already processed it).
 *   puts  {r, op: 'puts', es: [<envelope wire bytes>…], home?: <peer id>, ho?: boolean}
 *         several puts in one request (at most MAX_PUTS envelopes, MAX_PUTS_BYTES in all),
 *         answered once, after one durable write for all of them, with one answer per
 *         envelope, in order: {r, ok: true, rs: [<answer>…]}. Each envelope is checked,
 *         stored or refused on its own (a quota refusal of one never affects another).
 *   putb  {r, op: 'putb', s: <64-byte batch signature>, l: [leaf…], home?: <peer id>, ho?: boolean}
 *         puts of envelopes an agent signed in one batch (docs/PROTOCOL.md §4.1), in the form of
 *         a batch frame (§8.2.1): the signature once, `l` every leaf of the batch in order —
 *         a carried envelope's unsigned bytes, or the 32-byte leaf hash of one not carried.
 *         The acceptor rebuilds the root and verifies the signature once. Answered as `puts`,
 *         `rs` one answer per carried envelope in leaf order; when every carried envelope was
 *         answered {ok: true, st} alike, the response may be {r, ok: true, st} without `rs`.
 *   ack   {r, op: 'ack', rc: <receipt envelope wire bytes>}
 *         the recipient acknowledged these (its signed receipt, verified by the replica,
 *         so no peer can make a replica drop copies it holds): a replica drops its copies.
 *   pull  {r, op: 'pull', to: <agent>, rec?: <agent record bytes>}
 *         hand over now whatever is held for `to` (sent by a home node before it delivers).
 *         Served only to a node that `to`'s newest agent record (the one known here or `rec`,
 *         signed by the agent) names as its home; others get UnauthorizedError.
 *   expired {r, op: 'expired', from: <agent>, ids: [<message id>…]}
 *         these messages of sender `from` expired undelivered (to the sender's home node).
 *   response {r, ok: true, st?: 'stored' | 'duplicate' | 'processed', n?: uint, rs?: [answer…]}
 *            | {r, ok: false, code, msg, d?: {details}}
 *         `processed`: the recipient already processed the message (a replica may drop its copy);
 *         `n`: replicas stored (put), entries acknowledged (ack), copies handed over (pull).
 */
import * as dagCbor from '@ipld/dag-cbor'
import * as lp from 'it-length-prefixed'
import type { Stream } from '@libp2p/interface'
import { ClosedError, TimeoutError, abortReason } from '../core/errors.ts'
import { LIMITS } from '../core/envelope.ts'
import { MAX_BATCH } from '../core/batch.ts'
import { CborWriter, decodeCanonical } from '../core/cbor-fast.ts'
import { LEAF_HASH_BYTES } from '../core/ingress.ts'
import { boundedSource, sendWithBackpressure } from '../net/flow.ts'

export function durableProtocol (network: string): string { return `/fedmesh/${network}/durable/1.0.0` }

export const MAX_DURABLE_FRAME = LIMITS.maxEnvelopeBytes + 64 * 1024
/** Most message ids in one `ack` request. */
export const MAX_ACK_IDS = 1000
/** Most envelopes in one `puts` request. */
export const MAX_PUTS = 1024
/** Most envelope bytes in one `puts` request (the frame holds them and the per-envelope overhead). */
export const MAX_PUTS_BYTES = LIMITS.maxEnvelopeBytes

export type DurableRequest =
  | { r: number, op: 'put', e: Uint8Array, home?: string, ho?: boolean }
  | { r: number, op: 'puts', es: Uint8Array[], home?: string, ho?: boolean }
  | { r: number, op: 'putb', s: Uint8Array, l: Uint8Array[], home?: string, ho?: boolean }
  | { r: number, op: 'ack', rc: Uint8Array }
  | { r: number, op: 'pull', to: string, rec?: Uint8Array }
  | { r: number, op: 'expired', from: string, ids: string[] }

/** A response without its request id. */
export type DurableAnswer =
  | { ok: true, st?: 'stored' | 'duplicate' | 'processed', n?: number, rs?: DurableAnswer[] }
  | { ok: false, code: string, msg: string, d?: Record<string, unknown> }

export type DurableResponse = DurableAnswer & { r: number }

/** An agent record carried by a pull (records are at most 16 KiB, net/records.ts). */
const MAX_PULL_RECORD_BYTES = 16 * 1024

function isStr (v: unknown, max: number = 512): v is string {
  return typeof v === 'string' && v.length > 0 && v.length <= max
}

/**
 * A frame's DAG-CBOR: read by the canonical reader (byte strings as views into `bytes`: a
 * `putb`'s leaves are not copied one by one), and by the general decoder when that reader
 * does not take it (tags, floats, a form that is not canonical), so that what is accepted
 * is what the general decoder accepts. Undefined when neither can read it.
 */
function decodeFrame (bytes: Uint8Array): unknown {
  const fast = decodeCanonical(bytes)
  if (fast !== undefined) return fast
  try { return dagCbor.decode(bytes) } catch { return undefined }
}

/** Parses a request; undefined for anything malformed. */
export function decodeRequest (bytes: Uint8Array): DurableRequest | undefined {
  const v = decodeFrame(bytes)
  if (v == null || typeof v !== 'object' || Array.isArray(v)) return undefined
  const m = v as Record<string, unknown>
  if (!Number.isSafeInteger(m.r) || (m.r as number) < 0) return undefined
  switch (m.op) {
    case 'put':
      if (!(m.e instanceof Uint8Array) || (m.home !== undefined && !isStr(m.home)) || (m.ho !== undefined && typeof m.ho !== 'boolean')) return undefined
      // Its own bytes: an envelope stored as it came must not hold on to (and, crossing to the
      // store's writer thread, copy) the whole read buffer it was a view of.
      m.e = m.e.slice()
      return m as unknown as DurableRequest
    case 'puts': {
      if (!Array.isArray(m.es) || m.es.length === 0 || m.es.length > MAX_PUTS || (m.home !== undefined && !isStr(m.home)) || (m.ho !== undefined && typeof m.ho !== 'boolean')) return undefined
      let bytes = 0
      for (const e of m.es) {
        if (!(e instanceof Uint8Array)) return undefined
        bytes += e.length
      }
      if (bytes > MAX_PUTS_BYTES) return undefined
      m.es = m.es.map((e: Uint8Array) => e.slice())
      return m as unknown as DurableRequest
    }
    case 'putb': {
      if (!(m.s instanceof Uint8Array) || m.s.length !== 64 || !Array.isArray(m.l) || m.l.length < 2 || m.l.length > MAX_BATCH ||
          (m.home !== undefined && !isStr(m.home)) || (m.ho !== undefined && typeof m.ho !== 'boolean')) return undefined
      // The carried envelopes (every element but 32-byte leaf hashes) are bounded as in `puts`.
      let bytes = 0
      for (const e of m.l) {
        if (!(e instanceof Uint8Array)) return undefined
        if (e.length !== LEAF_HASH_BYTES) bytes += e.length
      }
      if (bytes === 0 || bytes > MAX_PUTS_BYTES) return undefined
      return m as unknown as DurableRequest
    }
    case 'ack':
      if (!(m.rc instanceof Uint8Array)) return undefined
      return m as unknown as DurableRequest
    case 'pull':
      if (!isStr(m.to) || (m.rec !== undefined && !(m.rec instanceof Uint8Array && m.rec.length <= MAX_PULL_RECORD_BYTES))) return undefined
      return m as unknown as DurableRequest
    case 'expired':
      if (!isStr(m.from) || !Array.isArray(m.ids) || m.ids.length > MAX_ACK_IDS || !m.ids.every(i => isStr(i, 256))) return undefined
      return m as unknown as DurableRequest
    default:
      return undefined
  }
}

export function decodeResponse (bytes: Uint8Array): DurableResponse | undefined {
  const v = decodeFrame(bytes)
  if (v == null || typeof v !== 'object' || Array.isArray(v)) return undefined
  const m = v as Record<string, unknown>
  if (!Number.isSafeInteger(m.r) || typeof m.ok !== 'boolean') return undefined
  if (m.ok === false && (typeof m.code !== 'string' || typeof m.msg !== 'string')) return undefined
  if (m.rs !== undefined && (!Array.isArray(m.rs) || !m.rs.every(isAnswer))) return undefined
  // `st` answers for every envelope of a `putb` when `rs` is absent: only the known values.
  if (m.st !== undefined && !isStatus(m.st)) return undefined
  return m as unknown as DurableResponse
}

function isStatus (v: unknown): boolean {
  return v === 'stored' || v === 'duplicate' || v === 'processed'
}

/** One answer inside `rs` (no `r`, no nested `rs`). */
function isAnswer (v: unknown): boolean {
  if (v == null || typeof v !== 'object' || Array.isArray(v)) return false
  const a = v as Record<string, unknown>
  if (a.ok === true) return a.rs === undefined && (a.st === undefined || isStatus(a.st))
  return a.ok === false && typeof a.code === 'string' && typeof a.msg === 'string'
}

/**
 * `m` (its undefined members left out) as one length-prefixed frame: its DAG-CBOR, with the
 * varint length before it, in one buffer. Requests and answers hold only strings, integers,
 * booleans, byte strings, lists and maps of those: written here in canonical form (byte for
 * byte what `dagCbor.encode` writes); anything else goes through `dagCbor.encode`.
 */
export function encodeFrame (m: Record<string, unknown>): Uint8Array {
  const w = frameWriter.reset()
  let body: Uint8Array
  if (writeMap(w, m, 0, true)) body = w.finish()
  else {
    const clean: Record<string, unknown> = {}
    for (const [k, v] of Object.entries(m)) if (v !== undefined) clean[k] = v
    body = dagCbor.encode(clean)
  }
  let n = body.length
  let prefix = 1
  while (n >= 0x80) { n = Math.floor(n / 0x80); prefix++ }
  const out = new Uint8Array(prefix + body.length)
  n = body.length
  for (let i = 0; i < prefix - 1; i++) { out[i] = (n & 0x7f) | 0x80; n = Math.floor(n / 0x80) }
  out[prefix - 1] = n
  out.set(body, prefix)
  return out
}

const frameWriter = new CborWriter(64 * 1024)
/** Nesting the frame writer takes (requests and answers nest two or three deep). */
const MAX_FRAME_DEPTH = 8

/** Canonical map key order: shorter first, then bytewise (ASCII keys: by UTF-16 code units). */
function keyOrder (a: string, b: string): number {
  return a.length - b.length || (a < b ? -1 : a > b ? 1 : 0)
}

/** Writes map `m` (with `top`, undefined members are left out); false for anything it does not write. */
function writeMap (w: CborWriter, m: Record<string, unknown>, depth: number, top: boolean): boolean {
  const proto = Object.getPrototypeOf(m)
  if (depth >= MAX_FRAME_DEPTH || (proto !== Object.prototype && proto !== null)) return false
  const keys: string[] = []
  for (const k of Object.keys(m)) {
    if (m[k] === undefined) {
      if (top) continue
      return false
    }
    for (let i = 0; i < k.length; i++) if (k.charCodeAt(i) >= 0x80) return false
    keys.push(k)
  }
  keys.sort(keyOrder)
  w.head(5, keys.length)
  for (const k of keys) {
    w.text(k)
    if (!writeValue(w, m[k], depth + 1)) return false
  }
  return true
}

function writeValue (w: CborWriter, v: unknown, depth: number): boolean {
  if (typeof v === 'string') w.text(v)
  else if (typeof v === 'number') {
    if (!Number.isSafeInteger(v)) return false
    if (v >= 0) w.uint(v)
    else w.head(1, -1 - v)
  } else if (typeof v === 'boolean') w.bool(v)
  else if (v === null) w.head(7, 22)
  else if (v instanceof Uint8Array) w.bytes(v)
  else if (Array.isArray(v)) {
    if (depth >= MAX_FRAME_DEPTH) return false
    w.head(4, v.length)
    for (const x of v) if (!writeValue(w, x, depth + 1)) return false
  } else if (typeof v === 'object') return writeMap(w, v as Record<string, unknown>, depth, false)
  else return false
  return true
}

/** Writes frames in batches: everything queued within one tick goes out in one write. */
class BatchWriter {
  private readonly stream: Stream
  private queue: Uint8Array[] = []
  private flushing = false
  private readonly onError: (err: Error) => void

  constructor (stream: Stream, onError: (err: Error) => void) {
    this.stream = stream
    this.onError = onError
  }

  /** Queues one length-prefixed frame (encodeFrame). */
  write (frame: Uint8Array): void {
    this.queue.push(frame)
    if (!this.flushing) {
      this.flushing = true
      queueMicrotask(() => { void this.flush() })
    }
  }

  private async flush (): Promise<void> {
    try {
      while (this.queue.length > 0) {
        const chunks = this.queue
        this.queue = []
        let buf = chunks[0]
        if (chunks.length > 1) {
          const total = chunks.reduce((n, c) => n + c.length, 0)
          buf = new Uint8Array(total)
          let off = 0
          for (const c of chunks) { buf.set(c, off); off += c.length }
        }
        await sendWithBackpressure(this.stream, buf)
      }
    } catch (err) {
      this.queue = []
      this.onError(err as Error)
    } finally {
      this.flushing = false
    }
  }
}

interface Waiting { resolve: (r: DurableResponse) => void, reject: (e: Error) => void }

/** The requesting side of one durable stream. */
export class DurableClient {
  private readonly stream: Stream
  private readonly writer: BatchWriter
  private readonly waiting = new Map<number, Waiting>()
  private rid = 0
  private closed = false

  constructor (stream: Stream) {
    this.stream = stream
    this.writer = new BatchWriter(stream, (err) => { this.fail(err) })
    void this.readLoop()
  }

  get isClosed (): boolean { return this.closed }

  async request (req: Record<string, unknown> & { op: DurableRequest['op'] }, options: { signal?: AbortSignal, timeoutMs: number }): Promise<DurableResponse> {
    if (this.closed) throw new ClosedError('durable link closed')
    if (options.signal?.aborted === true) throw abortReason(options.signal, 'durable request')
    const r = ++this.rid
    const { promise, resolve, reject } = Promise.withResolvers<DurableResponse>()
    const timer = setTimeout(() => { done(); reject(new TimeoutError(`no answer to durable ${req.op} in ${options.timeoutMs} ms`)) }, options.timeoutMs)
    const onAbort = (): void => { done(); reject(abortReason(options.signal as AbortSignal, 'durable request')) }
    const done = (): void => { clearTimeout(timer); this.waiting.delete(r); options.signal?.removeEventListener('abort', onAbort) }
    options.signal?.addEventListener('abort', onAbort, { once: true })
    this.waiting.set(r, { resolve: (v) => { done(); resolve(v) }, reject: (e) => { done(); reject(e) } })
    this.writer.write(encodeFrame({ ...req, r }))
    return await promise
  }

  private async readLoop (): Promise<void> {
    let error: Error | undefined
    try {
      for await (const chunk of lp.decode(boundedSource(this.stream), { maxDataLength: MAX_DURABLE_FRAME })) {
        const res = decodeResponse(chunk.subarray())
        if (res != null) this.waiting.get(res.r)?.resolve(res)
      }
    } catch (err) {
      error = err as Error
    }
    this.fail(error ?? new ClosedError('durable link ended'))
  }

  private fail (err: Error): void {
    if (this.closed) return
    this.closed = true
    const reason = err instanceof ClosedError ? err : new ClosedError(`durable link failed: ${err.message}`, { cause: err })
    for (const w of [...this.waiting.values()]) w.reject(reason)
    this.waiting.clear()
    this.stream.abort(reason)
  }

  async close (): Promise<void> {
    if (this.closed) return
    this.closed = true
    for (const w of [...this.waiting.values()]) w.reject(new ClosedError('durable link closed'))
    this.waiting.clear()
    await this.stream.close().catch(() => { this.stream.abort(new ClosedError('durable link closed')) })
  }
}

/**
 * The answering side: reads requests, runs `handle` for each (concurrently: the store's
 * group commit batches them) and writes the responses as they complete.
 */
export async function serveDurable (stream: Stream, handle: (req: DurableRequest) => Promise<DurableAnswer>, onGarbage: (detail: string) => void): Promise<void> {
  let broken = false
  const writer = new BatchWriter(stream, (err) => { broken = true; stream.abort(err) })
  try {
    for await (const chunk of lp.decode(boundedSource(stream), { maxDataLength: MAX_DURABLE_FRAME })) {
      if (broken) break
      const req = decodeRequest(chunk.subarray())
      if (req == null) { onGarbage('malformed durable request'); continue }
      void handle(req).then(
        (res) => { if (!broken) writer.write(encodeFrame({ ...res, r: req.r })) },
        (err: Error & { code?: string }) => { if (!broken) writer.write(encodeFrame({ r: req.r, ok: false, code: err.code ?? 'InternalError', msg: err.message })) }
      )
    }
  } catch (err) {
    onGarbage(`durable stream error: ${(err as Error).message}`)
    stream.abort(err as Error)
  }
}
