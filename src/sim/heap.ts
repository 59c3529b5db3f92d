/**
 * The simulator's event queue: a binary min-heap ordered by (time, insertion number), so
 * events at the same time run in the order they were scheduled and runs are reproducible.
 */
export interface Timed { t: number, s: number }

export class EventQueue<E extends Timed> {
  private readonly heap: E[] = []
  private counter = 0

  get size (): number { return this.heap.length }

  /** Schedules `event` at `event.t`; its `s` is overwritten with the insertion number. */
  push (event: E): void {
    event.s = this.counter++
    const h = this.heap
    h.push(event)
    let i = h.length - 1
    while (i > 0) {
      const parent = (i - 1) >> 1
      if (!before(event, h[parent])) break
      h[i] = h[parent]
      i = parent
    }
    h[i] = event
  }

  peek (): E | undefined { return this.heap[0] }

  pop (): E | undefined {
    const h = this.heap
    if (h.length === 0) return undefined
    const top = h[0]
    const last = h.pop() as E
    if (h.length > 0) {
      let i = 0
      const n = h.length
      for (;;) {
        const l = 2 * i + 1
        if (l >= n) break
        const r = l + 1
        const c = r < n && before(h[r], h[l]) ? r : l
        if (!before(h[c], last)) break
        h[i] = h[c]
        i = c
      }
      h[i] = last
    }
    return top
  }
}

function before (a: Timed, b: Timed): boolean {
  return a.t < b.t || (a.t === b.t && a.s < b.s)
}
