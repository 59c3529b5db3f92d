/**
 * Coalesces durable puts to the same node into `puts` requests (docs/PROTOCOL.md §8.4.1):
 * the puts queued within one turn of the event loop for one (peer, home, handover) go out as
 * one request, answered once after one durable write on the far side, one answer per
 * envelope. One request, one timer and one response instead of one each per message.
 *
 * To a node with no request of ours in flight, a batch goes out as soon as the current task's
 * synchronous work and the promise jobs it queued are done (a microtask: the sends an agent
 * signed together reach `put` in the same round of jobs): a lone send does not wait for the
 * next turn of the event loop. To a node that is still answering an earlier request, a batch
 * is sent on the next turn (setImmediate: what arrives meanwhile joins it), or as soon as it
 * is full (PUTS_PER_REQUEST envelopes or MAX_PUTS_BYTES). A lone put goes out as a plain `put`.
 *
 * PUTS_PER_REQUEST is below the protocol's MAX_PUTS on purpose: with hundreds of durable
 * sends in flight, one request for all of them makes sender and home node take turns (the
 * home waits while the sender signs, the sender waits while the home checks and commits).
 * Requests of an agent's signing batch each (the SDK signs up to 256 together) let the home
 * node commit one while it checks the next, and answer the first one sooner. A caller's abort signal ends its
 * own wait only; a put that was already sent may still be stored (a retransmission is then
 * answered `duplicate`).
 */
import { abortReason } from '../core/errors.ts'
import { MAX_PUTS, MAX_PUTS_BYTES, type DurableAnswer } from './wire.ts'

/** Envelopes in one `puts` request this node sends (≤ MAX_PUTS, the most a node accepts). */
export const PUTS_PER_REQUEST = Math.min(256, MAX_PUTS)

export interface PutTarget {
  peer: string
  addrs: string[]
  /** For a replica: the home node it holds the copy for. */
  home?: string
  /** A replica handing its copy over. */
  ho?: boolean
  /** Per request, ms (the service's default when absent). */
  timeoutMs?: number
}

/**
 * What waits for one put's answer (`putTo`): the caller's own record of the put, told once —
 * `answered` with its answer (which may be a refusal: `ok: false`) or `failed` when the
 * request as a whole failed. Neither may throw (the other puts of the request are told
 * after it).
 */
export interface PutWaiter<T> {
  readonly e: T
  answered: (a: DurableAnswer) => void
  failed: (err: Error) => void
}

/** `put`'s waiter: settles its promise. */
class PromiseWaiter<T> implements PutWaiter<T> {
  readonly e: T
  readonly answered: (a: DurableAnswer) => void
  readonly failed: (err: Error) => void
  constructor (e: T, resolve: (a: DurableAnswer) => void, reject: (err: Error) => void) {
    this.e = e
    this.answered = resolve
    this.failed = reject
  }
}

/** A waiter whose caller may give up (its signal): told once — the abort or the answer, whichever comes first. */
class AbortableWaiter<T> implements PutWaiter<T> {
  readonly e: T
  private readonly w: PutWaiter<T>
  private readonly signal: AbortSignal
  private done = false
  private readonly onAbort = (): void => { this.failed(abortReason(this.signal, 'durable put')) }
  constructor (w: PutWaiter<T>, signal: AbortSignal) {
    this.e = w.e
    this.w = w
    this.signal = signal
    signal.addEventListener('abort', this.onAbort, { once: true })
  }

  answered (a: DurableAnswer): void {
    if (this.settle()) this.w.answered(a)
  }

  failed (err: Error): void {
    if (this.settle()) this.w.failed(err)
  }

  private settle (): boolean {
    if (this.done) return false
    this.done = true
    this.signal.removeEventListener('abort', this.onAbort)
    return true
  }
}

interface Pending<T> { key: string, target: PutTarget, items: Array<PutWaiter<T>>, bytes: number }

/** Sends one batch: resolves with one answer per envelope, in order, or rejects when the request as a whole failed. */
export type SendPuts<T> = (target: PutTarget, es: T[]) => Promise<DurableAnswer[]>

/**
 * `T`: what is put — wire bytes, or an envelope (which the sender may put in the batch form,
 * `putb`); `sizeOf` its wire size, which bounds a request.
 */
