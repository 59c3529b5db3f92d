import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { Reorderer } from '../../src/delivery/ordering.ts'
import { retryDelay } from '../../src/routing/retry.ts'
import { peerQuality, statusAfterPing } from '../../src/net/peers.ts'
import { decodeFrame, encodeFrame } from '../../src/net/frames.ts'

describe('pure helpers', () => {
  it('reorders per sender, skips a gap after the wait, resets on seq 1', async () => {
    const out: string[] = []
    const r = new Reorderer<string>((x) => out.push(x), { maxWaitMs: 30 })
    r.push('s', 2, 'b'); r.push('s', 1, 'a'); r.push('s', 3, 'c'); r.push('s', 2, 'dup')
    assert.deepEqual(out, ['a', 'b', 'c'])
    r.push('s', 5, 'e')
    await new Promise(resolve => setTimeout(resolve, 60))
    assert.deepEqual(out, ['a', 'b', 'c', 'e'])
    r.push('s', 1, 'restart')
    assert.deepEqual(out.at(-1), 'restart')
    r.close()
  })

  it('backoff grows and is capped', () => {
    assert.equal(retryDelay(1, 200, 10_000, () => 1), 200)
    assert.equal(retryDelay(3, 200, 10_000, () => 1), 800)
    assert.equal(retryDelay(30, 200, 10_000, () => 1), 10_000)
    assert.equal(retryDelay(3, 200, 10_000, () => 0), 400)
  })

  it('peer quality and status', () => {
    assert.equal(peerQuality({ status: 'disconnected', pingFailures: 0 }), 0)
    assert.ok(peerQuality({ status: 'connected', latencyMs: 1, pingFailures: 0 }) > peerQuality({ status: 'connected', latencyMs: 300, pingFailures: 0 }))
    assert.ok(peerQuality({ status: 'connected', latencyMs: 1, pingFailures: 2 }) < peerQuality({ status: 'connected', latencyMs: 1, pingFailures: 0 }))
    assert.equal(statusAfterPing(600, 0), 'degraded')
    assert.equal(statusAfterPing(5, 3), 'degraded')
    assert.equal(statusAfterPing(5, 0), 'connected')
  })

  it('frames round-trip and garbage is refused', () => {
    const f = { t: 2 as const, id: 'bxyz', ok: false, code: 'X', msg: 'm' }
    assert.deepEqual(decodeFrame(encodeFrame(f)), f)
    assert.equal(decodeFrame(Uint8Array.from([0xff])), undefined)
    assert.equal(decodeFrame(encodeFrame({ t: 1, h: -1, e: new Uint8Array() } as never)), undefined)
  })
})
