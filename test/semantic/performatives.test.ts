import { test, describe } from 'node:test'
import assert from 'node:assert/strict'
import {
  PERFORMATIVES, PERFORMATIVE_INFO, isPerformative, describePerformative, repliesTo, isReplyTo, replyFields, notUnderstood,
  NOT_UNDERSTOOD_SCHEMA, REQUEST_PROTOCOL, QUERY_PROTOCOL, CONTRACT_NET_PROTOCOL, SUBSCRIBE_PROTOCOL, startConversation, step,
  expectedTransitions, createSchemaRegistry, type Performative, type ProtocolDefinition, type ConversationState
} from '../../src/semantic/index.ts'
import { agentKeyFromSeed } from '../../src/core/keys.ts'
import type { AgentId } from '../../src/core/ids.ts'

const alice = agentKeyFromSeed(new Uint8Array(32).fill(1)).id
const bob = agentKeyFromSeed(new Uint8Array(32).fill(2)).id

/** For every performative: a protocol, the messages leading up to it, and the state it leads to. */
const SCENARIOS: Record<Performative, { def: ProtocolDefinition, before: Array<[Performative, string]>, sender: string, to: string }> = {
  request: { def: REQUEST_PROTOCOL, before: [], sender: 'initiator', to: 'requested' },
  agree: { def: REQUEST_PROTOCOL, before: [['request', 'initiator']], sender: 'participant', to: 'agreed' },
  refuse: { def: REQUEST_PROTOCOL, before: [['request', 'initiator']], sender: 'participant', to: 'refused' },
  inform: { def: REQUEST_PROTOCOL, before: [['request', 'initiator'], ['agree', 'participant']], sender: 'participant', to: 'done' },
  failure: { def: REQUEST_PROTOCOL, before: [['request', 'initiator'], ['agree', 'participant']], sender: 'participant', to: 'failed' },
  'query-if': { def: QUERY_PROTOCOL, before: [], sender: 'initiator', to: 'queried' },
  'query-ref': { def: QUERY_PROTOCOL, before: [], sender: 'initiator', to: 'queried' },
  cfp: { def: CONTRACT_NET_PROTOCOL, before: [], sender: 'initiator', to: 'cfp' },
  propose: { def: CONTRACT_NET_PROTOCOL, before: [['cfp', 'initiator']], sender: 'participant', to: 'proposed' },
  'accept-proposal': { def: CONTRACT_NET_PROTOCOL, before: [['cfp', 'initiator'], ['propose', 'participant']], sender: 'initiator', to: 'accepted' },
  'reject-proposal': { def: CONTRACT_NET_PROTOCOL, before: [['cfp', 'initiator'], ['propose', 'participant']], sender: 'initiator', to: 'rejected' },
  subscribe: { def: SUBSCRIBE_PROTOCOL, before: [], sender: 'subscriber', to: 'requested' },
  cancel: { def: SUBSCRIBE_PROTOCOL, before: [['subscribe', 'subscriber'], ['agree', 'publisher'], ['inform', 'publisher']], sender: 'subscriber', to: 'cancelled' },
  'not-understood': { def: CONTRACT_NET_PROTOCOL, before: [['cfp', 'initiator']], sender: 'participant', to: 'cfp' }
}

describe('performatives', () => {
  test('the FIPA ACL set, fourteen acts, each with a meaning', () => {
    assert.equal(PERFORMATIVES.length, 14)
    for (const p of PERFORMATIVES) {
      const info = describePerformative(p)
      assert.equal(info.name, p)
      assert.ok(info.meaning.length > 20, p)
      assert.ok(['assertive', 'directive', 'commissive', 'declining', 'meta'].includes(info.category))
      for (const r of repliesTo(p)) assert.ok(isPerformative(r), `${p} → ${r}`)
    }
    assert.deepEqual(Object.keys(PERFORMATIVE_INFO).sort(), [...PERFORMATIVES].sort())
    assert.equal(isPerformative('stream'), false)
    assert.ok(isReplyTo('agree', 'request'))
    assert.ok(isReplyTo('propose', 'cfp'))
    assert.ok(!isReplyTo('agree', 'inform'))
  })

  for (const p of PERFORMATIVES) {
    test(`${p}: ${PERFORMATIVE_INFO[p].category}, drives its step in a built-in protocol`, () => {
      const sc = SCENARIOS[p]
      let conv: ConversationState = startConversation(sc.def, sc.def.roles[0], 0)
      for (const [perf, sender] of sc.before) {
        const r = step(sc.def, conv, { performative: perf, sender }, 1)
        assert.ok(r.ok, `${perf} by ${sender}`)
        conv = r.state
      }
      const r = step(sc.def, conv, { performative: p, sender: sc.sender }, 2)
      assert.ok(r.ok, `${p} by ${sc.sender} in ${conv.state}`)
      assert.equal(r.state.state, sc.to)
      if (p === 'not-understood') {
        assert.equal(r.state.status, 'aborted')
        assert.equal(r.state.outcome, 'not-understood')
      }
      // The same act from the wrong role, or out of place, is refused naming what was expected.
      const wrongRole = sc.def.roles.find((x) => x !== sc.sender) as string
      const bad = step(sc.def, conv, { performative: p, sender: wrongRole }, 2)
      if (p !== 'not-understood' && !sc.def.transitions.some((t) => t.from === conv.state && t.performative === p && t.sender === wrongRole)) {
        assert.ok(!bad.ok)
        assert.deepEqual(bad.expected, expectedTransitions(sc.def, conv.state))
      }
    })
  }

  test('replies: direct, same conversation and protocol, correlated', () => {
    const original = { id: 'bciqmsg', from: alice as AgentId, conv: 'c1', proto: 'proto/request@1.0.0' }
    assert.deepEqual(replyFields(original, 'agree'), { mode: 'direct', type: 'agree', to: [alice], conv: 'c1', proto: 'proto/request@1.0.0', corr: 'bciqmsg' })
    assert.deepEqual(replyFields({ ...original, replyTo: bob }, 'inform').to, [bob])
    assert.deepEqual(replyFields({ ...original, replyTo: 'not-an-agent' }, 'inform').to, [alice])
  })

  test('not-understood carries what was expected, valid under its built-in schema', async () => {
    const conv = startConversation(REQUEST_PROTOCOL, 'participant', 0)
    const r = step(REQUEST_PROTOCOL, conv, { performative: 'inform', sender: 'initiator' }, 1)
    assert.ok(!r.ok)
    const { fields, payload } = notUnderstood({ id: 'bciqx', from: alice as AgentId, type: 'inform', conv: 'c', proto: 'proto/request@1.0.0' }, { reason: r.reason, detail: r.detail, state: r.state.state, expected: r.expected })
    assert.equal(fields.type, 'not-understood')
    assert.equal(fields.schema, NOT_UNDERSTOOD_SCHEMA)
    assert.deepEqual(payload.expected, [{ performative: 'request', sender: 'initiator', to: 'requested' }])
    const validate = await createSchemaRegistry().validator(NOT_UNDERSTOOD_SCHEMA)
    assert.deepEqual(validate(JSON.parse(JSON.stringify(payload))), [])
  })
})
