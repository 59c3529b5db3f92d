/**
 * One envelope handed to several agents of a node (src/sdk/message.ts, `toMessage`): every
 * agent's subscription gets the same message object — made once, its compressed payload
 * inflated once — with the payload and fields as sent; the next envelope gets a message of
 * its own. Deliveries go through each agent's endpoint, as the router's fan-out makes them.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createAgent } from '../../src/sdk/agent.ts'
import { generateAgentKey } from '../../src/core/keys.ts'
import { compressPayload, signEnvelopes, type EnvelopeFields } from '../../src/core/envelope.ts'
import { inertTransport as transport } from '../helpers/peers.ts'
import type { Message } from '../../src/node/types.ts'
import type { NetworkId, Topic } from '../../src/core/ids.ts'

/** `n` agents subscribed to fan/# with a callback each, and what each got. */
async function subscribers (n: number): Promise<{ got: Message[][], agents: Array<Awaited<ReturnType<typeof createAgent>>> }> {
  const got: Message[][] = Array.from({ length: n }, () => [])
  const agents = await Promise.all(got.map(async (list) => {
    const a = await createAgent(generateAgentKey(), transport, { network: 'testnet' })
    a.subscribe('fan/#', { onMessage: (m) => { list.push(m) } })
    return a
  }))
  return { got, agents }
}

test('the agents of one node share one message per envelope, and a compressed payload is inflated for all of them', async () => {
  const { got, agents } = await subscribers(3)
  const publisher = generateAgentKey()
  const payloads = [new TextEncoder().encode('one '.repeat(100)), new TextEncoder().encode('two '.repeat(100))]
  const fields = payloads.map((p, i): EnvelopeFields => ({
    v: 1, net: 'testnet' as NetworkId, mode: 'topic', type: 'inform', from: publisher.id, topic: 'fan/x' as Topic, ts: Date.now(), ttl: 60, hops: 16, prio: 1,
    ct: 'text/plain', enc: 'gzip', body: compressPayload(p), nonce: i + 1
  }))
  const envs = signEnvelopes(fields, publisher)
  for (const env of envs) for (const a of agents) a.endpoint.deliver(env)
  for (const list of got) {
    assert.equal(list.length, 2)
    assert.deepEqual(list.map(m => m.id), envs.map(e => e.id))
    assert.deepEqual(list.map(m => new TextDecoder().decode(m.payload)), payloads.map(p => new TextDecoder().decode(p)))
  }
  for (const i of [0, 1]) {
    assert.ok(got[1][i] === got[0][i] && got[2][i] === got[0][i], `envelope ${i}: one message for every agent`)
    assert.equal(got[0][i].envelope, envs[i])
  }
  assert.notEqual(got[0][0], got[0][1])
  // Inflated once: every agent reads the same bytes.
  assert.ok(got[1][0].payload === got[0][0].payload && got[2][0].payload === got[0][0].payload)
  for (const a of agents) await a.close()
})

test('expiry is checked against one clock reading per turn of deliveries, read again in the next turn', async () => {
  const { got, agents } = await subscribers(3)
  const publisher = generateAgentKey()
  const t0 = Date.now()
  const envs = signEnvelopes([1, 2, 3, 4, 5].map((nonce): EnvelopeFields => ({
    v: 1, net: 'testnet' as NetworkId, mode: 'topic', type: 'inform', from: publisher.id, topic: 'fan/x' as Topic, ts: t0, ttl: 10, hops: 16, prio: 1,
    ct: 'text/plain', body: new TextEncoder().encode(String(nonce)), nonce
  })), publisher)
  // A turn's first delivery reads the clock; so does the first one of the next turn.
  await new Promise<void>(resolve => { queueMicrotask(resolve) })
  const realNow = Date.now
  let now = t0 + 5_000
  let reads = 0
  Date.now = () => { reads++; return now }
  try {
    for (const env of envs.slice(0, 4)) for (const a of agents) a.endpoint.deliver(env)
    assert.equal(reads, 1, 'twelve deliveries in one turn, one reading')
    assert.deepEqual(got.map(l => l.length), [4, 4, 4])
    // Past the messages' expiry: the next turn reads the clock again and delivers nothing.
    now = t0 + 10_001
    await new Promise<void>(resolve => { queueMicrotask(resolve) })
    for (const a of agents) a.endpoint.deliver(envs[4])
    assert.equal(reads, 2)
    assert.deepEqual(got.map(l => l.length), [4, 4, 4], 'expired in the next turn: not delivered')
  } finally {
    Date.now = realNow
  }
  for (const a of agents) await a.close()
})
