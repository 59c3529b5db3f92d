/**
 * The SDK's batch policy for buffered publications (src/sdk/agent.ts): a bulk publisher's
 * batch grows over a few turns of the event loop up to PUBLISH_BATCH_MAX_BUSY, a trickle is
 * signed at the end of its turn, and publications someone awaits stay in batches of
 * PUBLISH_BATCH_MAX. Checked on the envelopes an in-process transport is handed.
 */
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { setImmediate as turn } from 'node:timers/promises'
import { createAgent, PUBLISH_BATCH_MAX, PUBLISH_BATCH_MAX_BUSY, PUBLISH_BULK, PUBLISH_DEFER_TURNS } from '../../src/sdk/agent.ts'
import { generateAgentKey } from '../../src/core/keys.ts'
import { batchOf, decodeEnvelope, type Envelope } from '../../src/core/envelope.ts'
import type { AgentTransport } from '../../src/routing/types.ts'

async function setup (withPublishNow: boolean = true): Promise<{ agent: Awaited<ReturnType<typeof createAgent>>, published: Envelope[] }> {
  const published: Envelope[] = []
  const transport: AgentTransport = {
    submit: async (env) => { published.push(env); return { id: env.id, confirmed: [] } },
    ...(withPublishNow ? { publishNow: (env: Envelope) => { published.push(env) }, queuedBytes: () => 0, drained: async () => {} } : {}),
    subscribe: async () => {},
    unsubscribe: async () => {},
    openStream: async () => { throw new Error('no streams here') },
    attach: async () => {},
    detach: async () => {}
  }
  const agent = await createAgent(generateAgentKey(), transport, { network: 'testnet' })
  return { agent, published }
}

/** Sizes of the batches in `envs`, in order (a lone envelope counts as a batch of 1). */
function batchSizes (envs: Envelope[]): number[] {
  const sizes: number[] = []
  let last: unknown
  for (const e of envs) {
    const b = batchOf(e) ?? e
    if (b !== last) sizes.push(0)
    sizes[sizes.length - 1]++
    last = b
  }
  return sizes
}

describe('batches of buffered publications', () => {
  test('a bulk publisher (256 a turn) is signed in batches of up to PUBLISH_BATCH_MAX_BUSY, every envelope verifying', async () => {
    const { agent, published } = await setup()
    const perTurn = 256
    const turns = 10
    for (let t = 0; t < turns; t++) {
      for (let i = 0; i < perTurn; i++) assert.equal(agent.publishBuffered('bulk/x', new Uint8Array([t, i])), true)
      await turn()
    }
    await agent.drain()
    assert.equal(published.length, perTurn * turns)
    const sizes = batchSizes(published)
    assert.equal(sizes[0], Math.min(PUBLISH_BATCH_MAX_BUSY, perTurn * (PUBLISH_DEFER_TURNS + 1)), `first batches ${sizes.join(', ')}`)
    assert.ok(sizes.every(n => n <= PUBLISH_BATCH_MAX_BUSY))
    for (const e of [published[0], published[700], published.at(-1) as Envelope]) assert.equal(decodeEnvelope(e.bytes).ok, true)
    await agent.close()
  })

  test('a trickle (fewer than PUBLISH_BULK a turn) is signed at the end of each turn', async () => {
    const { agent, published } = await setup()
    for (let t = 0; t < 5; t++) {
      for (let i = 0; i < PUBLISH_BULK - 1; i++) agent.publishBuffered('trickle/x', new Uint8Array([t, i]))
      await turn()
      assert.equal(published.length, (t + 1) * (PUBLISH_BULK - 1), `turn ${t}: signed and handed over in its own turn`)
    }
    assert.deepEqual(batchSizes(published), Array(5).fill(PUBLISH_BULK - 1))
    await agent.close()
  })

  test('a bulk publisher that stops is signed one turn later', async () => {
    const { agent, published } = await setup()
    for (let i = 0; i < 300; i++) agent.publishBuffered('stop/x', new Uint8Array([i & 255]))
    await turn()
    assert.equal(published.length, 0, 'deferred: it may grow')
    await turn()
    await turn()
    assert.equal(published.length, 300)
    await agent.close()
  })

  test('awaited publications keep batches of PUBLISH_BATCH_MAX', async () => {
    const { agent, published } = await setup()
    await Promise.all(Array.from({ length: 600 }, async (_, i) => await agent.publish('awaited/x', new Uint8Array([i & 255]))))
    assert.deepEqual(batchSizes(published), [PUBLISH_BATCH_MAX, PUBLISH_BATCH_MAX, 600 - 2 * PUBLISH_BATCH_MAX])
    await agent.close()
  })

  test('over a transport without publishNow, batches stay as before', async () => {
    const { agent, published } = await setup(false)
    for (let i = 0; i < 100; i++) agent.publishBuffered('remote/x', new Uint8Array([i]))
    await agent.drain()
    assert.deepEqual(batchSizes(published), [100])
    await agent.close()
  })
})