export class PutBatcher<T = Uint8Array> {
  private readonly sendPuts: SendPuts<T>
  private readonly sizeOf: (e: T) => number
  private readonly pending = new Map<string, Pending<T>>()
  /** Requests sent and not yet answered, per batch key. */
  private readonly inflight = new Map<string, number>()
  private scheduled: NodeJS.Immediate | undefined
  /** A microtask flush is queued. */
  private soon = false
  /** The last target put to (`keyOf`); a target is not changed once used. */
  private lastTarget: PutTarget | undefined
  private lastKey = ''

  constructor (sendPuts: SendPuts<T>, sizeOf: (e: T) => number = (e) => (e as Uint8Array).length) {
    this.sendPuts = sendPuts
    this.sizeOf = sizeOf
  }

  /** Queues a put; resolves with its own answer (which may be a refusal: `ok: false`). */
  put (target: PutTarget, e: T, signal?: AbortSignal): Promise<DurableAnswer> {
    return new Promise<DurableAnswer>((resolve, reject) => { this.putTo(target, new PromiseWaiter(e, resolve, reject), signal) })
  }

  /**
   * Queues the put of `w.e`; `w` is told its answer (PutWaiter). No promise: a caller with a
   * record per put (the durable sends in flight) needs nothing else per put here.
   */
  putTo (target: PutTarget, w: PutWaiter<T>, signal?: AbortSignal): void {
    if (signal != null) {
      if (signal.aborted) { w.failed(abortReason(signal, 'durable put')); return }
      w = new AbortableWaiter(w, signal)
    }
    const key = this.keyOf(target)
    const size = this.sizeOf(w.e)
    let p = this.pending.get(key)
    if (p != null && p.bytes + size > MAX_PUTS_BYTES) {
      this.pending.delete(key)
      this.send(p)
      p = undefined
    }
    if (p == null) {
      p = { key, target, items: [], bytes: 0 }
      this.pending.set(key, p)
    }
    p.items.push(w)
    p.bytes += size
    if (p.items.length >= PUTS_PER_REQUEST) {
      // Full: on its way now, while the caller prepares the next ones.
      this.pending.delete(key)
      this.send(p)
    } else if (!this.inflight.has(key)) {
      // Nothing in flight to that node: out once this round of jobs is done.
      if (!this.soon) {
        this.soon = true
        queueMicrotask(() => { this.soon = false; this.flushIdle() })
      }
    } else this.scheduled ??= setImmediate(() => { this.flush() })
  }

  /** The batch key of a target: the same target object as the last put's gets the same string, built once. */
  private keyOf (target: PutTarget): string {
    if (target === this.lastTarget) return this.lastKey
    const key = `${target.peer}\n${target.home ?? ''}\n${target.ho === true ? 1 : 0}\n${target.timeoutMs ?? ''}`
    this.lastTarget = target
    this.lastKey = key
    return key
  }

  /** Sends everything queued now. */
  flush (): void {
    if (this.scheduled != null) clearImmediate(this.scheduled)
    this.scheduled = undefined
    const all = [...this.pending.values()]
    this.pending.clear()
    for (const p of all) this.send(p)
  }

  /** Sends the batches to nodes with nothing in flight; the others wait for the next turn. */
  private flushIdle (): void {
    for (const p of [...this.pending.values()]) {
      if (this.inflight.has(p.key)) continue
      this.pending.delete(p.key)
      this.send(p)
    }
    if (this.pending.size > 0) this.scheduled ??= setImmediate(() => { this.flush() })
  }

  private send (p: Pending<T>): void {
    this.inflight.set(p.key, (this.inflight.get(p.key) ?? 0) + 1)
    const answered = (): void => {
      const n = (this.inflight.get(p.key) ?? 1) - 1
      if (n > 0) this.inflight.set(p.key, n)
      else this.inflight.delete(p.key)
    }
    this.sendPuts(p.target, p.items.map(w => w.e)).then((answers) => {
      answered()
      for (let i = 0; i < p.items.length; i++) {
        const a = answers[i]
        if (a != null) p.items[i].answered(a)
        else p.items[i].failed(new Error(`durable puts answered ${answers.length} of ${p.items.length} envelopes`))
      }
    }, (err: Error) => {
      answered()
      for (const w of p.items) w.failed(err)
    })
  }
}
