import { test, describe } from 'node:test'
import assert from 'node:assert/strict'
import {
  validateProtocol, parseProtocol, protocolUri, initiatorRole, counterpartRole, protocolSchemas, BUILTIN_PROTOCOLS,
  REQUEST_PROTOCOL, MARKET_PROTOCOL, CONTRACT_NET_PROTOCOL, startConversation, step, advanceTimeouts, nextDeadline,
  createConversationTracker, createManualClock, protocolViolation, type ProtocolDefinition, type TimeoutEvent
} from '../../src/semantic/index.ts'

const base = (): Record<string, any> => structuredClone({
  name: 'ping', version: '1.0.0', roles: ['a', 'b'], states: ['s', 'w', 'done', 'late'], initial: 's', terminal: ['done', 'late'],
  transitions: [{ from: 's', to: 'w', performative: 'request', sender: 'a' }, { from: 'w', to: 'done', performative: 'inform', sender: 'b' }],
  timeouts: { w: { after: 1000, to: 'late' } }
})
const problems = (edit: (d: Record<string, any>) => void): string => { const d = base(); edit(d); return validateProtocol(d).join(' | ') }

describe('protocol definitions', () => {
  test('the built-ins are valid, named proto/<name>@<version>', () => {
    for (const p of BUILTIN_PROTOCOLS) assert.deepEqual(validateProtocol(p), [], p.name)
    assert.deepEqual(BUILTIN_PROTOCOLS.map(protocolUri), ['proto/request@1.0.0', 'proto/query@1.0.0', 'proto/contract-net@1.0.0', 'proto/subscribe@1.0.0', 'proto/market@1.0.0'])
    assert.equal(initiatorRole(MARKET_PROTOCOL), 'buyer')
    assert.equal(counterpartRole(MARKET_PROTOCOL, 'buyer'), 'seller')
    assert.deepEqual(protocolSchemas(MARKET_PROTOCOL).sort(), ['market/contract@2.0.1', 'market/proposal@1.0.0', 'market/rfp@1.0.0'])
    assert.ok(Object.isFrozen(REQUEST_PROTOCOL.transitions[0]))
  })

  test('every kind of mistake is reported', () => {
    assert.equal(problems(() => {}), '')
    assert.match(problems((d) => { d.extra = 1 }), /unknown field "extra"/)
    assert.match(problems((d) => { d.name = 'Ping' }), /name must be lowercase/)
    assert.match(problems((d) => { d.version = '1.0' }), /version must be semver/)
    assert.match(problems((d) => { d.roles = ['a'] }), /at least two roles/)
    assert.match(problems((d) => { d.roles = ['a', 'a'] }), /listed twice/)
    assert.match(problems((d) => { d.initial = 'nope' }), /initial must be one of the states/)
    assert.match(problems((d) => { d.terminal = ['nope'] }), /terminal state nope is not among the states/)
    assert.match(problems((d) => { d.transitions.push({ from: 'done', to: 's', performative: 'inform', sender: 'a' }) }), /leaves terminal state done/)
    assert.match(problems((d) => { d.transitions[0].performative = 'shout' }), /not a FIPA performative/)
    assert.match(problems((d) => { d.transitions[0].sender = 'c' }), /sender "c" is not a role/)
    assert.match(problems((d) => { d.transitions[0].schema = 'nope' }), /not a schema URI/)
    assert.match(problems((d) => { d.transitions.push({ from: 's', to: 'done', performative: 'request', sender: 'a' }) }), /ambiguous/)
    assert.match(problems((d) => { d.transitions[1].schema = 'x/y@1.0.0'; d.transitions.push({ from: 'w', to: 'late', performative: 'inform', sender: 'b', schema: 'x/y@1.2.0' }) }), /same schema name and major/)
    assert.equal(problems((d) => { d.transitions[1].schema = 'x/y@1.0.0'; d.transitions.push({ from: 'w', to: 'late', performative: 'inform', sender: 'b', schema: 'x/y@2.0.0' }) }), '')
    assert.match(problems((d) => { d.states.push('island') }), /state island cannot be reached/)
    assert.match(problems((d) => { d.states.push('trap'); d.transitions.push({ from: 'w', to: 'trap', performative: 'refuse', sender: 'b' }) }), /no terminal state can be reached from trap/)
    assert.match(problems((d) => { d.timeouts = { done: { after: 5, to: 's' } } }), /terminal states have no timeout/)
    assert.match(problems((d) => { d.timeouts = { w: { after: 0, to: 'late' } } }), /after must be/)
    assert.match(problems((d) => { d.timeouts = { w: { after: 5, to: 'x' } } }), /to is not a state/)
    assert.throws(() => parseProtocol({ ...base(), states: [] }), (err: any) => err.code === 'InvalidProtocolError' && err.details.problems.length > 0)
  })
})

