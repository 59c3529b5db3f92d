/**
 * Group commit: write operations queue up and run in batches, one transaction (one disk
 * flush) per batch. A batch starts on the next turn of the event loop (or after
 * `maxDelayMs`); while it commits, new operations queue, and the next batch takes them all.
 * So one caller waiting on each write pays one flush per write, and a thousand concurrent
 * callers pay a handful.
 *
 * `eager` (for a store that commits on another thread): with nothing committing, a batch
 * starts as soon as the current task's synchronous work is done (a microtask) rather than
 * on the next turn. The work that arrives meanwhile — the next request off the network —
 * is then handled while the first batch commits, and the first batch's callers are
 * answered without waiting for it: intake and commit overlap instead of taking turns.
 */
import { abortReason } from '../core/errors.ts'

/** What one operation of a batch came to: a value, or an error for that operation alone. */
export type OpOutcome<R> = { ok: true, value: R } | { ok: false, error: Error }

export interface GroupCommitInit<Op, R> {
  maxBatch: number
  maxDelayMs: number
  /** With `maxDelayMs` 0: an idle group commit starts a batch in a microtask, not on the next turn. */
  eager?: boolean
  /** Runs the operations in one transaction; throws when the transaction failed as a whole. */
  execute: (ops: Op[]) => Promise<Array<OpOutcome<R>>>
}

export interface GroupCommit<Op, R> {
  /** Queues an operation; resolves with its outcome once its batch committed. */
  submit: (op: Op, signal?: AbortSignal) => Promise<R>
  /**
   * Queues several operations at once (one promise, not one per operation); resolves, once
   * each has committed or failed, with their outcomes in order. Never rejects.
   */
  submitMany: (ops: Op[], signal?: AbortSignal) => Promise<Array<OpOutcome<R>>>
  /** Resolves when everything submitted so far has committed or failed. */
  drain: () => Promise<void>
  /** Operations queued and not yet in a batch. */
  readonly queued: number
}

/**
 * A queued operation: `submit`'s settles its promise; `submitMany`'s (`many`, at `i`) hands the
 * batch's outcome object on as it is — no closures or outcome objects made per operation.
 */
type Item<Op, R> = { op: Op, signal?: AbortSignal, onAbort?: () => void } & (
  | { resolve: (value: R) => void, reject: (err: Error) => void, many?: undefined }
  | { many: (i: number, o: OpOutcome<R>) => void, i: number }
)

function settle<Op, R> (item: Item<Op, R>, o: OpOutcome<R>): void {
  if (item.many !== undefined) item.many(item.i, o)
  else if (o.ok) item.resolve(o.value)
  else item.reject(o.error)
}

function fail<Op, R> (item: Item<Op, R>, error: Error): void {
  if (item.many !== undefined) item.many(item.i, { ok: false, error })
  else item.reject(error)
}

export function createGroupCommit<Op, R> (init: GroupCommitInit<Op, R>): GroupCommit<Op, R> {
  const queue: Array<Item<Op, R>> = []
  let running: Promise<void> | null = null
  let timer: { timeout: NodeJS.Timeout } | { immediate: NodeJS.Immediate } | { microtask: true } | null = null

  function schedule (delayMs: number): void {
    if (running != null || timer != null || queue.length === 0) return
    if (delayMs > 0) timer = { timeout: setTimeout(flush, delayMs) }
    else if (init.eager === true) {
      const mine = timer = { microtask: true as const }
      queueMicrotask(() => { if (timer === mine) flush() })
    } else timer = { immediate: setImmediate(flush) }
  }

  function cancelTimer (): void {
    if (timer == null) return
    if ('timeout' in timer) clearTimeout(timer.timeout)
    else if ('immediate' in timer) clearImmediate(timer.immediate)
    timer = null
  }

  function flush (): void {
    timer = null
    if (running != null || queue.length === 0) return
    const batch = queue.splice(0, init.maxBatch)
    for (const item of batch) {
      if (item.onAbort != null) item.signal?.removeEventListener('abort', item.onAbort)
    }
    running = (async () => {
      try {
        const outcomes = await init.execute(batch.map(i => i.op))
        batch.forEach((item, i) => {
          const o = outcomes[i]
          if (o == null) fail(item, new Error('group commit: no outcome for operation'))
          else settle(item, o)
        })
      } catch (err) {
        for (const item of batch) fail(item, err as Error)
      } finally {
        running = null
        // Whatever queued during this commit has waited long enough.
        schedule(0)
      }
    })()
  }

  /** Takes a still-queued item out (it is then never written); false once it is in a batch. */
  function unqueue (item: Item<Op, R>): boolean {
    const i = queue.indexOf(item)
    if (i === -1) return false
    queue.splice(i, 1)
    return true
  }

  return {
    submit (op, signal) {
      if (signal?.aborted === true) return Promise.reject(abortReason(signal, 'store write'))
      return new Promise<R>((resolve, reject) => {
        const item: Item<Op, R> = { op, resolve, reject, signal }
        if (signal != null) {
          // Aborted while still queued: take it out, so it is never written.
          item.onAbort = () => {
            if (unqueue(item)) reject(abortReason(signal, 'store write'))
          }
          signal.addEventListener('abort', item.onAbort, { once: true })
        }
        queue.push(item)
        schedule(init.maxDelayMs)
      })
    },

    submitMany (ops, signal) {
      const outcomes = new Array<OpOutcome<R>>(ops.length)
      if (ops.length === 0) return Promise.resolve(outcomes)
      if (signal?.aborted === true) {
        const error = abortReason(signal, 'store write')
        return Promise.resolve(outcomes.fill({ ok: false, error }))
      }
      return new Promise(resolve => {
        let left = ops.length
        let onAbort: (() => void) | undefined
        const done = (i: number, o: OpOutcome<R>): void => {
          outcomes[i] = o
          if (--left > 0) return
          if (onAbort != null) signal?.removeEventListener('abort', onAbort)
          resolve(outcomes)
        }
        const items = ops.map((op, i): Item<Op, R> => ({ op, many: done, i }))
        if (signal != null) {
          // Aborted while some are still queued: those are taken out, so never written.
          onAbort = (): void => {
            const error = abortReason(signal, 'store write')
            for (const item of items) if (unqueue(item)) fail(item, error)
          }
          signal.addEventListener('abort', onAbort, { once: true })
        }
        for (const item of items) queue.push(item)
        schedule(init.maxDelayMs)
      })
    },

    async drain () {
      // Bounded: nothing new is submitted once the store is closing, and each turn
      // commits at least one operation.
      while (running != null || queue.length > 0) {
        if (running == null) {
          cancelTimer()
          flush()
        }
        await running
      }
    },

    get queued () { return queue.length }
  }
}
