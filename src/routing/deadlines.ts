/**
 * Keyed waits that all expire after the same delay, swept by one timer.
 *
 * The request path keeps one wait per message in flight (a delivery confirmation awaited, a
 * confirmation held back for a reply). A timer, or an `AbortSignal.timeout`, per message
 * costs more than the rest of the bookkeeping; here adding and removing a wait is a Map
 * operation. With one delay for all, insertion order is expiry order, so the sweep only
 * looks at the front of the Map and stops at the first wait not yet due.
 */
export interface DeadlineQueueInit<K, V> {
  delayMs: number
  /** Called once for each wait that reached its deadline (it is removed first). */
  onExpire: (key: K, value: V) => void
  /** Lets the process exit while waits are pending (default false). */
  unref?: boolean
  /** Monotonic milliseconds (default `performance.now`). */
  now?: () => number
}

export class DeadlineQueue<K, V> {
  private readonly items = new Map<K, { value: V, due: number }>()
  private readonly init: DeadlineQueueInit<K, V>
  private readonly now: () => number
  private timer?: NodeJS.Timeout
  private sweeping = false

  constructor (init: DeadlineQueueInit<K, V>) {
    this.init = init
    this.now = init.now ?? (() => performance.now())
  }

  get size (): number { return this.items.size }

  /** Adds (or restarts) the wait for `key`; it expires `delayMs` from now. */
  add (key: K, value: V): void {
    // Re-adding moves it to the back, which keeps the Map in expiry order.
    this.items.delete(key)
    this.items.set(key, { value, due: this.now() + this.init.delayMs })
    if (this.timer === undefined && !this.sweeping) this.arm(this.init.delayMs)
  }

  get (key: K): V | undefined { return this.items.get(key)?.value }

  /** Removes the wait for `key` and returns its value (undefined when there is none). */
  take (key: K): V | undefined {
    const e = this.items.get(key)
    if (e === undefined) return undefined
    this.items.delete(key)
    return e.value
  }

  /** Removes every wait without expiring it; returns their values. */
  clear (): V[] {
    clearTimeout(this.timer)
    this.timer = undefined
    const values = [...this.items.values()].map(e => e.value)
    this.items.clear()
    return values
  }

  private arm (ms: number): void {
    this.timer = setTimeout(() => { this.sweep() }, Math.max(1, ms))
    if (this.init.unref === true) this.timer.unref()
  }

  private sweep (): void {
    this.timer = undefined
    this.sweeping = true
    try {
      const now = this.now()
      for (const [key, e] of this.items) {
        if (e.due > now) break
        this.items.delete(key)
        this.init.onExpire(key, e.value)
      }
    } finally {
      this.sweeping = false
    }
    const next = this.items.values().next()
    if (next.done !== true && this.timer === undefined) this.arm(next.value.due - this.now())
  }
}
