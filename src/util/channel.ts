/**
 * A bounded async queue consumed as an AsyncIterable. `push` never blocks (for fan-out
 * paths that must not stall the router): past `capacity` it refuses and counts a drop.
 * `write` waits for room (for streams, where backpressure must reach the writer).
 */
import { ClosedError } from '../core/errors.ts'

export class Channel<T> implements AsyncIterable<T> {
  private readonly items: T[] = []
  private head = 0
  private readonly capacity: number
  private waiter?: { resolve: (r: IteratorResult<T>) => void, reject: (e: Error) => void }
  private readonly writers: Array<() => void> = []
  private ended = false
  private error?: Error
  dropped = 0
  private readonly closedDeferred = Promise.withResolvers<void>()
  readonly closed: Promise<void> = this.closedDeferred.promise

  constructor (capacity: number = 10_000) {
    this.capacity = capacity
  }

  get size (): number { return this.items.length - this.head }
  get isEnded (): boolean { return this.ended }

  /** Non-blocking; false when full or ended (the item is dropped). */
  push (item: T): boolean {
    if (this.ended) return false
    if (this.waiter != null) {
      const w = this.waiter
      this.waiter = undefined
      w.resolve({ value: item, done: false })
      return true
    }
    if (this.size >= this.capacity) { this.dropped++; return false }
    this.items.push(item)
    return true
  }

  /** Waits until there is room, then enqueues. */
  async write (item: T, signal?: AbortSignal): Promise<void> {
    while (this.size >= this.capacity && !this.ended) {
      signal?.throwIfAborted()
      await new Promise<void>((resolve, reject) => {
        const onAbort = (): void => reject(signal?.reason as Error)
        signal?.addEventListener('abort', onAbort, { once: true })
        this.writers.push(() => { signal?.removeEventListener('abort', onAbort); resolve() })
      })
    }
    if (this.ended) throw this.error ?? new ClosedError('channel closed')
    this.push(item)
  }

  /** Ends the channel; queued items are still delivered, then iteration ends (or throws `err`). */
  end (err?: Error): void {
    if (this.ended) return
    this.ended = true
    this.error = err
    if (this.waiter != null && this.size === 0) {
      const w = this.waiter
      this.waiter = undefined
      if (err != null) w.reject(err)
      else w.resolve({ value: undefined, done: true })
    }
    for (const wake of this.writers.splice(0)) wake()
    if (this.size === 0) this.closedDeferred.resolve()
  }

  /** Ends and discards anything queued. */
  clear (): void {
    this.items.length = 0
    this.head = 0
    this.end()
    this.closedDeferred.resolve()
  }

  next (): Promise<IteratorResult<T>> {
    if (this.size > 0) {
      const value = this.items[this.head] as T
      this.items[this.head++] = undefined as T
      if (this.head > 1024 && this.head * 2 > this.items.length) { this.items.splice(0, this.head); this.head = 0 }
      this.writers.shift()?.()
      return Promise.resolve({ value, done: false })
    }
    if (this.ended) {
      this.closedDeferred.resolve()
      return this.error != null ? Promise.reject(this.error) : Promise.resolve({ value: undefined, done: true })
    }
    return new Promise((resolve, reject) => { this.waiter = { resolve, reject } })
  }

  [Symbol.asyncIterator] (): AsyncIterator<T> {
    return {
      next: () => this.next(),
      return: async () => { this.clear(); return { value: undefined, done: true } }
    }
  }
}