describe('conversation steps (pure)', () => {
  const def = parseProtocol(base()) as ProtocolDefinition

  test('legal steps advance; the last one ends the conversation', () => {
    let c = startConversation(def, 'a', 0)
    const r1 = step(def, c, { performative: 'request', sender: 'a' }, 10)
    assert.ok(r1.ok)
    c = r1.state
    assert.equal(c.state, 'w')
    assert.equal(c.since, 10)
    const r2 = step(def, c, { performative: 'inform', sender: 'b' }, 20)
    assert.ok(r2.ok)
    assert.equal(r2.state.status, 'done')
    const r3 = step(def, r2.state, { performative: 'inform', sender: 'b' }, 30)
    assert.ok(!r3.ok)
    assert.equal(r3.reason, 'conversation-ended')
  })

  test('illegal transitions are refused with the expected ones', () => {
    const c = startConversation(def, 'b', 0)
    const r = step(def, c, { performative: 'inform', sender: 'b' }, 1)
    assert.ok(!r.ok)
    assert.equal(r.reason, 'illegal-transition')
    assert.deepEqual(r.expected, [{ performative: 'request', sender: 'a', to: 'w' }])
    assert.equal(r.state, c)
    const wrongRole = step(def, c, { performative: 'request', sender: 'b' }, 1)
    assert.ok(!wrongRole.ok)
    const unknownRole = step(def, c, { performative: 'request', sender: 'z' }, 1)
    assert.ok(!unknownRole.ok)
    assert.equal(unknownRole.reason, 'unknown-role')
  })

  test('schemas: same name and major match; others are a schema-mismatch', () => {
    let c = startConversation(MARKET_PROTOCOL, 'buyer', 0)
    const none = step(MARKET_PROTOCOL, c, { performative: 'cfp', sender: 'buyer' }, 1)
    assert.ok(!none.ok)
    assert.equal(none.reason, 'schema-mismatch')
    assert.ok(!step(MARKET_PROTOCOL, c, { performative: 'cfp', sender: 'buyer', schema: 'market/rfp@2.0.0' }, 1).ok)
    assert.ok(!step(MARKET_PROTOCOL, c, { performative: 'cfp', sender: 'buyer', schema: 'market/proposal@1.0.0' }, 1).ok)
    const later = step(MARKET_PROTOCOL, c, { performative: 'cfp', sender: 'buyer', schema: 'market/rfp@1.3.2' }, 1)
    assert.ok(later.ok)
    c = later.state
    assert.equal(c.state, 'rfp')
  })

  test('timeouts fire at their deadline, chained, counted from when they fired', () => {
    const chain = parseProtocol({ ...base(), states: ['s', 'w', 'x', 'done', 'late'], transitions: [...base().transitions, { from: 'x', to: 'done', performative: 'inform', sender: 'a' }], timeouts: { w: { after: 1000, to: 'x' }, x: { after: 500, to: 'late' } } })
    const c = step(chain, startConversation(chain, 'a', 0), { performative: 'request', sender: 'a' }, 100)
    assert.ok(c.ok)
    assert.equal(nextDeadline(chain, c.state), 1100)
    assert.equal(advanceTimeouts(chain, c.state, 1099).fired.length, 0)
    const t1 = advanceTimeouts(chain, c.state, 1100)
    assert.deepEqual(t1.fired, [{ from: 'w', to: 'x', at: 1100 }])
    const t2 = advanceTimeouts(chain, c.state, 5000)
    assert.deepEqual(t2.fired, [{ from: 'w', to: 'x', at: 1100 }, { from: 'x', to: 'late', at: 1600 }])
    assert.equal(t2.state.status, 'done')
    // A reply after the deadline meets the timed-out conversation.
    const late = step(chain, c.state, { performative: 'inform', sender: 'b' }, 1100)
    assert.ok(!late.ok)
    assert.equal(late.reason, 'illegal-transition')
    assert.equal(late.timeouts.length, 1)
  })
})

