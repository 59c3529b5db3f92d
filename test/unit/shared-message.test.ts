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


test('the agents of one node share one message per envelope, and a compressed payload is inflated for all of them', async () => {
  const got: Message[][] = [[], [], []]
  const agents = await Promise.all(got.map(async (list) => {
    const a = await createAgent(generateAgentKey(), transport, { network: 'testnet' })
    a.subscribe('fan/#', { onMessage: (m) => { list.push(m) } })
    return a
  }))
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
