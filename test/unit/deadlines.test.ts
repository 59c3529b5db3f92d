/**
 * DeadlineQueue: keyed waits with one delay, swept by one timer (src/routing/deadlines.ts).
 * The clock is injected, so what expires is decided by the test, not by scheduling.
 */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { DeadlineQueue } from '../../src/routing/deadlines.ts'

function queue (delayMs: number) {
  let now = 1000
  const expired: Array<[string, number]> = []
  const waiters: Array<() => void> = []
  const q = new DeadlineQueue<string, number>({
    delayMs,
    now: () => now,
    onExpire: (k, v) => { expired.push([k, v]); for (const w of waiters.splice(0)) w() }
  })
  /** Resolves after the queue's next expiry (bounded by the caller's test timeout). */
  const nextExpiry = async (): Promise<void> => { await new Promise<void>(resolve => { waiters.push(resolve) }) }
  return { q, expired, nextExpiry, advance: (ms: number) => { now += ms } }
}

describe('DeadlineQueue', { timeout: 10_000 }, () => {
  it('expires waits in order, and only those that are due', async () => {
    const { q, expired, nextExpiry, advance } = queue(5)
    q.add('a', 1)
    advance(3)
    q.add('b', 2)
    advance(2) // a is due, b is not
    await nextExpiry()
    assert.deepEqual(expired, [['a', 1]])
    assert.equal(q.size, 1)
    assert.equal(q.get('b'), 2)
    advance(3)
    await nextExpiry()
    assert.deepEqual(expired, [['a', 1], ['b', 2]])
    assert.equal(q.size, 0)
  })

  it('a wait taken before its deadline never expires; re-adding restarts it', async () => {
    const { q, expired, nextExpiry, advance } = queue(5)
    q.add('a', 1)
    q.add('b', 2)
    q.add('c', 3)
    assert.equal(q.take('b'), 2)
    assert.equal(q.take('b'), undefined)
    advance(4)
    q.add('a', 10) // restarted: now due after c
    advance(1)
    await nextExpiry()
    assert.deepEqual(expired, [['c', 3]])
    advance(4)
    await nextExpiry()
    assert.deepEqual(expired, [['c', 3], ['a', 10]])
  })

  it('clear returns the pending values and stops the sweep', () => {
    const { q, expired } = queue(5)
    q.add('a', 1)
    q.add('b', 2)
    assert.deepEqual(q.clear(), [1, 2])
    assert.equal(q.size, 0)
    assert.deepEqual(expired, [])
  })

  it('a wait added while expiring others is kept for its own deadline', async () => {
    let now = 0
    const expired: string[] = []
    let done!: () => void
    const finished = new Promise<void>(resolve => { done = resolve })
    const q: DeadlineQueue<string, string> = new DeadlineQueue({
      delayMs: 2,
      now: () => now,
      onExpire: (k) => {
        expired.push(k)
        if (k === 'first') { q.add('again', 'x'); now += 2 } else done()
      }
    })
    q.add('first', 'x')
    now += 2
    await finished
    assert.deepEqual(expired, ['first', 'again'])
  })
})