describe('ConversationTracker', () => {
  test('both ends track the same conversation and stay in step', () => {
    const clock = createManualClock(1000)
    const buyer = createConversationTracker({ clock })
    const seller = createConversationTracker({ clock })
    const key = (peer: string) => ({ conv: 'c1', peer })
    const exchange = (from: typeof buyer, to: typeof buyer, fromPeer: string, toPeer: string, performative: string, schema?: string) => {
      const out = from.send(key(toPeer), { performative, schema }, { def: MARKET_PROTOCOL, role: 'buyer' })
      assert.ok(out.ok, `send ${performative}: ${out.ok ? '' : out.detail}`)
      const got = to.receive(key(fromPeer), { performative, schema }, { def: MARKET_PROTOCOL })
      assert.ok(got.ok, `receive ${performative}: ${got.ok ? '' : got.detail}`)
      assert.equal(from.get(key(toPeer))?.state, to.get(key(fromPeer))?.state)
    }
    exchange(buyer, seller, 'B', 'S', 'cfp', 'market/rfp@1.0.0')
    assert.equal(seller.get(key('B'))?.role, 'seller')
    exchange(seller, buyer, 'S', 'B', 'propose', 'market/proposal@1.0.0')
    exchange(buyer, seller, 'B', 'S', 'propose', 'market/proposal@1.0.0')
    exchange(seller, buyer, 'S', 'B', 'propose', 'market/proposal@1.0.0')
    exchange(buyer, seller, 'B', 'S', 'accept-proposal', 'market/contract@2.0.1')
    exchange(seller, buyer, 'S', 'B', 'inform', 'market/contract@2.0.1')
    assert.equal(buyer.get(key('S'))?.state, 'agreed')
    assert.equal(buyer.active, 0)
    // Out of turn: the seller may not accept its own offer.
    const t = createConversationTracker({ clock })
    t.begin(key('B'), MARKET_PROTOCOL, 'seller')
    const wrong = t.send(key('B'), { performative: 'propose', schema: 'market/proposal@1.0.0' })
    assert.ok(!wrong.ok)
    assert.deepEqual(wrong.expected.map((e) => `${e.performative}/${e.sender}`), ['cfp/buyer'])
    const err = protocolViolation(wrong, 'propose')
    assert.equal(err.code, 'ProtocolViolationError')
    assert.match(err.message, /propose refused \(illegal-transition\): .*expected cfp by buyer \(market\/rfp@1\.0\.0\)/)
    assert.deepEqual({ ...err.details, expected: undefined }, { reason: 'illegal-transition', state: 'start', protocol: 'proto/market@1.0.0', expected: undefined })
  })

  test('timeouts fire through the injected clock and are reported once', () => {
    const clock = createManualClock(0)
    const events: TimeoutEvent[] = []
    const tracker = createConversationTracker({ clock, onTimeout: (e) => events.push(e) })
    const k = { conv: 'c', peer: 'p' }
    tracker.begin(k, CONTRACT_NET_PROTOCOL, 'initiator')
    assert.equal(clock.pending, 0)
    assert.ok(tracker.send(k, { performative: 'cfp' }).ok)
    assert.equal(clock.pending, 1)
    clock.advance(59_999)
    assert.equal(events.length, 0)
    clock.advance(1)
    assert.equal(events.length, 1)
    assert.deepEqual(events[0].fired, [{ from: 'cfp', to: 'expired', at: 60_000 }])
    assert.equal(tracker.get(k)?.status, 'done')
    assert.equal(clock.pending, 0)
    const late = tracker.receive(k, { performative: 'propose' })
    assert.ok(!late.ok)
    assert.equal(late.reason, 'conversation-ended')
    clock.advance(1_000_000)
    assert.equal(events.length, 1)
  })

  test('a step re-arms the timer for the new state; close cancels timers', () => {
    const clock = createManualClock(0)
    const events: TimeoutEvent[] = []
    const tracker = createConversationTracker({ clock, onTimeout: (e) => events.push(e) })
    const k = { conv: 'c', peer: 'p' }
    tracker.begin(k, CONTRACT_NET_PROTOCOL, 'participant')
    assert.ok(tracker.receive(k, { performative: 'cfp' }).ok)
    clock.advance(30_000)
    assert.ok(tracker.send(k, { performative: 'propose' }).ok)
    clock.advance(59_000)
    assert.equal(events.length, 0)
    clock.advance(1_000)
    assert.equal(events[0]?.fired[0]?.from, 'proposed')
    tracker.begin({ conv: 'd', peer: 'p' }, REQUEST_PROTOCOL, 'initiator')
    tracker.send({ conv: 'd', peer: 'p' }, { performative: 'request' })
    tracker.close()
    assert.equal(clock.pending, 0)
  })

  test('unknown conversations, openers, and the bound on conversations', () => {
    const tracker = createConversationTracker({ clock: createManualClock(), maxConversations: 2 })
    const r = tracker.receive({ conv: 'x', peer: 'p' }, { performative: 'inform' })
    assert.ok(!r.ok)
    assert.equal(r.reason, 'unknown-conversation')
    const notOpener = tracker.receive({ conv: 'x', peer: 'p' }, { performative: 'inform' }, { def: REQUEST_PROTOCOL })
    assert.ok(!notOpener.ok)
    assert.equal(notOpener.reason, 'illegal-transition')
    assert.ok(tracker.receive({ conv: '1', peer: 'p' }, { performative: 'request' }, { def: REQUEST_PROTOCOL }).ok)
    assert.equal(tracker.get({ conv: '1', peer: 'p' })?.role, 'participant')
    assert.ok(tracker.receive({ conv: '2', peer: 'p' }, { performative: 'request' }, { def: REQUEST_PROTOCOL }).ok)
    const full = tracker.receive({ conv: '3', peer: 'p' }, { performative: 'request' }, { def: REQUEST_PROTOCOL })
    assert.ok(!full.ok)
    assert.equal(full.reason, 'too-many-conversations')
    // A finished conversation makes room.
    assert.ok(tracker.send({ conv: '1', peer: 'p' }, { performative: 'refuse' }).ok)
    assert.ok(tracker.receive({ conv: '3', peer: 'p' }, { performative: 'request' }, { def: REQUEST_PROTOCOL }).ok)
    assert.equal(tracker.size, 2)
    assert.throws(() => tracker.begin({ conv: '3', peer: 'p' }, REQUEST_PROTOCOL, 'initiator'), /already active/)
    // A refused opener leaves nothing behind.
    const market = createConversationTracker({ clock: createManualClock() })
    const noSchema = market.receive({ conv: 'm', peer: 'p' }, { performative: 'cfp' }, { def: MARKET_PROTOCOL })
    assert.ok(!noSchema.ok)
    assert.equal(noSchema.reason, 'schema-mismatch')
    assert.equal(market.size, 0)
    assert.ok(!market.send({ conv: 'm', peer: 'p' }, { performative: 'cfp' }, { def: MARKET_PROTOCOL, role: 'buyer' }).ok)
    assert.equal(market.size, 0)
  })
})
