/**
 * Per-sender ordering at the receiver. Senders number ordered messages 1, 2, 3… per
 * recipient (`dlv.seq`). Out-of-order arrivals wait until the gap fills or `maxWaitMs`
 * passes (then the gap is skipped: the missing message was lost or expired). A `seq` of 1
 * from a sender we are further along with means the sender restarted its numbering.
 */
export class Reorderer<T> {
  private readonly expected = new Map<string, number>()
  private readonly held = new Map<string, Map<number, T>>()
  private readonly timers = new Map<string, NodeJS.Timeout>()
  private readonly emit: (item: T) => void
  private readonly maxWaitMs: number
  private readonly maxHeld: number

  constructor (emit: (item: T) => void, opts: { maxWaitMs?: number, maxHeld?: number } = {}) {
    this.emit = emit
    this.maxWaitMs = opts.maxWaitMs ?? 2000
    this.maxHeld = opts.maxHeld ?? 1024
  }

  push (sender: string, seq: number, item: T): void {
    const next = this.expected.get(sender) ?? 1
    if (seq === next || (seq === 1 && next > 1)) {
      if (seq === 1 && next > 1) this.dropSender(sender)
      this.emit(item)
      this.expected.set(sender, seq + 1)
      this.drain(sender)
      return
    }
    if (seq < next) return // already delivered: a duplicate
    let held = this.held.get(sender)
    if (held == null) { held = new Map(); this.held.set(sender, held) }
    held.set(seq, item)
    if (held.size > this.maxHeld) { this.skipGap(sender); return }
    if (!this.timers.has(sender)) {
      const t = setTimeout(() => { this.timers.delete(sender); this.skipGap(sender) }, this.maxWaitMs)
      t.unref()
      this.timers.set(sender, t)
    }
  }

  private drain (sender: string): void {
    const held = this.held.get(sender)
    if (held == null) return
    let next = this.expected.get(sender) ?? 1
    while (held.has(next)) {
      this.emit(held.get(next) as T)
      held.delete(next)
      next++
    }
    this.expected.set(sender, next)
    if (held.size === 0) {
      this.held.delete(sender)
      clearTimeout(this.timers.get(sender))
      this.timers.delete(sender)
    }
  }

  /** Gives up on the gap: continues from the lowest held sequence number. */
  private skipGap (sender: string): void {
    const held = this.held.get(sender)
    if (held == null || held.size === 0) return
    this.expected.set(sender, Math.min(...held.keys()))
    this.drain(sender)
  }

  private dropSender (sender: string): void {
    this.held.delete(sender)
    clearTimeout(this.timers.get(sender))
    this.timers.delete(sender)
  }

  close (): void {
    for (const t of this.timers.values()) clearTimeout(t)
    this.timers.clear()
    this.held.clear()
  }
}
