/**
 * Inbox messages that reach an agent before it has a `messages()` iterator (src/sdk/agent.ts):
 * a direct, multicast or broadcast message is held — the newest EARLY_MAX of them — and the
 * first iterator gets them in arrival order, after any durable messages held.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createAgent, EARLY_MAX } from '../../src/sdk/agent.ts'
import { generateAgentKey } from '../../src/core/keys.ts'
import { signEnvelopes, type EnvelopeFields } from '../../src/core/envelope.ts'
import type { AgentTransport } from '../../src/routing/types.ts'
import type { AgentId, NetworkId } from '../../src/core/ids.ts'
import type { Message, Subscription } from '../../src/node/types.ts'

const transport: AgentTransport = {
  submit: async (env) => ({ id: env.id, confirmed: [] }),
  subscribe: async () => {},
  unsubscribe: async () => {},
  openStream: async () => { throw new Error('no streams here') },
  attach: async () => {},
  detach: async () => {}
}

async function take (sub: Subscription, n: number): Promise<Message[]> {
  const out: Message[] = []
  const it = sub[Symbol.asyncIterator]()
  while (out.length < n) {
    const r = await it.next()
    if (r.done === true) break
    out.push(r.value)
  }
  return out
}

test('messages that came before messages() are held (the newest EARLY_MAX) and handed to the first iterator in order', async () => {
  const bob = await createAgent(generateAgentKey(), transport, { network: 'testnet' })
  const alice = generateAgentKey()
  const fields = (i: number, mode: 'direct' | 'multicast' | 'broadcast'): EnvelopeFields => ({
    v: 1, net: 'testnet' as NetworkId, mode, type: 'inform', from: alice.id, ...(mode === 'broadcast' ? {} : { to: [bob.id as AgentId] }),
    ts: Date.now(), ttl: 60, hops: 16, prio: 1, ct: 'application/json', body: new TextEncoder().encode(JSON.stringify({ i })), nonce: i + 1
  })
  const modes = ['direct', 'multicast', 'broadcast'] as const
  const count = EARLY_MAX + 5
  const envs = signEnvelopes(Array.from({ length: count }, (_, i) => fields(i, modes[i % 3])), alice)
  for (const env of envs) bob.endpoint.deliver(env)
  const inbox = bob.messages()
  const got = await take(inbox, EARLY_MAX)
  // The five oldest made way for newer ones; the rest come in arrival order, every mode.
  assert.deepEqual(got.map(m => (m.data() as { i: number }).i), Array.from({ length: EARLY_MAX }, (_, i) => i + 5))
  assert.deepEqual(new Set(got.map(m => m.mode)), new Set(modes))
  // Held once: a second iterator gets only what comes next.
  const second = bob.messages()
  const later = signEnvelopes([fields(count, 'direct')], alice)
  bob.endpoint.deliver(later[0])
  assert.equal((await take(second, 1))[0].id, later[0].id)
  assert.equal((await take(inbox, 1))[0].id, later[0].id)
  await bob.close()
})
