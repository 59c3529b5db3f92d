/**
 * A tiny in-memory network for the dissemination core's unit tests: frames are delivered in
 * FIFO order with no latency (so the first copy of a flood to arrive is one with the fewest
 * hops), every frame and delivery is recorded, and loops are bounded.
 */
import { createDisseminator, type Actions, type DataMessage, type Disseminator, type DisseminationParams, type Frame, type NodeId } from '../../src/dissemination/index.ts'
import type { MessageId, Topic } from '../../src/core/ids.ts'

export interface Sent { from: string, to: string, frame: Frame<string> }

export class TestNet {
  readonly nodes = new Map<string, Disseminator<string>>()
  readonly delivered = new Map<string, Array<DataMessage<string>>>()
  readonly sent: Sent[] = []
  readonly dropped: Array<{ at: string, reason: string }> = []
  private readonly queue: Sent[] = []
  private readonly params: Partial<DisseminationParams>
  now = 0

  constructor (params: Partial<DisseminationParams> = {}) {
    // Records go out at the end of each event unless a test asks for batching.
    this.params = { interestBatchMs: 0, ...params }
  }

  add (...ids: string[]): this {
    for (const id of ids) {
      this.nodes.set(id, createDisseminator<string>({ self: id as NodeId, params: this.params }))
      this.delivered.set(id, [])
    }
    return this
  }

  node (id: string): Disseminator<string> {
    const d = this.nodes.get(id)
    if (d === undefined) throw new Error(`no node ${id}`)
    return d
  }

  apply (id: string, a: Actions<string>): void {
    for (const s of a.send) {
      const item = { from: id, to: s.to, frame: s.frame }
      this.sent.push(item)
      this.queue.push(item)
    }
    for (const m of a.deliver) this.delivered.get(id)?.push(m)
    for (const d of a.dropped) this.dropped.push({ at: id, reason: d.reason })
  }

  /** Links `a–b`, `b–c`, … given as 'a-b' strings. */
  link (...pairs: string[]): this {
    for (const p of pairs) {
      const [a, b] = p.split('-')
      this.apply(a, this.node(a).neighbourUp(b as NodeId, this.now))
      this.apply(b, this.node(b).neighbourUp(a as NodeId, this.now))
    }
    return this
  }

  /** Cuts links; frames already queued on them are lost. */
  unlink (...pairs: string[]): this {
    for (const p of pairs) {
      const [a, b] = p.split('-')
      for (let i = this.queue.length - 1; i >= 0; i--) {
        const q = this.queue[i]
        if ((q.from === a && q.to === b) || (q.from === b && q.to === a)) this.queue.splice(i, 1)
      }
      this.apply(a, this.node(a).neighbourDown(b as NodeId, this.now))
      this.apply(b, this.node(b).neighbourDown(a as NodeId, this.now))
    }
    return this
  }

  subscribe (id: string, pattern: string): this {
    this.apply(id, this.node(id).localSubscribe(pattern, this.now))
    return this
  }

  unsubscribe (id: string, pattern: string): this {
    this.apply(id, this.node(id).localUnsubscribe(pattern, this.now))
    return this
  }

  publish (id: string, msgId: string, topic: string | undefined, extra: Partial<DataMessage<string>> = {}): this {
    const base = { id: msgId as MessageId, maxHops: 16, expiresAt: this.now + 60_000, payload: msgId, ...extra }
    this.apply(id, this.node(id).publish(topic === undefined ? { ...base, broadcast: true } : { ...base, topic: topic as Topic }, this.now))
    return this
  }

  /** Delivers queued frames until none are left (bounded). */
  run (maxFrames: number = 100_000): this {
    let n = 0
    while (this.queue.length > 0) {
      if (++n > maxFrames) throw new Error('network did not settle')
      const s = this.queue.shift() as Sent
      const to = this.nodes.get(s.to)
      if (to === undefined) continue
      this.apply(s.to, to.receive(s.from as NodeId, s.frame, this.now))
    }
    return this
  }

  /** Advances the clock and ticks every node, then settles. */
  advance (ms: number): this {
    this.now += ms
    for (const [id, d] of this.nodes) this.apply(id, d.tick(this.now))
    return this.run()
  }

  /** Frames sent since `mark` (an index into `sent`) of one kind. */
  framesSince (mark: number, kind: Frame<string>['kind']): Sent[] {
    return this.sent.slice(mark).filter(s => s.frame.kind === kind)
  }

  deliveredIds (id: string): string[] {
    return (this.delivered.get(id) ?? []).map(m => m.id)
  }
}
