import { test } from 'node:test'
import assert from 'node:assert/strict'
import type { Stream } from '@libp2p/interface'
import { TypedEventEmitter } from 'main-event'
import { belowHighWater } from '../../src/net/flow.ts'

/** What belowHighWater reads of a stream: its write buffer, its status, `idle` and `close`. */
class FakeStream extends TypedEventEmitter<Record<string, Event>> {
  writeBufferLength = 0
  status = 'writable'
  /** Reads of writeStatus: a waiter that spins shows here (and stops at the bound). */
  reads = 0
  get writeStatus (): string {
    if (++this.reads > 10_000) return 'closed'
    return this.status
  }
}

const settled = async (p: Promise<void>): Promise<boolean> => {
  let done = false
  void p.then(() => { done = true })
  for (let i = 0; i < 5; i++) await Promise.resolve()
  return done
}

test('belowHighWater waits for idle with the buffer down, or for close; a stream is listened to once', async () => {
  const s = new FakeStream()
  const stream = s as unknown as Stream
  assert.equal(belowHighWater(stream, { highWater: 10 }), undefined, 'at most the high-water mark: no promise')
  for (let round = 0; round < 3; round++) {
    s.writeBufferLength = 11
    const a = belowHighWater(stream, { highWater: 10 }) as Promise<void>
    const b = belowHighWater(stream, { highWater: 10 }) as Promise<void>
    assert.ok(a instanceof Promise && b instanceof Promise)
    // Two writers waiting, any number of waits before: one listener for each event.
    assert.equal(s.listenerCount('idle'), 1)
    assert.equal(s.listenerCount('close'), 1)
    s.safeDispatchEvent('idle')
    assert.equal(await settled(a), false, 'idle with the buffer still above the mark: still waiting')
    s.writeBufferLength = 10
    s.safeDispatchEvent('idle')
    assert.equal(await settled(a), true)
    assert.equal(await settled(b), true)
  }
  s.writeBufferLength = 50
  const c = belowHighWater(stream, { highWater: 10 }) as Promise<void>
  s.status = 'closed'
  s.safeDispatchEvent('close')
  assert.equal(await settled(c), true, 'a closed stream is not waited on')
})

test('belowHighWater with a signal rejects when it aborts (no spin), and leaves no listener behind', async () => {
  for (const early of [false, true]) {
    const s = new FakeStream()
    const stream = s as unknown as Stream
    s.writeBufferLength = 11
    const ac = new AbortController()
    if (early) ac.abort()
    const p = belowHighWater(stream, { highWater: 10, signal: ac.signal }) as Promise<void>
    assert.ok(p instanceof Promise)
    if (!early) {
      assert.equal(s.listenerCount('idle'), 1)
      ac.abort()
    }
    // Before: the abort resolved the wait, and with the buffer still above the mark the loop
    // waited again on the aborted signal, at once, without end (here: until the bound).
    await assert.rejects(p, /abort/i)
    assert.ok(s.reads < 10, `writeStatus read ${s.reads} times`)
    assert.equal(s.listenerCount('idle'), 0)
    assert.equal(s.listenerCount('close'), 0)
  }
})
